//! OBX-5 to `Observation.value[x]`, chosen by OBX-2 (the IG's `OBX[Observation]` rows).

use serde_json::{json, Map, Value};

use crate::datatypes::{
    codeable_concept, codeable_concept_mapped, number, period, put_units, quantity,
};
use crate::rep::Rep;
use crate::time;
use crate::Ctx;

/// The R5 `Observation.value[x]` Attachment carried into R4 by the IG's cross-version extension.
pub const VALUE_ATTACHMENT_URL: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.valueAttachment";

/// OBX-5 (all repetitions) as a one-key object: `valueQuantity`, `valueString`, `valueCodeableConcept`,
/// `valueDateTime`, `valueTime`, `valueRange`, `valueRatio`, `valuePeriod`, or an `extension` holding an
/// Attachment for ED/RP. `None` when OBX-5 is empty.
///
/// What the IG leaves open, decided here: a value that does not fit its declared type (NM `pos`, a DTM
/// that is not a date) becomes `valueString` so nothing the sender wrote is lost; text types join their
/// repetitions with line breaks; coded and numeric types use the first repetition (value[x] is single).
pub fn value(cx: &Ctx, value_type: &str, reps: &[Rep], units: &Rep) -> Option<Value> {
    let first = reps.iter().find(|r| !r.is_empty())?;
    let text_value = || {
        let lines: Vec<String> = reps
            .iter()
            .map(Rep::text)
            .filter(|t| !t.is_empty())
            .collect();
        json!({"valueString": lines.join("\n")})
    };
    let v = match value_type.trim().to_ascii_uppercase().as_str() {
        "NM" => quantity(cx, first.comp(1), units).map(|q| json!({"valueQuantity": q})),
        "SN" => structured_numeric(cx, first, units),
        "CE" | "CWE" | "CNE" | "CF" => {
            codeable_concept(cx, first).map(|c| json!({"valueCodeableConcept": c}))
        }
        "IS" | "ID" => Some(json!({"valueCodeableConcept": {"coding": [{"code": first.comp(1)}]}})),
        "DT" | "DTM" | "TS" => {
            time::datetime(first.comp(1), cx.zone).map(|d| json!({"valueDateTime": d}))
        }
        "TM" => time::time(first.comp(1)).map(|t| json!({"valueTime": t})),
        "DR" => period(cx, first.comp(1), first.comp(2)).map(|p| json!({"valuePeriod": p})),
        "NR" => range(cx, first.comp(1), first.comp(2), &Rep::default())
            .map(|r| json!({"valueRange": r})),
        "ED" => attachment(first)
            .map(|a| json!({"extension": [{"url": VALUE_ATTACHMENT_URL, "valueAttachment": a}]})),
        "RP" => Some(
            json!({"extension": [{"url": VALUE_ATTACHMENT_URL, "valueAttachment": {"url": first.comp(1)}}]}),
        ),
        _ => None,
    };
    Some(v.unwrap_or_else(text_value))
}

/// The clinical body of an `Observation` from one OBX (the IG's `OBX[Observation]` rows that need no
/// other segment): code, status, value[x], interpretation, reference range, effective, issued, method,
/// body site. `field(n)` gives the repetitions of OBX-n. `None` without an OBX-3 code.
///
/// An OBX-11 that no map knows gives status `unknown` (Observation.status is 1..1).
pub fn base(cx: &Ctx, field: impl Fn(usize) -> Vec<Rep>) -> Option<Value> {
    let first = |n: usize| field(n).into_iter().next().unwrap_or_default();
    let code = codeable_concept(cx, &first(3))?;
    let mut m = Map::new();
    m.insert("resourceType".into(), json!("Observation"));
    let status = cx.vocab.code(
        "observation-result-status-codes-interpretation",
        first(11).comp(1),
    );
    m.insert("status".into(), json!(status.unwrap_or("unknown")));
    m.insert("code".into(), code);
    let units = first(6);
    if let Some(Value::Object(v)) = value(cx, first(2).comp(1), &field(5), &units) {
        m.extend(v);
    }
    if let Some(i) = codeable_concept_mapped(cx, &first(8), Some("interpretation-codes")) {
        m.insert("interpretation".into(), json!([i]));
    }
    if let Some(r) = reference_range(cx, &first(7).text(), &units) {
        m.insert("referenceRange".into(), json!([r]));
    }
    if let Some(t) = time::datetime(first(14).comp(1), cx.zone) {
        m.insert("effectiveDateTime".into(), json!(t));
    }
    if let Some(t) = time::instant(first(19).comp(1), cx.zone) {
        m.insert("issued".into(), json!(t));
    }
    for (key, n) in [("method", 17), ("bodySite", 20)] {
        if let Some(c) = codeable_concept(cx, &first(n)) {
            m.insert(key.into(), c);
        }
    }
    Some(Value::Object(m))
}

