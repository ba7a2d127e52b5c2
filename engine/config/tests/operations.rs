//! `encrypt`, `encryption` and `alerts`: what loads, and what an analyst is told when it is wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Project;
use junction_config::*;

const HEAD: &str = "name: adt
source:
  mllp: { listen: \"127.0.0.1:2575\" }
destinations:
  - name: lab
    mllp: { connect: \"127.0.0.1:6661\" }
    circuit_breaker: { failures: 3, cool_down: 10s }
";

fn project_with_keys() -> Project {
    let p = Project::new();
    std::fs::create_dir(p.root().join("keys")).unwrap();
    p.write("keys/2026.key", &format!("{}\n", "ab".repeat(32)));
    std::fs::write(p.root().join("keys/2025.key"), [7u8; 32]).unwrap();
    p
}

#[test]
fn encryption_keys_are_read_from_their_files() {
    let p = project_with_keys();
    p.write(
        "channels/adt.yaml",
        &format!(
            "{HEAD}encrypt: true
encryption:
  key_file: keys/2026.key
  retired_key_files: [keys/2025.key]
"
        ),
    );
    let channel = load_dir(&p.channels())
        .unwrap_or_else(|d| panic!("{d}"))
        .pop()
        .unwrap();
    assert!(channel.encrypt);
    let enc = channel.encryption.unwrap();
    assert_eq!(enc.key.bytes(), &[0xab; 32]);
    assert_eq!(enc.key.file, p.root().join("keys/2026.key"));
    assert_eq!(enc.retired.len(), 1);
    assert_eq!(enc.retired[0].bytes(), &[7; 32]);
    // Key bytes never show up in debug output (logs, panics).
    let shown = format!("{:?}", enc.key);
    assert!(
        shown.contains("2026.key") && !shown.contains("171"),
        "{shown}"
    );
}

#[test]
fn bad_key_files_are_errors_at_their_line() {
    let p = project_with_keys();
    p.write("keys/short.key", "0123456789abcdef\n");
    p.write(
        "channels/adt.yaml",
        &format!(
            "{HEAD}encrypt: true
encryption:
  key_file: keys/short.key
  retired_key_files: [keys/2025.key, keys/gone.key]
"
        ),
    );
    let errors = p.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("channels/adt.yaml:10:13: encryption.key_file: invalid key file 'keys/short.key': it holds 17 bytes"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(
            "channels/adt.yaml:11:38: encryption.retired_key_files[1]: key file not found"
        ),
        "{}",
        errors[1]
    );
}

#[test]
fn encrypt_without_keys_is_an_error_and_keys_alone_only_decrypt() {
    let p = project_with_keys();
    p.write("channels/adt.yaml", &format!("{HEAD}encrypt: true\n"));
    let errors = p.errors();
    assert_eq!(
        errors,
        vec!["channels/adt.yaml:8:10: encrypt: true needs a key: add 'encryption: { key_file: keys/current.key }'"]
    );
    p.write(
        "channels/adt.yaml",
        &format!("{HEAD}encryption: {{ key_file: keys/2026.key }}\n"),
    );
    let channel = load_dir(&p.channels())
        .unwrap_or_else(|d| panic!("{d}"))
        .pop()
        .unwrap();
    assert!(!channel.encrypt);
    assert!(channel.encryption.is_some());
}

#[test]
fn alerts_load_with_every_kind() {
    let p = Project::new();
    p.write(
        "channels/adt.yaml",
        &format!(
            "{HEAD}alerts:
  webhook: http://127.0.0.1:9000/hook
  queue_age: 5m
  errors: {{ count: 10, within: 15m }}
  circuit_open: true
"
        ),
    );
    let channel = load_dir(&p.channels())
        .unwrap_or_else(|d| panic!("{d}"))
        .pop()
        .unwrap();
    assert_eq!(
        channel.alerts,
        Some(Alerts {
            webhook: Some("http://127.0.0.1:9000/hook".into()),
            queue_age: Some(Duration::from_secs(300)),
            errors: Some(ErrorsAlert {
                count: 10,
                within: Duration::from_secs(900)
            }),
            circuit_open: true,
        })
    );
}

#[test]
fn bad_alerts_are_errors_at_their_line() {
    let p = Project::new();
    let no_breaker = HEAD.replace("    circuit_breaker: { failures: 3, cool_down: 10s }\n", "");
    p.write(
        "channels/adt.yaml",
        &format!(
            "{no_breaker}alerts:
  webhook: ftp://x
  queue_age: 5
  errors: {{ count: 0, within: 1m }}
  circuit_open: true
"
        ),
    );
    let errors = p.errors();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("channels/adt.yaml:8:12: alerts.webhook: invalid URL 'ftp://x'"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("channels/adt.yaml:9:14: alerts.queue_age: invalid duration '5'"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("channels/adt.yaml:10:20: alerts.errors.count: invalid number '0'"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("channels/adt.yaml:11:17: alerts.circuit_open: no destination"),
        "{}",
        errors[3]
    );

    p.write(
        "channels/adt.yaml",
        &format!("{HEAD}alerts: {{ webhook: http://h/x }}\n"),
    );
    let errors = p.errors();
    assert!(errors[0].contains("no alert is set"), "{errors:#?}");
}
