//! A transform that walks every OBX through segment handles, the pattern the script API documents
//! (`for obx in msg.segments("OBX") { obx["5"] = ... }`), at 100 and 1,000 OBX in the same run: the
//! ratio between the two says whether a handle access costs the same however long the message is.
//!
//! `cargo bench -p junction-benches --bench script`
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use junction_hl7::MessageBuf;
use junction_script::{ScriptEngine, ScriptOptions, ScriptSource};
use rhai::Map;

fn oru(obx: usize) -> String {
    let mut m = String::from(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240220143000||ORU^R01|BENCH-1|P|2.5.1\rPID|1||P-1^^^LAB^MR||Doe^Jo\r",
    );
    for i in 1..=obx {
        m.push_str(&format!(
            "OBX|{i}|NM|{i}^Analyte^LN||{i}.5|mmol/L|3.5-5.1|N|||F\r"
        ));
    }
    m
}

fn walk(c: &mut Criterion) {
    let engine = ScriptEngine::new(ScriptOptions::default()).unwrap();
    let script = engine
        .compile(&ScriptSource::inline(
            "bench",
            1,
            r#"for obx in msg.segments("OBX") { obx["8"] = if obx["5"] == "" { "A" } else { "N" }; } msg"#,
        ))
        .unwrap();
    let mut g = c.benchmark_group("script: set OBX-8 through each OBX handle");
    for obx in [100, 1000] {
        let text = oru(obx);
        g.bench_function(format!("{obx} OBX"), |b| {
            b.iter(|| {
                let msg = MessageBuf::parse(text.as_bytes()).unwrap();
                engine.run_transform(&script, msg, &mut Map::new()).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, walk);
criterion_main!(benches);
