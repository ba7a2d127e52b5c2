//! Converting a script's map/array value into JSON for the outbound payload.

use rhai::Dynamic;
use serde_json::{Map as JsonMap, Number, Value};

/// Deeper nesting than any real payload; bounds recursion so a hostile script cannot overflow the stack.
const MAX_DEPTH: usize = 128;

/// Why a script value cannot become JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// NaN or infinity has no JSON form.
    #[error("'{path}': {value} is not a finite number and cannot be sent as JSON")]
    NonFinite {
        /// Where in the value (e.g. `$.subject.age`).
        path: String,
        /// The offending float, printed.
        value: String,
    },
    /// A value of a type JSON has no form for (a message handle, a function pointer, a blob...).
    #[error("'{path}': a value of type '{type_name}' cannot be sent as JSON")]
    Unsupported {
        /// Where in the value.
        path: String,
        /// The Rhai type name.
        type_name: String,
    },
    /// Nested deeper than the limit.
    #[error("'{path}': nested deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// Where the limit was reached.
        path: String,
    },
}

/// Converts a script value to JSON; `()` values inside maps and arrays are left out rather than sent as `null`.
pub fn to_json(value: &Dynamic) -> Result<Value, JsonError> {
    let mut path = String::from("$");
    convert(value, &mut path, 0)
}

fn convert(value: &Dynamic, path: &mut String, depth: usize) -> Result<Value, JsonError> {
    if depth > MAX_DEPTH {
        return Err(JsonError::TooDeep { path: path.clone() });
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = value.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| JsonError::NonFinite {
                path: path.clone(),
                value: f.to_string(),
            });
    }
    if let Ok(s) = value.as_immutable_string_ref() {
        return Ok(Value::String(s.as_str().to_owned()));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Ok(array) = value.as_array_ref() {
        let mut out = Vec::with_capacity(array.len());
        for (i, item) in array.iter().enumerate() {
            if item.is_unit() {
                continue;
            }
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            out.push(convert(item, path, depth + 1)?);
            path.truncate(len);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(map) = value.as_map_ref() {
        let mut out = JsonMap::new();
        for (key, item) in map.iter() {
            if item.is_unit() {
                continue;
            }
            let len = path.len();
            path.push('.');
            path.push_str(key);
            out.insert(key.to_string(), convert(item, path, depth + 1)?);
            path.truncate(len);
        }
        return Ok(Value::Object(out));
    }
    Err(JsonError::Unsupported {
        path: path.clone(),
        type_name: value.type_name().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::{Array, Map};

    #[test]
    fn unit_is_left_out_of_maps_and_arrays() {
        let mut inner = Map::new();
        inner.insert("family".into(), "Doe".into());
        inner.insert("missing".into(), Dynamic::UNIT);
        let mut map = Map::new();
        map.insert("name".into(), Dynamic::from_map(inner));
        map.insert(
            "ids".into(),
            Dynamic::from_array(Array::from([Dynamic::from(1_i64), Dynamic::UNIT])),
        );
        map.insert("active".into(), true.into());
        map.insert("score".into(), Dynamic::from_float(1.5));
        let json = to_json(&Dynamic::from_map(map)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": {"family": "Doe"}, "ids": [1], "active": true, "score": 1.5})
        );
    }

    #[test]
    fn non_finite_float_is_an_error_with_path() {
        let mut map = Map::new();
        map.insert("x".into(), Dynamic::from_float(f64::NAN));
        let err = to_json(&Dynamic::from_map(map)).unwrap_err();
        assert!(
            matches!(&err, JsonError::NonFinite { path, .. } if path == "$.x"),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let mut value = Dynamic::from(1_i64);
        for _ in 0..200 {
            value = Dynamic::from_array(Array::from([value]));
        }
        assert!(matches!(to_json(&value), Err(JsonError::TooDeep { .. })));
    }

    #[test]
    fn unsupported_type_is_an_error() {
        let err = to_json(&Dynamic::from_blob(vec![1, 2])).unwrap_err();
        assert!(matches!(err, JsonError::Unsupported { .. }), "{err}");
    }
}