/// SN (comparator^num1^separator^num2): `valueQuantity` with comparator, `valueRange` for `-`,
/// `valueRatio` for `:` and `/`, `valueString` for `<>` and anything that does not parse.
fn structured_numeric(cx: &Ctx, sn: &Rep, units: &Rep) -> Option<Value> {
    let (cmp, n1, sep, n2) = (sn.comp(1), sn.comp(2), sn.comp(3), sn.comp(4));
    let comparator = match cmp {
        "" | "=" => None,
        "<" | ">" | "<=" | ">=" => Some(cmp),
        _ => return None,
    };
    match sep {
        "" => {
            let mut q = quantity(cx, n1, units)?;
            if let (Some(c), Some(m)) = (comparator, q.as_object_mut()) {
                m.insert("comparator".into(), json!(c));
            }
            Some(json!({"valueQuantity": q}))
        }
        "-" if comparator.is_none() => range(cx, n1, n2, units).map(|r| json!({"valueRange": r})),
        ":" | "/" if comparator.is_none() => {
            let num = quantity(cx, n1, &Rep::default())?;
            let den = quantity(cx, n2, &Rep::default())?;
            Some(json!({"valueRatio": {"numerator": num, "denominator": den}}))
        }
        _ => None,
    }
}

/// A `Range` from two NM texts (either may be empty), with units on both ends.
fn range(cx: &Ctx, low: &str, high: &str, units: &Rep) -> Option<Value> {
    let mut m = Map::new();
    for (key, text) in [("low", low), ("high", high)] {
        if text.is_empty() {
            continue;
        }
        m.insert(key.into(), quantity(cx, text, units)?);
    }
    if m.is_empty() {
        return None;
    }
    Some(Value::Object(m))
}

