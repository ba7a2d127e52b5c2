//! Rhai scripting: engine factory, limits, the HL7 message API and helpers.
