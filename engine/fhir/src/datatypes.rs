//! HL7 v2 datatypes to FHIR R4 datatypes, after the IG's `datatypes/*.csv` maps.
//!
//! Each function takes one decoded field repetition and returns `None` when nothing would be left to emit,
//! so callers never produce empty objects. Maps named here are files in `scripts/fhir/maps/`.

use serde_json::{json, Map, Value};

use crate::rep::Rep;
use crate::time;
use crate::Ctx;

/// Code system of HL7 v2 tables: `HL70203` becomes `http://terminology.hl7.org/CodeSystem/v2-0203`.
const V2_TABLE_PREFIX: &str = "http://terminology.hl7.org/CodeSystem/v2-";

/// Prefix for names no map knows: keeps the sender's name visible and the URI valid.
const LOCAL_PREFIX: &str = "urn:id:";

/// Inserts `value` under `key` unless it is an empty string.
fn put_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        m.insert(key.into(), Value::String(value.to_owned()));
    }
}

/// Inserts `value` under `key` when present.
fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.into(), v);
    }
}

/// A JSON array of the non-empty strings, `None` when all are empty.
fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<Value> {
    let v: Vec<Value> = items
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| json!(s))
        .collect();
    (!v.is_empty()).then_some(Value::Array(v))
}

fn object(m: Map<String, Value>) -> Option<Value> {
    (!m.is_empty()).then_some(Value::Object(m))
}

/// A coding-system name (CWE-3, HL7 table 0396) as a FHIR code system URI.
///
/// Looks the name up in the `coding-system` map (case-insensitive); `HL7nnnn`/`HL7-nnnn` become the
/// terminology.hl7.org v2 table; a name that already is a URI or OID is kept; any other name becomes
/// `urn:id:<name>` so the coding keeps its origin and stays a valid `uri`.
pub fn coding_system_uri(cx: &Ctx, name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if let Some(uri) = cx.vocab.code("coding-system", name) {
        return Some(uri.to_owned());
    }
    let upper = name.to_ascii_uppercase();
    if let Some(table) = upper.strip_prefix("HL7").map(|t| t.trim_start_matches('-')) {
        if table.len() == 4 && table.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("{V2_TABLE_PREFIX}{table}"));
        }
    }
    Some(uri_or_local(name))
}

/// Keeps URIs (`http:`, `urn:`) as they are, turns a bare OID into `urn:oid:`, anything else into `urn:id:`.
fn uri_or_local(name: &str) -> String {
    if name.starts_with("http://") || name.starts_with("https://") || name.starts_with("urn:") {
        // A FHIR uri has no whitespace; a sender's stray space is percent-encoded rather than dropped.
        name.replace(' ', "%20").replace(char::is_whitespace, "")
    } else if is_oid(name) {
        format!("urn:oid:{name}")
    } else {
        format!("{LOCAL_PREFIX}{}", name.replace(char::is_whitespace, "_"))
    }
}

