//! The script API as an analyst uses it: compile a script, run it against a real message, check the result.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use junction_hl7::{MessageBuf, Path};
use junction_script::{
    ErrorKind, FilterDecision, Flow, Limits, Payload, ScriptEngine, ScriptError, ScriptOptions,
    ScriptSource, TransformOutcome,
};
use rhai::Map;

const ADT: &str = "MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000||ADT^A01|MSG00001|P|2.5\r\
PID|1||12345^^^HOSP^MR~999-88-7777^^^SSA^SS||Doe^John^Q||19800215|M|||1 Main St^^Springfield^IL^62701\r\
PV1|1|I|W^101^A\r\
OBX|1|NM|GLU^Glucose||95|mg/dL\r\
OBX|2|NM|NA^Sodium||140|mmol/L\r";

fn engine() -> ScriptEngine {
    ScriptEngine::new(ScriptOptions {
        channel_name: "adt".into(),
        ..ScriptOptions::default()
    })
    .unwrap()
}

fn adt() -> MessageBuf {
    MessageBuf::parse(ADT.as_bytes()).unwrap()
}

fn get(msg: &MessageBuf, path: &str) -> String {
    msg.get(&path.parse::<Path>().unwrap()).unwrap_or_default()
}

fn src(code: &str) -> ScriptSource {
    ScriptSource::inline("channels/adt.yaml", 10, code)
}

/// Runs a transform and returns the payload, panicking (test only) on anything else.
fn transform_with(engine: &ScriptEngine, code: &str) -> Payload {
    let script = engine.compile(&src(code)).unwrap();
    match engine
        .run_transform(&script, adt(), &mut Map::new())
        .unwrap()
    {
        TransformOutcome::Payload(p) => p,
        other => panic!("expected a payload, got {other:?}"),
    }
}

fn transform(code: &str) -> Payload {
    transform_with(&engine(), code)
}

fn transform_hl7(code: &str) -> MessageBuf {
    match transform(code) {
        Payload::Hl7(m) => m,
        other => panic!("expected HL7, got {other:?}"),
    }
}

