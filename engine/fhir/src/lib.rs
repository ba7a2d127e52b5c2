//! HL7 v2 to FHIR R4 building blocks: datatype conversions, vocabulary maps, deterministic ids.
