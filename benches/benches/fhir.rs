//! HL7 v2 -> FHIR R4 Bundle through the shipped scripts (`scripts/fhir/to_bundle.rhai`), one thread:
//! ADT^A01 and ORU^R01 with 50 OBX, with parsing alone measured in the same run as the reference.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use junction_benches::{repo, test_message};
use junction_hl7::MessageBuf;
use junction_script::{ScriptEngine, ScriptOptions, ScriptSource};
use rhai::Map;

fn adt() -> String {
    String::from_utf8(test_message("fhir/adt_a01.hl7")).unwrap()
}

/// An ORU^R01 with one OBR and 50 numeric OBX, each with units, range and flag.
fn oru_50() -> String {
    let mut m = String::from(
        "MSH|^~\\&|LIS|CITYLAB|EHR|GOODHEALTH|20240220143000-0800||ORU^R01^ORU_R01|BENCH-1|P|2.5.1\r\
         PID|1||P-2002^^^CITYLAB^MR||Testperson^Tina||19751102|F\r\
         ORC|RE|PLC-88^EHR|FIL-99^CITYLAB\r\
         OBR|1|PLC-88^EHR|FIL-99^CITYLAB|24323-8^Comprehensive metabolic panel^LN|||20240220121500-0800||||||||||||||||||F\r",
    );
    for i in 1..=50 {
        m.push_str(&format!(
            "OBX|{i}|NM|{}-{}^Analyte {i}^LN||{}.{}|mmol/L^mmol/L^UCUM|3.5-5.1|N|||F|||20240220121500-0800\r",
            2000 + i,
            i % 10,
            i,
            i % 10
        ));
    }
    m
}

fn bench(c: &mut Criterion) {
    let engine = ScriptEngine::new(ScriptOptions {
        base_dir: repo(),
        channel_name: "bench".into(),
        ..ScriptOptions::default()
    })
    .unwrap();
    let script = engine
        .compile(&ScriptSource::from_file(repo().join("scripts/fhir/to_bundle.rhai")).unwrap())
        .unwrap();
    for (name, text) in [("adt_a01", adt()), ("oru_r01_50obx", oru_50())] {
        let mut g = c.benchmark_group(format!("fhir/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("parse", |b| {
            b.iter(|| MessageBuf::parse(text.as_bytes()).unwrap())
        });
        g.bench_function("parse+bundle", |b| {
            b.iter(|| {
                let msg = MessageBuf::parse(text.as_bytes()).unwrap();
                engine.run_transform(&script, msg, &mut Map::new()).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
