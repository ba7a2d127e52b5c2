//! The shipped hl7-to-fhir channel delivering Bundles to a real HTTP FHIR endpoint (being written).
