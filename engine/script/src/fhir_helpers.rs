//! FHIR helpers for scripts: conversions from HL7 v2 datatypes to FHIR datatypes.
//!
//! Each conversion is a plain Rust function plus one line in [`register`]; add datatype helpers
//! (CX -> Identifier, XPN -> HumanName, XAD -> Address, XTN -> ContactPoint, CWE -> CodeableConcept) the same way.

use junction_hl7::datetime::{self, DateTimeError};
use rhai::{Dynamic, Engine, EvalAltResult};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Registers every FHIR helper on the engine.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_fn("to_fhir_date", |s: &str| {
        convert(s, "to_fhir_date", datetime::to_fhir_date)
    });
    engine.register_fn("to_fhir_datetime", |s: &str| {
        convert(s, "to_fhir_datetime", datetime::to_fhir_datetime)
    });
    engine.register_fn("to_fhir_instant", |s: &str| {
        convert(s, "to_fhir_instant", datetime::to_fhir_instant)
    });
}

/// Empty input gives `()` so a map entry built from an absent field is left out of the JSON;
/// invalid input is an error, because sending a wrong date is worse than holding the message.
fn convert(
    value: &str,
    helper: &str,
    f: impl FnOnce(&str) -> Result<String, DateTimeError>,
) -> Res<Dynamic> {
    if value.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    f(value)
        .map(Dynamic::from)
        .map_err(|e| format!("{helper}: {}", describe(&e)).into())
}

/// The reason without the value itself: a date of birth is patient data and errors end up in logs.
fn describe(err: &DateTimeError) -> String {
    match err {
        DateTimeError::Format(_) => {
            String::from("not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
        }
        DateTimeError::OutOfRange { part, .. } => format!("{part} out of range"),
        DateTimeError::NotAnInstant(_) => {
            String::from("a FHIR instant needs a date, a time and a time zone")
        }
        _ => String::from("invalid date/time"),
    }
}
