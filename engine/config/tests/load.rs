//! Loading real channel files from a temp project, and what an analyst sees when one is wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Project;
use junction_config::*;

/// The example channel from the spec (line numbers matter to the tests below).
const FULL: &str = r#"name: adt-to-fhir
description: optional free text
source:
  mllp: { listen: "127.0.0.1:2575", max_connections: 20, max_frame_bytes: 1MiB, read_timeout: 30s, idle_timeout: 5m }
  ack: processed
filter: scripts/only_adt.rhai
transform: scripts/adt_to_fhir.rhai
tables: { sex: tables/sex.csv }
require: [MSH-10, PID-3, PID-5]
match: { MSH-12: '^2\.[3-8]', PID-8: '^(M|F|O|U|A|N)$' }
log_content: false
retention: { days: 30 }
depends_on: [other-channel-name]
destinations:
  - name: fhir-out
    file: { dir: data/out/fhir, name: "${MSH-10}.json" }
  - name: lab
    filter: 'msg["PV1-2"] == "I"'
    transform: scripts/to_lab.rhai
    mllp: { connect: "127.0.0.1:6661", ack_timeout: 10s, on_nak: retry }
    retry: { initial: 1s, max: 5m, max_attempts: forever }
    circuit_breaker: { failures: 5, cool_down: 30s }
    rate_limit: 50
    ordered: true
  - name: fhir-server
    http: { url: "http://127.0.0.1:8080/fhir", method: PUT, headers: { Authorization: "Bearer x" }, timeout: 10s }
    retry: { max_attempts: 3 }
    workers: 4
  - name: next
    channel: other-channel-name
"#;

const OTHER: &str = "name: other-channel-name
source:
  file: { dir: data/in }
destinations:
  - name: out
    transform: |
      let x = 1;
      msg
    file: { dir: data/out }
";

