//! Bundle entries: `fullUrl`, and for transactions the `request` that makes re-sending idempotent.

use serde_json::{json, Value};

use crate::ids::full_url;

/// How a transaction entry writes its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `PUT Type/<id>`: the deterministic id makes a re-sent message update the same resource.
    Update,
    /// `PUT Type?identifier=system|value` (conditional update): the sender owns this resource (Patient,
    /// Encounter, orders and reports); falls back to [`Write::Update`] without an identifier.
    UpdateByIdentifier,
    /// `POST Type` with `ifNoneExist: identifier=system|value` (conditional create): reference data a
    /// message mentions but does not own (Practitioner, Organization, Location); falls back to
    /// [`Write::Update`] without an identifier.
    CreateIfNoneExist,
    /// No `request`: the entry of a `message` Bundle.
    Message,
}

impl Write {
    /// Parses the names scripts use: `update`, `update-by-identifier`, `create-if-none-exist`, `message`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "update" => Self::Update,
            "update-by-identifier" => Self::UpdateByIdentifier,
            "create-if-none-exist" => Self::CreateIfNoneExist,
            "message" => Self::Message,
            _ => return None,
        })
    }
}

/// Percent-encodes a search parameter value: keeps unreserved characters and `:`/`/`, encodes the rest
/// (including `|`, which separates system from value, and `&`, `#`, `+` and spaces).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `identifier=<system>|<value>` for the first identifier of `resource` that has a value.
pub fn identifier_query(resource: &Value) -> Option<String> {
    let ids = resource.get("identifier")?.as_array()?;
    let id = ids.iter().find(|i| {
        i.get("value")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    })?;
    let value = id.get("value").and_then(Value::as_str)?;
    Some(match id.get("system").and_then(Value::as_str) {
        Some(system) => format!(
            "identifier={}|{}",
            encode_query_value(system),
            encode_query_value(value)
        ),
        None => format!("identifier={}", encode_query_value(value)),
    })
}

/// A Bundle entry for `resource` (which must carry `resourceType` and `id`): `fullUrl` `urn:uuid:<id>`,
/// and a `request` chosen by `write`. `None` when the resource has no type or id.
pub fn entry(resource: Value, write: Write) -> Option<Value> {
    let rtype = resource.get("resourceType")?.as_str()?.to_owned();
    let id = resource.get("id")?.as_str()?.to_owned();
    let query = identifier_query(&resource);
    let request = match (write, query) {
        (Write::Message, _) => None,
        (Write::UpdateByIdentifier, Some(q)) => {
            Some(json!({"method": "PUT", "url": format!("{rtype}?{q}")}))
        }
        (Write::CreateIfNoneExist, Some(q)) => {
            Some(json!({"method": "POST", "url": rtype, "ifNoneExist": q}))
        }
        _ => Some(json!({"method": "PUT", "url": format!("{rtype}/{id}")})),
    };
    let mut e = json!({"fullUrl": full_url(&id), "resource": resource});
    if let (Some(r), Some(m)) = (request, e.as_object_mut()) {
        m.insert("request".into(), r);
    }
    Some(e)
}

/// A Bundle from its own elements (`resourceType`, `id`, `type`, `timestamp`...) and the resources to
/// write: one entry per resource id (the first wins: a Practitioner named twice is one entry), every
/// entry a `message` entry when the Bundle's type is `message`; pruned of empty values.
pub fn assemble(mut bundle: Value, items: Vec<(Value, Write)>) -> Option<Value> {
    let message = bundle.get("type").and_then(Value::as_str) == Some("message");
    let mut seen = std::collections::HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (resource, write) in items {
        let Some(id) = resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let write = if message { Write::Message } else { write };
        entries.extend(entry(resource, write));
    }
    bundle
        .as_object_mut()?
        .insert("entry".into(), Value::Array(entries));
    crate::prune(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "p1", "identifier": [{"value": ""}, {"system": "urn:id:HOSP", "value": "A 1|2"}]})
    }

    #[test]
    fn conditional_update_uses_first_valued_identifier_encoded() {
        let e = entry(patient(), Write::UpdateByIdentifier).unwrap();
        assert_eq!(e["fullUrl"], "urn:uuid:p1");
        assert_eq!(
            e["request"],
            json!({"method": "PUT", "url": "Patient?identifier=urn:id:HOSP|A%201%7C2"})
        );
        assert_eq!(e["resource"]["id"], "p1");
    }

    #[test]
    fn assemble_dedups_by_id_and_makes_message_entries() {
        let doc = json!({"resourceType": "Practitioner", "id": "d1", "identifier": [{"value": "7"}], "name": [{"family": ""}]});
        let items = vec![
            (patient(), Write::UpdateByIdentifier),
            (doc.clone(), Write::CreateIfNoneExist),
            (doc, Write::Update),
        ];
        let b = assemble(
            json!({"resourceType": "Bundle", "type": "transaction", "timestamp": ""}),
            items.clone(),
        )
        .unwrap();
        assert_eq!(b["entry"].as_array().unwrap().len(), 2);
        assert!(b.get("timestamp").is_none(), "pruned");
        assert_eq!(b["entry"][1]["request"]["method"], "POST");
        assert!(b["entry"][1]["resource"].get("name").is_none(), "pruned");
        let m = assemble(json!({"resourceType": "Bundle", "type": "message"}), items).unwrap();
        assert!(m["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("request").is_none()));
    }

    #[test]
    fn conditional_create_and_fallbacks() {
        let e = entry(patient(), Write::CreateIfNoneExist).unwrap();
        assert_eq!(
            e["request"],
            json!({"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:id:HOSP|A%201%7C2"})
        );
        let bare = json!({"resourceType": "Observation", "id": "o1"});
        let e = entry(bare.clone(), Write::UpdateByIdentifier).unwrap();
        assert_eq!(
            e["request"],
            json!({"method": "PUT", "url": "Observation/o1"})
        );
        let e = entry(bare, Write::Message).unwrap();
        assert!(e.get("request").is_none());
        assert_eq!(entry(json!({"id": "x"}), Write::Update), None);
        assert_eq!(
            Write::from_name("create-if-none-exist"),
            Some(Write::CreateIfNoneExist)
        );
        assert_eq!(Write::from_name("upsert"), None);
    }
}
