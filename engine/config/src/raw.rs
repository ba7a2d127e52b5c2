//! The file's shape as serde sees it. Values that need checking with a good message (durations,
//! addresses, regexes, paths) stay text here and are checked in `convert`, so that one file can
//! report all of them at once rather than stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserialize;

use crate::model::{AckMode, HttpMethod, MaxAttempts, OnNak};

/// Any scalar kept as the text the analyst wrote (`poll: 5` arrives as "5", to be told it lacks a unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single value (text or number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping whose keys must be unique: serde would otherwise keep the last silently.
#[derive(Debug, Clone)]
pub(crate) struct UniqueMap<V>(pub(crate) BTreeMap<String, V>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(BTreeMap::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapV<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapV<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key_seed(NewKey(&out))? {
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(MapV(PhantomData))
    }
}

/// Reads a key and refuses one already seen; failing inside the key's visitor makes serde_yaml
/// report the second key's own line and column.
struct NewKey<'m, V>(&'m BTreeMap<String, V>);

impl<'de, V> DeserializeSeed<'de> for NewKey<'_, V> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<V> Visitor<'_> for NewKey<'_, V> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if self.0.contains_key(v) {
            Err(E::custom(format!("duplicate key '{v}'")))
        } else {
            Ok(v.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for MaxAttempts {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MaxAttempts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("'forever' or a number of attempts (1 or more)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MaxAttempts, E> {
                match u32::try_from(v) {
                    Ok(n) if n > 0 => Ok(MaxAttempts::Limit(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MaxAttempts, E> {
                Err(E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaxAttempts, E> {
                if v == "forever" {
                    Ok(MaxAttempts::Forever)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChannel {
    pub name: String,
    pub description: Option<String>,
    pub source: RawSource,
    pub filter: Option<String>,
    pub transform: Option<String>,
    #[serde(default)]
    pub tables: UniqueMap<String>,
    pub fhir_maps: Option<String>,
    #[serde(default)]
    pub require: Vec<String>,
    #[serde(default, rename = "match")]
    pub match_: UniqueMap<String>,
    #[serde(default)]
    pub log_content: bool,
    pub destinations: Vec<RawDestination>,
    pub retention: Option<RawRetention>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub encrypt: bool,
    pub encryption: Option<RawEncryption>,
    pub alerts: Option<RawAlerts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEncryption {
    pub key_file: String,
    #[serde(default)]
    pub retired_key_files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    pub webhook: Option<String>,
    pub queue_age: Option<Text>,
    pub errors: Option<RawErrorsAlert>,
    #[serde(default)]
    pub circuit_open: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErrorsAlert {
    pub count: u32,
    pub within: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub mllp: Option<RawMllpSource>,
    pub file: Option<RawFileSource>,
    pub http: Option<RawHttpSource>,
    #[serde(default)]
    pub ack: AckMode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMllpSource {
    pub listen: Text,
    pub max_connections: Option<u32>,
    pub max_frame_bytes: Option<Text>,
    pub read_timeout: Option<Text>,
    pub idle_timeout: Option<Text>,
    pub start_byte: Option<u8>,
    pub end_bytes: Option<Vec<u8>>,
    pub tls: Option<RawServerTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServerTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSource {
    pub dir: String,
    pub glob: Option<String>,
    pub poll: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpSource {
    pub listen: Text,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDestination {
    pub name: String,
    pub when_env: Option<String>,
    pub filter: Option<String>,
    pub transform: Option<String>,
    pub mllp: Option<RawMllpDestination>,
    pub file: Option<RawFileDestination>,
    pub http: Option<RawHttpDestination>,
    pub channel: Option<String>,
    pub retry: Option<RawRetry>,
    pub circuit_breaker: Option<RawCircuitBreaker>,
    pub rate_limit: Option<u32>,
    pub ordered: Option<bool>,
    pub workers: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMllpDestination {
    pub connect: Text,
    pub connect_timeout: Option<Text>,
    pub send_timeout: Option<Text>,
    pub ack_timeout: Option<Text>,
    pub keepalive: Option<Text>,
    pub start_byte: Option<u8>,
    pub end_bytes: Option<Vec<u8>>,
    pub tls: Option<RawClientTls>,
    #[serde(default)]
    pub on_nak: OnNak,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileDestination {
    pub dir: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpDestination {
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub headers: UniqueMap<String>,
    pub timeout: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub initial: Option<Text>,
    pub max: Option<Text>,
    pub max_attempts: Option<MaxAttempts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCircuitBreaker {
    pub failures: u32,
    pub cool_down: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    pub days: Option<u32>,
    pub keep: Option<Text>,
    #[serde(default = "yes")]
    pub keep_errored: bool,
    pub every: Option<Text>,
}

fn yes() -> bool {
    true
}