#[test]
fn the_full_example_loads_with_every_field() {
    let p = Project::new();
    p.write("channels/adt.yaml", FULL);
    p.write("channels/other.yaml", OTHER);
    let channels = load_dir(&p.channels()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(channels.len(), 2);
    let c = &channels[0];
    assert_eq!(c.name, "adt-to-fhir");
    assert_eq!(c.description.as_deref(), Some("optional free text"));
    assert_eq!(c.file, p.channels().join("adt.yaml"));

    let SourceKind::Mllp(m) = &c.source.kind else {
        panic!("{:?}", c.source.kind)
    };
    assert_eq!(m.listen, "127.0.0.1:2575".parse().unwrap());
    assert_eq!(m.max_connections, Some(20));
    assert_eq!(m.max_frame_bytes, 1 << 20);
    assert_eq!(m.read_timeout, Some(Duration::from_secs(30)));
    assert_eq!(m.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(
        (m.start_byte, m.end_bytes.as_slice()),
        (0x0B, &[0x1C, 0x0D][..])
    );
    assert_eq!(m.tls, None);
    assert_eq!(c.source.ack, AckMode::Processed);

    let filter = c.filter.as_ref().unwrap();
    assert_eq!(
        filter.origin,
        ScriptOrigin::File(p.root().join("scripts/only_adt.rhai"))
    );
    assert_eq!(filter.source, "msg.msg_type().starts_with(\"ADT\")\n");
    assert_eq!(c.transform.as_ref().unwrap().source, "// adt to fhir\n");
    assert_eq!(c.tables.get("sex"), Some(&p.root().join("tables/sex.csv")));
    assert_eq!(c.require, ["MSH-10", "PID-3", "PID-5"]);
    let rules: Vec<(&str, &str)> = c
        .matches
        .iter()
        .map(|r| (r.path.as_str(), r.pattern.as_str()))
        .collect();
    assert_eq!(
        rules,
        [("MSH-12", r"^2\.[3-8]"), ("PID-8", "^(M|F|O|U|A|N)$")]
    );
    assert!(c.matches[1].pattern.is_match("F") && !c.matches[1].pattern.is_match("X"));
    assert!(!c.log_content);
    assert_eq!(
        c.retention,
        Some(Retention {
            keep: Duration::from_secs(30 * 86_400),
            keep_errored: true,
            every: Duration::from_secs(3600),
        })
    );
    assert_eq!(c.depends_on, ["other-channel-name"]);

    let names: Vec<&str> = c.destinations.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["fhir-out", "lab", "fhir-server", "next"]);

    let out = &c.destinations[0];
    let expected = FileDestination {
        dir: p.root().join("data/out/fhir"),
        name: "${MSH-10}.json".into(),
    };
    assert_eq!(out.kind, DestinationKind::File(expected));
    assert_eq!(out.retry, RetryPolicy::default());
    assert!(
        out.order == DeliveryOrder::Ordered
            && out.filter.is_none()
            && out.circuit_breaker.is_none()
            && out.rate_limit.is_none()
    );

    let lab = &c.destinations[1];
    let inline = lab.filter.as_ref().unwrap();
    assert_eq!(inline.source, r#"msg["PV1-2"] == "I""#);
    let ScriptOrigin::Inline(at) = &inline.origin else {
        panic!("{:?}", inline.origin)
    };
    // The script text starts after the opening quote.
    assert_eq!((at.line, at.column), (18, 14));
    assert_eq!(lab.transform.as_ref().unwrap().source, "// to lab\n");
    let DestinationKind::Mllp(mllp) = &lab.kind else {
        panic!("{:?}", lab.kind)
    };
    assert_eq!(mllp.connect, "127.0.0.1:6661");
    assert_eq!(mllp.ack_timeout, Duration::from_secs(10));
    assert_eq!(mllp.connect_timeout, Duration::from_secs(10));
    assert_eq!(mllp.keepalive, Some(Duration::from_secs(60)));
    assert_eq!(mllp.on_nak, OnNak::Retry);
    let retry = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(300),
        max_attempts: MaxAttempts::Forever,
    };
    assert_eq!(lab.retry, retry);
    let breaker = CircuitBreaker {
        failures: 5,
        cool_down: Duration::from_secs(30),
    };
    assert_eq!(lab.circuit_breaker, Some(breaker));
    assert_eq!(lab.rate_limit, Some(50));
    assert_eq!(lab.order, DeliveryOrder::Ordered);

    let server = &c.destinations[2];
    let DestinationKind::Http(http) = &server.kind else {
        panic!("{:?}", server.kind)
    };
    assert_eq!(http.url, "http://127.0.0.1:8080/fhir");
    assert_eq!(http.method, HttpMethod::Put);
    assert_eq!(
        http.headers.get("Authorization").map(String::as_str),
        Some("Bearer x")
    );
    assert_eq!(http.timeout, Duration::from_secs(10));
    assert_eq!(server.retry.max_attempts, MaxAttempts::Limit(3));
    assert_eq!(
        server.order,
        DeliveryOrder::Unordered { workers: 4 },
        "HTTP is unordered unless asked"
    );

    assert_eq!(
        c.destinations[3].kind,
        DestinationKind::Channel("other-channel-name".into())
    );
    assert_eq!(c.scripts().len(), 4);

    // Defaults, and a block-scalar script whose first line is the one after `|`.
    let o = &channels[1];
    let SourceKind::File(f) = &o.source.kind else {
        panic!("{:?}", o.source.kind)
    };
    assert_eq!(
        (f.dir.clone(), f.glob.as_str(), f.poll),
        (p.root().join("data/in"), "*.hl7", Duration::from_secs(1))
    );
    assert_eq!(o.source.ack, AckMode::Stored);
    let t = o.destinations[0].transform.as_ref().unwrap();
    assert_eq!(t.source, "let x = 1;\nmsg\n");
    let ScriptOrigin::Inline(at) = &t.origin else {
        panic!("{:?}", t.origin)
    };
    assert_eq!((at.line, at.column), (7, 7));
    let DestinationKind::File(fd) = &o.destinations[0].kind else {
        panic!()
    };
    assert_eq!(fd.name, "${MSH-10}.hl7");
    assert_eq!(o.locate(&["destinations", "0", "name"]).line, 5);
}

/// Load a single channel file (plus a valid `other-channel-name` when asked) and return the errors.
fn errors_of(yaml: &str) -> Vec<String> {
    let p = Project::new();
    p.write("channels/adt.yaml", yaml);
    p.errors()
}

const MINIMAL: &str = "name: adt
source:
  mllp: { listen: \"127.0.0.1:2575\" }
destinations:
  - name: out
    file: { dir: out }
";

#[test]
fn minimal_channel_is_valid() {
    let p = Project::new();
    p.write("channels/adt.yaml", MINIMAL);
    let c = load_dir(&p.channels()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c[0].name, "adt");
}

/// The MLLP destination of MINIMAL's shape with `keys` inside its braces.
fn mllp_destination(keys: &str) -> String {
    MINIMAL.replace(
        "file: { dir: out }",
        &format!("mllp: {{ connect: \"127.0.0.1:6661\"{keys} }}"),
    )
}

#[test]
fn mllp_destination_timeouts_keepalive_and_framing_are_read() {
    let p = Project::new();
    let load = |yaml: &str| {
        p.write("channels/adt.yaml", yaml);
        let c = load_dir(&p.channels()).unwrap_or_else(|d| panic!("{d}"));
        match &c[0].destinations[0].kind {
            DestinationKind::Mllp(m) => m.clone(),
            other => panic!("{other:?}"),
        }
    };
    let defaults = load(&mllp_destination(""));
    assert_eq!(
        (
            defaults.connect_timeout,
            defaults.send_timeout,
            defaults.ack_timeout
        ),
        (
            Duration::from_secs(10),
            Duration::from_secs(10),
            Duration::from_secs(30)
        )
    );
    assert_eq!(defaults.keepalive, Some(Duration::from_secs(60)));
    assert_eq!(
        (defaults.start_byte, defaults.end_bytes.as_slice()),
        (0x0B, &[0x1C, 0x0D][..])
    );

    let set = load(&mllp_destination(
        ", connect_timeout: 2s, send_timeout: 750ms, ack_timeout: 1m, keepalive: false, \
         start_byte: 0x02, end_bytes: [0x03]",
    ));
    assert_eq!(
        (set.connect_timeout, set.send_timeout, set.ack_timeout),
        (
            Duration::from_secs(2),
            Duration::from_millis(750),
            Duration::from_secs(60)
        )
    );
    assert_eq!(set.keepalive, None);
    assert_eq!(
        load(&mllp_destination(", keepalive: 15s")).keepalive,
        Some(Duration::from_secs(15))
    );
    assert_eq!(
        (set.start_byte, set.end_bytes.as_slice()),
        (0x02, &[0x03][..])
    );
}

#[test]
fn mllp_destination_send_timeout_and_framing_are_checked() {
    let errors = errors_of(&mllp_destination(
        ", send_timeout: 0s, start_byte: 0x1C, end_bytes: [0x1C, 0x0D]",
    ));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains(
            "destinations[0].mllp.send_timeout: invalid duration '0s': must be longer than zero"
        ),
        "{errors:#?}"
    );
    assert!(
        errors[1].contains(
            "destinations[0].mllp.end_bytes: the start byte and the end bytes must all differ"
        ),
        "{errors:#?}"
    );
    let source = MINIMAL.replace(
        "listen: \"127.0.0.1:2575\"",
        "listen: \"127.0.0.1:2575\", end_bytes: [0x0D, 0x0D]",
    );
    let errors = errors_of(&source);
    assert!(
        errors.len() == 1
            && errors[0].contains(
                "source.mllp.end_bytes: the start byte and the end bytes must all differ"
            ),
        "{errors:#?}"
    );
}

#[test]
fn keepalive_takes_true_false_or_an_idle_time_of_a_second_or_more() {
    let errors = errors_of(&mllp_destination(", keepalive: soon"));
    assert!(
        errors.len() == 1
            && errors[0].contains(
                "destinations[0].mllp.keepalive: invalid keep-alive idle time 'soon': expected true, \
                 false or an idle time like 30s"
            ),
        "{errors:#?}"
    );
    let errors = errors_of(&mllp_destination(", keepalive: 500ms"));
    assert!(
        errors.len() == 1 && errors[0].contains("'500ms': must be 1s or more"),
        "{errors:#?}"
    );
}

#[test]
fn unknown_key_names_the_key_and_the_allowed_ones() {
    let yaml = MINIMAL.replace("destinations:", "destinatons:");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:4:1: unknown field 'destinatons', expected one of 'name', 'description', \
          'source', 'filter', 'transform', 'tables', 'fhir_maps', 'require', 'match', 'log_content', \
          'destinations', 'retention', 'depends_on', 'encrypt', 'encryption', 'alerts'"]
    );
    let nested = MINIMAL.replace("file: { dir: out }", "file: { dir: out, nmae: x }");
    assert_eq!(
        errors_of(&nested),
        ["channels/adt.yaml:6:23: destinations[0].file: unknown field 'nmae', expected 'dir' or 'name'"]
    );
}

