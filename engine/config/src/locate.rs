//! Finding the line and column of a node in a channel file after it was deserialised.
//!
//! serde_yaml 0.9 has no spans, but it stamps the position of the current node on any error a
//! visitor returns. So to locate `destinations[1].name` we deserialise the text again with a seed
//! that walks to that node and fails there on purpose; the error's location is the node's.
//! Using serde_yaml's own parser keeps this right for flow maps, quoting, anchors and comments,
//! which a hand-written line scanner would get wrong.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Marks the error raised on purpose, to tell it from a real parse error.
const FOUND: &str = "\u{0}junction-config-located";

/// One step of a path into the YAML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

/// A path into the YAML tree, e.g. `destinations[1].retry.initial`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YamlPath(Vec<Seg>);

impl YamlPath {
    /// This path extended by a mapping key.
    pub(crate) fn key(&self, key: &str) -> YamlPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        YamlPath(segs)
    }

    /// This path extended by a sequence index.
    pub(crate) fn index(&self, index: usize) -> YamlPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        YamlPath(segs)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Whether to point at a node's value or at the key that introduces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The value (for a mapping or sequence: where it starts).
    Value,
    /// The last key of the path.
    Key,
}

/// 1-based (line, column) of the node at `path` in `text`, or `None` when it is not there.
pub(crate) fn locate(text: &str, path: &YamlPath, target: Target) -> Option<(usize, usize)> {
    let probe = Probe {
        path: &path.0,
        on_key: target == Target::Key,
    };
    match probe.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        Err(_) => None,
    }
}

struct Probe<'p> {
    path: &'p [Seg],
    on_key: bool,
}

fn found<E: de::Error>() -> E {
    E::custom(FOUND)
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Probe<'_> {
    /// A node the path does not go into: it is the target when the path is used up.
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(found())
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return self.scalar();
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe {
            path: rest,
            on_key: self.on_key,
        })?;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return self.scalar();
        };
        let fail_on_key = self.on_key && rest.is_empty();
        while let Some(hit) = map.next_key_seed(KeyProbe {
            want,
            fail: fail_on_key,
        })? {
            if hit {
                return map.next_value_seed(Probe {
                    path: rest,
                    on_key: self.on_key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Reads one mapping key: `Ok(true)` when it is the wanted one, or the located error when the
/// key itself is the target.
struct KeyProbe<'p> {
    want: &'p str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.want, self.fail) {
            (true, true) => Err(found()),
            (hit, _) => Ok(hit),
        }
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(segs: &[Seg]) -> YamlPath {
        YamlPath(segs.to_vec())
    }
    fn k(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    const DOC: &str = "\
name: a   # comment
source:
  mllp: { listen: \"127.0.0.1:1\" }
destinations:
  - name: x
    file: { dir: d }
  - name: 'y'
    retry:
      initial: 1s
match: { PID-8: '^M$', MSH-12: x }
";

    #[test]
    fn finds_block_flow_and_sequence_nodes() {
        assert_eq!(locate(DOC, &p(&[k("name")]), Target::Value), Some((1, 7)));
        assert_eq!(locate(DOC, &p(&[k("name")]), Target::Key), Some((1, 1)));
        let listen = p(&[k("source"), k("mllp"), k("listen")]);
        assert_eq!(locate(DOC, &listen, Target::Value), Some((3, 19)));
        let second = p(&[k("destinations"), Seg::Index(1), k("name")]);
        assert_eq!(locate(DOC, &second, Target::Value), Some((7, 11)));
        let initial = p(&[k("destinations"), Seg::Index(1), k("retry"), k("initial")]);
        assert_eq!(locate(DOC, &initial, Target::Value), Some((9, 16)));
        assert_eq!(
            locate(DOC, &p(&[k("match"), k("MSH-12")]), Target::Key),
            Some((10, 24))
        );
    }

    #[test]
    fn absent_nodes_and_broken_yaml_have_no_place() {
        assert_eq!(locate(DOC, &p(&[k("nope")]), Target::Value), None);
        let past_end = p(&[k("destinations"), Seg::Index(5), k("name")]);
        assert_eq!(locate(DOC, &past_end, Target::Value), None);
        assert_eq!(locate("a: [\nb: 1", &p(&[k("b")]), Target::Value), None);
    }
}
