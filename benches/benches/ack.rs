//! What `junction listen` does to each message besides socket I/O: pre-read MSH, check the syntax,
//! and build the ACK. The MLLP load test (`junction-load`) shows the sum against a responder that
//! skips all three; this bench says which part costs what.
//!
//! `cargo bench -p junction-benches --bench ack`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use junction_benches::test_message;
use junction_hl7::ack::{build_ack, next_control_id, AckCode, AckError, AckMode};
use junction_hl7::{Message, MessageBuf, MshHeader};

fn listener_steps(c: &mut Criterion) {
    let bytes = test_message("adt_a01_1kb.hl7");
    let header = MshHeader::peek(&bytes).unwrap();
    let mut g = c.benchmark_group("ack ADT^A01 1 KB");
    g.bench_function("peek MSH", |b| {
        b.iter(|| MshHeader::peek(black_box(&bytes)))
    });
    g.bench_function("syntax check (MessageBuf::check, as the listener)", |b| {
        b.iter(|| MessageBuf::check(black_box(&bytes)).is_ok())
    });
    g.bench_function("full parse (Message::parse)", |b| {
        b.iter(|| Message::parse(black_box(&bytes)).is_ok())
    });
    g.bench_function("build AA", |b| {
        b.iter(|| build_ack(black_box(&header), AckCode::AA, None, &next_control_id()))
    });
    let error = AckError::new(207, "message could not be stored");
    g.bench_function("build AE with ERR", |b| {
        b.iter(|| {
            build_ack(
                black_box(&header),
                AckCode::AE,
                Some(&error),
                &next_control_id(),
            )
        })
    });
    g.bench_function("all: peek, check, AA", |b| {
        b.iter(|| {
            let header = MshHeader::peek(black_box(&bytes)).unwrap();
            let ok = MessageBuf::check(&bytes).is_ok();
            let mode = AckMode::from_header(&header);
            let code = if ok { AckCode::AA } else { AckCode::AR };
            black_box(mode.application_ack_wanted(ok));
            build_ack(&header, code, None, &next_control_id())
        })
    });
    g.finish();
}

/// The listener's check of a message that is not UTF-8 (ISO 8859-1 by MSH-18), beside the full
/// decode-and-copy parse it used to run, as the baseline.
fn latin1_check(c: &mut Criterion) {
    let utf8 = String::from_utf8(test_message("adt_a01_1kb.hl7")).unwrap();
    let msh = utf8.split('\r').next().unwrap();
    let declared = format!("{msh}{}8859/1", "|".repeat(17 - msh.matches('|').count()));
    let text = utf8
        .replacen(msh, &declared, 1)
        .replacen("Sample^Sam", "Müller^Sam", 1);
    let bytes: Vec<u8> = text
        .chars()
        .map(|ch| u8::try_from(u32::from(ch)).unwrap())
        .collect();
    assert!(std::str::from_utf8(&bytes).is_err() && MessageBuf::check(&bytes).is_ok());
    let mut g = c.benchmark_group("check ADT^A01 1 KB in ISO 8859-1");
    g.bench_function("syntax check (MessageBuf::check, as the listener)", |b| {
        b.iter(|| MessageBuf::check(black_box(&bytes)).is_ok())
    });
    g.bench_function("baseline: MessageBuf::parse", |b| {
        b.iter(|| MessageBuf::parse(black_box(&bytes)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, listener_steps, latin1_check);
criterion_main!(benches);
