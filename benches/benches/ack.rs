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

criterion_group!(benches, listener_steps);
criterion_main!(benches);
