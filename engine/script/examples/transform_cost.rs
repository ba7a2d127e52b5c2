//! Per-message cost of a realistic transform (ADT^A01 -> a JSON map with ~15 fields).
//! Run: `cargo run --release -p junction-script --example transform_cost`

use std::time::Instant;

use junction_hl7::MessageBuf;
use junction_script::{ScriptEngine, ScriptOptions, ScriptSource, TransformOutcome};
use rhai::Map;

const ADT: &str = "MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000-0500||ADT^A01|MSG00001|P|2.5\r\
EVN|A01|20240101120000-0500\r\
PID|1||12345^^^HOSP^MR~999-88-7777^^^SSA^SS||Doe^John^Q^Jr||19800215|M|||1 Main St^^Springfield^IL^62701^USA||(555)555-1234|||M||ACCT1\r\
PV1|1|I|W^101^A^HOSP||||1234^Smith^Jane|||MED||||||||VIS1|||||||||||||||||||||||||20240101110000-0500\r\
OBX|1|NM|GLU^Glucose||95|mg/dL\r";

const TRANSFORM: &str = r#"
let ids = [];
for id in msg.repeats("PID-3") {
    ids.push(#{ system: id["4-1"], value: id["1"], type: id["5"] });
}
let patient = #{
    resourceType: "Patient",
    id: uuid5("Patient", msg["PID-3[1]-4-1"], msg["PID-3[1]-1"]),
    identifier: ids,
    name: [#{
        family: msg["PID-5-1"],
        given: [msg["PID-5-2"], msg["PID-5-3"]],
        suffix: if msg.has("PID-5-4") { [msg["PID-5-4"]] } else { () },
    }],
    gender: if msg["PID-8"] == "M" { "male" } else if msg["PID-8"] == "F" { "female" } else { "unknown" },
    birthDate: to_fhir_date(msg["PID-7"]),
    address: [#{
        line: [msg["PID-11-1"]],
        city: msg["PID-11-3"],
        state: msg["PID-11-4"],
        postalCode: msg["PID-11-5"],
        country: msg["PID-11-6"],
    }],
    telecom: [#{ system: "phone", value: msg["PID-13-1"] }],
    maritalStatus: msg["PID-16"],
};
ctx.patient_id = patient.id;
#{
    patient: patient,
    encounter: #{ class: msg["PV1-2"], location: msg["PV1-3-1"] + "-" + msg["PV1-3-2"],
                  visit: msg["PV1-19"], start: to_fhir_datetime(msg["PV1-44"]) },
    event: msg.type(), control_id: msg.control_id(), sent: to_fhir_instant(msg["MSH-7"]),
}
"#;

/// Snippets that show where the time goes: run overhead, one read, a map literal, helpers.
const PARTS: &[&str] = &[
    r#""1""#,
    r#"msg["PID-5-1"]"#,
    r#"let x = #{a: 1, b: [1, 2], c: "x"}; x"#,
    r#"uuid5("a", "b")"#,
    r#"to_fhir_date("19800215")"#,
    r#"msg.repeats("PID-3"); """#,
];

const ITERATIONS: u32 = 20_000;

/// Mean µs per run of `code`, message clone included (the runtime hands each run its own message).
fn time(
    engine: &ScriptEngine,
    msg: &MessageBuf,
    code: &str,
) -> Result<f64, Box<dyn std::error::Error>> {
    let script = engine.compile(&ScriptSource::inline("example.yaml", 1, code))?;
    if let TransformOutcome::Payload(p) =
        engine.run_transform(&script, msg.clone(), &mut Map::new())?
    {
        if code == TRANSFORM {
            println!("{p:?}");
        }
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        engine.run_transform(&script, msg.clone(), &mut Map::new())?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(ITERATIONS))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = ScriptEngine::new(ScriptOptions::default())?;
    let msg = MessageBuf::parse(ADT.as_bytes())?;
    for code in PARTS {
        println!("{:>8.1} µs  {code}", time(&engine, &msg, code)?);
    }
    println!(
        "{:>8.1} µs  the ~30-line ADT -> JSON transform",
        time(&engine, &msg, TRANSFORM)?
    );
    let endless = engine.compile(&ScriptSource::inline(
        "example.yaml",
        1,
        "let i = 0; loop { i += 1; }",
    ))?;
    let start = Instant::now();
    let outcome = engine.run_transform(&endless, msg.clone(), &mut Map::new());
    println!("endless loop after {:?}: {outcome:?}", start.elapsed());
    Ok(())
}
