//! HL7 v2 to FHIR R4 building blocks: datatype conversions, vocabulary maps, deterministic ids.
//!
//! Everything here is a pure function over already-decoded HL7 text ([`Rep`]) returning
//! `serde_json::Value`, so the Rhai scripts in `scripts/fhir/` stay thin and the heavy loops run in Rust.
//! Nothing in this crate knows about Rhai; `junction-script` registers these functions.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bundle;
pub mod datatypes;
pub mod hl7;
pub mod ids;
pub mod observation;
pub mod prune;
pub mod rep;
pub mod time;
pub mod vocab;

pub use prune::prune;
pub use rep::Rep;
pub use vocab::{Concept, Vocab, VocabError};

/// What every conversion needs besides the HL7 text: the vocabulary maps and the message's time zone.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The channel's vocabulary maps (shipped maps overlaid by the channel's own).
    pub vocab: &'a Vocab,
    /// Zone (minutes east of UTC) for date-times sent without one: MSH-7's, else the channel's setting.
    pub zone: Option<i16>,
}

impl<'a> Ctx<'a> {
    /// A context with no default zone (times without a zone are reduced to their date).
    pub fn new(vocab: &'a Vocab) -> Self {
        Self { vocab, zone: None }
    }

    /// The same context with `zone` as the default zone.
    pub fn with_zone(self, zone: Option<i16>) -> Self {
        Self { zone, ..self }
    }
}
