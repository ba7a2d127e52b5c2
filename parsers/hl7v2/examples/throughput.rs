//! Rough parse throughput against a plain memchr delimiter count (use the criterion benches for
//! real numbers): `cargo run --release -p junction-hl7 --example throughput`.

use std::hint::black_box;
use std::time::Instant;

use junction_hl7::{FieldPath, Message, MessageBuf, Path};

fn rate(name: &str, bytes: &[u8], f: impl Fn(&[u8]) -> usize) -> f64 {
    let iters = (200_000_000 / bytes.len().max(1)).max(1);
    let start = Instant::now();
    let mut acc = 0usize;
    for _ in 0..iters {
        acc = acc.wrapping_add(f(black_box(bytes)));
    }
    let secs = start.elapsed().as_secs_f64();
    let mbs = (bytes.len() * iters) as f64 / secs / 1e6;
    println!("{name:<40} {mbs:>9.1} MB/s  ({acc})");
    mbs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/messages");
    let pid51: Path = "PID-5-1".parse()?;
    let obx5 = FieldPath::field(5);
    for name in ["adt_a01_1kb.hl7", "oru_r01_v251.hl7"] {
        let bytes = std::fs::read(dir.join(name))?;
        println!("{name} ({} bytes)", bytes.len());
        let base = rate("memchr count of | and CR", &bytes, |b| {
            memchr::memchr2_iter(b'|', b'\r', b).count()
        });
        let fast = rate("Message::parse + PID-5-1 + every OBX-5", &bytes, |b| {
            let Ok(m) = Message::parse(b) else { return 0 };
            let mut n = m.get(&pid51).map_or(0, |v| v.len());
            for s in m.segments().filter(|s| s.name() == "OBX") {
                n += s.get(&obx5).map_or(0, |v| v.len());
            }
            n
        });
        rate("MessageBuf::parse + PID-5-1", &bytes, |b| {
            MessageBuf::parse(b).map_or(0, |m| m.get(&pid51).map_or(0, |v| v.len()))
        });
        println!("zero-copy / memchr = {:.0}%\n", fast / base * 100.0);
    }
    Ok(())
}
