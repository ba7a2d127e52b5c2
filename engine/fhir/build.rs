//! Embeds the shipped vocabulary maps (`scripts/fhir/maps/*.csv`) so the FHIR helpers work without a
//! scripts folder on disk; channels still overlay their own maps at run time.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let maps = manifest.join("../../scripts/fhir/maps");
    println!("cargo:rerun-if-changed={}", maps.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&maps)
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "csv"));
    files.sort();
    let mut out = String::from("/// The shipped vocabulary maps: (name, CSV text).\npub(crate) const SHIPPED_MAPS: &[(&str, &str)] = &[\n");
    for path in &files {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Ok(abs) = path.canonicalize() else {
            continue;
        };
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("shipped_maps.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}
