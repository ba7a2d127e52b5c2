//! The empty-value pruner: FHIR forbids empty strings, arrays and objects, and `null`.

use serde_json::Value;

/// Removes, recursively, `null`, blank strings, and the arrays and objects that become empty.
///
/// Returns `None` when the whole value is empty. Scripts build resources freely (`#{ name: fhir::xpn(..) }`
/// even when the field is absent) and call this once on the Bundle, so no empty element ever leaves.
pub fn prune(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::Array(items) => {
            let kept: Vec<Value> = items.into_iter().filter_map(prune).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::Object(map) => {
            let kept: serde_json::Map<String, Value> = map
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_empty_values_recursively_and_keeps_falsy_scalars() {
        let v = json!({
            "a": "", "b": " ", "c": null, "d": [], "e": {}, "f": [{"x": ""}, {}],
            "g": {"h": {"i": [null, ""]}}, "keep": "x", "zero": 0, "no": false,
            "list": ["", "y", {"z": 1, "w": []}]
        });
        assert_eq!(
            prune(v),
            Some(json!({"keep": "x", "zero": 0, "no": false, "list": ["y", {"z": 1}]}))
        );
        assert_eq!(prune(json!({"a": {"b": [""]}})), None);
        assert_eq!(prune(json!("")), None);
    }
}
