//! Paths into a message as written in the HL7 spec: `PID-5-1`, `PID.5.1`, `OBX[2]-5`, `PID-3[2]-1`.

use std::fmt;
use std::str::FromStr;

use nom::branch::alt;
use nom::bytes::complete::take_till;
use nom::character::complete::{char, one_of, u32};
use nom::combinator::{all_consuming, cond, eof, opt, peek, value};
use nom::error::{ErrorKind, ParseError};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

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

    pub(crate) fn is_valid(&self) -> bool {
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

/// Why the grammar below stopped; turned into a [`PathError`] that quotes the whole path.
#[derive(Debug)]
enum Bad<'a> {
    /// A nom primitive failed where no more specific reason applies.
    Shape,
    Segment,
    Number(&'a str),
    Zero,
    Syntax(&'static str),
}

impl<'a> ParseError<&'a str> for Bad<'a> {
    fn from_error_kind(_: &'a str, _: ErrorKind) -> Self {
        Bad::Shape
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

impl Bad<'_> {
    fn into_path_error(self, path: &str) -> PathError {
        let path = path.to_string();
        match self {
            Bad::Shape => PathError::Syntax {
                path,
                reason: "unexpected character",
            },
            Bad::Segment => PathError::InvalidSegment { path },
            Bad::Number(part) => PathError::InvalidNumber {
                path,
                part: part.to_string(),
            },
            Bad::Zero => PathError::Zero { path },
            Bad::Syntax(reason) => PathError::Syntax { path, reason },
        }
    }
}

type Res<'a, T> = IResult<&'a str, T, Bad<'a>>;

const UNCLOSED: &str = "'[' must be closed by ']' at the end of the segment or field";
const TOO_DEEP: &str = "too many levels (field, component, subcomponent at most)";

fn failure<'a, T>(bad: Bad<'a>) -> Res<'a, T> {
    Err(nom::Err::Failure(bad))
}

fn is_level_sep(c: char) -> bool {
    c == '-' || c == '.'
}

/// `-` or `.` between levels.
fn level_sep(i: &str) -> Res<'_, char> {
    one_of("-.").parse(i)
}

/// A 1-based position written as `part` (ASCII digits, not zero).
fn number(part: &str) -> Result<usize, nom::Err<Bad<'_>>> {
    let n: Res<'_, u32> = all_consuming(u32).parse(part);
    match n {
        Ok((_, 0)) => Err(nom::Err::Failure(Bad::Zero)),
        Ok((_, n)) => usize::try_from(n).map_err(|_| nom::Err::Failure(Bad::Number(part))),
        Err(_) => Err(nom::Err::Failure(Bad::Number(part))),
    }
}

/// A level's position: the text up to the next level separator (and, for a segment or field, up
/// to an index bracket), read as a number so that `3x` and `1[2]` are reported whole.
fn position(stop_at_index: bool) -> impl FnMut(&str) -> Res<'_, usize> {
    move |i| {
        let (rest, part) =
            take_till(|c| is_level_sep(c) || (stop_at_index && (c == '[' || c == ']')))(i)?;
        Ok((rest, number(part)?))
    }
}

/// An optional `[n]` after a segment name or field number; it must end the level.
fn index(i: &str) -> Res<'_, Option<usize>> {
    if i.starts_with(']') {
        return failure(Bad::Syntax("']' without '['"));
    }
    let inner = |i| {
        let (rest, part) = take_till(|c| c == ']' || is_level_sep(c))(i)?;
        Ok((rest, number(part)?))
    };
    let close = |i| {
        let closed: Res<'_, char> =
            terminated(char(']'), peek(alt((value((), eof), value((), level_sep))))).parse(i);
        closed.or_else(|_| failure(Bad::Syntax(UNCLOSED)))
    };
    opt(delimited(char('['), inner, close)).parse(i)
}