#[test]
fn wrong_type_says_what_was_expected() {
    let yaml = format!("{MINIMAL}log_content: maybe\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:7:14: log_content: invalid type: string \"maybe\", expected a boolean"]
    );
    let yaml = format!("{MINIMAL}require: PID-3\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:7:10: require: invalid type: string \"PID-3\", expected a sequence"]
    );
}

#[test]
fn missing_required_field() {
    let yaml = MINIMAL.replace("  - name: out\n    file", "  - file");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:5:5: destinations[0]: missing field 'name'"]
    );
    let yaml = MINIMAL.replace("name: adt\n", "");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:1:1: missing field 'name'"]
    );
}

#[test]
fn source_needs_exactly_one_kind() {
    let yaml = MINIMAL.replace("source:\n", "source:\n  file: { dir: in }\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:4:3: source has 'mllp' and 'file'; give exactly one of: mllp, file, http"]
    );
    let yaml = MINIMAL.replace("  mllp: { listen: \"127.0.0.1:2575\" }", "  ack: stored");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:3:3: source has no kind; give exactly one of: mllp, file, http"]
    );
    let yaml = MINIMAL.replace("    file: { dir: out }", "    ordered: false");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:5:5: destination 'out' has no kind; give exactly one of: mllp, file, http, channel"]
    );
}

