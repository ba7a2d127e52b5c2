//! Paths into a message as written in the HL7 spec: `PID-5-1`, `PID.5.1`, `OBX[2]-5`, `PID-3[2]-1`.

use std::fmt;
use std::str::FromStr;

use crate::error::PathError;

/// A position inside one segment: field, optional repetition, component and subcomponent (1-based).
///
/// Written `5`, `3-1`, `3[2]-1-2` (`.` works as well as `-`). When no repetition is given, reads and
/// writes use the first repetition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldPath {
    /// Field position (1-based; MSH-1 is the field separator itself).
    pub field: usize,
    /// Repetition (1-based), `None` = first (or "all" for [`crate::MessageBuf::count`]).
    pub repetition: Option<usize>,
    /// Component (1-based).
    pub component: Option<usize>,
    /// Subcomponent (1-based); only with a component.
    pub subcomponent: Option<usize>,
}

/// A path to a segment or a value: segment name, optional occurrence `[n]`, optional [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    segment: [u8; 3],
    occurrence: usize,
    field: Option<FieldPath>,
}

impl Path {
    /// Build a path; `occurrence` is the 1-based occurrence of the segment.
    pub fn new(
        segment: &str,
        occurrence: usize,
        field: Option<FieldPath>,
    ) -> Result<Self, PathError> {
        let name = parse_segment_name(segment).ok_or_else(|| PathError::InvalidSegment {
            path: segment.to_string(),
        })?;
        if occurrence == 0 || field.is_some_and(|f| !f.is_valid()) {
            return Err(PathError::Zero {
                path: segment.to_string(),
            });
        }
        Ok(Self {
            segment: name,
            occurrence,
            field,
        })
    }

    /// Segment name, e.g. `PID`.
    pub fn segment(&self) -> &str {
        std::str::from_utf8(&self.segment).unwrap_or("???")
    }

    /// 1-based occurrence of the segment (`OBX[2]` is 2; 1 when not written).
    pub fn occurrence(&self) -> usize {
        self.occurrence
    }

    /// The position inside the segment, `None` for a whole segment.
    pub fn field(&self) -> Option<&FieldPath> {
        self.field.as_ref()
    }
}

impl FieldPath {
    /// A path to a whole field.
    pub fn field(field: usize) -> Self {
        Self {
            field,
            repetition: None,
            component: None,
            subcomponent: None,
        }
    }

    /// Repetition index to use for reads and writes (first when not written), 0-based.
    pub(crate) fn rep0(&self) -> usize {
        self.repetition.unwrap_or(1).saturating_sub(1)
    }

    fn is_valid(&self) -> bool {
        self.field > 0
            && self.repetition != Some(0)
            && self.component != Some(0)
            && self.subcomponent != Some(0)
            && (self.subcomponent.is_none() || self.component.is_some())
    }
}

/// Segment names in paths: a letter, then a letter (or anything after a `Z`), then a letter or
/// digit. This matches every standard segment and catches typos such as `P1D`.
fn parse_segment_name(s: &str) -> Option<[u8; 3]> {
    let b: [u8; 3] = s.as_bytes().try_into().ok()?;
    let [a, m, z] = b;
    let ok = a.is_ascii_uppercase()
        && (m.is_ascii_uppercase() || (a == b'Z' && m.is_ascii_digit()))
        && (z.is_ascii_uppercase() || z.is_ascii_digit());
    ok.then_some(b)
}

/// Split `text` into `name` and an optional `[n]` suffix.
fn split_index<'t>(text: &'t str, path: &str) -> Result<(&'t str, Option<usize>), PathError> {
    let Some(open) = text.find('[') else {
        if text.contains(']') {
            return Err(PathError::Syntax {
                path: path.to_string(),
                reason: "']' without '['",
            });
        }
        return Ok((text, None));
    };
    let inner = text
        .get(open + 1..)
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| PathError::Syntax {
            path: path.to_string(),
            reason: "'[' must be closed by ']' at the end of the segment or field",
        })?;
    let n = parse_number(inner, path)?;
    Ok((text.get(..open).unwrap_or_default(), Some(n)))
}

fn parse_number(part: &str, path: &str) -> Result<usize, PathError> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PathError::InvalidNumber {
            path: path.to_string(),
            part: part.to_string(),
        });
    }
    match part.parse::<usize>() {
        Ok(0) => Err(PathError::Zero {
            path: path.to_string(),
        }),
        Ok(n) => Ok(n),
        Err(_) => Err(PathError::InvalidNumber {
            path: path.to_string(),
            part: part.to_string(),
        }),
    }
}

