//! The shipped FHIR mapping (`scripts/fhir/to_bundle.rhai`) run on the project's own test messages
//! (`tests/messages/fhir/*.hl7`): what an integrator checks in the Bundle for each message type.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use junction_fhir::VocabError;
use junction_hl7::MessageBuf;
use junction_script::{
    Payload, Script, ScriptEngine, ScriptOptions, ScriptSource, SetupError, TransformOutcome,
};
use rhai::Map;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine_and_script(code: Option<&str>) -> (ScriptEngine, Script) {
    engine_with_maps(code, None)
}

/// The engine of a channel whose `fhir_maps` key names `maps` (none: the shipped maps alone).
fn engine_with_maps(code: Option<&str>, maps: Option<&Path>) -> (ScriptEngine, Script) {
    let engine = ScriptEngine::new(ScriptOptions {
        base_dir: repo(),
        channel_name: "fhir-test".into(),
        fhir_maps: maps.map(Path::to_owned),
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

/// The one resource of `rtype` for which `pred` holds.
fn find<'a>(b: &'a Value, rtype: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let all: Vec<&Value> = of_type(b, rtype).into_iter().filter(|r| pred(r)).collect();
    assert_eq!(all.len(), 1, "expected one matching {rtype}");
    all[0]
}

/// The Encounter of a message whose visit number (PV1-19) is `visit`.
fn encounter<'a>(b: &'a Value, visit: &str) -> &'a Value {
    let e = one(b, "Encounter");
    assert_eq!(e["identifier"][0]["value"], visit);
    assert_eq!(e["subject"]["reference"], reference_to(one(b, "Patient")));
    e
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
    assert_eq!(
        p["name"][0]["extension"],
        serde_json::json!([{"url": "http://hl7.org/fhir/StructureDefinition/humanname-assembly-order", "valueCode": "G"}]),
        "XPN-11"
    );
    // XPN-15 (called by) of every repetition is a nickname of its own, written once.
    let names: Vec<&Value> = p["name"].as_array().unwrap().iter().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(
        names[1],
        &serde_json::json!({"use": "nickname", "given": ["Ace"]}),
        "XPN-15 called by"
    );
    assert_eq!(names[2]["use"], "usual", "second repetition, XPN-7 D");
    assert_eq!(
        names[3],
        &serde_json::json!({"use": "nickname", "given": ["Addy"]})
    );
    let nicknames = names.iter().filter(|n| n["use"] == "nickname").count();
    assert_eq!(nicknames, 2);
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
    let gp = find(&b, "Practitioner", |d| d["name"][0]["family"] == "Primary");
    assert_eq!(
        p["generalPractitioner"],
        serde_json::json!([{"reference": reference_to(gp)}]),
        "PD1-4"
    );
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

    let spouse = one(&b, "RelatedPerson");
    assert_eq!(spouse["relationship"][0]["coding"][0]["code"], "SPS");
    // NK1-2 goes through the same XPN conversion: FN parts as family extensions, XPN-15 a nickname.
    assert_eq!(
        spouse["name"],
        serde_json::json!([
            {"family": "Everywoman", "_family": {"extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-name", "valueString": "Everywoman"},
                {"url": "http://hl7.org/fhir/StructureDefinition/humanname-partner-name", "valueString": "Everyman"}]},
             "given": ["Eve", "E"], "use": "official"},
            {"use": "nickname", "given": ["Evie"]}
        ])
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
fn a_channel_maps_folder_replaces_shipped_maps_for_that_channel_only() {
    let maps = tempfile::tempdir().unwrap();
    // This site sends M for "mixed", and names its own MRN system: a script helper (`fx.map`) and
    // a Rust conversion (the identifier system) both read the channel's maps.
    std::fs::write(
        maps.path().join("administrative-sex.csv"),
        "v2_code,v2_display,code,display,system\nM,Mixed,other,Other,http://hl7.org/fhir/administrative-gender\n",
    )
    .unwrap();
    std::fs::write(
        maps.path().join("assigning-authority.csv"),
        "v2_code,code,system\nGOODHEALTH,https://goodhealth.example.org/mrn,\n",
    )
    .unwrap();
    let (engine, script) = engine_with_maps(None, Some(maps.path()));
    let site = run(&engine, &script, &message("adt_a01.hl7"));
    assert_bundle_sound(&site);
    let p = one(&site, "Patient");
    assert_eq!(p["gender"], "other");
    assert_eq!(
        p["identifier"][0]["system"],
        "https://goodhealth.example.org/mrn"
    );
    assert_eq!(
        p["maritalStatus"]["coding"][0]["code"], "M",
        "maps the folder does not name stay shipped"
    );

    let shipped = bundle("adt_a01.hl7");
    let p = one(&shipped, "Patient");
    assert_eq!(
        p["gender"], "male",
        "a channel without maps keeps the shipped ones"
    );
    assert_eq!(p["identifier"][0]["system"], "urn:id:GOODHEALTH");

    let gender = "let fx = fhir::context(msg, #{}); #{ f: fx.map(\"administrative-sex\", \"F\") }";
    let (engine, script) = engine_with_maps(Some(gender), Some(maps.path()));
    assert_eq!(
        run(&engine, &script, &message("adt_a01.hl7")),
        serde_json::json!({}),
        "the whole map is replaced: F is no longer mapped"
    );
}

