//! Property tests: random delimiters and content round-trip; no input makes the parser panic.
#![allow(clippy::unwrap_used)]

use junction_hl7::{split_batch, FieldPath, Message, MessageBuf, MshHeader};
use proptest::prelude::*;

const POOL: &[u8] = b"|^~\\&#!$%@*+:;?{}";

/// A field separator and 2..=5 encoding characters, all distinct.
fn delimiters() -> impl Strategy<Value = Vec<u8>> {
    (Just(POOL.to_vec()).prop_shuffle(), 3usize..=6).prop_map(|(pool, n)| pool[..n].to_vec())
}

fn segment_name() -> impl Strategy<Value = String> {
    "[A-Y][A-Z][A-Z0-9]".prop_filter("header names are special", |n| {
        !matches!(n.as_str(), "MSH" | "FHS" | "BHS")
    })
}

/// Values mixing text, non-ASCII letters and every pool character (the parser must escape them).
fn value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => Just(' '),
            1 => Just('é'),
            1 => Just('漢'),
            2 => proptest::sample::select(POOL.iter().map(|&b| char::from(b)).collect::<Vec<_>>()),
        ],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

type Edit = (
    String,
    usize,
    Option<usize>,
    Option<usize>,
    Option<usize>,
    String,
);

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        (
            segment_name(),
            1usize..8,
            proptest::option::of(1usize..3),
            proptest::option::of(1usize..4),
            proptest::option::of(1usize..3),
            value(),
        ),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_encode_round_trip(delims in delimiters(), edits in edits()) {
        let fs = char::from(delims[0]);
        let enc: String = delims[1..].iter().map(|&b| char::from(b)).collect();
        let has_escape = delims.len() >= 4;
        let has_sub = delims.len() >= 5;
        let mut m = MessageBuf::parse(format!("MSH{fs}{enc}{fs}APP{fs}FAC\r").as_bytes()).unwrap();
        for (name, field, rep, comp, sub, v) in &edits {
            let sub = if comp.is_some() && has_sub { *sub } else { None };
            let v: String = if has_escape { v.clone() } else { v.chars().filter(|c| !POOL.contains(&u8::try_from(u32::from(*c)).unwrap_or(0))).collect() };
            let seg = m.add_segment(name).unwrap();
            let fp = FieldPath { field: *field, repetition: *rep, component: *comp, subcomponent: sub };
            m.set_in(seg, &fp, &v).unwrap();
            // What is written reads back, decoded, at the same place.
            let got = m.get_in(seg, &fp).unwrap_or_default();
            prop_assert_eq!(&got, &v);
        }
        let bytes = m.encode();
        let again = MessageBuf::parse(&bytes).unwrap();
        prop_assert_eq!(&again, &m);
        prop_assert_eq!(again.encode(), bytes.clone());
        let view = Message::parse(&bytes).unwrap();
        prop_assert_eq!(view.to_owned(), m.clone());
        // Inserting a field before an existing one and removing it again gives the message back.
        let mut edited = m.clone();
        for (seg, (_, field, ..)) in (1..).zip(&edits) {
            let count = edited.segment(seg).unwrap().field_count();
            if count == 0 {
                continue;
            }
            let at = (*field).min(count);
            edited.insert_field(seg, at, "ins").unwrap();
            prop_assert_eq!(edited.get_in(seg, &FieldPath::field(at)), Some("ins".to_owned()));
            prop_assert_eq!(edited.segment(seg).unwrap().field_count(), count + 1);
            prop_assert!(edited.remove_field(seg, at));
        }
        prop_assert_eq!(edited, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }

    #[test]
    fn check_agrees_with_parse_on_line_shaped_input(lines in proptest::collection::vec(prop_oneof![
        4 => "(PID|OBX|ZZ1|EVN)\\|[a-z^~|]{0,8}",
        2 => "(PID|pid|P1D|PI| PID|PIDX|MSH)(\\|x)?",
        1 => "[ \t]{0,3}",
        1 => "(PID|NK1)[|^#]x",
        1 => "é\\|[a-z]",
    ], 0..8), terminators in proptest::collection::vec(prop_oneof![Just("\r"), Just("\n"), Just("\r\n"), Just("\n\n")], 8)) {
        let mut text = String::from("MSH|^~\\&|A|B");
        for (line, end) in lines.iter().zip(&terminators) {
            text.push_str(end);
            text.push_str(line);
        }
        let bytes = text.as_bytes();
        prop_assert_eq!(Message::check(bytes), Message::parse(bytes).map(drop));
        let mut latin1 = bytes.to_vec();
        latin1.push(0xE9);
        prop_assert_eq!(Message::check(&latin1), Message::parse(&latin1).map(drop));
        prop_assert_eq!(MessageBuf::check(bytes), Message::parse(bytes).map(drop));
        prop_assert_eq!(MessageBuf::check(&latin1), MessageBuf::parse(&latin1).map(drop));
    }

    #[test]
    fn msh_prefixed_noise_never_panics(tail in proptest::collection::vec(prop_oneof![any::<u8>(), proptest::sample::select(b"|^~\\&#\r\nMSHPIDFBT0".to_vec())], 0..400)) {
        let mut bytes = b"MSH|^~\\&#|".to_vec();
        bytes.extend_from_slice(&tail);
        exercise(&bytes);
    }
}

/// Everything a receiver does with untrusted bytes; parsed messages must round-trip.
fn exercise(bytes: &[u8]) {
    let _ = MshHeader::peek(bytes);
    assert_eq!(Message::check(bytes), Message::parse(bytes).map(drop));
    if let Ok(m) = Message::parse(bytes) {
        for s in m.segments() {
            for n in 0..=s.field_count() + 1 {
                let _ = s.get(&FieldPath {
                    field: n.max(1),
                    repetition: Some(2),
                    component: Some(2),
                    subcomponent: Some(2),
                });
            }
        }
        let owned = m.to_owned();
        assert_eq!(MessageBuf::parse(&owned.encode()).unwrap(), owned);
    }
    if let Ok(m) = MessageBuf::parse(bytes) {
        let enc = m.encode();
        assert_eq!(MessageBuf::parse(&enc).unwrap().encode(), enc);
        let _ = m.to_json();
    }
    if let Ok(b) = split_batch(bytes) {
        for msg in &b.messages {
            let _ = MessageBuf::parse(msg).map(|m| m.encode());
        }
    }
}
