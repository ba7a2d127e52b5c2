//! The shipped FHIR mapping (`scripts/fhir/to_bundle.rhai`) run on the project's own test messages
//! (`tests/messages/fhir/*.hl7`): what an integrator checks in the Bundle for each message type.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use junction_hl7::MessageBuf;
use junction_script::{
    Payload, Script, ScriptEngine, ScriptOptions, ScriptSource, TransformOutcome,
};
use rhai::Map;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine_and_script(code: Option<&str>) -> (ScriptEngine, Script) {
    let engine = ScriptEngine::new(ScriptOptions {
        base_dir: repo(),
        channel_name: "fhir-test".into(),
        ..ScriptOptions::default()
    })
    .unwrap();
    let source = match code {
        Some(code) => ScriptSource::inline("channels/fhir.yaml", 1, code),
        None => ScriptSource::from_file(repo().join("scripts/fhir/to_bundle.rhai")).unwrap(),
    };
    let script = engine.compile(&source).unwrap_or_else(|e| panic!("{e}"));
    (engine, script)
}

fn run(engine: &ScriptEngine, script: &Script, text: &str) -> Value {
    let msg = MessageBuf::parse(text.as_bytes()).unwrap();
    match engine
        .run_transform(script, msg, &mut Map::new())
        .unwrap_or_else(|e| panic!("{e}"))
    {
        TransformOutcome::Payload(Payload::Json(v)) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

fn message(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/messages/fhir").join(name)).unwrap()
}

/// The transaction Bundle the shipped entry script makes of `tests/messages/fhir/<name>`.
fn bundle(name: &str) -> Value {
    let (engine, script) = engine_and_script(None);
    let b = run(&engine, &script, &message(name));
    assert_bundle_sound(&b);
    b
}

/// Every entry has a unique fullUrl, every `reference` inside the Bundle resolves, nothing is empty.
fn assert_bundle_sound(b: &Value) {
    assert_eq!(b["resourceType"], "Bundle");
    let entries = b["entry"].as_array().unwrap();
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    let mut unique = urls.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), urls.len(), "duplicate fullUrl");
    fn walk(v: &Value, urls: &[&str]) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("reference") {
                    assert!(urls.contains(&r.as_str()), "dangling reference {r}");
                }
                assert!(!m.is_empty(), "empty object");
                m.values().for_each(|x| walk(x, urls));
            }
            Value::Array(a) => {
                assert!(!a.is_empty(), "empty array");
                a.iter().for_each(|x| walk(x, urls));
            }
            Value::String(s) => assert!(!s.trim().is_empty(), "empty string"),
            Value::Null => panic!("null in bundle"),
            _ => {}
        }
    }
    walk(b, &urls);
}

/// The resources of one type.
fn of_type<'a>(b: &'a Value, rtype: &str) -> Vec<&'a Value> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == rtype)
        .collect()
}

fn one<'a>(b: &'a Value, rtype: &str) -> &'a Value {
    let all = of_type(b, rtype);
    assert_eq!(all.len(), 1, "expected one {rtype}");
    all[0]
}

fn entry_of<'a>(b: &'a Value, resource: &Value) -> &'a Value {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["id"] == resource["id"])
        .unwrap()
}

fn reference_to(resource: &Value) -> String {
    format!("urn:uuid:{}", resource["id"].as_str().unwrap())
}

#[test]
fn adt_a01_patient_encounter_and_patient_level_resources() {
    let b = bundle("adt_a01.hl7");
    assert_eq!(b["type"], "transaction");
    assert_eq!(b["timestamp"], "2024-01-15T08:30:00-05:00");
    let p = one(&b, "Patient");
    assert_eq!(p["name"][0]["family"], "Everyman");
    assert_eq!(p["name"][0]["given"], serde_json::json!(["Adam", "A"]));
    assert_eq!(p["name"][0]["use"], "official");
    assert_eq!(p["gender"], "male");
    assert_eq!(p["birthDate"], "1980-06-15");
    assert_eq!(p["identifier"][0]["value"], "MRN-1001");
    assert_eq!(p["identifier"][0]["system"], "urn:id:GOODHEALTH");
    assert_eq!(p["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(
        p["maritalStatus"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    );
    assert_eq!(
        p["telecom"][1],
        serde_json::json!({"system": "email", "value": "adam@example.org", "use": "home"})
    );
    assert_eq!(p["address"][0]["city"], "Springfield");
    assert_eq!(p["deceasedBoolean"], false);
    assert_eq!(
        entry_of(&b, p)["request"],
        serde_json::json!({"method": "PUT", "url": "Patient?identifier=urn:id:GOODHEALTH|MRN-1001"})
    );

    let e = one(&b, "Encounter");
    assert_eq!(e["class"]["code"], "IMP");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["period"]["start"], "2024-01-15T08:00:00-05:00");
    assert_eq!(e["subject"]["reference"], reference_to(p));
    assert_eq!(e["identifier"][0]["value"], "V1001");
    let attender = &e["participant"][0];
    assert_eq!(attender["type"][0]["coding"][0]["code"], "ATND");
    let doc = of_type(&b, "Practitioner")
        .into_iter()
        .find(|d| d["name"][0]["family"] == "Welby")
        .unwrap();
    assert_eq!(attender["individual"]["reference"], reference_to(doc));
    assert_eq!(entry_of(&b, doc)["request"]["method"], "POST");
    assert!(entry_of(&b, doc)["request"]["ifNoneExist"]
        .as_str()
        .unwrap()
        .starts_with("identifier="));
    let loc = one(&b, "Location");
    assert_eq!(e["location"][0]["location"]["reference"], reference_to(loc));

    assert_eq!(
        one(&b, "RelatedPerson")["relationship"][0]["coding"][0]["code"],
        "SPS"
    );
    let allergy = one(&b, "AllergyIntolerance");
    assert_eq!(
        allergy["code"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(allergy["criticality"], "high");
    let condition = one(&b, "Condition");
    assert_eq!(
        condition["code"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/icd-10"
    );
    assert_eq!(condition["encounter"]["reference"], reference_to(e));
    let weight = of_type(&b, "Observation")
        .into_iter()
        .find(|o| o["code"]["coding"][0]["code"] == "29463-7")
        .unwrap();
    assert_eq!(
        weight["valueQuantity"],
        serde_json::json!({"value": 80.5, "unit": "kilogram", "system": "http://unitsofmeasure.org", "code": "kg"})
    );
    assert_eq!(
        one(&b, "Coverage")["payor"][0]["reference"],
        reference_to(one(&b, "Organization"))
    );
}

#[test]
fn same_message_twice_gives_the_same_bundle() {
    assert_eq!(bundle("adt_a01.hl7"), bundle("adt_a01.hl7"));
}