fn transform_json(code: &str) -> serde_json::Value {
    match transform(code) {
        Payload::Json(v) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

fn run_err(code: &str) -> ScriptError {
    let engine = engine();
    let script = engine.compile(&src(code)).unwrap();
    engine
        .run_transform(&script, adt(), &mut Map::new())
        .unwrap_err()
}

fn compile_err(code: &str) -> ScriptError {
    engine().compile(&src(code)).unwrap_err()
}

fn filter(code: &str) -> FilterDecision {
    let engine = engine();
    let script = engine.compile(&src(code)).unwrap();
    let mut msg = adt();
    engine
        .run_filter(&script, &mut msg, &mut Map::new())
        .unwrap()
}

#[test]
fn reads_decoded_values_and_empty_for_absent() {
    let text = transform(
        r#"msg["PID-5-1"] + "|" + msg.get("PID.5.2") + "|" + msg["PID-3[2]-1"] + "|" + msg["ZZZ-1"] + "|"
           + msg["OBX[2]-5"] + "|" + msg.count("OBX") + "|" + msg.count("PID-3") + "|" + msg.has("PID-8")
           + "|" + msg.has("PID-9") + "|" + msg.type() + "|" + msg.msg_type() + "|" + msg.control_id()"#,
    );
    assert_eq!(
        text,
        Payload::Text("Doe|John|999-88-7777||140|2|2|true|false|ADT^A01|ADT^A01|MSG00001".into())
    );
}

#[test]
fn writes_escape_separators_and_create_missing_parts() {
    let msg = transform_hl7(
        r#"msg["PID-5-1"] = "O'Brien|Smith^Jr";
           msg["ZPI-3-2"] = "new";
           msg["OBX[3]-5"] = 7;
           msg"#,
    );
    assert_eq!(get(&msg, "PID-5-1"), "O'Brien|Smith^Jr");
    let hl7 = msg.to_hl7_string();
    assert!(
        hl7.contains(
            "PID|1||12345^^^HOSP^MR~999-88-7777^^^SSA^SS||O'Brien\\F\\Smith\\S\\Jr^John^Q"
        ),
        "{hl7}"
    );
    assert_eq!(get(&msg, "ZPI-3-2"), "new");
    assert_eq!(get(&msg, "OBX[3]-5"), "7");
}

#[test]
fn remove_and_is_null() {
    let msg = transform_hl7(
        r#"msg["PID-8"] = "\"\"";
           if !msg.is_null("PID-8") { throw "expected HL7 null"; }
           if msg.is_null("PID-7") { throw "PID-7 is not null"; }
           msg.remove("PID-7");
           msg.remove("OBX[1]");"#,
    );
    assert_eq!(get(&msg, "PID-7"), "");
    assert_eq!(msg.segment_indices("OBX").len(), 1);
    assert_eq!(get(&msg, "OBX-3-1"), "NA");
}

#[test]
fn segment_handles_are_live() {
    let msg = transform_hl7(
        r#"for obx in msg.segments("OBX") {
               obx["5"] = obx["5"] + "0";
               obx["3-2"] = obx.name() + ":" + obx["3-1"];
           }
           let first = msg.segments("OBX")[0];
           msg.insert_segment(1, "NTE");       // shifts every OBX by one
           first["6"] = "changed";
           msg"#,
    );
    assert_eq!(get(&msg, "OBX[1]-5"), "950");
    assert_eq!(get(&msg, "OBX[2]-5"), "1400");
    assert_eq!(get(&msg, "OBX[1]-3-2"), "OBX:GLU");
    assert_eq!(get(&msg, "OBX[1]-6"), "changed");
    assert_eq!(msg.segment_names().nth(1), Some("NTE"));
}

#[test]
fn add_insert_remove_segments() {
    let msg = transform_hl7(
        r#"let zpi = msg.add_segment("ZPI");
           zpi["1"] = "appended";
           let obx = msg.segments("OBX")[0];
           let nte = msg.insert_segment(obx, "NTE");
           nte["3"] = "after first OBX";
           msg.remove_segment(msg.segments("OBX")[1]);
           msg.remove_segment(2);   // PV1
           if nte.index() != 3 { throw "NTE index " + nte.index(); }
           msg"#,
    );
    let names: Vec<&str> = msg.segment_names().collect();
    assert_eq!(names, ["MSH", "PID", "OBX", "NTE", "ZPI"]);
    assert_eq!(get(&msg, "NTE-3"), "after first OBX");
    assert_eq!(get(&msg, "ZPI-1"), "appended");
}

#[test]
fn removed_segment_handle_is_an_error_not_a_panic() {
    let err = run_err("let obx = msg.segments(\"OBX\")[0];\nmsg.remove_segment(obx);\nobx[\"5\"]");
    assert_eq!(err.line, 3);
    assert!(err.message.contains("removed"), "{err}");
}

#[test]
fn repeats_gives_repetition_handles() {
    let text = transform(
        r#"let out = "";
           for id in msg.repeats("PID-3") { out += id["1"] + "@" + id["4-1"] + ","; }
           let r = msg.repeats("PID-3");
           r[1]["5"] = "SSN";
           out += msg["PID-3[2]-5"] + ",";
           out += msg.segments("PID")[0].repeats("3").len() + ",";
           out + r[0].to_string()"#,
    );
    assert_eq!(
        text,
        Payload::Text("12345@HOSP,999-88-7777@SSA,SSN,2,12345^^^HOSP^MR".into())
    );
}

#[test]
fn transform_value_decides_the_payload() {
    assert!(
        matches!(transform(r#"msg["PID-8"] = "F";"#), Payload::Hl7(m) if get(&m, "PID-8") == "F")
    );
    assert_eq!(
        transform_json(r#"#{ id: msg["PID-3-1"], none: () }"#),
        serde_json::json!({"id": "12345"})
    );
    assert_eq!(
        transform_json("[1, 2.5, true]"),
        serde_json::json!([1, 2.5, true])
    );
    assert_eq!(
        transform(r#""plain " + msg["PID-5-1"]"#),
        Payload::Text("plain Doe".into())
    );
    let err = run_err("42");
    assert!(err.message.contains("must return"), "{err}");
    let err = run_err("#{ x: 1.0 / 0.0 }");
    assert!(err.message.contains("finite"), "{err}");
}

#[test]
fn to_json_and_parse_hl7() {
    let json = transform_json(
        r#"let j = msg.to_json(); #{ first: j.segments[0].name, n: j.segments.len() }"#,
    );
    assert_eq!(json, serde_json::json!({"first": "MSH", "n": 5}));
    let msg = transform_hl7(
        r#"let m = parse_hl7("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X1|P|2.5"); m["PID-3"] = "1"; m"#,
    );
    assert_eq!(msg.control_id(), "X1");
    assert_eq!(get(&msg, "PID-3"), "1");
}

#[test]
fn filter_outcomes() {
    assert_eq!(filter("true"), FilterDecision::Keep);
    assert_eq!(filter(r#"msg.type() == "ADT^A01""#), FilterDecision::Keep);
    assert!(matches!(
        filter("false"),
        FilterDecision::Stop(Flow::Filtered(_))
    ));
    assert_eq!(
        filter(r#"filter_out("not for lab")"#),
        FilterDecision::Stop(Flow::Filtered("not for lab".into()))
    );
    assert_eq!(
        filter(r#"reject("unknown facility")"#),
        FilterDecision::Stop(Flow::Reject("unknown facility".into()))
    );
    assert_eq!(
        filter(r#"fn check() { fail("bad data") } check(); true"#),
        FilterDecision::Stop(Flow::Fail("bad data".into()))
    );
    // try/catch cannot swallow a flow decision.
    assert_eq!(
        filter(r#"try { reject("r") } catch { }; true"#),
        FilterDecision::Stop(Flow::Reject("r".into()))
    );
    let engine = engine();
    let script = engine.compile(&src("\"yes\"")).unwrap();
    let err = engine
        .run_filter(&script, &mut adt(), &mut Map::new())
        .unwrap_err();
    assert!(err.message.contains("true or false"), "{err}");
}

#[test]
fn filter_gives_the_message_back_with_its_edits() {
    let engine = engine();
    let script = engine.compile(&src(r#"msg["PID-8"] = "U"; true"#)).unwrap();
    let mut msg = adt();
    assert_eq!(
        engine
            .run_filter(&script, &mut msg, &mut Map::new())
            .unwrap(),
        FilterDecision::Keep
    );
    assert_eq!(get(&msg, "PID-8"), "U");
    assert_eq!(msg.control_id(), "MSG00001");
}

#[test]
fn flow_in_transform() {
    let engine = engine();
    let script = engine
        .compile(&src(
            r#"if msg["PID-8"] == "M" { filter_out("men go elsewhere") } msg"#,
        ))
        .unwrap();
    let out = engine
        .run_transform(&script, adt(), &mut Map::new())
        .unwrap();
    assert_eq!(
        out,
        TransformOutcome::Stop(Flow::Filtered("men go elsewhere".into()))
    );
}

#[test]
fn thrown_error_has_origin_line_and_column() {
    let err = run_err("let a = 1;\nlet b = 2;\n    throw \"boom\";");
    assert_eq!((err.kind, err.line, err.column), (ErrorKind::Runtime, 3, 5));
    assert!(err.message.contains("boom"), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "channels/adt.yaml (inline script):12:5: runtime error: {}",
            err.message
        )
    );
    let err = run_err("fn f(x) {\n  x.nope()\n}\nf(1)");
    assert_eq!(err.line, 2, "{err}");
    let err = run_err("let x = 1 + \"a\" * 2;");
    assert_eq!((err.kind, err.line), (ErrorKind::Runtime, 1));
}

#[test]
fn compile_errors_have_lines() {
    let err = compile_err("let a = 1;\nlet b = ;");
    assert_eq!((err.kind, err.line), (ErrorKind::Compile, 2));
    let err = compile_err("let a = 1;\nundefined_var + 1");
    assert_eq!((err.kind, err.line), (ErrorKind::Compile, 2), "{err}");
    let err = compile_err("eval(\"1\")");
    assert_eq!(err.kind, ErrorKind::Compile, "{err}");
}

#[test]
fn bad_path_literals_are_compile_errors() {
    let err = compile_err("let a = 1;\nlet n = msg[\"PID-5-\"];");
    assert_eq!(
        (err.kind, err.line, err.column),
        (ErrorKind::Path, 2, 13),
        "{err}"
    );
    for code in [
        r#"msg.get("PID-0")"#,
        r#"msg.has("P1D-3")"#,
        r#"msg["PID-3[x]"] = 1"#,
        r#"let m = #{}; m["OBX-5-"]"#,
        r#"for s in msg.segments("OBX") { s["5-"] }"#,
        r#"msg.segments("OBX-5")"#,
        r#"msg.add_segment("zp")"#,
        r#"lookup("nosuch", "M")"#,
        r#"fn f() { msg["PID--1"] } 1"#,
    ] {
        let err = compile_err(code);
        assert_eq!(err.kind, ErrorKind::Path, "{code}: {err}");
    }
    // Ordinary map keys are not paths and stay legal.
    engine()
        .compile(&src(
            r#"let m = #{}; m["name-of thing"] = 1; m["2024-01-01 x"] = 2; m"#,
        ))
        .unwrap();
}

#[test]
fn endless_loop_ends_with_a_limit_error() {
    // How fast it ends is measured (release build) by examples/transform_cost.rs, not asserted here.
    let err = run_err("let i = 0;\nloop { i += 1; }");
    assert_eq!((err.kind, err.line), (ErrorKind::Limit, 2), "{err}");
}

#[test]
fn huge_string_and_array_are_stopped() {
    let limits = Limits {
        max_string_size: 10_000,
        max_array_size: 1_000,
        ..Limits::default()
    };
    let engine = ScriptEngine::new(ScriptOptions {
        limits,
        ..ScriptOptions::default()
    })
    .unwrap();
    for code in [
        r#"let s = "x"; loop { s += s; }"#,
        "let a = []; loop { a.push(1); }",
        "fn f(n) { f(n + 1) } f(0)",
    ] {
        let script = engine.compile(&src(code)).unwrap();
        let err = engine
            .run_transform(&script, adt(), &mut Map::new())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Limit, "{code}: {err}");
    }
}

#[test]
fn a_write_cannot_build_a_huge_message_from_a_number_in_the_message() {
    // Numbers a script takes from a message (OBX-1 = 4000000000) must not make one write build
    // gigabytes of empty segments or positions.
    for (code, what) in [
        (r#"msg["NTE[4000000000]-3"] = "x";"#, "segment 4000000000"),
        (r#"msg["PID-3[4000000000]"] = "";"#, "repetition 4000000000"),
        (r#"msg["PID-999999"] = "x";"#, "field 999999"),
        (
            r#"let p = msg.segments("PID")[0]; p["5-1-4000000"] = "x";"#,
            "subcomponent 4000000",
        ),
    ] {
        let err = run_err(code);
        assert!(
            err.message.contains(what) && err.message.contains("past what exists"),
            "{code}: {err}"
        );
    }
    // Writing just past the end still creates what is missing.
    let out = transform_hl7(r#"msg["NTE[3]-3"] = "third"; msg"#);
    assert_eq!(get(&out, "NTE[3]-3"), "third");
}

#[test]
fn writes_cannot_grow_the_message_past_its_limit() {
    let err = run_err(
        r#"let big = "x"; big.pad(60000, 'x'); for i in 1..2000 { msg["ZZZ[" + i + "]-1"] = big; }"#,
    );
    assert!(err.message.contains("past the"), "{err}");
}

#[test]
fn lookup_tables_with_default() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sex.csv");
    std::fs::write(&csv, "key,value\nM,male\nF,female\n").unwrap();
    let engine = ScriptEngine::new(ScriptOptions {
        tables: HashMap::from([("sex".to_owned(), csv)]),
        ..ScriptOptions::default()
    })
    .unwrap();
    let out = transform_with(
        &engine,
        r#"[lookup("sex", msg["PID-8"]), lookup("sex", "X", "unknown"), lookup("sex", "X"), lookup("sex", "F", "u")]"#,
    );
    assert_eq!(
        out,
        Payload::Json(serde_json::json!(["male", "unknown", "", "female"]))
    );
    let script = engine
        .compile(&src(r#"let t = "no" + "pe"; lookup(t, "M")"#))
        .unwrap();
    let err = engine
        .run_transform(&script, adt(), &mut Map::new())
        .unwrap_err();
    assert!(
        err.message.contains("no lookup table named 'nope'"),
        "{err}"
    );
}

#[test]
fn uuid5_is_deterministic() {
    let out = transform(
        r#"[uuid5("Patient", "HOSP", msg["PID-3-1"]), uuid5("Patient", "HOSP", "12345"), uuid5(["x"])]"#,
    );
    assert_eq!(
        out,
        Payload::Json(serde_json::json!([
            "76f897d0-a872-5f5b-a20b-007ad3664c6e",
            "76f897d0-a872-5f5b-a20b-007ad3664c6e",
            "fc53f37d-6d7f-54c9-9ab6-871d5c73bfc7"
        ]))
    );
}

#[test]
fn date_helpers_keep_precision_and_zone() {
    let out = transform_json(
        r#"#{ birth: to_fhir_date(msg["PID-7"]), month: to_fhir_date("198002"),
              sent: to_fhir_datetime("202401011200-0500"), minute: to_fhir_datetime("202401011230"),
              instant: to_fhir_instant("20240101120000.123+0100"), absent: to_fhir_date(msg["PID-29"]) }"#,
    );
    assert_eq!(
        out,
        serde_json::json!({
            "birth": "1980-02-15", "month": "1980-02",
            "sent": "2024-01-01T12:00:00-05:00", "minute": "2024-01-01T12:30:00",
            "instant": "2024-01-01T12:00:00.123+01:00"
        })
    );
    let err = run_err(r#"to_fhir_date("19801345")"#);
    assert!(err.message.contains("to_fhir_date"), "{err}");
    assert!(
        !err.message.contains("19801345"),
        "error must not echo the value: {err}"
    );
}

#[test]
fn ctx_carries_values_between_scripts() {
    let engine = engine();
    let first = engine
        .compile(&src(r#"ctx.mrn = msg["PID-3-1"]; ctx.count = 1; true"#))
        .unwrap();
    let second = engine
        .compile(&src(r#"ctx.count += 1; #{ mrn: ctx.mrn, n: ctx.count }"#))
        .unwrap();
    let mut ctx = Map::new();
    let mut msg = adt();
    assert_eq!(
        engine.run_filter(&first, &mut msg, &mut ctx).unwrap(),
        FilterDecision::Keep
    );
    let out = engine.run_transform(&second, msg, &mut ctx).unwrap();
    assert_eq!(
        out,
        TransformOutcome::Payload(Payload::Json(serde_json::json!({"mrn": "12345", "n": 2})))
    );
    assert_eq!(ctx.get("count").and_then(|v| v.as_int().ok()), Some(2));
}

#[test]
fn modules_import_from_the_scripts_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts/fhir")).unwrap();
    std::fs::write(
        dir.path().join("scripts/fhir/common.rhai"),
        "fn gender(code) { if code == \"M\" { \"male\" } else { \"unknown\" } }\nfn broken() { throw \"in module\" }\n",
    )
    .unwrap();
    let engine = ScriptEngine::new(ScriptOptions {
        base_dir: dir.path().to_owned(),
        ..ScriptOptions::default()
    })
    .unwrap();
    let out = transform_with(
        &engine,
        "import \"fhir/common\" as c;\n#{ gender: c::gender(msg[\"PID-8\"]) }",
    );
    assert_eq!(out, Payload::Json(serde_json::json!({"gender": "male"})));

    let script = engine
        .compile(&src("import \"fhir/common\" as c;\n\nc::broken()"))
        .unwrap();
    let err = engine
        .run_transform(&script, adt(), &mut Map::new())
        .unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert!(err.message.contains("in module"), "{err}");

    let err = engine
        .compile(&src("import \"fhir/missing\" as m;\n1"))
        .unwrap_err();
    assert!(err.message.contains("fhir/missing"), "{err}");
}

#[test]
fn engine_and_scripts_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ScriptEngine>();
    assert_send_sync::<junction_script::Script>();
    let engine = std::sync::Arc::new(engine());
    let script = engine.compile(&src(r#"msg["PID-3-1"]"#)).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (engine, script) = (engine.clone(), script.clone());
            std::thread::spawn(move || {
                engine
                    .run_transform(&script, adt(), &mut Map::new())
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(
            h.join().unwrap(),
            TransformOutcome::Payload(Payload::Text("12345".into()))
        );
    }
}

#[test]
fn handles_kept_in_ctx_are_detached_not_dangling() {
    let engine = engine();
    let keep = engine
        .compile(&src(r#"ctx.seg = msg.segments("PID")[0]; true"#))
        .unwrap();
    let use_it = engine.compile(&src(r#"ctx.seg["3"]"#)).unwrap();
    let mut ctx = Map::new();
    engine.run_filter(&keep, &mut adt(), &mut ctx).unwrap();
    let err = engine.run_transform(&use_it, adt(), &mut ctx).unwrap_err();
    assert!(err.message.contains("outlived"), "{err}");
}

#[test]
fn to_hl7_gives_the_edited_message_as_text_with_separators_escaped() {
    let out = transform(
        r#"msg["PID-5-1"] = "Smith|Jones^Jr & Co~2\\x";
           msg.remove_segment(msg.segments("PV1")[0]);
           msg.remove("OBX[2]");
           let nte = msg.insert_segment(msg.segments("OBX")[0], "NTE");
           nte["3"] = "fasting";
           msg["MSH-10"] = "MSG00002";
           msg.to_hl7()"#,
    );
    assert_eq!(
        out,
        Payload::Text(
            "MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000||ADT^A01|MSG00002|P|2.5\r\
             PID|1||12345^^^HOSP^MR~999-88-7777^^^SSA^SS||Smith\\F\\Jones\\S\\Jr \\T\\ Co\\R\\2\\E\\x^John^Q||19800215|M|||1 Main St^^Springfield^IL^62701\r\
             OBX|1|NM|GLU^Glucose||95|mg/dL\r\
             NTE|||fasting\r"
                .into()
        )
    );
}

#[test]
fn segment_and_repetition_handles_have_the_message_functions() {
    let out = transform_json(
        r#"let pid = msg.segments("PID")[0];
           pid["8"] = "\"\"";
           let r = #{
               get: pid.get("5-2"), has7: pid.has("7"), has9: pid.has("9"), null8: pid.is_null("8"),
               ids: pid.count("3"), text: msg.segments("PV1")[0].to_string(),
               ssa: msg.repeats("PID-3")[1].get("4-1"),
           };
           pid.remove("7");
           r.has7_after = pid.has("7");
           r.birth = msg["PID-7"];
           let obx = msg.segments("OBX")[1];
           let nte = msg.insert_segment(obx.index() + 1, "NTE");
           nte["3"] = "after sodium";
           r.last = msg.segments("NTE")[0].index();
           r"#,
    );
    assert_eq!(
        out,
        serde_json::json!({
            "get": "John", "has7": true, "has9": false, "null8": true, "ids": 2,
            "text": "PV1|1|I|W^101^A", "ssa": "SSA", "has7_after": false, "birth": "", "last": 5
        })
    );
}

#[test]
fn unit_writes_empty_and_a_filter_without_value_keeps() {
    let msg = transform_hl7(r#"msg["PID-8"] = (); msg["PID-7"] = 3.5; msg"#);
    assert_eq!(get(&msg, "PID-8"), "");
    assert_eq!(get(&msg, "PID-7"), "3.5");
    assert_eq!(filter(r#"let x = msg["PID-8"];"#), FilterDecision::Keep);
    assert_eq!(
        filter("filter_out()"),
        FilterDecision::Stop(Flow::Filtered("filtered by script".into()))
    );
}

#[test]
fn a_growing_map_is_stopped_even_when_it_is_the_scripts_value() {
    let engine = ScriptEngine::new(ScriptOptions {
        limits: Limits {
            max_map_size: 100,
            ..Limits::default()
        },
        ..ScriptOptions::default()
    })
    .unwrap();
    for code in [
        "let m = #{};\nfor i in 0..1000 { m[\"k\" + i] = i; }\nctx.m = m;\n1",
        "let m = #{};\nfor i in 0..1000 { m[\"k\" + i] = i; }\nm",
        "let m = #{};\nfor i in 0..1000 { m[\"k\" + i] = i; }\n[m]",
    ] {
        let script = engine.compile(&src(code)).unwrap();
        let err = engine
            .run_transform(&script, adt(), &mut Map::new())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Limit, "{code}: {err}");
        assert!(err.message.contains("map"), "{code}: {err}");
    }
}

/// The ```rhai example of the README's "Scripts (Rhai)" section.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let section = readme.split("## Scripts (Rhai)").nth(1).unwrap();
    let block = section.split("```rhai\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

#[test]
fn the_readme_example_runs_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sex.csv");
    std::fs::write(&csv, "M,male\nF,female\n").unwrap();
    let engine = ScriptEngine::new(ScriptOptions {
        tables: HashMap::from([("sex".to_owned(), csv)]),
        ..ScriptOptions::default()
    })
    .unwrap();
    let script = engine.compile(&src(&readme_example())).unwrap();
    let with_evn = ADT.replace("\rPID|", "\rEVN|A01|202401011159-0500\rPID|");
    let mut ctx = Map::new();
    let out = engine
        .run_transform(
            &script,
            MessageBuf::parse(with_evn.as_bytes()).unwrap(),
            &mut ctx,
        )
        .unwrap();
    let TransformOutcome::Payload(Payload::Hl7(msg)) = out else {
        panic!("the README's transform returns the message: {out:?}");
    };
    assert_eq!(get(&msg, "PID-8"), "male");
    assert_eq!(get(&msg, "PID-5-1"), "DOE");
    assert_eq!(
        (get(&msg, "OBX[1]-11"), get(&msg, "OBX[2]-11")),
        ("F".into(), "F".into())
    );
    assert_eq!(
        get(&msg, "ZPI-1"),
        junction_script::uuid5(&["HOSP", "12345"])
    );
    assert_eq!(get(&msg, "ZPI-2"), "2024-01-01T11:59:00-05:00");
    assert_eq!(
        ctx.get("mrn").map(ToString::to_string).as_deref(),
        Some("12345")
    );

    // The same script filters what is not an admission and fails a message without an MRN.
    let update = with_evn.replace("ADT^A01", "ADT^A08");
    let out = engine
        .run_transform(
            &script,
            MessageBuf::parse(update.as_bytes()).unwrap(),
            &mut Map::new(),
        )
        .unwrap();
    assert_eq!(
        out,
        TransformOutcome::Stop(Flow::Filtered("not an admission".into()))
    );
    let no_mrn = with_evn.replace("^MR~", "^XX~");
    let out = engine
        .run_transform(
            &script,
            MessageBuf::parse(no_mrn.as_bytes()).unwrap(),
            &mut Map::new(),
        )
        .unwrap();
    assert_eq!(
        out,
        TransformOutcome::Stop(Flow::Fail("no medical record number".into()))
    );
}
