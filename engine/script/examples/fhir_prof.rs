#![allow(clippy::unwrap_used)]
use junction_hl7::MessageBuf;
use junction_script::{ScriptEngine, ScriptOptions, ScriptSource};
use rhai::Map;
use std::path::PathBuf;
use std::time::Instant;
fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let engine = ScriptEngine::new(ScriptOptions {
        base_dir: repo.clone(),
        channel_name: "p".into(),
        ..ScriptOptions::default()
    })
    .unwrap();
    let text = std::fs::read_to_string(repo.join("tests/messages/fhir/oru_r01.hl7")).unwrap();
    for (name, code) in [
        ("context", "let fx = fhir::context(msg, #{}); #{}"),
        ("context+200 cwe", "let fx = fhir::context(msg, #{}); for i in 0..200 { fx.cwe(4, 3); } #{}"),
        ("context+200 comp", "let fx = fhir::context(msg, #{}); for i in 0..200 { fx.comp(4, 3, 1); } #{}"),
        ("resources", "import \"fhir/oru\" as oru; let fx = fhir::context(msg, #{}); oru::resources(fx, #{}); #{}"),
        ("full", "import \"fhir/bundle\" as b; b::convert(msg, #{})"),
    ] {
        let script = engine.compile(&ScriptSource::inline("x", 1, code)).unwrap();
        let n = 200;
        let t = Instant::now();
        for _ in 0..n {
            let msg = MessageBuf::parse(text.as_bytes()).unwrap();
            engine.run_transform(&script, msg, &mut Map::new()).unwrap();
        }
        println!("{name}: {:?}/msg", t.elapsed() / n);
    }
}
