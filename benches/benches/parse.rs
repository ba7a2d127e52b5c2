//! HL7 v2 parse throughput on a ~1 KB ADT^A01 and a ~7 KB ORU^R01 (50 OBX) from tests/messages,
//! each doing the work a router does: parse, read PID-5-1 and every OBX-5 (decoded).
//!
//! Two references run in the same process so the ratios hold on any machine:
//! - `memchr`: one pass counting field separators and line breaks, the scan the parser itself
//!   makes; no parser can index the message faster than it can find the delimiters.
//! - `hl7-parser`: the crates.io `hl7-parser` crate doing the same work through its own API.
//!
//! `cargo bench -p junction-benches --bench parse`
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use junction_benches::test_message;
use junction_hl7::{FieldPath, Message, MessageBuf, Path};

/// Junction's zero-copy view: values come back borrowed unless they hold an escape sequence.
fn junction_view(bytes: &[u8], pid51: &Path, obx5: &FieldPath) -> Vec<String> {
    let m = Message::parse(bytes).unwrap();
    let mut out = vec![m.get(pid51).unwrap_or_default().into_owned()];
    for s in m.segments().filter(|s| s.name() == "OBX") {
        out.push(s.get(obx5).unwrap_or_default().into_owned());
    }
    out
}

/// Total decoded length of PID-5-1 and every OBX-5, so nothing is optimised away.
fn junction_view_len(bytes: &[u8], pid51: &Path, obx5: &FieldPath) -> usize {
    let m = Message::parse(bytes).unwrap();
    let mut n = m.get(pid51).map_or(0, |v| v.len());
    for s in m.segments().filter(|s| s.name() == "OBX") {
        n += s.get(obx5).map_or(0, |v| v.len());
    }
    n
}

fn junction_owned_len(bytes: &[u8], pid51: &Path, obx5: &FieldPath) -> usize {
    let m = MessageBuf::parse(bytes).unwrap();
    let mut n = m.get(pid51).map_or(0, |v| v.len());
    for i in m.segment_indices("OBX") {
        n += m.get_in(i, obx5).map_or(0, |v| v.len());
    }
    n
}

/// hl7-parser's decoded value, borrowed when there is no escape character (as junction does).
fn hp_value<'m>(sep: &hl7_parser::message::Separators, raw: &'m str) -> Cow<'m, str> {
    if raw.contains(sep.escape) {
        Cow::Owned(sep.decode(raw).to_string())
    } else {
        Cow::Borrowed(raw)
    }
}

fn hl7_parser_values(text: &str) -> Vec<String> {
    let m = hl7_parser::Message::parse(text).unwrap();
    let sep = m.separators;
    let pid = m
        .segment("PID")
        .and_then(|s| s.field(5))
        .and_then(|f| f.component(1))
        .map(|c| hp_value(&sep, c.raw_value()).into_owned());
    let mut out = vec![pid.unwrap_or_default()];
    for s in m.segments().filter(|s| s.name == "OBX") {
        let v = s.field(5).map(|f| hp_value(&sep, f.raw_value()));
        out.push(v.unwrap_or_default().into_owned());
    }
    out
}

fn hl7_parser_len(text: &str) -> usize {
    let m = hl7_parser::Message::parse(text).unwrap();
    let sep = m.separators;
    let mut n = m
        .segment("PID")
        .and_then(|s| s.field(5))
        .and_then(|f| f.component(1))
        .map_or(0, |c| hp_value(&sep, c.raw_value()).len());
    for s in m.segments().filter(|s| s.name == "OBX") {
        n += s
            .field(5)
            .map_or(0, |f| hp_value(&sep, f.raw_value()).len());
    }
    n
}

fn bench(c: &mut Criterion) {
    let pid51: Path = "PID-5-1".parse().unwrap();
    let obx5 = FieldPath::field(5);
    for (name, file, obx) in [
        ("adt_a01_1kb", "adt_a01_1kb.hl7", 0),
        ("oru_r01_50obx", "oru_r01_v251.hl7", 50),
    ] {
        let bytes = test_message(file);
        let text = std::str::from_utf8(&bytes).unwrap();
        // The three parsers must agree on what they read, or the comparison means nothing.
        let expected = junction_view(&bytes, &pid51, &obx5);
        assert_eq!(expected.len(), 1 + obx);
        assert!(!expected[0].is_empty());
        assert_eq!(hl7_parser_values(text), expected);

        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("memchr_delimiters", |b| {
            b.iter(|| memchr::memchr3_iter(b'|', b'\r', b'\n', black_box(&bytes)).count())
        });
        g.bench_function("junction_message", |b| {
            b.iter(|| junction_view_len(black_box(&bytes), &pid51, &obx5))
        });
        g.bench_function("junction_messagebuf", |b| {
            b.iter(|| junction_owned_len(black_box(&bytes), &pid51, &obx5))
        });
        g.bench_function("hl7_parser", |b| b.iter(|| hl7_parser_len(black_box(text))));
        g.finish();
    }
}

/// Path text is parsed by scripts on every `get`, so its grammar must stay cheap too.
fn bench_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("path");
    for text in ["PID-5-1", "OBX[2]-5", "PID-3[2]-1-2"] {
        g.bench_function(text, |b| {
            b.iter(|| black_box(text).parse::<Path>().unwrap())
        });
    }
    g.bench_function("dtm_20240131153045.12-0500", |b| {
        b.iter(|| junction_hl7::datetime::parse(black_box("20240131153045.12-0500")).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench, bench_paths);
criterion_main!(benches);
