//! A throwaway project folder: channels/, scripts/ and tables/ side by side, as shipped.
// Each test binary uses a different part of this helper.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use junction_config::{load_dir, Diagnostics};

/// A temporary project with the scripts and tables the example channel names.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["channels", "scripts", "tables", "certs"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let p = Project { dir };
        p.write(
            "scripts/only_adt.rhai",
            "msg.msg_type().starts_with(\"ADT\")\n",
        );
        p.write("scripts/adt_to_fhir.rhai", "// adt to fhir\n");
        p.write("scripts/to_lab.rhai", "// to lab\n");
        p.write("tables/sex.csv", "M,male\nF,female\n");
        p
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root().join(rel);
        fs::write(&path, text).unwrap();
        path
    }

    pub fn channels(&self) -> PathBuf {
        self.root().join("channels")
    }

    /// Every diagnostic of `load_dir`, with the temp folder removed from file names so tests
    /// read like what an analyst sees from the project folder.
    pub fn errors(&self) -> Vec<String> {
        match load_dir(&self.channels()) {
            Ok(c) => panic!("expected errors, loaded {} channels", c.len()),
            Err(d) => self.strip(&d),
        }
    }

    pub fn strip(&self, d: &Diagnostics) -> Vec<String> {
        let prefix = format!("{}/", self.root().display());
        d.iter()
            .map(|e| e.to_string().replace(&prefix, ""))
            .collect()
    }
}
