//! Behaviour on the project's own test messages (`tests/messages/*.hl7`, fictional patients).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use junction_hl7::ack::{build_ack_at, AckCode, AckError, AckMode};
use junction_hl7::{
    split_batch, Charset, FieldPath, Message, MessageBuf, MshHeader, ParseError, Path, PathError,
};

fn file(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/messages")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn buf(name: &str) -> MessageBuf {
    MessageBuf::parse(&file(name)).unwrap()
}

/// The bytes with BOM/leading blank lines dropped and every terminator normalised to CR.
fn normalised(bytes: &[u8]) -> Vec<u8> {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::new();
    for line in b.split(|&c| c == b'\r' || c == b'\n') {
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.extend_from_slice(line);
            out.push(b'\r');
        }
    }
    out
}

const GOOD: &[&str] = &[
    "adt_a01_v23.hl7",
    "adt_a01_v251.hl7",
    "adt_a01_1kb.hl7",
    "oru_r01_v251.hl7",
    "custom_delimiters.hl7",
    "escapes.hl7",
    "zsegments.hl7",
    "crlf_mixed.hl7",
    "latin1_8859.hl7",
    "v28_truncation.hl7",
];

#[test]
fn every_good_message_round_trips_byte_exact() {
    for name in GOOD {
        let bytes = file(name);
        let m = MessageBuf::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.encode(), normalised(&bytes), "{name}");
    }
}

#[test]
fn versions_and_fields() {
    let m = buf("adt_a01_v23.hl7");
    assert_eq!(m.get(&p("MSH-1")).unwrap(), "|");
    assert_eq!(m.get(&p("MSH-2")).unwrap(), "^~\\&");
    assert_eq!(m.get(&p("MSH-3")).unwrap(), "REGADT");
    assert_eq!(m.get(&p("MSH-12")).unwrap(), "2.3");
    assert_eq!(m.get(&p("PID-5-1")).unwrap(), "EVERYWOMAN");
    assert_eq!(m.get(&p("PID.5.2")).unwrap(), "EVE");
    assert_eq!(m.get(&p("PID-3[2]-1")).unwrap(), "123456789");
    assert_eq!(m.count(&p("PID-3")), 2);
    assert_eq!(m.message_type(), "ADT^A01");
    let m = buf("adt_a01_v251.hl7");
    assert_eq!(m.message_type(), "ADT^A01");
    assert_eq!(m.control_id(), "MSG00001");
    assert_eq!(m.get(&p("MSH-9-3")).unwrap(), "ADT_A01");
    assert_eq!(m.get(&p("MSH-18")).unwrap(), "UNICODE UTF-8");
    assert_eq!(m.get(&p("PID-11-3")).unwrap(), "Springfield");
}

#[test]
fn oru_with_fifty_obx_zero_copy_and_owned() {
    let bytes = file("oru_r01_v251.hl7");
    let m = Message::parse(&bytes).unwrap();
    let obx5: Vec<String> = m
        .segments()
        .filter(|s| s.name() == "OBX")
        .map(|s| s.get(&FieldPath::field(5)).unwrap().into_owned())
        .collect();
    assert_eq!(obx5.len(), 50);
    assert_eq!(obx5[0], "51.1");
    assert_eq!(obx5[49], "100.0");
    assert_eq!(m.get(&p("OBX[50]-5")).unwrap(), "100.0");
    assert_eq!(m.get(&p("OBX[2]-3-2")).unwrap(), "Sodium item 2");
    assert_eq!(m.get(&p("OBX-15-1-2")).unwrap(), "Central Lab");
    // Formatting escapes are kept verbatim.
    assert_eq!(
        m.get(&p("NTE-3")).unwrap(),
        "Group 1: specimen slightly hemolyzed\\.br\\values may be affected."
    );
    let owned = m.to_owned();
    assert_eq!(owned.count(&p("OBX")), 50);
    assert_eq!(owned.segment_indices("NTE").len(), 5);
    assert_eq!(owned.encode(), bytes);
}

#[test]
fn custom_delimiters_drive_parsing_and_escaping() {
    let mut m = buf("custom_delimiters.hl7");
    let d = *m.delimiters();
    assert_eq!(
        (d.field, d.component, d.repetition, d.escape, d.subcomponent),
        (b'#', b'$', b'%', Some(b'!'), Some(b'@'))
    );
    assert_eq!(m.get(&p("MSH-3")).unwrap(), "SENDER");
    assert_eq!(m.get(&p("PID-3[2]-1")).unwrap(), "ID2");
    assert_eq!(
        m.get(&p("NTE-3")).unwrap(),
        "Text with # field $ comp % rep @ sub ! escape and a | pipe"
    );
    m.set(&p("PID-5-3"), "a#b$c!").unwrap();
    assert_eq!(m.get_raw(&p("PID-5-3")).unwrap(), "a!F!b!S!c!E!");
    let again = MessageBuf::parse(&m.encode()).unwrap();
    assert_eq!(again.get(&p("PID-5-3")).unwrap(), "a#b$c!");
}

