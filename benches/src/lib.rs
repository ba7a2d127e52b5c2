//! Shared helpers for benches.

use std::path::PathBuf;

/// The repository root (benches read the project's own test messages and shipped scripts).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A test message from `tests/messages/<name>`; panics if it is missing (a bench cannot run without it).
pub fn test_message(name: &str) -> Vec<u8> {
    let path = repo().join("tests/messages").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