#[test]
fn bad_durations_and_attempts() {
    let yaml = format!("{MINIMAL}    retry: {{ initial: 10, max: 5 minutes }}\n");
    assert_eq!(
        errors_of(&yaml),
        [
            "channels/adt.yaml:7:23: destinations[0].retry.initial: invalid duration '10': the number has no \
             unit; expected a number and a unit (ms, s, m, h, d), e.g. 500ms, 30s, 5m, 1h30m",
            "channels/adt.yaml:7:32: destinations[0].retry.max: invalid duration '5 minutes': unknown unit \
             'minutes'; expected a number and a unit (ms, s, m, h, d), e.g. 500ms, 30s, 5m, 1h30m",
        ]
    );
    let yaml = format!("{MINIMAL}    retry: {{ initial: 1m, max: 1s }}\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:7:12: destinations[0].retry: 'initial' (60s) is longer than 'max' (1s); the \
          first wait cannot exceed the longest"]
    );
    let yaml = format!("{MINIMAL}    retry: {{ max_attempts: always }}\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:7:28: destinations[0].retry.max_attempts: invalid value: string \"always\", \
          expected 'forever' or a number of attempts (1 or more)"]
    );
}

#[test]
fn duplicate_destination_points_at_both() {
    let yaml = format!("{MINIMAL}  - name: out\n    channel: x\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:7:11: duplicate destination name 'out' (first used at channels/adt.yaml:5:11)"]
    );
}

#[test]
fn duplicate_channel_name_across_files() {
    let p = Project::new();
    p.write("channels/a.yaml", MINIMAL);
    p.write("channels/b.yaml", &MINIMAL.replace("2575", "2576"));
    assert_eq!(
        p.errors(),
        ["channels/b.yaml:1:7: duplicate channel name 'adt' (first used at channels/a.yaml:1:7)"]
    );
}

#[test]
fn two_channels_on_one_address() {
    let p = Project::new();
    p.write("channels/a.yaml", MINIMAL);
    let http = MINIMAL.replace("name: adt", "name: web").replace(
        "mllp: { listen: \"127.0.0.1:2575\" }",
        "http:\n    listen: 0.0.0.0:2575",
    );
    p.write("channels/b.yaml", &http);
    assert_eq!(
        p.errors(),
        ["channels/b.yaml:4:13: address 0.0.0.0:2575 is already used by channel 'adt' at channels/a.yaml:3:19"]
    );
}

