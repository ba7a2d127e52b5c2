//! Reading channel files from disk.

use std::path::{Path, PathBuf};

use crate::convert::parse_channel;
use crate::error::{ConfigError, Diagnostics, Problem};
use crate::model::ChannelConfig;
use crate::validate::check;

/// Load one channel file. Relative paths inside it resolve against the parent of the folder
/// that holds the file (so `channels/x.yaml` finds `scripts/...` beside `channels/`).
pub fn load_file(path: &Path) -> Result<ChannelConfig, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        let mut diags = Diagnostics::default();
        diags.push(ConfigError {
            file: path.to_path_buf(),
            position: None,
            problem: Problem::Io {
                what: "channel file".into(),
                source,
            },
        });
        diags
    })?;
    parse_channel(&text, path, &base_dir(path))
}

/// Load every `*.yaml` / `*.yml` file directly in `dir` (sub-folders such as `tests/` are not
/// channels), in file name order, then check them against each other. Reports the problems
/// of all files at once.
pub fn load_dir(dir: &Path) -> Result<Vec<ChannelConfig>, Diagnostics> {
    let (files, mut diags) = yaml_files(dir, "channels folder");
    if files.is_empty() && diags.is_empty() {
        diags.push(ConfigError {
            file: dir.to_path_buf(),
            position: None,
            problem: Problem::Rule("no channel files (*.yaml) in this folder".into()),
        });
    }
    let mut channels = Vec::with_capacity(files.len());
    for file in &files {
        match load_file(file) {
            Ok(c) => channels.push(c),
            Err(d) => diags.extend(d),
        }
    }
    let all_loaded = diags.is_empty();
    diags.extend(check(&channels, all_loaded));
    diags.into_result(channels)
}

/// The `*.yaml` / `*.yml` files directly in `dir`, in name order, and any error reading it
/// (`what` names the folder's role in the message).
pub(crate) fn yaml_files(dir: &Path, what: &str) -> (Vec<PathBuf>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let io_error = |source| ConfigError {
        file: dir.to_path_buf(),
        position: None,
        problem: Problem::Io {
            what: what.into(),
            source,
        },
    };
    let mut files: Vec<PathBuf> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) if is_yaml_file(&e.path()) => files.push(e.path()),
                    Ok(_) => {}
                    Err(e) => diags.push(io_error(e)),
                }
            }
        }
        Err(e) => diags.push(io_error(e)),
    }
    files.sort();
    (files, diags)
}

/// A `*.yaml` / `*.yml` file (channel and test files alike).
fn is_yaml_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
}

/// The folder a channel file's relative paths (scripts, tables, maps) resolve against: the parent of the
/// file's folder, also for a folder given as `.` or `..`. The runtime resolves Rhai imports with it too.
pub fn base_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match dir.parent() {
        // `channels` -> "" (the working directory); `/etc/junction/channels` -> `/etc/junction`.
        Some(parent) if dir.file_name().is_some() => parent.to_path_buf(),
        // `.` or `..`: no name to strip, so step up explicitly.
        _ => dir.join(".."),
    }
}

#[cfg(test)]
mod tests {
    use super::base_dir;
    use std::path::{Path, PathBuf};

    #[test]
    fn base_is_the_parent_of_the_channels_folder() {
        assert_eq!(base_dir(Path::new("channels/a.yaml")), PathBuf::from(""));
        assert_eq!(
            base_dir(Path::new("/srv/j/channels/a.yaml")),
            PathBuf::from("/srv/j")
        );
        assert_eq!(base_dir(Path::new("a.yaml")), PathBuf::from("./.."));
        assert_eq!(
            base_dir(Path::new("../channels/a.yaml")),
            PathBuf::from("..")
        );
    }
}
