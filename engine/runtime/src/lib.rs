//! Channel runtime: the pipeline every message goes through, the workers that run it, delivery
//! with retries, circuit breakers and rate limits, and orderly start and shutdown.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
mod alerts;
mod backoff;
mod breaker;
pub mod browse;
mod channel;
mod channels;
mod destination;
pub mod encryption;
mod http_serve;
pub mod metrics;
mod pipeline;
mod pool;
mod publish;
mod rate_limit;
mod reload;
pub mod retention;
mod runtime;
mod source;
mod throttle;

use std::path::PathBuf;

pub use channel::{ChannelShared, DestinationRuntime, RunningChannel};
pub use pipeline::{BuildError, Pipeline, Run, Verdict};
pub use reload::{ReloadError, ReloadReport};
pub use runtime::{EngineState, Runtime, StartError};

/// Content type of HL7 v2 payloads.
pub const CONTENT_HL7: &str = "application/hl7-v2";
/// Content type of FHIR JSON payloads (a JSON object with `resourceType`).
pub const CONTENT_FHIR_JSON: &str = "application/fhir+json";
/// Content type of other JSON payloads.
pub const CONTENT_JSON: &str = "application/json";
/// Content type of text payloads.
pub const CONTENT_TEXT: &str = "text/plain; charset=utf-8";

/// The folder that holds `channels/` (and `scripts/`), against which channel paths resolve.
/// The same rule as the config loader's, so imports and tables resolve where the scripts did.
pub fn base_dir(config: &junction_config::ChannelConfig) -> PathBuf {
    let base = junction_config::base_dir(&config.file);
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

/// Milliseconds since the Unix epoch (the store's clock).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