#[test]
fn missing_script_and_table_files() {
    let yaml = format!(
        "{MINIMAL}filter: scripts/nope.rhai\ntables:\n  sex: tables/sex.csv\n  race: tables/race.csv\n"
    );
    let errors = errors_of(&yaml);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("channels/adt.yaml:7:9: filter: script file not found: ")
            && errors[0].ends_with("scripts/nope.rhai"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("channels/adt.yaml:10:9: tables.race: table file not found: ")
            && errors[1].ends_with("tables/race.csv"),
        "{}",
        errors[1]
    );
}

#[test]
fn fhir_maps_folder_resolves_beside_channels_and_its_maps_are_checked() {
    let p = Project::new();
    std::fs::create_dir(p.root().join("maps")).unwrap();
    p.write(
        "maps/administrative-sex.csv",
        "# site codes\nv2_code,code,system\nM,male,http://hl7.org/fhir/administrative-gender\n",
    );
    p.write("channels/adt.yaml", &format!("{MINIMAL}fhir_maps: maps\n"));
    let c = load_dir(&p.channels()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c[0].fhir_maps, Some(p.root().join("maps")));

    p.write("channels/adt.yaml", MINIMAL);
    let c = load_dir(&p.channels()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c[0].fhir_maps, None);
}

#[test]
fn missing_fhir_maps_folder_and_a_bad_map() {
    assert_eq!(
        errors_of(&format!("{MINIMAL}fhir_maps: maps/nope\n")),
        ["channels/adt.yaml:7:12: fhir_maps: FHIR maps folder not found: maps/nope"]
    );
    let p = Project::new();
    std::fs::create_dir(p.root().join("maps")).unwrap();
    p.write(
        "maps/administrative-sex.csv",
        "# site codes\nv2_code,code,system\nM,male,urn:x\nX,,urn:x\n",
    );
    p.write("channels/adt.yaml", &format!("{MINIMAL}fhir_maps: maps\n"));
    assert_eq!(
        p.errors(),
        ["channels/adt.yaml:7:12: fhir_maps: vocabulary map maps/administrative-sex.csv:4:3: v2 code 'X' \
          has no code (leave codes that have no FHIR code out of the map)"]
    );
    p.write("maps/administrative-sex.csv", "code,display\nM,male\n");
    assert_eq!(
        p.errors(),
        ["channels/adt.yaml:7:12: fhir_maps: vocabulary map maps/administrative-sex.csv:1:1: the header \
          must name the columns v2_code, code and system (missing 'v2_code')"]
    );
}

#[test]
fn bad_regex_and_bad_hl7_paths() {
    let yaml =
        format!("{MINIMAL}require: [MSH-10, PID-x]\nmatch:\n  PID-8: '^(M|F'\n  pid8: '^M$'\n");
    assert_eq!(
        errors_of(&yaml),
        [
            "channels/adt.yaml:7:19: require[1]: invalid HL7 path 'PID-x': invalid number 'x' in path \
             'PID-x'; expected e.g. PID-5-1, PID.5.1, OBX[2]-5 or PID-3[2]-1",
            "channels/adt.yaml:9:10: match.PID-8: invalid regex '^(M|F': unclosed group",
            "channels/adt.yaml:10:3: match.pid8: invalid HL7 path 'pid8': invalid segment name in path \
             'pid8' (expected 3 characters A-Z, 0-9); expected e.g. PID-5-1, PID.5.1, OBX[2]-5 or PID-3[2]-1",
        ]
    );
}