/// Parse the field part (`3[2]-1-2`) of `path`, given as `parts`.
fn parse_field_parts<'p>(
    mut parts: impl Iterator<Item = &'p str>,
    path: &str,
) -> Result<Option<FieldPath>, PathError> {
    let Some(field_text) = parts.next() else {
        return Ok(None);
    };
    let (field, repetition) = split_index(field_text, path)?;
    let field = parse_number(field, path)?;
    let mut fp = FieldPath::field(field);
    fp.repetition = repetition;
    if let Some(c) = parts.next() {
        fp.component = Some(parse_number(c, path)?);
    }
    if let Some(s) = parts.next() {
        fp.subcomponent = Some(parse_number(s, path)?);
    }
    if parts.next().is_some() {
        return Err(PathError::Syntax {
            path: path.to_string(),
            reason: "too many levels (field, component, subcomponent at most)",
        });
    }
    Ok(Some(fp))
}

fn is_level_sep(c: char) -> bool {
    c == '-' || c == '.'
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        let mut parts = text.split(is_level_sep);
        let seg_text = parts.next().unwrap_or_default();
        let (name, occurrence) = split_index(seg_text, s)?;
        let segment = parse_segment_name(name).ok_or_else(|| PathError::InvalidSegment {
            path: s.to_string(),
        })?;
        let field = parse_field_parts(parts, s)?;
        Ok(Self {
            segment,
            occurrence: occurrence.unwrap_or(1),
            field,
        })
    }
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        parse_field_parts(text.split(is_level_sep), s)?.ok_or(PathError::Empty)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.field)?;
        if let Some(r) = self.repetition {
            write!(f, "[{r}]")?;
        }
        if let Some(c) = self.component {
            write!(f, "-{c}")?;
        }
        if let Some(sc) = self.subcomponent {
            write!(f, "-{sc}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.segment())?;
        if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        if let Some(fp) = &self.field {
            write!(f, "-{fp}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn parses_spec_forms() {
        let a = p("PID-5-1");
        assert_eq!(a, p("PID.5.1"));
        assert_eq!(a.segment(), "PID");
        let f = a.field().unwrap();
        assert_eq!((f.field, f.component, f.subcomponent), (5, Some(1), None));
        let b = p("OBX[2]-5");
        assert_eq!(b.occurrence(), 2);
        let c = p("PID-3[2]-1");
        assert_eq!(c.field().unwrap().repetition, Some(2));
        let d = p("PID-3-4-1");
        assert_eq!(d.field().unwrap().subcomponent, Some(1));
        assert_eq!(p("OBX").field(), None);
        assert_eq!(p("ZP1-2").segment(), "ZP1");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "PID-5-1",
            "OBX[2]-5",
            "PID-3[2]-1-2",
            "OBX",
            "MSH-9-2",
            "Z01[3]",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
        assert_eq!(p("PID.5.1").to_string(), "PID-5-1");
    }

    #[test]
    fn bad_paths_are_typed_errors() {
        assert!(matches!(
            "OBX-0".parse::<Path>(),
            Err(PathError::Zero { .. })
        ));
        assert!(matches!(
            "PID-x".parse::<Path>(),
            Err(PathError::InvalidNumber { .. })
        ));
        assert!(matches!(
            "P1D-3".parse::<Path>(),
            Err(PathError::InvalidSegment { .. })
        ));
        assert!(matches!(
            "pid-3".parse::<Path>(),
            Err(PathError::InvalidSegment { .. })
        ));
        assert!(matches!(
            "PIDX-3".parse::<Path>(),
            Err(PathError::InvalidSegment { .. })
        ));
        assert!(matches!("".parse::<Path>(), Err(PathError::Empty)));
        assert!(matches!(
            "PID-1-2-3-4".parse::<Path>(),
            Err(PathError::Syntax { .. })
        ));
        assert!(matches!(
            "OBX[2-5".parse::<Path>(),
            Err(PathError::Syntax { .. })
        ));
        assert!(matches!(
            "OBX[0]-5".parse::<Path>(),
            Err(PathError::Zero { .. })
        ));
        assert!(matches!(
            "PID-".parse::<Path>(),
            Err(PathError::InvalidNumber { .. })
        ));
        assert!(matches!(
            "PID-3-1[2]".parse::<Path>(),
            Err(PathError::InvalidNumber { .. })
        ));
    }

    #[test]
    fn field_paths() {
        let f: FieldPath = "3[2]-1-2".parse().unwrap();
        assert_eq!(
            (f.field, f.repetition, f.component, f.subcomponent),
            (3, Some(2), Some(1), Some(2))
        );
        assert_eq!(f.to_string(), "3[2]-1-2");
        assert_eq!("5".parse::<FieldPath>().unwrap(), FieldPath::field(5));
        assert!("0".parse::<FieldPath>().is_err());
        assert!("".parse::<FieldPath>().is_err());
        assert!("x".parse::<FieldPath>().is_err());
    }
}
