//! Rhai scripting: engine factory, limits, the HL7 message API and helpers.
//!
//! A channel builds one [`ScriptEngine`] from [`ScriptOptions`], compiles each of its scripts once with
//! [`ScriptEngine::compile`], and runs them per message with [`ScriptEngine::run_filter`] and
//! [`ScriptEngine::run_transform`]. The script-facing API is documented in `API.md`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod check;
mod engine;
mod error;
mod fhir_helpers;
mod flow;
mod helpers;
mod json;
mod message;
mod options;
mod tables;

pub use engine::{Script, ScriptEngine, ScriptSource, SetupError};
pub use error::{ErrorKind, ScriptError, ScriptOrigin};
pub use flow::{FilterDecision, Flow, Payload, TransformOutcome};
pub use helpers::{uuid5, JUNCTION_NAMESPACE};
pub use json::{to_json, JsonError};
pub use options::{Limits, ScriptOptions};
pub use tables::{TableError, Tables};
