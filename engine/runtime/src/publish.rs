//! Files that appear whole and never replace another: what the file destination delivers and the
//! file source sets aside. A reader of the folder sees the finished file or nothing, a crash leaves
//! at most a hidden temporary file, and a name that is already taken by other content is never
//! overwritten (two feeds reusing a control id, a sender restarting its counter), because that would
//! lose a delivered message without any error.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// `name` with `tag` before its extension: `day.hl7` + `from-3` -> `day.from-3.hl7`; `batch` ->
/// `batch.from-3`. The extension stays last, so a folder's pattern (`*.hl7`) still matches.
pub(crate) fn variant(name: &str, tag: &str) -> String {
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.extension() {
        Some(ext) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    }
}

/// Writes `bytes` under the first of `names` that is free in `dir`, or that already holds exactly these
/// bytes (an earlier attempt of the same write, so a retry never makes a second copy), and returns that
/// name. The bytes go to a hidden temporary file, are synced, then linked under the name, which fails
/// rather than replace a file; the folder is synced before this returns, so the file survives a
/// power loss once the caller records it as written.
pub(crate) fn write_new(
    dir: &Path,
    names: impl Iterator<Item = String>,
    bytes: &[u8],
) -> std::io::Result<String> {
    // Unique per write, so concurrent writers into one folder never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".junction-{}-{n}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        for name in names {
            let target = dir.join(&name);
            if link_if_free(&tmp, &target)? || std::fs::read(&target)? == bytes {
                std::fs::File::open(dir)?.sync_all()?;
                return Ok(name);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "every candidate name is taken by other content",
        ))
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

/// Puts `tmp` at `target` unless `target` exists; `false` when it does.
fn link_if_free(tmp: &Path, target: &Path) -> std::io::Result<bool> {
    match std::fs::hard_link(tmp, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links (FAT, some network shares): look, then copy.
        Err(_) if !target.try_exists()? => std::fs::copy(tmp, target).map(|_| true),
        Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_keeps_the_extension_last() {
        assert_eq!(variant("day.hl7", "from-3"), "day.from-3.hl7");
        assert_eq!(variant("a.b.txt", "seq-9"), "a.b.seq-9.txt");
        assert_eq!(variant("batch", "from-2"), "batch.from-2");
    }

    #[test]
    fn a_taken_name_is_never_overwritten_and_a_repeated_write_is_not_copied_twice() {
        let dir = tempfile::tempdir().unwrap();
        let names = || {
            ["adt.hl7", "adt.2.hl7", "adt.3.hl7"]
                .map(String::from)
                .into_iter()
        };
        assert_eq!(write_new(dir.path(), names(), b"first").unwrap(), "adt.hl7");
        assert_eq!(
            write_new(dir.path(), names(), b"second").unwrap(),
            "adt.2.hl7"
        );
        // The same bytes again (a retry after a crash before the write was recorded): no new file.
        assert_eq!(
            write_new(dir.path(), names(), b"second").unwrap(),
            "adt.2.hl7"
        );
        let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
        assert_eq!(read("adt.hl7"), b"first");
        assert_eq!(read("adt.2.hl7"), b"second");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
        assert_eq!(
            write_new(dir.path(), names().take(2), b"third")
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::AlreadyExists
        );
    }
}
