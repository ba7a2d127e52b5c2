//! What a channel hands the script engine: where modules, tables and FHIR maps live, limits, logging policy.

use std::collections::HashMap;
use std::path::PathBuf;

/// Resource limits for one script run; a script that exceeds one stops with an [`ErrorKind::Limit`](crate::ErrorKind) error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum Rhai operations per run (an endless loop stops here: ~5 million is well under a second).
    pub max_operations: u64,
    /// Maximum nesting of function calls.
    pub max_call_levels: usize,
    /// Maximum expression nesting at top level (checked when compiling).
    pub max_expr_depth: usize,
    /// Maximum expression nesting inside functions (checked when compiling).
    pub max_function_expr_depth: usize,
    /// Maximum length of any string, in bytes (must hold the largest message `to_hl7()` produces).
    pub max_string_size: usize,
    /// Maximum elements in any array.
    pub max_array_size: usize,
    /// Maximum entries in any object map.
    pub max_map_size: usize,
    /// Maximum modules a script may import.
    pub max_modules: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 5_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 16 * 1024 * 1024,
            max_array_size: 100_000,
            max_map_size: 10_000,
            max_modules: 64,
        }
    }
}

/// Everything one channel's script engine needs; one engine serves all of that channel's scripts.
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// The folder that holds `scripts/` (the parent of `channels/`); `import "fhir/common"` resolves to
    /// `<base_dir>/scripts/fhir/common.rhai`.
    pub base_dir: PathBuf,
    /// Lookup tables by name: two-column CSV files (key, value).
    pub tables: HashMap<String, PathBuf>,
    /// The channel's own FHIR vocabulary maps: each `<name>.csv` replaces the shipped map `<name>`
    /// whole. `None` shares the shipped maps of the process.
    pub fhir_maps: Option<PathBuf>,
    /// Resource limits per run.
    pub limits: Limits,
    /// Whether `log(...)` may write what the script passes it (which may be patient data).
    pub log_content: bool,
    /// The channel name, put on every log line.
    pub channel_name: String,
}