/// ED (source^type^subtype^encoding^data) to `Attachment`: `contentType` from type/subtype, `data` as
/// base64 (Base64 kept, `A` ASCII and `Hex` re-encoded). `None` without data or with bad hex.
pub fn attachment(ed: &Rep) -> Option<Value> {
    let (kind, subtype, encoding, data) = (ed.comp(2), ed.comp(3), ed.comp(4), ed.comp(5));
    if data.is_empty() {
        return None;
    }
    let data = match encoding.to_ascii_uppercase().as_str() {
        "BASE64" => {
            let compact: String = data.split_whitespace().collect();
            // Data that says Base64 but is not (escape sequences, line-break commands) is kept as the
            // text that was received rather than sent as an invalid base64Binary.
            if is_base64(&compact) {
                compact
            } else {
                base64(data.as_bytes())
            }
        }
        "HEX" => base64(&hex(data)?),
        _ => base64(data.as_bytes()),
    };
    let content_type = if subtype.contains('/') {
        subtype.to_ascii_lowercase()
    } else if !kind.is_empty() && !subtype.is_empty() {
        format!("{}/{}", media_type(kind), subtype.to_ascii_lowercase())
    } else {
        String::new()
    };
    let mut m = Map::new();
    if !content_type.is_empty() {
        m.insert("contentType".into(), json!(content_type));
    }
    m.insert("data".into(), json!(data));
    Some(Value::Object(m))
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().checked_rem(4) == Some(0)
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// HL7 table 0191 type of data to the MIME top-level type.
fn media_type(kind: &str) -> String {
    match kind.to_ascii_uppercase().as_str() {
        "AP" | "APPLICATION" => "application".into(),
        "IM" | "IMAGE" => "image".into(),
        "AU" | "AUDIO" => "audio".into(),
        "TX" | "TEXT" => "text".into(),
        "MULTIPART" => "multipart".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let pairs = digits.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect()
}

/// Standard base64 with padding (RFC 4648), for FHIR `base64Binary`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> shift) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OBX-7 (`3.5-5.1`, `negative`) to an `Observation.referenceRange`: low/high with units when numeric,
/// always the sender's text.
pub fn reference_range(cx: &Ctx, text: &str, units: &Rep) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut m = Map::new();
    let (low, high) = match text.split_once('-') {
        Some((l, h)) if number(l).is_some() && number(h).is_some() => (l, h),
        _ => ("", ""),
    };
    for (key, t) in [("low", low), ("high", high)] {
        if let Some(n) = number(t) {
            let mut q = Map::new();
            q.insert("value".into(), n);
            put_units(cx, &mut q, units);
            m.insert(key.into(), Value::Object(q));
        }
    }
    m.insert("text".into(), json!(text));
    Some(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vocab;
    use std::path::PathBuf;

    fn vocab() -> Vocab {
        Vocab::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fhir/maps"))
            .unwrap()
    }

    fn val(t: &str, v: &str, u: &str) -> Option<Value> {
        value(
            &Ctx::new(&vocab()),
            t,
            &[Rep::from_plain(v)],
            &Rep::from_plain(u),
        )
    }

    #[test]
    fn base_observation_from_obx_fields() {
        let obx = "1|NM|2345-7^Glucose^LN||105|mg/dL^^UCUM|70-99|H|||F|||20240220121500-0800";
        let fields: Vec<&str> = obx.split('|').collect();
        let v = vocab();
        let cx = Ctx::new(&v);
        let o = base(&cx, |n| {
            fields
                .get(n - 1)
                .map(|f| vec![Rep::from_plain(f)])
                .unwrap_or_default()
        })
        .unwrap();
        assert_eq!(o["status"], "final");
        assert_eq!(o["code"]["coding"][0]["system"], "http://loinc.org");
        assert_eq!(o["valueQuantity"]["value"], 105);
        assert_eq!(o["interpretation"][0]["coding"][0]["code"], "H");
        assert_eq!(o["referenceRange"][0]["high"]["value"], 99);
        assert_eq!(o["effectiveDateTime"], "2024-02-20T12:15:00-08:00");
        assert_eq!(base(&cx, |_| Vec::new()), None);
    }

    #[test]
    fn nm_gives_quantity_or_string_when_not_a_number() {
        assert_eq!(
            val("NM", "7.4", "mmol/L^^UCUM").unwrap(),
            json!({"valueQuantity": {"value": 7.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}})
        );
        assert_eq!(
            val("NM", "positive", "").unwrap(),
            json!({"valueString": "positive"})
        );
        assert_eq!(val("NM", "", ""), None);
    }

    #[test]
    fn text_types_join_repetitions() {
        let v = value(
            &Ctx::new(&vocab()),
            "FT",
            &[Rep::from_plain("line one"), Rep::from_plain("a^b")],
            &Rep::default(),
        );
        assert_eq!(v.unwrap(), json!({"valueString": "line one\na^b"}));
        assert_eq!(
            val("ST", "Negative", "").unwrap(),
            json!({"valueString": "Negative"})
        );
        assert_eq!(val("ZZ", "odd", "").unwrap(), json!({"valueString": "odd"}));
    }

    #[test]
    fn coded_values_become_codeable_concepts() {
        let v = val("CWE", "260373001^Detected^SCT", "").unwrap();
        assert_eq!(
            v["valueCodeableConcept"]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert_eq!(v["valueCodeableConcept"]["coding"][0]["code"], "260373001");
        assert_eq!(
            val("IS", "Y", "").unwrap()["valueCodeableConcept"]["coding"][0]["code"],
            "Y"
        );
    }

    #[test]
    fn sn_gives_quantity_with_comparator_range_ratio_or_string() {
        let v = val("SN", "<^0.5", "mg/dL").unwrap();
        assert_eq!(v["valueQuantity"]["comparator"], "<");
        assert_eq!(v["valueQuantity"]["value"], json!(0.5));
        assert_eq!(v["valueQuantity"]["code"], "mg/dL");
        let v = val("SN", "^10^-^20", "mg").unwrap();
        assert_eq!(v["valueRange"]["low"]["value"], json!(10));
        assert_eq!(v["valueRange"]["high"]["value"], json!(20));
        let v = val("SN", "^1^:^128", "").unwrap();
        assert_eq!(
            v,
            json!({"valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 128}}})
        );
        assert_eq!(
            val("SN", "<>^3", "").unwrap(),
            json!({"valueString": "<>^3"})
        );
        assert_eq!(
            val("SN", "^12", "").unwrap(),
            json!({"valueQuantity": {"value": 12}})
        );
    }

    #[test]
    fn ed_gives_attachment_extension() {
        let v = val("ED", "LAB^AP^PDF^Base64^JVBERi0x\nLjQ=", "").unwrap();
        let a = &v["extension"][0]["valueAttachment"];
        assert_eq!(v["extension"][0]["url"], VALUE_ATTACHMENT_URL);
        assert_eq!(a["contentType"], "application/pdf");
        assert_eq!(a["data"], "JVBERi0xLjQ=");
        let a = attachment(&Rep::from_plain("^TEXT^plain^A^Hi!")).unwrap();
        assert_eq!(a, json!({"contentType": "text/plain", "data": "SGkh"}));
        let a = attachment(&Rep::from_plain("^^^Hex^48 69")).unwrap();
        assert_eq!(a, json!({"data": "SGk="}));
        assert_eq!(attachment(&Rep::from_plain("^^^Hex^4")), None);
        let a = attachment(&Rep::from_plain("^^^Base64^ab\\.br\\cd")).unwrap();
        assert_eq!(a["data"], base64(b"ab\\.br\\cd"));
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn reference_range_parses_low_high_and_keeps_text() {
        let v = vocab();
        let v = Ctx::new(&v);
        let r = reference_range(&v, "3.5-5.1", &Rep::from_plain("mmol/L")).unwrap();
        assert_eq!(r["low"]["value"], json!(3.5));
        assert_eq!(r["high"]["code"], "mmol/L");
        assert_eq!(r["text"], "3.5-5.1");
        assert_eq!(
            reference_range(&v, "negative", &Rep::default()).unwrap(),
            json!({"text": "negative"})
        );
        assert_eq!(reference_range(&v, " ", &Rep::default()), None);
    }
}