/// `SEG` or `SEG[n]`: three characters, checked by [`parse_segment_name`].
fn segment(i: &str) -> Res<'_, ([u8; 3], usize)> {
    let (rest, name) = take_till(|c| is_level_sep(c) || c == '[' || c == ']')(i)?;
    let Some(name) = parse_segment_name(name) else {
        return failure(Bad::Segment);
    };
    let (rest, occurrence) = index(rest)?;
    Ok((rest, (name, occurrence.unwrap_or(1))))
}

/// `field[rep]-component-subcomponent`, each part after the field optional.
fn field_path(i: &str) -> Res<'_, FieldPath> {
    let (i, (field, repetition)) = (position(true), index).parse(i)?;
    let (i, component) = opt(preceded(level_sep, position(false))).parse(i)?;
    let (i, subcomponent) = cond(
        component.is_some(),
        opt(preceded(level_sep, position(false))),
    )
    .parse(i)?;
    let fp = FieldPath {
        field,
        repetition,
        component,
        subcomponent: subcomponent.flatten(),
    };
    // Every level runs to the next separator, so anything left is one level too many.
    if i.is_empty() {
        Ok((i, fp))
    } else {
        failure(Bad::Syntax(TOO_DEEP))
    }
}

/// Run a path grammar over the trimmed text, reporting failures against the text as written.
fn run<'a, T>(
    text: &'a str,
    mut grammar: impl Parser<&'a str, Output = T, Error = Bad<'a>>,
) -> Result<T, PathError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(PathError::Empty);
    }
    match grammar.parse(trimmed) {
        Ok((_, v)) => Ok(v),
        Err(nom::Err::Error(bad) | nom::Err::Failure(bad)) => Err(bad.into_path_error(text)),
        Err(nom::Err::Incomplete(_)) => Err(Bad::Shape.into_path_error(text)),
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        let grammar = (segment, opt(preceded(level_sep, field_path)));
        let ((segment, occurrence), field) = run(s, all_consuming(grammar))?;
        Ok(Self {
            segment,
            occurrence,
            field,
        })
    }
}

impl FromStr for FieldPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, PathError> {
        run(s, field_path)
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
    fn error_messages_quote_the_path_and_the_part() {
        let msg = |s: &str| s.parse::<Path>().unwrap_err().to_string();
        assert_eq!(
            msg("PID-3-1[2]"),
            "invalid number '1[2]' in path 'PID-3-1[2]'"
        );
        assert_eq!(msg("PID-3x"), "invalid number '3x' in path 'PID-3x'");
        assert_eq!(
            msg("OBX[2-5"),
            "invalid path syntax 'OBX[2-5': '[' must be closed by ']' at the end of the segment or field"
        );
        assert_eq!(
            msg("OBX[2]x-5"),
            "invalid path syntax 'OBX[2]x-5': '[' must be closed by ']' at the end of the segment or field"
        );
        assert_eq!(
            msg("PID-3]-1"),
            "invalid path syntax 'PID-3]-1': ']' without '['"
        );
        assert_eq!(msg("OBX[x]"), "invalid number 'x' in path 'OBX[x]'");
        assert_eq!(
            msg("PID-1-2-3-4"),
            "invalid path syntax 'PID-1-2-3-4': too many levels (field, component, subcomponent at most)"
        );
        assert_eq!(
            msg("PID-3-0"),
            "position 0 in path 'PID-3-0' (HL7 positions start at 1)"
        );
        assert_eq!(
            msg("PI-3"),
            "invalid segment name in path 'PI-3' (expected 3 characters A-Z, 0-9)"
        );
        assert_eq!(p(" PID.3[2].1 "), p("PID-3[2]-1"));
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
        let rel: FieldPath = "3-1".parse().unwrap();
        assert_eq!(
            (rel.field, rel.component, rel.repetition),
            (3, Some(1), None)
        );
        assert!(matches!(
            "3-1-2-4".parse::<FieldPath>(),
            Err(PathError::Syntax { .. })
        ));
        assert!(matches!(
            "3[2".parse::<FieldPath>(),
            Err(PathError::Syntax { .. })
        ));
    }
}