#[test]
fn every_semantic_problem_in_a_file_is_reported_at_once() {
    let yaml = "name: bad name
source:
  mllp: { listen: localhost:2575, max_frame_bytes: 0 }
transform: scripts/missing.rhai
destinations:
  - name: a
    http: { url: ftp://x }
  - name: a
    mllp: { connect: nohost, tls: { cert: certs/c.pem } }
    rate_limit: 0
  - name: c
    file: { dir: out, name: '${PID-3' }
";
    let errors = errors_of(yaml);
    let places: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        places,
        [
            "channels/adt.yaml:1:7",   // name with a space
            "channels/adt.yaml:3:19",  // listen needs an IP
            "channels/adt.yaml:3:52",  // zero frame size
            "channels/adt.yaml:4:12",  // missing transform script
            "channels/adt.yaml:7:18",  // ftp URL
            "channels/adt.yaml:8:11",  // duplicate destination
            "channels/adt.yaml:10:17", // zero rate limit
            "channels/adt.yaml:9:22",  // connect without a port
            "channels/adt.yaml:9:35",  // cert without key
            "channels/adt.yaml:9:43",  // missing certificate
            "channels/adt.yaml:12:29", // unclosed placeholder
        ],
        "{errors:#?}"
    );
}

#[test]
fn references_to_unknown_channels() {
    let yaml = format!("{MINIMAL}  - name: fwd\n    channel: nowhere\ndepends_on: [adt]\n");
    assert_eq!(
        errors_of(&yaml),
        [
            "channels/adt.yaml:8:14: destinations[1].channel: no channel is named 'nowhere' (known: adt)",
            "channels/adt.yaml:9:14: depends_on[0]: a channel cannot refer to itself ('adt')",
        ]
    );
}

#[test]
fn retention_is_given_in_days_or_as_a_duration_and_runs_every_so_often() {
    let p = Project::new();
    let retention = |block: &str| {
        p.write(
            "channels/adt.yaml",
            &format!("{MINIMAL}retention: {block}\n"),
        );
        load_dir(&p.channels())
            .map(|mut c| c.remove(0).retention)
            .map_err(|_| p.errors())
    };
    assert_eq!(
        retention("{ keep: 90s, keep_errored: false, every: 5s }"),
        Ok(Some(Retention {
            keep: Duration::from_secs(90),
            keep_errored: false,
            every: Duration::from_secs(5),
        }))
    );
    assert_eq!(
        retention("{ days: 2 }"),
        Ok(Some(Retention {
            keep: Duration::from_secs(2 * 86_400),
            keep_errored: true,
            every: Duration::from_secs(3600),
        }))
    );
    assert_eq!(
        retention("{ days: 2, keep: 3d }"),
        Err(vec![
            "channels/adt.yaml:7:29: retention.keep: give 'days' or 'keep', not both: \
                  they say the same thing in different units"
                .to_owned()
        ])
    );
    assert_eq!(
        retention("{ keep_errored: true }"),
        Err(vec![
            "channels/adt.yaml:7:12: retention: needs 'days' (e.g. days: 30) or 'keep' \
                  (e.g. keep: 36h)"
                .to_owned()
        ])
    );
    assert_eq!(
        retention("{ days: 1, every: 0s }"),
        Err(vec![
            "channels/adt.yaml:7:30: retention.every: invalid duration '0s': must be \
                  longer than zero"
                .to_owned()
        ])
    );
}

#[test]
fn a_depends_on_cycle_names_every_channel_in_it() {
    let p = Project::new();
    let channel = |name: &str, port: u16, deps: &str| {
        MINIMAL
            .replace("name: adt", &format!("name: {name}"))
            .replace("2575", &port.to_string())
            + &format!("depends_on: [{deps}]\n")
    };
    p.write("channels/a.yaml", &channel("adt", 2575, "lab"));
    p.write("channels/b.yaml", &channel("lab", 2576, "audit, orders"));
    p.write("channels/c.yaml", &channel("orders", 2577, "adt"));
    // `lab` also depends on `audit`, a dead end that is not part of the cycle.
    p.write("channels/d.yaml", &channel("audit", 2578, ""));
    assert_eq!(
        p.errors(),
        ["channels/a.yaml:7:14: depends_on[0]: dependency cycle 'adt' (channels/a.yaml:7:14) -> \
          'lab' (channels/b.yaml:7:21) -> 'orders' (channels/c.yaml:7:14) -> 'adt': none of these \
          channels could start first; remove one of these depends_on entries"]
    );

    // With the cycle broken, the same channels load.
    p.write("channels/c.yaml", &channel("orders", 2577, "audit"));
    assert_eq!(load_dir(&p.channels()).map(|c| c.len()).ok(), Some(4));
}

