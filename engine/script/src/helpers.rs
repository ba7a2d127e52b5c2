//! Script helpers that are not about the message itself: lookup tables, deterministic ids, logging.

use std::cell::RefCell;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Position};

use crate::tables::Tables;

/// The fixed namespace of `uuid5(...)`: ids depend only on the arguments, across channels, hosts and versions.
/// It is the FHIR mapping's namespace, so ids made in scripts and in Rust agree.
pub use junction_fhir::ids::NAMESPACE as JUNCTION_NAMESPACE;

/// A deterministic UUID v5 of the parts (joined by U+001F) in [`JUNCTION_NAMESPACE`].
pub use junction_fhir::ids::uuid5;

fn uuid5_dynamic(parts: &[Dynamic]) -> String {
    let parts: Vec<String> = parts.iter().map(ToString::to_string).collect();
    uuid5(&parts)
}

thread_local! {
    /// MSH-10 of the message the current thread is running a script for; log lines carry it.
    static CONTROL_ID: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Marks the current thread as running a script for the message `control_id`, until dropped.
pub(crate) struct RunScope;

impl RunScope {
    /// Enters the run; the id is cleared when the scope ends.
    pub(crate) fn enter(control_id: &str) -> Self {
        CONTROL_ID.with(|id| {
            let mut id = id.borrow_mut();
            id.clear();
            id.push_str(control_id);
        });
        Self
    }
}

impl Drop for RunScope {
    fn drop(&mut self) {
        CONTROL_ID.with(|id| id.borrow_mut().clear());
    }
}

/// How `log(...)`, `print(...)` and `debug(...)` behave for one channel.
#[derive(Debug, Clone)]
pub(crate) struct LogPolicy {
    /// Channel name put on each line.
    pub channel: Arc<str>,
    /// Whether the script's text may be written (it may hold patient data).
    pub log_content: bool,
}

impl LogPolicy {
    /// Writes one script log line at info level; without `log_content` only the fact that one was written.
    pub(crate) fn write(&self, text: &str) {
        CONTROL_ID.with(|id| {
            let control_id = id.borrow();
            let control_id = control_id.as_str();
            if self.log_content {
                tracing::info!(channel = %self.channel, control_id, "script: {text}");
            } else {
                tracing::info!(
                    channel = %self.channel,
                    control_id,
                    "script log line suppressed (set log_content: true to see script output)"
                );
            }
        });
    }
}

/// Registers `lookup`, `uuid5` and `log`, and routes `print`/`debug` through the same log policy.
pub(crate) fn register(engine: &mut Engine, tables: Arc<Tables>, log: LogPolicy) {
    let t = Arc::clone(&tables);
    engine.register_fn(
        "lookup",
        move |table: &str, key: &str| -> Result<ImmutableString, Box<EvalAltResult>> {
            if !t.contains(table) {
                return Err(unknown_table(table));
            }
            Ok(t.get(table, key).unwrap_or_default().into())
        },
    );
    engine.register_fn(
        "lookup",
        move |table: &str, key: &str, default: Dynamic| -> Result<Dynamic, Box<EvalAltResult>> {
            if !tables.contains(table) {
                return Err(unknown_table(table));
            }
            Ok(tables.get(table, key).map_or(default, |v| v.into()))
        },
    );

    engine.register_fn("uuid5", |a: Dynamic| uuid5_dynamic(&[a]));
    engine.register_fn("uuid5", |a: Dynamic, b: Dynamic| uuid5_dynamic(&[a, b]));
    engine.register_fn("uuid5", |a: Dynamic, b: Dynamic, c: Dynamic| {
        uuid5_dynamic(&[a, b, c])
    });
    engine.register_fn("uuid5", |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
        uuid5_dynamic(&[a, b, c, d])
    });
    engine.register_fn(
        "uuid5",
        |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic, e: Dynamic| {
            uuid5_dynamic(&[a, b, c, d, e])
        },
    );
    engine.register_fn("uuid5", |parts: Array| uuid5_dynamic(&parts));

    let l = log.clone();
    engine.register_fn("log", move |value: Dynamic| l.write(&value.to_string()));
    let l = log.clone();
    engine.on_print(move |text| l.write(text));
    engine.on_debug(move |text, _, _| log.write(text));
}

fn unknown_table(table: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(
        format!("no lookup table named '{table}' in this channel").into(),
        Position::NONE,
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid5_matches_an_independent_implementation() {
        // Expected values computed with Python's uuid.uuid5 over the same namespace and separator.
        assert_eq!(
            uuid5(&["Patient", "HOSP", "12345"]),
            "76f897d0-a872-5f5b-a20b-007ad3664c6e"
        );
        assert_eq!(uuid5(&["x"]), "fc53f37d-6d7f-54c9-9ab6-871d5c73bfc7");
        assert_ne!(uuid5(&["ab", "c"]), uuid5(&["a", "bc"]));
    }
}