#[test]
fn escapes_decode_on_read_and_keep_the_rest_verbatim() {
    let m = buf("escapes.hl7");
    assert_eq!(m.get(&p("PID-5-1")).unwrap(), "O^Brien");
    assert_eq!(m.get(&p("PID-5-2")).unwrap(), "Mary&Ann");
    assert_eq!(
        m.get(&p("OBX-5")).unwrap(),
        "Line one\\.br\\Line two | pipe ~ tilde \\ backslash \\H\\bold\\N\\ hex\\X0D0A\\ local\\Zabc\\ charset\\C2842\\ multi\\M2442\\ unknown\\Q\\ lone\\ end"
    );
    assert!(m.is_null(&p("OBX[2]-5")));
    assert!(!m.is_null(&p("OBX[1]-5")));
    // Writing back what was read keeps formatting sequences and re-escapes separators.
    let mut m2 = m.clone();
    let v = m.get(&p("OBX-5")).unwrap();
    m2.set(&p("OBX-5"), &v).unwrap();
    assert_eq!(m2.get(&p("OBX-5")).unwrap(), v);
    assert!(m2
        .get_raw(&p("OBX-5"))
        .unwrap()
        .contains("\\.br\\Line two \\F\\ pipe"));
}

#[test]
fn z_segments() {
    let m = buf("zsegments.hl7");
    assert_eq!(m.count(&p("ZPI")), 2);
    assert_eq!(m.get(&p("ZPI[2]-2")).unwrap(), "another occurrence");
    assert_eq!(m.get(&p("ZPI-3-1-2")).unwrap(), "Sub");
    assert_eq!(m.get(&p("ZPI-2-2")).unwrap(), "Very important");
    assert_eq!(
        m.segment_names().collect::<Vec<_>>(),
        ["MSH", "EVN", "PID", "ZPI", "ZP2", "ZPI"]
    );
}

#[test]
fn batch_file_keeps_headers_and_messages() {
    let b = split_batch(&file("batch_fhs.hl7")).unwrap();
    assert_eq!(b.messages.len(), 3);
    let fhs = b.file_header.as_ref().unwrap();
    assert_eq!(fhs.field(1).unwrap(), "|");
    assert_eq!(fhs.field(3).unwrap(), "FILEAPP");
    assert_eq!(fhs.field(9).unwrap(), "file001.hl7");
    assert_eq!(b.batches.len(), 1);
    assert_eq!(
        b.batches[0].header.as_ref().unwrap().field(11).unwrap(),
        "BATCHCTRL1"
    );
    assert_eq!(
        b.batches[0].trailer.as_ref().unwrap().field(1).unwrap(),
        "3"
    );
    assert_eq!(
        b.file_trailer.as_ref().unwrap().field(2).unwrap(),
        "end of file"
    );
    let ids: Vec<String> = b
        .messages
        .iter()
        .map(|m| MessageBuf::parse(m).unwrap().control_id())
        .collect();
    assert_eq!(ids, ["BATCH001", "BATCH002", "BATCH003"]);
}

#[test]
fn lf_stream_splits_at_each_msh() {
    let b = split_batch(&file("stream_lf.hl7")).unwrap();
    assert_eq!(b.messages.len(), 3);
    let m = MessageBuf::parse(&b.messages[1]).unwrap();
    assert_eq!(m.control_id(), "STREAM2");
    assert_eq!(m.get(&p("PID-5-2")).unwrap(), "Two");
    assert!(b
        .messages
        .iter()
        .all(|m| m.ends_with(b"\r") && !m.contains(&b'\n')));
}

#[test]
fn mixed_terminators_bom_and_leading_whitespace() {
    let bytes = file("crlf_mixed.hl7");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.segment_count(), 4);
    assert_eq!(m.get(&p("PID-5-2")).unwrap(), "Max");
    assert_eq!(m.get(&p("PV1-2")).unwrap(), "O");
    let owned = MessageBuf::parse(&bytes).unwrap();
    assert_eq!(owned.encode(), b"MSH|^~\\&|MIX|F|R|F|20240104||ADT^A01|MIXED1|P|2.7\rEVN|A01|20240104\rPID|1||M1^^^H^MR||Mixed^Max\rPV1|1|O\r");
}