#[test]
fn channels_handing_every_message_round_in_a_loop_are_an_error() {
    let p = Project::new();
    let channel = |name: &str, port: u16, to: &str, filter: &str| {
        format!(
            "name: {name}\nsource:\n  mllp: {{ listen: \"127.0.0.1:{port}\" }}\ndestinations:\n  \
             - name: next\n    channel: {to}\n{filter}"
        )
    };
    p.write("channels/a.yaml", &channel("adt", 2575, "lab", ""));
    p.write("channels/b.yaml", &channel("lab", 2576, "adt", ""));
    assert_eq!(
        p.errors(),
        ["channels/a.yaml:6:14: destinations[0].channel: hand-over cycle 'adt' (channels/a.yaml:6:14) \
          -> 'lab' (channels/b.yaml:6:14) -> 'adt': every message would be handed round these channels \
          forever; remove one of these channel destinations or give one a filter"]
    );

    // A filter (or a transform, which may filter) on one hand-over can end the loop, so the analyst's
    // design is accepted.
    p.write(
        "channels/b.yaml",
        &channel(
            "lab",
            2576,
            "adt",
            "    filter: 'msg[\"MSH-3\"] != \"LAB\"'\n",
        ),
    );
    assert_eq!(load_dir(&p.channels()).map(|c| c.len()).ok(), Some(2));
}

#[test]
fn errors_from_several_files_come_together() {
    let p = Project::new();
    p.write("channels/a.yaml", &MINIMAL.replace("source:", "sorce:"));
    p.write("channels/b.yaml", "");
    p.write("channels/c.yaml", "name: 'adt\n");
    p.write("channels/notes.txt", "not a channel");
    std::fs::create_dir(p.channels().join("tests")).unwrap();
    p.write("channels/tests/case.yaml", "input: x\n");
    let errors = p.errors();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("channels/a.yaml:2:1: unknown field 'sorce'"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "channels/b.yaml: the file is empty; a channel needs at least name, source and destinations"
    );
    assert_eq!(
        errors[2],
        "channels/c.yaml:2:1: found unexpected end of stream, while scanning a quoted scalar at line 1 column 7"
    );
}

#[test]
fn an_empty_or_missing_folder_is_an_error() {
    let p = Project::new();
    assert_eq!(
        p.errors(),
        ["channels: no channel files (*.yaml) in this folder"]
    );
    let missing = load_dir(&p.root().join("nope")).unwrap_err();
    assert!(
        missing.to_string().contains("cannot read channels folder"),
        "{missing}"
    );
}

#[test]
fn load_file_reads_one_channel() {
    let p = Project::new();
    let path = p.write("channels/one.yml", MINIMAL);
    assert_eq!(load_file(&path).unwrap().name, "adt");
    let err = load_file(&p.channels().join("absent.yaml")).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err.to_string()
            .contains("absent.yaml: cannot read channel file"),
        "{err}"
    );
}

#[test]
fn validate_checks_channels_against_each_other() {
    let p = Project::new();
    let a = p.write("channels/a.yaml", MINIMAL);
    let b = p.write(
        "channels/b.yaml",
        &MINIMAL.replace("name: adt", "name: adt2"),
    );
    let channels = [load_file(&a).unwrap(), load_file(&b).unwrap()];
    let err = validate(&channels).unwrap_err();
    assert_eq!(
        p.strip(&err),
        ["channels/b.yaml:3:19: address 127.0.0.1:2575 is already used by channel 'adt' at channels/a.yaml:3:19"]
    );
    assert!(validate(&channels[..1]).is_ok());
}

#[test]
fn workers_need_an_unordered_queue() {
    let yaml = format!("{MINIMAL}    workers: 3\n");
    assert_eq!(
        errors_of(&yaml),
        ["channels/adt.yaml:7:14: destinations[0].workers: needs 'ordered: false': an ordered queue sends one message at a time"]
    );
    let yaml = format!("{MINIMAL}    ordered: false\n    workers: 0\n");
    assert_eq!(errors_of(&yaml).len(), 1, "workers: 0 is refused");
}
