//! The delimiters a message declares in MSH-1/MSH-2 (FHS/BHS likewise).

use crate::error::ParseError;

/// The separator and escape characters a message declares; all are ASCII bytes.
///
/// The segment terminator is not here: it is always CR on output, and CR, LF or CRLF on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    /// Field separator (MSH-1), usually `|`.
    pub field: u8,
    /// Component separator (MSH-2 char 1), usually `^`.
    pub component: u8,
    /// Repetition separator (MSH-2 char 2), usually `~`.
    pub repetition: u8,
    /// Escape character (MSH-2 char 3), usually `\`; may be omitted when unused.
    pub escape: Option<u8>,
    /// Subcomponent separator (MSH-2 char 4), usually `&`; may be omitted.
    pub subcomponent: Option<u8>,
    /// Truncation character (MSH-2 char 5, v2.7+), usually `#`.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

impl Delimiters {
    /// MSH-2 as it would be written for these delimiters (e.g. `^~\&`).
    pub fn encoding_characters(&self) -> String {
        let mut s = String::with_capacity(5);
        s.push(char::from(self.component));
        s.push(char::from(self.repetition));
        if let Some(e) = self.escape {
            s.push(char::from(e));
            if let Some(sc) = self.subcomponent {
                s.push(char::from(sc));
                if let Some(t) = self.truncation {
                    s.push(char::from(t));
                }
            }
        }
        s
    }

    /// True when `b` is any of the declared separators or the escape character.
    #[inline]
    pub(crate) fn is_special(&self, b: u8) -> bool {
        b == self.field
            || b == self.component
            || b == self.repetition
            || Some(b) == self.escape
            || Some(b) == self.subcomponent
    }
}

/// Header segments whose field 1 is the field separator and field 2 the encoding characters.
pub(crate) fn is_header_name(name: &[u8]) -> bool {
    matches!(name, b"MSH" | b"FHS" | b"BHS")
}

/// Read MSH-1/MSH-2 from the start of a header segment (`line` excludes the terminator).
///
/// `offset` is the byte position of `line` in the caller's input, for error messages.
pub(crate) fn read_header(
    line: &[u8],
    offset: usize,
    segment_index: usize,
) -> Result<Delimiters, ParseError> {
    // Every message passes through here (parse, peek): the segment name is only turned into a
    // String when there is an error to report.
    let name = || String::from_utf8_lossy(line.get(..3).unwrap_or(line)).into_owned();
    let Some(&field) = line.get(3) else {
        return Err(ParseError::FieldSeparatorMissingInHeader {
            segment: name(),
            offset,
        });
    };
    let bad = |at: usize, reason: &'static str| ParseError::InvalidDelimiter {
        segment_index,
        segment: name(),
        offset: offset + at,
        reason,
    };
    if !field.is_ascii_graphic() || field.is_ascii_alphanumeric() {
        return Err(bad(
            3,
            "field separator must be a visible ASCII character other than a letter or digit",
        ));
    }
    let rest = line.get(4..).unwrap_or_default();
    let declared = rest
        .get(..memchr::memchr(field, rest).unwrap_or(rest.len()))
        .unwrap_or_default();
    // A doubled escape character (`^~\\&`) is over-escaping by the sender, not a subcomponent
    // separator equal to the escape character: read it as the standard set.
    let doubled = declared.len() == 5 && declared.get(2) == declared.get(3);
    if declared.len() - usize::from(doubled) < 2 {
        return Err(ParseError::EncodingCharactersMissing {
            segment_index,
            segment: name(),
            offset: offset + 4,
        });
    }
    // Only the first five characters have a role.
    let mut enc = [0u8; 5];
    let mut len = 0;
    let kept = declared
        .iter()
        .enumerate()
        .filter(|&(i, _)| !(doubled && i == 3));
    for ((_, &c), slot) in kept.zip(enc.iter_mut()) {
        *slot = c;
        len += 1;
    }
    let enc = enc.get(..len).unwrap_or_default();
    for (i, &c) in enc.iter().enumerate() {
        // Receivers must accept whatever the sender declares, letters included.
        if !c.is_ascii_graphic() {
            return Err(bad(
                4 + i,
                "encoding characters must be visible ASCII characters",
            ));
        }
        if c == field || enc.get(..i).is_some_and(|before| before.contains(&c)) {
            return Err(bad(4 + i, "the same character is declared for two roles"));
        }
    }
    let at = |i: usize| enc.get(i).copied();
    Ok(Delimiters {
        field,
        component: at(0).unwrap_or(b'^'),
        repetition: at(1).unwrap_or(b'~'),
        escape: at(2),
        subcomponent: at(3),
        truncation: at(4),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn standard_and_truncation() {
        let d = read_header(b"MSH|^~\\&#|A", 0, 1).unwrap();
        assert_eq!(d.truncation, Some(b'#'));
        assert_eq!(d.encoding_characters(), "^~\\&#");
    }

    #[test]
    fn short_msh2() {
        let d = read_header(b"MSH|^~|A", 0, 1).unwrap();
        assert_eq!((d.escape, d.subcomponent), (None, None));
        let d = read_header(b"MSH|^~\\|A", 0, 1).unwrap();
        assert_eq!((d.escape, d.subcomponent), (Some(b'\\'), None));
    }

    #[test]
    fn doubled_escape_is_standard_set() {
        let d = read_header(b"MSH|^~\\\\&|A", 0, 1).unwrap();
        assert_eq!(d, Delimiters::default());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            read_header(b"MSH", 0, 1),
            Err(ParseError::FieldSeparatorMissingInHeader { .. })
        ));
        let e = read_header(b"MSH||A", 0, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "segment 1 (MSH): encoding characters (MSH-2) missing"
        );
        assert!(matches!(
            read_header(b"MSH|^^\\&|", 0, 1),
            Err(ParseError::InvalidDelimiter { .. })
        ));
        assert!(matches!(
            read_header(b"MSHA^~\\&", 0, 1),
            Err(ParseError::InvalidDelimiter { .. })
        ));
        assert!(matches!(
            read_header(b"MSH ^~\\&", 0, 1),
            Err(ParseError::InvalidDelimiter { .. })
        ));
        assert!(matches!(
            read_header("MSH|^\u{2dc}\\&".as_bytes(), 0, 1),
            Err(ParseError::InvalidDelimiter { .. })
        ));
        // Letters are unusual but legal encoding characters.
        assert_eq!(read_header(b"MSH!$r?@!A", 0, 1).unwrap().repetition, b'r');
    }
}