#[test]
fn latin1_is_decoded_and_written_back_as_latin1() {
    let bytes = file("latin1_8859.hl7");
    let mut m = MessageBuf::parse(&bytes).unwrap();
    assert_eq!(m.charset(), Charset::Latin1);
    assert_eq!(m.get(&p("PID-5-1")).unwrap(), "Müller");
    assert_eq!(m.get(&p("PID-11-3")).unwrap(), "Köln");
    assert!(m.to_hl7_string().contains("Größe 180 cm; ½ Dosis"));
    assert_eq!(m.encode(), bytes);
    m.set(&p("PID-5-2"), "Jörg").unwrap();
    assert!(m.encode().windows(4).any(|w| w == b"J\xf6rg"));
    // The zero-copy view is UTF-8 only and says so instead of guessing.
    assert!(matches!(
        Message::parse(&bytes),
        Err(ParseError::InvalidEncoding { .. })
    ));
}

#[test]
fn unsupported_charset_is_refused() {
    let e = MessageBuf::parse(&file("malformed_utf16_declared.hl7")).unwrap_err();
    assert!(matches!(e, ParseError::UnsupportedCharset { .. }), "{e}");
    assert!(e.to_string().contains("UNICODE UTF-16"));
}

#[test]
fn truncation_character_v28() {
    let mut m = buf("v28_truncation.hl7");
    assert_eq!(m.delimiters().truncation, Some(b'#'));
    assert_eq!(m.get(&p("MSH-2")).unwrap(), "^~\\&#");
    assert_eq!(m.get(&p("MSH-3")).unwrap(), "TRUNCAPP");
    assert_eq!(m.get(&p("OBX-5")).unwrap(), "This value was cut short#");
    assert_eq!(m.get(&p("OBX[2]-5")).unwrap(), "Issue #42 literal hash");
    m.set(&p("OBX[2]-5"), "#7").unwrap();
    assert_eq!(m.get_raw(&p("OBX[2]-5")).unwrap(), "\\P\\7");
}