/// Whether `s` looks like an ISO OID (`2.16.840.1...`).
pub fn is_oid(s: &str) -> bool {
    s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One FHIR `Coding` from code, display and coding-system name; `None` when code and display are both empty.
pub fn coding(
    cx: &Ctx,
    code: &str,
    display: &str,
    system_name: &str,
    version: &str,
) -> Option<Value> {
    if code.is_empty() {
        return None;
    }
    let mut m = Map::new();
    if let Some(system) = coding_system_uri(cx, system_name) {
        m.insert("system".into(), json!(system));
    }
    put_str(&mut m, "version", version);
    put_str(&mut m, "code", code);
    put_str(&mut m, "display", display);
    object(m)
}

/// CWE / CE / CNE to `CodeableConcept`: up to three codings (1-3, 4-6, 10-12) and CWE-9 as `text`.
///
/// A triplet with a display but no code gives no coding; its display becomes `text` when CWE-9 is empty,
/// so the sender's words are never lost.
pub fn codeable_concept(cx: &Ctx, rep: &Rep) -> Option<Value> {
    codeable_concept_mapped(cx, rep, None)
}

/// CWE to `CodeableConcept`, first trying `map` on CWE-1: a mapped concept comes first, the sender's own
/// coding follows when it names its own coding system (the IG keeps both).
pub fn codeable_concept_mapped(cx: &Ctx, rep: &Rep, map: Option<&str>) -> Option<Value> {
    let mut codings: Vec<Value> = Vec::new();
    let mapped: Vec<Value> = map
        .map(|m| {
            cx.vocab
                .get_all(m, rep.comp(1))
                .iter()
                .map(|c| c.coding())
                .collect()
        })
        .unwrap_or_default();
    let has_mapped = !mapped.is_empty();
    codings.extend(mapped);
    for (code, display, system, version) in [(1, 2, 3, 7), (4, 5, 6, 8), (10, 11, 12, 13)] {
        if code == 1 && has_mapped && rep.comp(system).is_empty() {
            continue;
        }
        if let Some(c) = coding(
            cx,
            rep.comp(code),
            rep.comp(display),
            rep.comp(system),
            rep.comp(version),
        ) {
            if !codings.contains(&c) {
                codings.push(c);
            }
        }
    }
    let mut m = Map::new();
    let text = if !rep.comp(9).is_empty() {
        rep.comp(9)
    } else if codings.is_empty() {
        [rep.comp(2), rep.comp(5)]
            .into_iter()
            .find(|t| !t.is_empty())
            .unwrap_or("")
    } else {
        ""
    };
    if !codings.is_empty() {
        m.insert("coding".into(), Value::Array(codings));
    }
    put_str(&mut m, "text", text);
    object(m)
}

/// An identifier system from an HD (namespace^universal id^universal id type).
///
/// Order: the channel's `assigning-authority` map on HD-1; HD-2 by HD-3 (`ISO` -> `urn:oid:`, `UUID` ->
/// `urn:uuid:`, `URI` as is, a bare OID -> `urn:oid:`); then HD-1 as a URI/OID or `urn:id:<HD-1>`.
pub fn hd_system(cx: &Ctx, hd: &Rep) -> Option<String> {
    let (namespace, universal, kind) = (hd.comp(1), hd.comp(2), hd.comp(3));
    if let Some(system) = cx.vocab.code("assigning-authority", namespace) {
        return Some(system.to_owned());
    }
    if !universal.is_empty() {
        return Some(match kind.to_ascii_uppercase().as_str() {
            "ISO" if is_oid(universal) => format!("urn:oid:{universal}"),
            "UUID" if is_uuid(universal) => format!("urn:uuid:{}", universal.to_ascii_lowercase()),
            _ => uri_or_local(universal),
        });
    }
    (!namespace.is_empty()).then(|| uri_or_local(namespace))
}

/// An `identifier.assigner` reference by display (and identifier when HD-2 is an OID), without
/// creating an Organization resource for every assigning authority.
fn assigner(hd: &Rep) -> Option<Value> {
    let mut m = Map::new();
    put_str(
        &mut m,
        "display",
        if hd.comp(1).is_empty() {
            hd.comp(2)
        } else {
            hd.comp(1)
        },
    );
    if hd.comp(3).eq_ignore_ascii_case("ISO") && !hd.comp(2).is_empty() {
        m.insert(
            "identifier".into(),
            json!({"system": "urn:ietf:rfc:3986", "value": format!("urn:oid:{}", hd.comp(2))}),
        );
    }
    object(m)
}

/// An identifier `type` from an HL7 table 0203 code (unknown codes go to `text`).
pub fn identifier_type(cx: &Ctx, code: &str) -> Option<Value> {
    if code.is_empty() {
        return None;
    }
    Some(match cx.vocab.get("identifier-type", code) {
        Some(c) => json!({"coding": [c.coding()]}),
        None => json!({"text": code}),
    })
}

/// A `Period` from two HL7 DTM values (either may be empty).
pub fn period(cx: &Ctx, start: &str, end: &str) -> Option<Value> {
    let mut m = Map::new();
    put(
        &mut m,
        "start",
        time::datetime(start, cx.zone).map(Value::String),
    );
    put(
        &mut m,
        "end",
        time::datetime(end, cx.zone).map(Value::String),
    );
    object(m)
}

/// CX to `Identifier`: value, system from CX-4 (see [`hd_system`]), assigner, type from CX-5, period,
/// check digit extensions. `None` without CX-1 (an identifier without a value identifies nothing).
pub fn identifier(cx: &Ctx, rep: &Rep) -> Option<Value> {
    let value = rep.comp(1);
    if value.is_empty() {
        return None;
    }
    let hd = rep.nested(4);
    let mut m = Map::new();
    let mut ext = Vec::new();
    if !rep.comp(2).is_empty() {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/identifier-checkDigit", "valueString": rep.comp(2)}));
    }
    if !rep.comp(3).is_empty() {
        ext.push(json!({"url": "http://hl7.org/fhir/StructureDefinition/namingsystem-checkDigit", "valueString": rep.comp(3)}));
    }
    if !ext.is_empty() {
        m.insert("extension".into(), Value::Array(ext));
    }
    put(&mut m, "type", identifier_type(cx, rep.comp(5)));
    put(&mut m, "system", hd_system(cx, &hd).map(Value::String));
    put_str(&mut m, "value", value);
    put(&mut m, "period", period(cx, rep.comp(7), rep.comp(8)));
    put(&mut m, "assigner", assigner(&hd));
    object(m)
}

/// EI (entity id^namespace^universal id^type) to `Identifier`; `None` without EI-1.
pub fn entity_identifier(cx: &Ctx, ei: &Rep) -> Option<Value> {
    if ei.comp(1).is_empty() {
        return None;
    }
    let hd = ei.tail(2);
    let mut m = Map::new();
    put(&mut m, "system", hd_system(cx, &hd).map(Value::String));
    put_str(&mut m, "value", ei.comp(1));
    put(&mut m, "assigner", assigner(&hd));
    object(m)
}

/// Component `n` of an EIP (1 placer, 2 filler assigned identifier) to `Identifier`: the component is an
/// EI whose parts are subcomponents (`SP-1&LAB&1.2.3&ISO`), read like any EI so it gets its system.
pub fn eip_identifier(cx: &Ctx, eip: &Rep, n: usize) -> Option<Value> {
    entity_identifier(cx, &eip.nested(n))
}

/// `HumanName.family` extensions for FN-2..FN-5 (IG FN[HumanName]): surname prefix and surname of the
/// person's own and of the partner's family name.
const FAMILY_PART_URLS: [(usize, &str); 4] = [
    (
        2,
        "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
    ),
    (
        3,
        "http://hl7.org/fhir/StructureDefinition/humanname-own-name",
    ),
    (
        4,
        "http://hl7.org/fhir/StructureDefinition/humanname-partner-prefix",
    ),
    (
        5,
        "http://hl7.org/fhir/StructureDefinition/humanname-partner-name",
    ),
];

/// The `HumanName` extension for XPN-11 / XCN-18.
const ASSEMBLY_ORDER_URL: &str = "http://hl7.org/fhir/StructureDefinition/humanname-assembly-order";

/// XPN to `HumanName`: family (FN-1, FN-2..5 as `_family` extensions), given (XPN-2, XPN-3), prefix,
/// suffixes, use (name-type), period, assembly order (XPN-11) extension.
pub fn human_name(cx: &Ctx, xpn: &Rep) -> Option<Value> {
    NameParts {
        family: xpn.nested(1),
        given: [xpn.comp(2), xpn.comp(3)],
        prefix: xpn.comp(5),
        suffix: [xpn.comp(4), xpn.comp(6), xpn.comp(14)],
        name_type: xpn.comp(7),
        assembly_order: xpn.comp(11),
        period: (xpn.comp(12), xpn.comp(13), xpn.nested(10)),
    }
    .to_fhir(cx)
}

/// Every `HumanName` one XPN holds: the name itself, and XPN-15 (called by) as a name of its own with
/// use `nickname` (IG XPN[HumanName] name[2]; every resource using XPN here allows several names).
pub fn human_names(cx: &Ctx, xpn: &Rep) -> Vec<Value> {
    let mut names: Vec<Value> = human_name(cx, xpn).into_iter().collect();
    let called_by = xpn.comp(15);
    if !called_by.is_empty() {
        names.push(json!({"use": "nickname", "given": [called_by]}));
    }
    names
}

/// The parts XPN and XCN names share (their component numbers differ).
struct NameParts<'a> {
    /// The FN: surname, own prefix, own surname, partner's prefix, partner's surname.
    family: Rep,
    given: [&'a str; 2],
    prefix: &'a str,
    suffix: [&'a str; 3],
    name_type: &'a str,
    assembly_order: &'a str,
    /// Effective date, expiration date, and the validity range used when both are empty.
    period: (&'a str, &'a str, Rep),
}

impl NameParts<'_> {
    /// The `HumanName`; `None` when no part of the name itself is there (a `use` alone is no name).
    fn to_fhir(&self, cx: &Ctx) -> Option<Value> {
        let mut m = Map::new();
        put_str(&mut m, "family", self.family.comp(1));
        let family_ext: Vec<Value> = FAMILY_PART_URLS
            .iter()
            .filter(|(n, _)| !self.family.comp(*n).is_empty())
            .map(|(n, url)| json!({"url": url, "valueString": self.family.comp(*n)}))
            .collect();
        if !family_ext.is_empty() {
            m.insert("_family".into(), json!({ "extension": family_ext }));
        }
        put(&mut m, "given", strings(self.given));
        put(&mut m, "prefix", strings([self.prefix]));
        put(&mut m, "suffix", strings(self.suffix));
        if m.is_empty() {
            return None;
        }
        if let Some(order) = cx.vocab.code("name-assembly-order", self.assembly_order) {
            m.insert(
                "extension".into(),
                json!([{"url": ASSEMBLY_ORDER_URL, "valueCode": order}]),
            );
        }
        if let Some(use_) = cx.vocab.code("name-type", self.name_type) {
            m.insert("use".into(), json!(use_));
        }
        let (start, end, range) = &self.period;
        let p = if start.is_empty() && end.is_empty() {
            period(cx, range.comp(1), range.comp(2))
        } else {
            period(cx, start, end)
        };
        put(&mut m, "period", p);
        object(m)
    }
}

/// XAD to `Address`: lines (SAD, XAD-2, XAD-19), city, district, state, postalCode, country, use/type
/// by XAD-7, period.
pub fn address(cx: &Ctx, xad: &Rep) -> Option<Value> {
    let mut m = Map::new();
    put(
        &mut m,
        "line",
        strings([
            xad.sub(1, 1),
            xad.sub(1, 2),
            xad.sub(1, 3),
            xad.comp(2),
            xad.comp(19),
        ]),
    );
    put_str(&mut m, "city", xad.comp(3));
    put_str(&mut m, "district", xad.comp(9));
    put_str(&mut m, "state", xad.comp(4));
    put_str(&mut m, "postalCode", xad.comp(5));
    put_str(&mut m, "country", xad.comp(6));
    if m.is_empty() {
        return None;
    }
    let kind = xad.comp(7);
    if let Some(u) = cx.vocab.code("address-type-use", kind) {
        m.insert("use".into(), json!(u));
    }
    if let Some(t) = cx.vocab.code("address-type-type", kind) {
        m.insert("type".into(), json!(t));
    }
    let range = xad.nested(12);
    let p = if xad.comp(13).is_empty() && xad.comp(14).is_empty() {
        period(cx, range.comp(1), range.comp(2))
    } else {
        period(cx, xad.comp(13), xad.comp(14))
    };
    put(&mut m, "period", p);
    object(m)
}

/// XTN to `ContactPoint`, with `default_use` (`home` for PID-13, `work` for PID-14) when XTN-2 is empty.
///
/// Value: XTN-4 for e-mail, else XTN-12, else the parts XTN-5..8 as `+C A L XE`, else XTN-1. The system
/// defaults to `email` when only XTN-4 is sent and to `phone` otherwise (cpt-2: a value needs a system).
pub fn contact_point(cx: &Ctx, xtn: &Rep, default_use: &str) -> Option<Value> {
    let equipment = xtn.comp(3);
    let is_email = matches!(equipment, "Internet" | "X.400")
        || (equipment.is_empty() && !xtn.comp(4).is_empty());
    let value = if is_email {
        xtn.comp(4).to_owned()
    } else if !xtn.comp(12).is_empty() {
        xtn.comp(12).to_owned()
    } else if !xtn.comp(7).is_empty() {
        let mut v = String::new();
        for (prefix, part) in [
            ("+", xtn.comp(5)),
            ("", xtn.comp(6)),
            ("", xtn.comp(7)),
            ("X", xtn.comp(8)),
        ] {
            if !part.is_empty() {
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(prefix);
                v.push_str(part);
            }
        }
        v
    } else {
        xtn.comp(1).to_owned()
    };
    if value.is_empty() {
        return None;
    }
    let mut m = Map::new();
    let mut use_ = cx
        .vocab
        .code("telecommunication-use-code", xtn.comp(2))
        .map(str::to_owned);
    let system = match cx.vocab.get("telecommunication-equipment-type", equipment) {
        // The IG maps CP (cell phone) to the *use* `mobile`; the system is still a phone.
        Some(c) if c.system.ends_with("contact-point-use") => {
            use_ = Some(c.code.clone());
            "phone".to_owned()
        }
        Some(c) => c.code.clone(),
        None if is_email => "email".to_owned(),
        None => "phone".to_owned(),
    };
    m.insert("system".into(), json!(system));
    m.insert("value".into(), json!(value));
    let use_ = use_.or_else(|| (!default_use.is_empty()).then(|| default_use.to_owned()));
    put(&mut m, "use", use_.map(Value::String));
    if let Ok(rank) = xtn.comp(18).parse::<u32>() {
        if rank > 0 {
            m.insert("rank".into(), json!(rank));
        }
    }
    put(&mut m, "period", period(cx, xtn.comp(13), xtn.comp(14)));
    object(m)
}

/// XCN to the body of a `Practitioner` (no id): identifier (XCN-1, system from XCN-9, type XCN-13) and
/// name (XCN-2..6, use XCN-10). `None` when neither an id nor a name is sent.
pub fn practitioner(cx: &Ctx, xcn: &Rep) -> Option<Value> {
    let mut m = Map::new();
    m.insert("resourceType".into(), json!("Practitioner"));
    if !xcn.comp(1).is_empty() {
        let hd = xcn.nested(9);
        let mut id = Map::new();
        put(&mut id, "type", identifier_type(cx, xcn.comp(13)));
        put(&mut id, "system", hd_system(cx, &hd).map(Value::String));
        id.insert("value".into(), json!(xcn.comp(1)));
        put(&mut id, "assigner", assigner(&hd));
        m.insert("identifier".into(), json!([Value::Object(id)]));
    }
    let name = NameParts {
        family: xcn.nested(2),
        given: [xcn.comp(3), xcn.comp(4)],
        prefix: xcn.comp(6),
        suffix: [xcn.comp(5), xcn.comp(21), ""],
        name_type: xcn.comp(10),
        assembly_order: xcn.comp(18),
        period: (xcn.comp(19), xcn.comp(20), xcn.nested(17)),
    }
    .to_fhir(cx);
    if let Some(n) = name {
        m.insert("name".into(), json!([n]));
    }
    if !xcn.comp(7).is_empty() {
        let code = cx
            .vocab
            .get("degree-license-certificate", xcn.comp(7))
            .map(|c| c.coding());
        let code = code.unwrap_or_else(|| json!({"code": xcn.comp(7)}));
        m.insert(
            "qualification".into(),
            json!([{"code": {"coding": [code]}}]),
        );
    }
    (m.len() > 1).then_some(Value::Object(m))
}

/// A one-line display for a person's XCN/XPN-shaped name: given names then family (`Ann B Smith`).
pub fn person_display(family: &str, given: &[&str]) -> String {
    let mut parts: Vec<&str> = given.iter().copied().filter(|g| !g.is_empty()).collect();
    if !family.is_empty() {
        parts.push(family);
    }
    parts.join(" ")
}

/// An HL7 NM as a JSON number (FHIR `decimal`); `None` unless the text is a plain decimal number.
///
/// Accepts an optional sign, digits and one decimal point (`-0.5`, `+12`, `.5`, `7.`). Integers stay
/// integers; decimals become binary floats, so trailing zeros (`7.40`) are not kept.
pub fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if frac.is_empty() && !digits.contains('.') {
        if let Ok(i) = t.parse::<i64>() {
            return Some(json!(i));
        }
    }
    let f: f64 = t.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// A `Quantity` from an NM value and CWE units (OBX-6, CQ-2): UCUM when the units name UCUM or the
/// `ucum-units` map knows the unit text; otherwise the unit text alone.
pub fn quantity(cx: &Ctx, value: &str, units: &Rep) -> Option<Value> {
    let mut m = Map::new();
    m.insert("value".into(), number(value)?);
    put_units(cx, &mut m, units);
    object(m)
}

/// CQ (quantity^units, the units a CWE in subcomponents: `2^mL&milliliter&UCUM`) to `Quantity`, after
/// the IG's CQ[Quantity]: the unit text, with the UCUM code when the units are UCUM (see [`quantity`]).
pub fn composite_quantity(cx: &Ctx, cq: &Rep) -> Option<Value> {
    quantity(cx, cq.comp(1), &cq.nested(2))
}

/// Adds `unit`, `system` and `code` for CWE units to a Quantity map.
pub(crate) fn put_units(cx: &Ctx, m: &mut Map<String, Value>, units: &Rep) {
    let (code, text, system) = (units.comp(1), units.comp(2), units.comp(3));
    let unit = if text.is_empty() { code } else { text };
    put_str(m, "unit", unit);
    let named_ucum =
        coding_system_uri(cx, system).is_some_and(|s| s == "http://unitsofmeasure.org");
    if named_ucum && !code.is_empty() {
        m.insert("system".into(), json!("http://unitsofmeasure.org"));
        m.insert("code".into(), json!(code));
    } else if let Some(c) = cx
        .vocab
        .get("ucum-units", code)
        .or_else(|| cx.vocab.get("ucum-units", text))
    {
        m.insert("system".into(), json!(c.system));
        m.insert("code".into(), json!(c.code));
    }
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

    fn r(s: &str) -> Rep {
        Rep::from_plain(s)
    }

    #[test]
    fn coding_system_names_become_canonical_uris() {
        let v = vocab();
        let v = Ctx::new(&v);
        assert_eq!(
            coding_system_uri(&v, "LN").as_deref(),
            Some("http://loinc.org")
        );
        assert_eq!(
            coding_system_uri(&v, "SCT").as_deref(),
            Some("http://snomed.info/sct")
        );
        assert_eq!(
            coding_system_uri(&v, "I10").as_deref(),
            Some("http://hl7.org/fhir/sid/icd-10")
        );
        assert_eq!(
            coding_system_uri(&v, "RxNorm").as_deref(),
            Some("http://www.nlm.nih.gov/research/umls/rxnorm")
        );
        assert_eq!(
            coding_system_uri(&v, "CVX").as_deref(),
            Some("http://hl7.org/fhir/sid/cvx")
        );
        assert_eq!(
            coding_system_uri(&v, "UCUM").as_deref(),
            Some("http://unitsofmeasure.org")
        );
        assert_eq!(
            coding_system_uri(&v, "HL70078").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0078")
        );
        assert_eq!(
            coding_system_uri(&v, "HL7-0203").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0203")
        );
        assert_eq!(
            coding_system_uri(&v, "2.16.840.1.113883.6.1").as_deref(),
            Some("urn:oid:2.16.840.1.113883.6.1")
        );
        assert_eq!(
            coding_system_uri(&v, "99ZZZ").as_deref(),
            Some("urn:id:99ZZZ")
        );
        assert_eq!(coding_system_uri(&v, "L").as_deref(), Some("urn:id:L"));
        assert_eq!(coding_system_uri(&v, ""), None);
    }

    #[test]
    fn cwe_gives_up_to_three_codings_and_original_text() {
        let v = vocab();
        let v = Ctx::new(&v);
        let cc = codeable_concept(
            &v,
            &r("8867-4^Heart rate^LN^HR^Pulse^99LAB^2.68^^Heart beat"),
        )
        .unwrap();
        assert_eq!(
            cc,
            json!({"coding": [
                {"system": "http://loinc.org", "version": "2.68", "code": "8867-4", "display": "Heart rate"},
                {"system": "urn:id:99LAB", "code": "HR", "display": "Pulse"}],
                "text": "Heart beat"})
        );
        assert_eq!(
            codeable_concept(&v, &r("^Only words")).unwrap(),
            json!({"text": "Only words"})
        );
        assert_eq!(codeable_concept(&v, &r("")), None);
        assert_eq!(codeable_concept(&v, &r("\"\"")), None);
    }

    #[test]
    fn mapped_cwe_puts_the_fhir_coding_first_and_keeps_a_named_original() {
        let v = vocab();
        let v = Ctx::new(&v);
        let cc =
            codeable_concept_mapped(&v, &r("M^Married^HL70002"), Some("marital-status")).unwrap();
        assert_eq!(
            cc["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
        );
        assert_eq!(cc["coding"][0]["code"], "M");
        assert_eq!(
            cc["coding"][1]["system"],
            "http://terminology.hl7.org/CodeSystem/v2-0002"
        );
        let cc = codeable_concept_mapped(&v, &r("H"), Some("interpretation-codes")).unwrap();
        assert_eq!(cc["coding"].as_array().unwrap().len(), 1);
        assert_eq!(cc["coding"][0]["code"], "H");
    }

    #[test]
    fn cx_gives_identifier_with_system_type_and_assigner() {
        let v = vocab();
        let v = Ctx::new(&v);
        let id = identifier(
            &v,
            &r("MRN-1001^^^GOODHEALTH&2.16.840.1.113883.19.5&ISO^MR"),
        )
        .unwrap();
        assert_eq!(id["value"], "MRN-1001");
        assert_eq!(id["system"], "urn:oid:2.16.840.1.113883.19.5");
        assert_eq!(id["type"]["coding"][0]["code"], "MR");
        assert_eq!(
            id["type"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/v2-0203"
        );
        assert_eq!(id["assigner"]["display"], "GOODHEALTH");
        let id = identifier(&v, &r("555-44-3333^^^SSA^SS")).unwrap();
        assert_eq!(id["system"], "urn:id:SSA");
        let id = identifier(&v, &r("42^7^M10^^ZZ")).unwrap();
        assert_eq!(id["extension"][0]["valueString"], "7");
        assert_eq!(id["type"], json!({"text": "ZZ"}));
        assert!(id.get("system").is_none());
        assert_eq!(identifier(&v, &r("^^^HOSP^MR")), None);
    }

    #[test]
    fn channel_assigning_authority_map_wins_over_urn_id() {
        let mut v = vocab();
        v.insert_map(
            "assigning-authority",
            [("HOSP", "http://hosp.example.org/mrn", "", "")],
        );
        let v = Ctx::new(&v);
        let id = identifier(&v, &r("7^^^HOSP^MR")).unwrap();
        assert_eq!(id["system"], "http://hosp.example.org/mrn");
        let hd = r("X^550e8400-E29B-41d4-a716-446655440000^UUID");
        assert_eq!(
            hd_system(&v, &hd).unwrap(),
            "urn:uuid:550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(
            hd_system(&v, &r("X^http://x.example/ids^URI")).unwrap(),
            "http://x.example/ids"
        );
    }

    #[test]
    fn xpn_gives_human_name() {
        let v = vocab();
        let v = Ctx::new(&v);
        let n = human_name(&v, &r("Everyman^Adam^A Bo^III^Dr^PhD^L")).unwrap();
        assert_eq!(
            n,
            json!({"family": "Everyman", "given": ["Adam", "A Bo"], "prefix": ["Dr"], "suffix": ["III", "PhD"], "use": "official"})
        );
        assert_eq!(
            human_name(&v, &r("^^^^^^L")),
            None,
            "a use alone is not a name"
        );
        assert_eq!(
            human_name(&v, &r("Solo")).unwrap(),
            json!({"family": "Solo"})
        );
    }

    #[test]
    fn xpn_15_called_by_is_a_nickname_of_its_own() {
        let v = vocab();
        let v = Ctx::new(&v);
        let names = human_names(&v, &r("Everyman^Adam^^^^^L^^^^^^^^Ace"));
        assert_eq!(
            names,
            [
                json!({"family": "Everyman", "given": ["Adam"], "use": "official"}),
                json!({"use": "nickname", "given": ["Ace"]}),
            ]
        );
        assert_eq!(
            human_names(&v, &r("^^^^^^^^^^^^^^Ace")),
            [json!({"use": "nickname", "given": ["Ace"]})],
            "a called-by name alone is still a name"
        );
        assert_eq!(
            human_names(&v, &r("Everyman^Adam^^^^^^^^^^^^^\"\"")).len(),
            1,
            "an HL7 null called-by is no nickname"
        );
        assert!(human_names(&v, &r("")).is_empty());
    }

    #[test]
    fn fn_parts_and_xpn_11_become_name_extensions() {
        let v = vocab();
        let v = Ctx::new(&v);
        let n = human_name(&v, &r("van Gogh-Bos&van&Gogh&&Bos^Anna^^^^^L^^^^F")).unwrap();
        assert_eq!(n["family"], "van Gogh-Bos");
        assert_eq!(
            n["_family"],
            json!({"extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix", "valueString": "van"},
                {"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-name", "valueString": "Gogh"},
                {"url": "http://hl7.org/fhir/StructureDefinition/humanname-partner-name", "valueString": "Bos"}]})
        );
        assert_eq!(
            n["extension"],
            json!([{"url": "http://hl7.org/fhir/StructureDefinition/humanname-assembly-order", "valueCode": "F"}])
        );
        let n = human_name(&v, &r("Doe^Jo^^^^^^^^^ZZ")).unwrap();
        assert!(
            n.get("extension").is_none(),
            "an assembly order the map does not know is left out: {n}"
        );
        assert!(n.get("_family").is_none());
        let p = practitioner(&v, &r("7^de Wit&de&Wit^Jan^^^^^^^^^^^^^^^G")).unwrap();
        assert_eq!(
            p["name"][0]["_family"]["extension"][0]["valueString"], "de",
            "XCN-2 is an FN too"
        );
        assert_eq!(p["name"][0]["extension"][0]["valueCode"], "G", "XCN-18");
    }

    #[test]
    fn eip_parts_are_entity_identifiers_with_their_system() {
        let v = vocab();
        let v = Ctx::new(&v);
        let spm2 = r("SP-1&EHR^LS-1&CITYLAB&2.16.840.1.113883.19.4&ISO");
        assert_eq!(
            eip_identifier(&v, &spm2, 1).unwrap(),
            json!({"system": "urn:id:EHR", "value": "SP-1", "assigner": {"display": "EHR"}})
        );
        let filler = eip_identifier(&v, &spm2, 2).unwrap();
        assert_eq!(filler["value"], "LS-1");
        assert_eq!(filler["system"], "urn:oid:2.16.840.1.113883.19.4");
        assert_eq!(
            eip_identifier(&v, &r("^LS-2"), 2).unwrap(),
            json!({"value": "LS-2"})
        );
        assert_eq!(eip_identifier(&v, &r("^LS-2"), 1), None);
        assert_eq!(eip_identifier(&v, &r("&EHR"), 1), None, "no entity id");
    }

    #[test]
    fn cq_gives_quantity_with_ucum_code() {
        let v = vocab();
        let v = Ctx::new(&v);
        assert_eq!(
            composite_quantity(&v, &r("2^mL&milliliter&UCUM")).unwrap(),
            json!({"value": 2, "unit": "milliliter", "system": "http://unitsofmeasure.org", "code": "mL"})
        );
        assert_eq!(
            composite_quantity(&v, &r("1.5^mmol/l")).unwrap(),
            json!({"value": 1.5, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"}),
            "unit text the ucum-units map knows"
        );
        assert_eq!(
            composite_quantity(&v, &r("3^TUBE&tubes&L")).unwrap(),
            json!({"value": 3, "unit": "tubes"})
        );
        assert_eq!(composite_quantity(&v, &r("^mL")), None);
        assert_eq!(composite_quantity(&v, &r("some^mL")), None);
    }

    #[test]
    fn xad_gives_address_with_use_and_type() {
        let v = vocab();
        let v = Ctx::new(&v);
        let a = address(
            &v,
            &r("1 Main St^Apt 2^Springfield^IL^62701^USA^H^^Sangamon"),
        )
        .unwrap();
        assert_eq!(
            a,
            json!({"line": ["1 Main St", "Apt 2"], "city": "Springfield", "district": "Sangamon", "state": "IL", "postalCode": "62701", "country": "USA", "use": "home"})
        );
        let a = address(&v, &r("PO Box 9^^Town^^^^M")).unwrap();
        assert_eq!(a["type"], "postal");
        assert!(a.get("use").is_none());
        assert_eq!(address(&v, &r("^^^^^^H")), None);
    }

    #[test]
    fn xtn_gives_contact_point() {
        let v = vocab();
        let v = Ctx::new(&v);
        let c = contact_point(&v, &r("(555)555-2004^PRN^PH"), "home").unwrap();
        assert_eq!(
            c,
            json!({"system": "phone", "value": "(555)555-2004", "use": "home"})
        );
        let c = contact_point(&v, &r("^WPN^PH^^1^555^1234567^89"), "").unwrap();
        assert_eq!(c["value"], "+1 555 1234567 X89");
        assert_eq!(c["use"], "work");
        let c = contact_point(&v, &r("^NET^Internet^ann@example.org"), "home").unwrap();
        assert_eq!(
            c,
            json!({"system": "email", "value": "ann@example.org", "use": "home"})
        );
        let c = contact_point(&v, &r("^^CP^^^555^7654321"), "home").unwrap();
        assert_eq!(
            c,
            json!({"system": "phone", "value": "555 7654321", "use": "mobile"})
        );
        let c = contact_point(&v, &r("^^^bob@example.org"), "").unwrap();
        assert_eq!(c["system"], "email");
        assert_eq!(contact_point(&v, &r("^PRN^PH"), "home"), None);
    }

    #[test]
    fn xcn_gives_practitioner_body() {
        let v = vocab();
        let v = Ctx::new(&v);
        let p = practitioner(
            &v,
            &r("1234^Welby^Marcus^J^Jr^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI"),
        )
        .unwrap();
        assert_eq!(p["resourceType"], "Practitioner");
        assert_eq!(p["identifier"][0]["value"], "1234");
        assert_eq!(
            p["identifier"][0]["system"],
            "urn:oid:2.16.840.1.113883.4.6"
        );
        assert_eq!(p["identifier"][0]["type"]["coding"][0]["code"], "NPI");
        assert_eq!(p["name"][0]["family"], "Welby");
        assert_eq!(p["name"][0]["given"], json!(["Marcus", "J"]));
        assert_eq!(p["name"][0]["prefix"], json!(["Dr"]));
        assert_eq!(p["name"][0]["use"], "official");
        assert_eq!(p["qualification"][0]["code"]["coding"][0]["code"], "MD");
        assert_eq!(practitioner(&v, &r("")), None);
        assert_eq!(practitioner(&v, &r("^^^^^^^^^L")), None);
    }

    #[test]
    fn nm_numbers_and_quantities_with_ucum() {
        let v = vocab();
        let v = Ctx::new(&v);
        assert_eq!(number("140"), Some(json!(140)));
        assert_eq!(number("+7.25"), Some(json!(7.25)));
        assert_eq!(number("-.5"), Some(json!(-0.5)));
        assert_eq!(number("1e3"), None);
        assert_eq!(number("<5"), None);
        assert_eq!(number("."), None);
        assert_eq!(number(""), None);
        let q = quantity(&v, "98.6", &r("[degF]^degrees F^UCUM")).unwrap();
        assert_eq!(
            q,
            json!({"value": 98.6, "unit": "degrees F", "system": "http://unitsofmeasure.org", "code": "[degF]"})
        );
        let q = quantity(&v, "5.4", &r("mmol/l")).unwrap();
        assert_eq!(
            q,
            json!({"value": 5.4, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"})
        );
        let q = quantity(&v, "3", &r("widgets")).unwrap();
        assert_eq!(q, json!({"value": 3, "unit": "widgets"}));
        assert_eq!(quantity(&v, "high", &r("mg")), None);
    }

    #[test]
    fn person_display_joins_given_then_family() {
        assert_eq!(person_display("Smith", &["Ann", "", "B"]), "Ann B Smith");
        assert_eq!(person_display("", &[]), "");
    }
}