#[test]
fn a_broken_maps_folder_fails_when_the_engine_is_built() {
    let options = |maps: &Path| ScriptOptions {
        fhir_maps: Some(maps.to_owned()),
        ..ScriptOptions::default()
    };
    let maps = tempfile::tempdir().unwrap();
    std::fs::write(
        maps.path().join("administrative-sex.csv"),
        "v2_code,code,system\nM,male,urn:x\nX,,urn:x\n",
    )
    .unwrap();
    match ScriptEngine::new(options(maps.path())).unwrap_err() {
        SetupError::Vocab(VocabError::Content {
            path, line, column, ..
        }) => {
            assert_eq!(path, maps.path().join("administrative-sex.csv"));
            assert_eq!((line, column), (3, 3));
        }
        other => panic!("{other}"),
    }
    let missing = maps.path().join("nope");
    let err = ScriptEngine::new(options(&missing)).unwrap_err();
    assert!(
        matches!(err, SetupError::Vocab(VocabError::ListDir { .. })),
        "{err}"
    );
}

#[test]
fn same_message_twice_gives_the_same_bundle() {
    assert_eq!(bundle("adt_a01.hl7"), bundle("adt_a01.hl7"));
}

#[test]
fn oru_r01_report_with_typed_observation_values() {
    let b = bundle("oru_r01.hl7");
    let p = one(&b, "Patient");
    assert_eq!(p["gender"], "female");
    let report = one(&b, "DiagnosticReport");
    let order = one(&b, "ServiceRequest");
    assert_eq!(report["basedOn"][0]["reference"], reference_to(order));
    assert_eq!(report["status"], "final");
    assert_eq!(report["code"]["coding"][0]["system"], "http://loinc.org");
    assert_eq!(report["issued"], "2024-02-20T14:25:00-08:00");
    assert_eq!(
        report["conclusion"], "Sample received at 13:05.\nResults reviewed by the lab director.",
        "NTE after OBR"
    );
    let gp = find(&b, "Practitioner", |d| d["name"][0]["family"] == "Family");
    assert_eq!(p["generalPractitioner"][0]["reference"], reference_to(gp));
    assert_eq!(
        one(&b, "Encounter")["reasonCode"][0]["coding"][0]["code"],
        "CHK",
        "PV2-3"
    );
    assert_eq!(
        entry_of(&b, report)["request"]["url"],
        "DiagnosticReport?identifier=urn:id:CITYLAB|FIL-99"
    );
    let obs = of_type(&b, "Observation");
    assert_eq!(obs.len(), 6);
    let results: Vec<&Value> = report["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["reference"])
        .collect();
    assert!(obs
        .iter()
        .all(|o| results.contains(&&Value::String(reference_to(o)))));
    let by_code = |code: &str| {
        *obs.iter()
            .find(|o| o["code"]["coding"][0]["code"] == code)
            .unwrap()
    };
    let glucose = by_code("2345-7");
    assert_eq!(glucose["valueQuantity"]["value"], 105);
    assert_eq!(glucose["valueQuantity"]["code"], "mg/dL");
    assert_eq!(glucose["interpretation"][0]["coding"][0]["code"], "H");
    assert_eq!(glucose["referenceRange"][0]["low"]["value"], 70);
    assert_eq!(glucose["note"][0]["text"], "Fasting specimen");
    assert_eq!(glucose["effectiveDateTime"], "2024-02-20T12:15:00-08:00");
    assert_eq!(glucose["status"], "final");
    assert_eq!(
        by_code("2951-2")["valueQuantity"]["system"],
        "http://unitsofmeasure.org"
    );
    let albumin = by_code("1751-7");
    assert_eq!(albumin["valueQuantity"]["comparator"], ">");
    assert_eq!(albumin["valueQuantity"]["value"], 5.5);
    assert_eq!(
        by_code("8251-1")["valueString"],
        "Specimen slightly hemolyzed"
    );
    let covid = &by_code("94500-6")["valueCodeableConcept"]["coding"][0];
    assert_eq!(
        (covid["system"].as_str(), covid["code"].as_str()),
        (Some("http://snomed.info/sct"), Some("260373001"))
    );
    assert_eq!(
        by_code("33882-2")["valueDateTime"],
        "2024-02-20T12:15:00-08:00"
    );
}

#[test]
fn oru_r01_specimens_are_linked_from_their_reports_and_observations() {
    let b = bundle("oru_r01_specimen.hl7");
    let p = one(&b, "Patient");
    let report = |code: &str| {
        find(&b, "DiagnosticReport", |r| {
            r["code"]["coding"][0]["code"] == code
        })
    };
    let (covid, hemoglobin) = (report("94500-6"), report("718-7"));
    let swab = find(&b, "Specimen", |s| {
        s["type"]["coding"][0]["code"] == "258500001"
    });
    let blood = find(&b, "Specimen", |s| s["type"]["coding"][0]["code"] == "BLD");
    assert_eq!(
        covid["specimen"],
        serde_json::json!([{"reference": reference_to(swab)}])
    );
    assert_eq!(
        hemoglobin["specimen"],
        serde_json::json!([{"reference": reference_to(blood)}])
    );

    // SPM-2 placer/filler (EIP, each an EI with its system), SPM-31 other id, SPM-32 shipment id;
    // SPM-30 accession.
    let ids: Vec<(&Value, &Value, &Value)> = swab["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (&i["system"], &i["value"], &i["type"]["coding"][0]["code"]))
        .collect();
    let v = |s: &str| Value::from(s);
    assert_eq!(
        ids,
        [
            (&v("urn:id:EHR"), &v("SP-1"), &v("PLAC")),
            (&v("urn:id:CITYLAB"), &v("LS-1"), &v("FILL")),
            (&v("urn:id:STATELAB"), &v("OTH-5"), &Value::Null),
            (&v("urn:id:CARRIER"), &v("SHIP-9"), &v("SHIP")),
        ]
    );
    // SPM-3: the parent specimen, known by its identifiers, created only if the server lacks it.
    let parent = find(&b, "Specimen", |s| s["identifier"][0]["value"] == "SP-0");
    assert_eq!(
        swab["parent"],
        serde_json::json!([{"reference": reference_to(parent)}])
    );
    assert_eq!(parent["identifier"][1]["value"], "LS-0");
    assert_eq!(parent["identifier"][1]["system"], "urn:id:CITYLAB");
    assert_eq!(parent["subject"]["reference"], reference_to(p));
    assert_eq!(
        entry_of(&b, parent)["request"],
        serde_json::json!({"method": "POST", "url": "Specimen", "ifNoneExist": "identifier=urn:id:EHR|SP-0"})
    );
    assert_eq!(swab["accessionIdentifier"]["value"], "ACC-77");
    assert_eq!(swab["accessionIdentifier"]["system"], "urn:id:CITYLAB");
    assert_eq!(swab["subject"]["reference"], reference_to(p));
    assert_eq!(swab["status"], "available", "SPM-20 Y");
    assert_eq!(
        swab["type"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    let collection = &swab["collection"];
    assert_eq!(
        collection["method"]["coding"][0],
        serde_json::json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0488", "code": "SWA", "display": "Swab"})
    );
    assert_eq!(collection["bodySite"]["coding"][0]["code"], "71836000");
    assert_eq!(
        collection["quantity"],
        serde_json::json!({"value": 2, "unit": "milliliter", "system": "http://unitsofmeasure.org", "code": "mL"}),
        "SPM-12 CQ with UCUM units"
    );
    assert_eq!(
        collection["collectedPeriod"],
        serde_json::json!({"start": "2024-02-21T07:55:00-08:00", "end": "2024-02-21T08:00:00-08:00"}),
        "SPM-17 with an end"
    );
    assert_eq!(swab["receivedTime"], "2024-02-21T08:30:00-08:00");
    assert_eq!(swab["note"][0]["text"], "Collected at the drive-through");
    assert_eq!(
        swab["condition"][0]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0493"
    );
    assert_eq!(swab["container"][0]["type"]["coding"][0]["code"], "VTM");
    assert_eq!(
        swab["container"][0]["additiveCodeableConcept"]["coding"][0]["code"],
        "AMIES"
    );
    assert_eq!(
        entry_of(&b, swab)["request"],
        serde_json::json!({"method": "PUT", "url": "Specimen?identifier=urn:id:EHR|SP-1"})
    );

    assert_eq!(
        blood["collection"]["collectedDateTime"],
        "2024-02-21T08:10:00-08:00"
    );
    assert_eq!(
        blood["type"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0487"
    );
    assert!(blood.get("identifier").is_none(), "{blood}");
    assert_eq!(
        entry_of(&b, blood)["request"]["url"],
        format!("Specimen/{}", blood["id"].as_str().unwrap()),
        "a Specimen without identifiers is written by id"
    );
    assert_ne!(swab["id"], blood["id"]);

    // The OBX after an SPM is about the specimen (focus), not one of the report's results.
    let temperature = find(&b, "Observation", |o| {
        o["code"]["coding"][0]["code"] == "SPECTEMP"
    });
    assert_eq!(
        temperature["focus"],
        serde_json::json!([{"reference": reference_to(swab)}])
    );
    assert_eq!(temperature["subject"]["reference"], reference_to(p));
    assert_eq!(temperature["note"][0]["text"], "Kept on ice");
    let result = find(&b, "Observation", |o| {
        o["code"]["coding"][0]["code"] == "94500-6"
    });
    assert_eq!(
        covid["result"],
        serde_json::json!([{"reference": reference_to(result)}])
    );
    assert!(result.get("focus").is_none());
}

#[test]
fn oml_o21_specimen_is_the_orders_specimen() {
    let b = bundle("oml_o21.hl7");
    let sr = one(&b, "ServiceRequest");
    let s = one(&b, "Specimen");
    assert_eq!(
        sr["specimen"],
        serde_json::json!([{"reference": reference_to(s)}])
    );
    assert_eq!(s["identifier"][0]["value"], "SP-301");
    assert_eq!(s["identifier"][0]["system"], "urn:id:EHR");
    assert_eq!(s["type"]["coding"][0]["code"], "BLDV");
    assert_eq!(
        s["collection"]["collectedDateTime"],
        "2024-03-02T09:50:00+01:00"
    );
    assert_eq!(s["subject"]["reference"], reference_to(one(&b, "Patient")));
    let tubes = one(&b, "Observation");
    assert_eq!(tubes["focus"][0]["reference"], reference_to(s));
    assert!(
        sr.get("supportingInfo").is_none(),
        "an OBX of the SPECIMEN group is about the specimen, not the order"
    );
}

#[test]
fn orm_o01_and_oml_o21_give_service_requests() {
    let b = bundle("orm_o01.hl7");
    let sr = one(&b, "ServiceRequest");
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["intent"], "order");
    assert_eq!(sr["priority"], "stat");
    assert_eq!(
        sr["code"]["coding"][0]["system"],
        "http://www.ama-assn.org/go/cpt"
    );
    assert_eq!(sr["note"][0]["text"], "Patient on anticoagulants");
    assert_eq!(sr["authoredOn"], "2024-03-01T08:55:00+01:00");
    assert_eq!(
        sr["supportingInfo"][0]["reference"],
        reference_to(one(&b, "Observation"))
    );
    let doc = one(&b, "Practitioner");
    assert_eq!(sr["requester"]["reference"], reference_to(doc));
    let e = one(&b, "Encounter");
    assert_eq!(e["class"]["code"], "EMER");
    assert_eq!(e["reasonCode"][0]["coding"][0]["code"], "BLEED");
    let p = one(&b, "Patient");
    let allergy = one(&b, "AllergyIntolerance");
    assert_eq!(allergy["code"]["coding"][0]["code"], "70618");
    assert_eq!(allergy["patient"]["reference"], reference_to(p));
    let condition = one(&b, "Condition");
    assert_eq!(condition["code"]["coding"][0]["code"], "D68.9");
    assert_eq!(condition["encounter"]["reference"], reference_to(e));
    let coverage = one(&b, "Coverage");
    assert_eq!(coverage["subscriberId"], "POL-3003");
    assert_eq!(coverage["beneficiary"]["reference"], reference_to(p));
    let insurer = one(&b, "Organization");
    assert_eq!(insurer["name"], "Gamma Health");
    assert_eq!(coverage["payor"][0]["reference"], reference_to(insurer));

    let b = bundle("oml_o21.hl7");
    let sr = one(&b, "ServiceRequest");
    assert_eq!(sr["code"]["coding"][0]["code"], "2093-3");
    assert_eq!(sr["identifier"][0]["type"]["coding"][0]["code"], "PLAC");
    assert_eq!(sr["subject"]["reference"], reference_to(one(&b, "Patient")));
}

#[test]
fn vxu_v04_gives_immunization() {
    let b = bundle("vxu_v04.hl7");
    let im = one(&b, "Immunization");
    assert_eq!(im["status"], "completed");
    assert_eq!(
        im["vaccineCode"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/cvx"
    );
    assert_eq!(im["vaccineCode"]["coding"][0]["code"], "08");
    assert_eq!(im["occurrenceDateTime"], "2024-04-05T10:30:00-04:00");
    assert_eq!(im["doseQuantity"]["value"], 0.5);
    assert_eq!(im["lotNumber"], "LOT123");
    assert_eq!(im["expirationDate"], "2025-12-31");
    assert_eq!(im["primarySource"], true);
    assert_eq!(im["route"]["coding"][0]["code"], "IM");
    assert_eq!(im["site"]["coding"][0]["code"], "LA");
    let maker = find(&b, "Organization", |o| o["identifier"][0]["value"] == "MSD");
    assert_eq!(im["manufacturer"]["reference"], reference_to(maker));
    assert_eq!(
        maker["identifier"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/MVX"
    );
    let p = one(&b, "Patient");
    let gp = find(&b, "Practitioner", |d| d["name"][0]["family"] == "Primary");
    assert_eq!(p["generalPractitioner"][0]["reference"], reference_to(gp));
    let mother = one(&b, "RelatedPerson");
    assert_eq!(mother["name"][0]["family"], "Shot");
    assert_eq!(mother["relationship"][0]["coding"][0]["code"], "MTH");
    assert_eq!(mother["patient"]["reference"], reference_to(p));
    let coverage = one(&b, "Coverage");
    assert_eq!(coverage["subscriberId"], "MCD-4004");
    let payer = find(&b, "Organization", |o| o["name"] == "State Medicaid");
    assert_eq!(coverage["payor"][0]["reference"], reference_to(payer));
    let eligibility = one(&b, "Observation");
    assert_eq!(
        eligibility["valueCodeableConcept"]["coding"][0]["code"],
        "V02"
    );
    assert_eq!(
        eligibility["partOf"],
        serde_json::json!([{"reference": reference_to(im)}]),
        "an OBX of the ORDER group is part of its Immunization"
    );
}

#[test]
fn vxu_v04_visit_is_the_immunizations_encounter() {
    let b = bundle("vxu_v04.hl7");
    let e = encounter(&b, "V4004");
    assert_eq!(e["class"]["code"], "AMB");
    assert_eq!(e["reasonCode"][0]["coding"][0]["code"], "IMM", "PV2-3");
    assert_eq!(
        e["location"][0]["location"]["reference"],
        reference_to(one(&b, "Location"))
    );
    assert_eq!(
        one(&b, "Immunization")["encounter"],
        serde_json::json!({"reference": reference_to(e)})
    );
    assert_eq!(
        entry_of(&b, e)["request"]["url"],
        "Encounter?identifier=urn:id:GOODHEALTH|V4004"
    );
}

#[test]
fn siu_s12_gives_appointment_with_participants() {
    let b = bundle("siu_s12.hl7");
    let a = one(&b, "Appointment");
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2024-05-20T09:30:00-05:00");
    assert_eq!(a["end"], "2024-05-20T10:00:00-05:00");
    assert_eq!(a["serviceType"][0]["coding"][0]["code"], "99213");
    let actors: Vec<&Value> = a["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["actor"]["reference"])
        .collect();
    for r in ["Patient", "Location", "Practitioner"] {
        assert!(
            actors.contains(&&Value::String(reference_to(one(&b, r)))),
            "{r} not a participant"
        );
    }
}

#[test]
fn siu_s12_patient_group_gives_encounter_reasons_and_supporting_observations() {
    let b = bundle("siu_s12.hl7");
    let a = one(&b, "Appointment");
    let p = one(&b, "Patient");
    let e = encounter(&b, "V5005");
    assert_eq!(e["reasonCode"][0]["coding"][0]["code"], "FU", "PV2-3");
    assert_eq!(
        e["appointment"],
        serde_json::json!([{"reference": reference_to(a)}])
    );
    let condition = one(&b, "Condition");
    assert_eq!(condition["code"]["coding"][0]["code"], "I10");
    assert_eq!(condition["subject"]["reference"], reference_to(p));
    assert_eq!(condition["encounter"]["reference"], reference_to(e));
    assert_eq!(
        a["reasonReference"],
        serde_json::json!([{"reference": reference_to(condition)}]),
        "DG1"
    );
    let height = one(&b, "Observation");
    assert_eq!(height["code"]["coding"][0]["code"], "8302-2");
    assert_eq!(height["valueQuantity"]["value"], 180);
    assert_eq!(height["subject"]["reference"], reference_to(p));
    assert_eq!(
        a["supportingInformation"],
        serde_json::json!([{"reference": reference_to(height)}]),
        "OBX"
    );
}

#[test]
fn mdm_t02_gives_document_reference_with_text() {
    let b = bundle("mdm_t02.hl7");
    let d = one(&b, "DocumentReference");
    assert_eq!(d["status"], "current");
    assert_eq!(d["docStatus"], "final");
    assert_eq!(d["type"]["coding"][0]["code"], "DS");
    assert_eq!(d["date"], "2024-06-12T14:00:00-05:00");
    assert_eq!(
        d["author"][0]["reference"],
        reference_to(one(&b, "Practitioner"))
    );
    let data = d["content"][0]["attachment"]["data"].as_str().unwrap();
    // base64 of the two OBX lines joined by a line break.
    assert_eq!(
        data,
        "UGF0aWVudCBkaXNjaGFyZ2VkIGluIGdvb2QgY29uZGl0aW9uLgpGb2xsb3cgdXAgaW4gdHdvIHdlZWtzLg=="
    );
    assert_eq!(
        d["context"]["encounter"][0]["reference"],
        reference_to(one(&b, "Encounter"))
    );
}

#[test]
fn dft_p03_gives_charge_items() {
    let b = bundle("dft_p03.hl7");
    let c = one(&b, "ChargeItem");
    assert_eq!(c["status"], "billable");
    assert_eq!(c["code"]["coding"][0]["code"], "99213");
    assert_eq!(
        c["priceOverride"],
        serde_json::json!({"value": 125.5, "currency": "USD"})
    );
    assert_eq!(
        c["context"]["reference"],
        reference_to(one(&b, "Encounter"))
    );
    assert_eq!(c["occurrenceDateTime"], "2024-07-15T10:00:00-05:00");
    let e = one(&b, "Encounter");
    assert_eq!(e["reasonCode"][0]["coding"][0]["code"], "FU", "PV2-3");
    let p = one(&b, "Patient");
    // PD1-4 and FT1-20 name the same doctor: one Practitioner.
    let doc = one(&b, "Practitioner");
    assert_eq!(p["generalPractitioner"][0]["reference"], reference_to(doc));
    assert_eq!(c["performer"][0]["actor"]["reference"], reference_to(doc));
    let condition = one(&b, "Condition");
    assert_eq!(condition["code"]["coding"][0]["code"], "I10");
    assert_eq!(condition["encounter"]["reference"], reference_to(e));
    let procedure = one(&b, "Procedure");
    assert_eq!(procedure["code"]["coding"][0]["code"], "99213");
    assert_eq!(procedure["performedDateTime"], "2024-07-15T10:00:00-05:00");
    let guarantor = one(&b, "RelatedPerson");
    assert_eq!(guarantor["relationship"][0]["coding"][0]["code"], "GUAR");
    assert_eq!(guarantor["relationship"][1]["coding"][0]["code"], "ONESELF");
    let coverage = one(&b, "Coverage");
    assert_eq!(coverage["identifier"][0]["value"], "MBR-7007", "IN2-61");
    assert_eq!(
        coverage["payor"][0]["reference"],
        reference_to(one(&b, "Organization"))
    );
}

#[test]
fn adt_a40_links_surviving_and_merged_patients() {
    let b = bundle("adt_a40.hl7");
    let patients = of_type(&b, "Patient");
    assert_eq!(patients.len(), 2);
    let survivor = patients
        .iter()
        .find(|p| p["identifier"][0]["value"] == "MRN-1001")
        .unwrap();
    let old = patients
        .iter()
        .find(|p| p["identifier"][0]["value"] == "MRN-0999")
        .unwrap();
    assert_eq!(
        survivor["link"][0],
        serde_json::json!({"other": {"reference": reference_to(old)}, "type": "replaces"})
    );
    assert_eq!(old["link"][0]["type"], "replaced-by");
    assert_eq!(old["active"], false);
}

#[test]
fn message_bundle_and_nk1_as_contact_are_options() {
    let (engine, script) = engine_and_script(Some(
        r#"import "fhir/bundle" as bundle;
        bundle::convert(msg, #{ bundle_type: "message", nk1_as: "contact" })"#,
    ));
    let b = run(&engine, &script, &message("adt_a01.hl7"));
    assert_bundle_sound(&b);
    assert_eq!(b["type"], "message");
    let entries = b["entry"].as_array().unwrap();
    let header = &entries[0]["resource"];
    assert_eq!(header["resourceType"], "MessageHeader");
    assert_eq!(header["eventCoding"]["code"], "A01");
    assert_eq!(
        header["source"],
        serde_json::json!({"name": "EPIC", "endpoint": "urn:id:EPIC"}),
        "MSH-3"
    );
    assert_eq!(
        header["destination"],
        serde_json::json!([{"name": "RECV", "endpoint": "urn:id:RECV"}]),
        "MSH-5"
    );
    assert_eq!(
        header["focus"],
        serde_json::json!([{"reference": reference_to(one(&b, "Patient"))}]),
        "the message is about the Patient, not the first Practitioner it names"
    );
    assert!(entries.iter().all(|e| e.get("request").is_none()));
    assert!(of_type(&b, "RelatedPerson").is_empty());
    assert_eq!(
        one(&b, "Patient")["contact"][0]["name"]["family"],
        "Everywoman"
    );
}

#[test]
fn unsupported_message_type_is_a_clear_error() {
    let (engine, script) = engine_and_script(None);
    let msg = MessageBuf::parse(b"MSH|^~\\&|A|B|C|D|20240101||QRY^A19|1|P|2.5\r").unwrap();
    let err = engine
        .run_transform(&script, msg, &mut Map::new())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no FHIR mapping for message type QRY^A19"),
        "{err}"
    );
}

#[test]
fn oru_without_pid_gives_subjectless_report_and_refuses_an_empty_one() {
    // The PATIENT group is optional in ORU_R01: drop the PID and PV1 of the shipped ORU.
    let text: String = message("oru_r01.hl7")
        .split(['\r', '\n'])
        .filter(|s| !s.is_empty() && !s.starts_with("PID") && !s.starts_with("PV1"))
        .map(|s| format!("{s}\r"))
        .collect();
    let (engine, script) = engine_and_script(None);
    let b = run(&engine, &script, &text);
    assert_bundle_sound(&b);
    assert!(of_type(&b, "Patient").is_empty());
    // ServiceRequest.subject is required in FHIR R4, so no order is written without a patient.
    assert!(of_type(&b, "ServiceRequest").is_empty());
    let report = one(&b, "DiagnosticReport");
    assert!(report.get("subject").is_none(), "{report}");
    assert_eq!(report["code"]["coding"][0]["system"], "http://loinc.org");
    let obs = of_type(&b, "Observation");
    assert_eq!(obs.len(), 6);
    assert!(obs.iter().all(|o| o.get("subject").is_none()));

    let header_only = MessageBuf::parse(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\r").unwrap();
    let err = engine
        .run_transform(&script, header_only, &mut Map::new())
        .unwrap_err();
    assert!(err.to_string().contains("nothing to map"), "{err}");
}

#[test]
fn adt_a02_transfer_moves_the_encounter_to_the_new_bed() {
    let b = bundle("adt_a02.hl7");
    let e = encounter(&b, "V2002");
    assert_eq!(e["status"], "in-progress");
    let locations: Vec<(&Value, &Value)> = e["location"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (&l["location"]["display"], &l["status"]))
        .collect();
    assert_eq!(
        locations,
        [
            (&Value::from("GOODHEALTH W3 305 A"), &Value::from("active")),
            (
                &Value::from("GOODHEALTH W2 201 B"),
                &Value::from("completed")
            ),
        ],
        "PV1-3 is where the patient is now, PV1-6 where they were"
    );
    let bed = find(&b, "Location", |l| l["name"] == "GOODHEALTH W3 305 A");
    assert_eq!(bed["physicalType"]["coding"][0]["code"], "bd");
    assert_eq!(e["location"][0]["location"]["reference"], reference_to(bed));
}

#[test]
fn adt_a03_discharge_finishes_the_encounter() {
    let b = bundle("adt_a03.hl7");
    let e = encounter(&b, "V2003");
    assert_eq!(e["status"], "finished");
    assert_eq!(
        e["period"],
        serde_json::json!({"start": "2024-01-15T08:00:00-05:00", "end": "2024-01-19T11:00:00-05:00"})
    );
    assert_eq!(
        e["hospitalization"]["dischargeDisposition"]["coding"][0]["code"],
        "01"
    );
    assert_eq!(e["reasonCode"][0]["coding"][0]["code"], "PNEU", "PV2-3");
    assert_eq!(
        e["length"],
        serde_json::json!({"value": 4, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}),
        "PV2-11"
    );
    let procedure = one(&b, "Procedure");
    assert_eq!(procedure["status"], "completed");
    assert_eq!(procedure["code"]["coding"][0]["code"], "0BH17EZ");
    assert_eq!(
        procedure["code"]["coding"][0]["system"],
        "http://www.cms.gov/Medicare/Coding/ICD10"
    );
    assert_eq!(procedure["performedDateTime"], "2024-01-16T09:30:00-05:00");
    assert_eq!(procedure["identifier"][0]["value"], "PRC-31");
    assert_eq!(procedure["encounter"]["reference"], reference_to(e));
    assert_eq!(
        procedure["subject"]["reference"],
        reference_to(one(&b, "Patient"))
    );
    assert_eq!(
        one(&b, "Condition")["encounter"]["reference"],
        reference_to(e)
    );
}

#[test]
fn adt_a04_registration_is_planned_with_guarantor_and_insurance() {
    let b = bundle("adt_a04.hl7");
    let p = one(&b, "Patient");
    let e = encounter(&b, "V2004");
    assert_eq!(e["status"], "planned");
    assert_eq!(e["class"]["code"], "AMB");

    let guarantor = one(&b, "RelatedPerson");
    assert_eq!(guarantor["patient"]["reference"], reference_to(p));
    assert_eq!(guarantor["name"][0]["family"], "Young");
    assert_eq!(guarantor["identifier"][0]["value"], "G-2004");
    assert_eq!(guarantor["address"][0]["city"], "Springfield");
    let codes: Vec<&Value> = guarantor["relationship"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["coding"][0]["code"])
        .collect();
    assert_eq!(codes, [&Value::from("GUAR"), &Value::from("FTH")]);
    assert_eq!(entry_of(&b, guarantor)["request"]["method"], "PUT");

    let coverage = one(&b, "Coverage");
    let insurer = one(&b, "Organization");
    assert_eq!(insurer["name"], "Beta Mutual");
    assert_eq!(coverage["status"], "active");
    assert_eq!(coverage["beneficiary"]["reference"], reference_to(p));
    assert_eq!(coverage["payor"][0]["reference"], reference_to(insurer));
    assert_eq!(coverage["subscriberId"], "POL-5551");
    assert_eq!(coverage["relationship"]["coding"][0]["code"], "CHILD");
    assert_eq!(coverage["class"][0]["value"], "GRP-9");
    assert_eq!(coverage["class"][0]["name"], "Springfield Schools");
    assert_eq!(
        coverage["period"],
        serde_json::json!({"start": "2024-01-01", "end": "2024-12-31"})
    );
    assert_eq!(coverage["identifier"][0]["value"], "MBR-2004", "IN2-61");
}

#[test]
fn adt_a05_pre_admission_is_planned_with_its_pre_admit_number() {
    let b = bundle("adt_a05.hl7");
    let e = encounter(&b, "V2005");
    assert_eq!(e["status"], "planned");
    assert_eq!(e["period"]["start"], "2024-02-01T07:00:00-05:00");
    assert_eq!(
        e["hospitalization"]["preAdmissionIdentifier"]["value"],
        "PRE-2005"
    );
}

#[test]
fn adt_a06_and_a07_change_the_encounter_class() {
    let b = bundle("adt_a06.hl7");
    let e = encounter(&b, "V2006");
    assert_eq!(e["class"]["code"], "IMP", "outpatient became inpatient");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(e["location"][1]["status"], "completed");
    assert_eq!(e["location"][1]["location"]["display"], "GOODHEALTH ER 1 1");

    let b = bundle("adt_a07.hl7");
    let e = encounter(&b, "V2007");
    assert_eq!(e["class"]["code"], "AMB", "inpatient became outpatient");
    assert_eq!(e["status"], "in-progress");
}

#[test]
fn adt_a08_explicit_nulls_emit_nothing_and_iam_gives_an_allergy() {
    let b = bundle("adt_a08.hl7");
    let p = one(&b, "Patient");
    assert_eq!(p["name"][0]["family"], "Update");
    // PID-11, PID-13 and PID-16 are "": the elements are left out, so the PUT clears them on the server.
    for cleared in ["address", "telecom", "maritalStatus"] {
        assert!(p.get(cleared).is_none(), "{cleared} in {p}");
    }
    let e = encounter(&b, "V2008");
    assert!(e.get("participant").is_none(), "PV1-7 is \"\": {e}");
    assert!(of_type(&b, "Practitioner").is_empty());
    let text = serde_json::to_string(&b).unwrap();
    assert!(!text.contains("\"\\\"\\\"\""), "an HL7 null leaked as text");

    let allergy = one(&b, "AllergyIntolerance");
    assert_eq!(allergy["patient"]["reference"], reference_to(p));
    assert_eq!(allergy["code"]["coding"][0]["code"], "1191");
    assert_eq!(
        allergy["code"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(allergy["category"], serde_json::json!(["medication"]));
    assert_eq!(allergy["criticality"], "low");
    assert_eq!(
        allergy["reaction"][0]["manifestation"][0]["coding"][0],
        serde_json::json!({"system": "http://snomed.info/sct", "code": "39579001", "display": "Anaphylaxis"})
    );
    assert_eq!(allergy["identifier"][0]["value"], "IAM-2008");
    assert_eq!(allergy["onsetDateTime"], "2023-01-01");
    assert_eq!(allergy["recordedDate"], "2024-01-24T08:50:00-05:00");
}

#[test]
fn adt_a11_cancels_the_encounter() {
    let b = bundle("adt_a11.hl7");
    let e = encounter(&b, "V2011");
    assert_eq!(e["status"], "cancelled");
    assert_eq!(
        entry_of(&b, e)["request"]["url"],
        "Encounter?identifier=urn:id:GOODHEALTH|V2011"
    );
}

#[test]
fn adt_a13_cancelled_discharge_reopens_the_encounter() {
    let b = bundle("adt_a13.hl7");
    let e = encounter(&b, "V2013");
    assert_eq!(e["status"], "in-progress");
    assert_eq!(
        e["period"],
        serde_json::json!({"start": "2024-01-24T08:00:00-05:00"}),
        "the cancelled discharge time is not an end"
    );
}

#[test]
fn adt_a28_and_a31_person_updates_carry_the_general_practitioner() {
    let b = bundle("adt_a28.hl7");
    let p = one(&b, "Patient");
    assert_eq!(p["identifier"][0]["value"], "MRN-2028");
    let gp = one(&b, "Practitioner");
    assert_eq!(gp["name"][0]["family"], "Primary");
    assert_eq!(p["generalPractitioner"][0]["reference"], reference_to(gp));
    let brother = one(&b, "RelatedPerson");
    assert_eq!(brother["relationship"][0]["coding"][0]["code"], "BRO");
    assert_eq!(brother["telecom"][0]["value"], "(555)555-2828");
    // PV1-2 N: a person-level event, the IG's class "not applicable".
    assert_eq!(one(&b, "Encounter")["class"]["code"], "N");

    let b = bundle("adt_a31.hl7");
    let p = one(&b, "Patient");
    assert_eq!(
        p["address"][0],
        serde_json::json!({"line": ["7 New Rd"], "city": "Shelbyville", "state": "IL", "postalCode": "62565", "country": "USA", "use": "home"})
    );
    assert_eq!(
        p["generalPractitioner"][0]["reference"],
        reference_to(one(&b, "Practitioner"))
    );
}

#[test]
fn siu_s13_s14_s15_reschedule_modify_and_cancel_the_appointment() {
    let s13 = bundle("siu_s13.hl7");
    let a = one(&s13, "Appointment");
    assert_eq!(a["status"], "booked");
    assert_eq!(a["start"], "2024-05-22T14:00:00-05:00", "TQ1-7");
    assert_eq!(a["end"], "2024-05-22T14:30:00-05:00", "TQ1-8");
    assert_eq!(a["identifier"][0]["value"], "APT-2");

    let s14 = bundle("siu_s14.hl7");
    let modified = one(&s14, "Appointment");
    assert_eq!(modified["status"], "pending", "SCH-25 Pending");
    assert_eq!(modified["start"], "2024-05-22T14:00:00-05:00");
    assert_eq!(modified["appointmentType"]["coding"][0]["code"], "ROUTINE");
    assert_eq!(
        modified["id"], a["id"],
        "the same appointment (SCH-1) in both messages"
    );

    let s15 = bundle("siu_s15.hl7");
    let cancelled = one(&s15, "Appointment");
    assert_eq!(cancelled["status"], "cancelled", "S15 whatever SCH-25 says");
    assert_eq!(cancelled["id"], a["id"]);
    let actors: Vec<&Value> = cancelled["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["actor"]["reference"])
        .collect();
    assert!(actors.contains(&&Value::String(reference_to(one(&s15, "Patient")))));
    assert!(actors.contains(&&Value::String(reference_to(one(&s15, "Practitioner")))));
}