#[test]
fn malformed_messages_give_located_errors() {
    let e = Message::parse(&file("malformed_no_msh.hl7")).unwrap_err();
    assert_eq!(e.to_string(), "byte 0: message does not start with MSH");
    let e = MessageBuf::parse(&file("malformed_no_encoding_chars.hl7")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "segment 1 (MSH): encoding characters (MSH-2) missing"
    );
    assert_eq!((e.segment_index(), e.field_position()), (Some(1), Some(2)));
    let e = MessageBuf::parse(&file("malformed_segment_name.hl7")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("segment 3 (PID): field separator missing after segment name"),
        "{e}"
    );
    assert_eq!(e.segment_name(), Some("PID"));
    assert_eq!(e.offset(), 62);
    let e = split_batch(&file("malformed_batch_nested.hl7")).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::BatchStructure {
                segment_index: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn ack_for_a_message_that_did_not_parse() {
    let bytes = file("malformed_segment_name.hl7");
    let err = MessageBuf::parse(&bytes).unwrap_err();
    let header = MshHeader::peek(&bytes).unwrap();
    assert_eq!(header.control_id, "BAD3");
    let ack = build_ack_at(
        &header,
        AckCode::AR,
        Some(&AckError::from_parse_error(&err)),
        "ACK0001",
        "20240101120000",
    );
    let a = MessageBuf::parse(&ack).unwrap();
    assert_eq!(a.get(&p("MSA-1")).unwrap(), "AR");
    assert_eq!(a.get(&p("MSA-2")).unwrap(), "BAD3");
    assert!(a
        .get(&p("MSA-3"))
        .unwrap()
        .contains("field separator missing"));
    assert_eq!(a.get(&p("ERR-2-1")).unwrap(), "PID");
    assert_eq!(a.get(&p("ERR-3-1")).unwrap(), "100");
    assert_eq!(a.get(&p("ERR-4")).unwrap(), "E");
    let h = MshHeader::peek(&file("malformed_truncated_msh.hl7")).unwrap();
    assert_eq!(h.control_id, "TRUNC-ID-7");
    assert_eq!(h.version, "");
}

#[test]
fn ack_swaps_and_echoes() {
    for name in GOOD {
        let bytes = file(name);
        let h = MshHeader::peek(&bytes).unwrap();
        let orig = MessageBuf::parse(&bytes).unwrap();
        let code = match AckMode::from_header(&h) {
            AckMode::Original => AckCode::AA,
            AckMode::Enhanced { .. } => AckCode::CA,
        };
        let a = MessageBuf::parse(&build_ack_at(&h, code, None, "NEWID", "20240101"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.delimiters(), orig.delimiters(), "{name}");
        assert_eq!(a.get(&p("MSA-2")), orig.get(&p("MSH-10")), "{name}");
        assert_eq!(a.get(&p("MSH-3")), orig.get(&p("MSH-5")), "{name}");
        assert_eq!(a.get(&p("MSH-4")), orig.get(&p("MSH-6")), "{name}");
        assert_eq!(a.get(&p("MSH-5")), orig.get(&p("MSH-3")), "{name}");
        assert_eq!(a.get(&p("MSH-6")), orig.get(&p("MSH-4")), "{name}");
        assert_eq!(a.get(&p("MSH-9-1")).unwrap(), "ACK");
        assert_eq!(a.get(&p("MSH-9-2")), orig.get(&p("MSH-9-2")), "{name}");
        assert_eq!(a.get(&p("MSH-9-3")).unwrap(), "ACK");
        assert_eq!(a.get(&p("MSH-10")).unwrap(), "NEWID");
        assert_eq!(a.get(&p("MSH-11")), orig.get(&p("MSH-11")), "{name}");
        assert_eq!(a.get(&p("MSH-12")), orig.get(&p("MSH-12")), "{name}");
        assert_eq!(a.charset(), orig.charset(), "{name}");
    }
    // adt_a01_v251 has MSH-15 AL / MSH-16 NE: enhanced, commit ACK only.
    let h = MshHeader::peek(&file("adt_a01_v251.hl7")).unwrap();
    let mode = AckMode::from_header(&h);
    assert!(mode.commit_ack_wanted(true) && !mode.application_ack_wanted(true));
}

#[test]
fn editing_creates_what_is_missing() {
    let mut m = buf("adt_a01_v23.hl7");
    m.set(&p("PID-3[3]-4-2"), "2.16.840.1.113883").unwrap();
    assert_eq!(m.count(&p("PID-3")), 3);
    assert_eq!(m.get_raw(&p("PID-3[3]")).unwrap(), "^^^&2.16.840.1.113883");
    m.set(&p("ZXT[2]-1"), "new").unwrap();
    assert_eq!(m.count(&p("ZXT")), 2);
    assert_eq!(m.segment_names().last(), Some("ZXT"));
    m.set(&p("PV1-50"), "far").unwrap();
    assert_eq!(m.get(&p("PV1-50")).unwrap(), "far");
    assert!(m.remove(&p("PV1-50")));
    assert!(!m.get_raw(&p("PV1")).unwrap().ends_with('|'));
    assert!(!m.remove(&p("PV1-50")));
    assert!(m.remove(&p("NK1")));
    assert_eq!(m.count(&p("NK1")), 0);
    let i = m.segment_indices("PID")[0];
    m.insert_segment(i + 1, "PD1").unwrap();
    m.set_in(i + 1, &"4-2".parse().unwrap(), "Doc").unwrap();
    assert_eq!(m.get(&p("PD1-4-2")).unwrap(), "Doc");
    assert_eq!(m.get_in(i + 1, &"4".parse().unwrap()).unwrap(), "^Doc");
    assert!(m.remove_segment(i + 1));
    assert!(!m.remove_segment(0));
    assert!(matches!(
        m.add_segment("pid"),
        Err(PathError::InvalidSegment { .. })
    ));
    assert!(matches!(
        m.insert_segment(0, "ZZZ"),
        Err(PathError::SegmentIndex { .. })
    ));
    let reparsed = MessageBuf::parse(&m.encode()).unwrap();
    assert_eq!(reparsed, m);
}

#[test]
fn json_shape() {
    let m = MessageBuf::parse(b"MSH|^~\\&|APP\rPID|1|\"\"|a~b|Doe^John|x&y^z\r").unwrap();
    let j = m.to_json();
    assert_eq!(j["segments"][0]["name"], "MSH");
    assert_eq!(j["segments"][0]["fields"][0], "|");
    assert_eq!(j["segments"][0]["fields"][1], "^~\\&");
    assert_eq!(j["segments"][0]["fields"][2], "APP");
    let f = &j["segments"][1]["fields"];
    assert_eq!(f[0], "1");
    assert!(f[1].is_null());
    assert_eq!(f[2], serde_json::json!(["a", "b"]));
    assert_eq!(f[3], serde_json::json!([["Doe", "John"]]));
    assert_eq!(f[4], serde_json::json!([[["x", "y"], "z"]]));
}
