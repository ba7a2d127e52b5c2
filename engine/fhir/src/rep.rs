//! One decoded field repetition, split into components and subcomponents.

/// The HL7 explicit null: a field sent as `""` tells the receiver to clear what it holds.
pub const HL7_NULL: &str = "\"\"";

/// One field repetition as decoded text: components (1-based in accessors), each a list of subcomponents.
///
/// The datatype conversions read components through [`Rep::comp`], which treats absent, empty and the
/// HL7 null `""` alike: the element is not emitted. (A resource is written whole by a transaction
/// `PUT`, so leaving an element out is what clears it on the server.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rep {
    comps: Vec<Vec<String>>,
}

impl Rep {
    /// The empty repetition (an absent field), for callers that hand out references.
    pub const EMPTY: Rep = Rep { comps: Vec::new() };

    /// Builds a repetition from decoded components, each a list of decoded subcomponents.
    pub fn new(comps: Vec<Vec<String>>) -> Self {
        Self { comps }
    }

    /// Splits text that carries no escapes on `^` and `&` (test messages, values assembled in scripts).
    pub fn from_plain(text: &str) -> Self {
        Self::split(text, '^', '&')
    }

    /// Splits already-unescaped text on the given component and subcomponent separators.
    pub fn split(text: &str, component: char, subcomponent: char) -> Self {
        if text.is_empty() {
            return Self::default();
        }
        let comps = text
            .split(component)
            .map(|c| c.split(subcomponent).map(str::to_owned).collect())
            .collect();
        Self { comps }
    }

    /// Component `n` (1-based), first subcomponent, trimmed; `""` when absent, empty or the HL7 null.
    pub fn comp(&self, n: usize) -> &str {
        self.sub(n, 1)
    }

    /// Subcomponent `m` of component `n` (both 1-based), trimmed; `""` when absent or the HL7 null.
    pub fn sub(&self, n: usize, m: usize) -> &str {
        let text = n
            .checked_sub(1)
            .and_then(|i| self.comps.get(i))
            .and_then(|c| m.checked_sub(1).and_then(|j| c.get(j)))
            .map_or("", |s| s.trim());
        if text == HL7_NULL {
            ""
        } else {
            text
        }
    }

    /// Component `n` as a repetition of its own, its subcomponents becoming components (HD in CX-4, FN in XPN-1).
    pub fn nested(&self, n: usize) -> Rep {
        let comps = n
            .checked_sub(1)
            .and_then(|i| self.comps.get(i))
            .map(|subs| subs.iter().map(|s| vec![s.clone()]).collect())
            .unwrap_or_default();
        Rep { comps }
    }

    /// Components `from..` as a repetition of their own (a CWE starting inside a larger type).
    pub fn tail(&self, from: usize) -> Rep {
        let comps = self
            .comps
            .iter()
            .skip(from.saturating_sub(1))
            .cloned()
            .collect();
        Rep { comps }
    }

    /// Whether no component holds a value (HL7 nulls count as no value).
    pub fn is_empty(&self) -> bool {
        self.comps
            .iter()
            .flatten()
            .all(|s| s.trim().is_empty() || s.trim() == HL7_NULL)
    }

    /// Whether the whole repetition is the HL7 null `""` (clear the target element).
    pub fn is_null(&self) -> bool {
        matches!(self.comps.as_slice(), [only] if only.len() == 1 && only.first().is_some_and(|s| s == HL7_NULL))
    }

    /// The repetition as text again, components joined by `^` and subcomponents by `&` (for string types
    /// whose sender did not escape a separator); HL7 nulls become empty.
    pub fn text(&self) -> String {
        let comps: Vec<String> = self
            .comps
            .iter()
            .map(|c| {
                c.iter()
                    .map(|s| if s == HL7_NULL { "" } else { s.as_str() })
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .collect();
        comps
            .join("^")
            .trim_end_matches(['^', '&'])
            .trim()
            .to_owned()
    }

    /// The number of components present.
    pub fn len(&self) -> usize {
        self.comps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_subcomponents_are_one_based_and_trimmed() {
        let r = Rep::from_plain("123^^^HOSP&1.2.3&ISO^MR ");
        assert_eq!(r.comp(1), "123");
        assert_eq!(r.comp(2), "");
        assert_eq!(r.comp(4), "HOSP");
        assert_eq!(r.sub(4, 2), "1.2.3");
        assert_eq!(r.sub(4, 3), "ISO");
        assert_eq!(r.comp(5), "MR");
        assert_eq!(r.comp(0), "");
        assert_eq!(r.comp(99), "");
        assert_eq!(r.sub(4, 0), "");
        assert_eq!(r.nested(4).comp(2), "1.2.3");
        assert_eq!(r.tail(4).comp(2), "MR");
        assert_eq!(r.len(), 5);
    }

    #[test]
    fn hl7_null_reads_as_no_value() {
        let r = Rep::from_plain("\"\"");
        assert!(r.is_null());
        assert!(r.is_empty());
        assert_eq!(r.comp(1), "");
        let r = Rep::from_plain("A^\"\"");
        assert!(!r.is_null());
        assert_eq!(r.comp(2), "");
        assert!(Rep::from_plain("").is_empty());
        assert!(!Rep::from_plain("x").is_empty());
    }
}
