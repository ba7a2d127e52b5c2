//! Script and table paths resolve against the folder holding `channels/`, whatever the working
//! directory. Its own test binary, because it changes the process's working directory.
#![allow(clippy::unwrap_used)]

mod common;

use common::Project;
use junction_config::{load_dir, load_file, ScriptOrigin};

const CHANNEL: &str = "name: adt
source:
  file: { dir: inbox }
filter: scripts/only_adt.rhai
tables: { sex: tables/sex.csv }
destinations:
  - name: out
    file: { dir: data/out }
";

#[test]
fn relative_paths_resolve_beside_the_channels_folder_from_any_working_directory() {
    let p = Project::new();
    p.write("channels/adt.yaml", CHANNEL);
    let elsewhere = tempfile::tempdir().unwrap();

    // From an unrelated working directory, with a relative path to the channels folder.
    std::env::set_current_dir(elsewhere.path()).unwrap();
    let rel = pathdiff(p.root(), elsewhere.path()).join("channels");
    let c = &load_dir(&rel).unwrap_or_else(|d| panic!("{d}"))[0];
    assert_eq!(
        c.filter.as_ref().unwrap().source,
        "msg.msg_type().starts_with(\"ADT\")\n"
    );
    let ScriptOrigin::File(script) = &c.filter.as_ref().unwrap().origin else {
        panic!()
    };
    assert_eq!(
        script.canonicalize().unwrap(),
        p.root()
            .join("scripts/only_adt.rhai")
            .canonicalize()
            .unwrap()
    );
    assert!(c.tables["sex"].is_file());

    // From inside the channels folder itself.
    std::env::set_current_dir(p.channels()).unwrap();
    let c = load_file(std::path::Path::new("adt.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert!(c.tables["sex"].is_file());
    let c = &load_dir(std::path::Path::new(".")).unwrap_or_else(|d| panic!("{d}"))[0];
    assert_eq!(
        c.filter.as_ref().unwrap().source,
        "msg.msg_type().starts_with(\"ADT\")\n"
    );

    // From the project folder, the shipped layout.
    std::env::set_current_dir(p.root()).unwrap();
    let c = &load_dir(std::path::Path::new("channels")).unwrap_or_else(|d| panic!("{d}"))[0];
    assert!(c.tables["sex"].is_file());
    assert_eq!(c.tables["sex"], std::path::Path::new("tables/sex.csv"));
}

/// `target` written relative to `from` (both absolute), through `..` steps.
fn pathdiff(target: &std::path::Path, from: &std::path::Path) -> std::path::PathBuf {
    let target = target.canonicalize().unwrap();
    let from = from.canonicalize().unwrap();
    let common = target
        .components()
        .zip(from.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = std::path::PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    target.components().skip(common).for_each(|c| out.push(c));
    out
}
