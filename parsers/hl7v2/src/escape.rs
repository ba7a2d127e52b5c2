//! HL7 escape sequences, decoded on read and encoded on write with the message's own escape character.
//!
//! Decoded on read: `\F\ \S\ \T\ \R\ \E\` and `\P\` (when a truncation character is declared).
//! Kept verbatim on read, because their meaning is agreed between sender and receiver or is
//! formatting: `\Xhh..\`, `\Zxx\`, `\Cxxyy\`, `\Mxxyyzz\`, `\H\`, `\N\`, `\.br\` and the other
//! `\.xx\` commands, any unknown sequence, and a lone escape character.
//!
//! On write, separators and a lone escape character are escaped, while a well-formed verbatim
//! sequence of the kinds above is written unchanged, so writing back a value that was read leaves
//! its formatting intact. A CR or LF in a value is written as `\X0D\` / `\X0A\`, because a raw line
//! break would end the segment.

use std::borrow::Cow;

use crate::delim::Delimiters;

/// Decode the escape sequences in one leaf value (a value with no separators in it).
pub fn unescape<'s>(s: &'s str, d: &Delimiters) -> Cow<'s, str> {
    let Some(esc) = d.escape else {
        return Cow::Borrowed(s);
    };
    let bytes = s.as_bytes();
    let Some(first) = memchr::memchr(esc, bytes) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(s.get(..first).unwrap_or_default());
    let mut i = first;
    while i < bytes.len() {
        let Some(close) =
            memchr::memchr(esc, bytes.get(i + 1..).unwrap_or_default()).map(|p| i + 1 + p)
        else {
            out.push_str(s.get(i..).unwrap_or_default());
            break;
        };
        let content = bytes.get(i + 1..close).unwrap_or_default();
        let decoded = match content {
            b"F" => Some(d.field),
            b"S" => Some(d.component),
            b"T" => d.subcomponent,
            b"R" => Some(d.repetition),
            b"E" => Some(esc),
            b"P" => d.truncation,
            _ => None,
        };
        match decoded {
            Some(c) => out.push(char::from(c)),
            None => out.push_str(s.get(i..=close).unwrap_or_default()),
        }
        let next = close + 1;
        match memchr::memchr(esc, bytes.get(next..).unwrap_or_default()) {
            Some(p) => {
                out.push_str(s.get(next..next + p).unwrap_or_default());
                i = next + p;
            }
            None => {
                out.push_str(s.get(next..).unwrap_or_default());
                break;
            }
        }
    }
    Cow::Owned(out)
}

/// Length of a verbatim-preserved escape sequence starting at `i` (which holds the escape char).
fn verbatim_len(bytes: &[u8], i: usize, esc: u8) -> Option<usize> {
    let rest = bytes.get(i + 1..)?;
    let close = memchr::memchr(esc, rest)?;
    let content = rest.get(..close)?;
    let (&code, args) = content.split_first()?;
    let ok = match code {
        b'H' | b'N' => args.is_empty(),
        b'X' | b'Z' | b'C' | b'M' => args.iter().all(u8::is_ascii_alphanumeric),
        b'.' => {
            !args.is_empty()
                && args
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b' ')
        }
        _ => false,
    };
    ok.then_some(close + 2)
}

/// Encode `value` for writing into a message with delimiters `d`.
///
/// Returns `None` when the value needs escaping but the message declares no escape character.
pub fn escape<'s>(value: &'s str, d: &Delimiters) -> Option<Cow<'s, str>> {
    let bytes = value.as_bytes();
    let needs = |b: u8| d.is_special(b) || Some(b) == d.truncation || b == b'\r' || b == b'\n';
    if !bytes.iter().any(|&b| needs(b)) {
        return Some(Cow::Borrowed(value));
    }
    let esc = d.escape?;
    let e = char::from(esc);
    let mut out = String::with_capacity(value.len() + 8);
    let mut i = 0;
    let mut plain_from = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or_default();
        if !needs(b) {
            i += 1;
            continue;
        }
        out.push_str(value.get(plain_from..i).unwrap_or_default());
        if b == esc {
            if let Some(len) = verbatim_len(bytes, i, esc) {
                out.push_str(value.get(i..i + len).unwrap_or_default());
                i += len;
                plain_from = i;
                continue;
            }
        }
        let code = if b == d.field {
            "F"
        } else if b == d.component {
            "S"
        } else if b == d.repetition {
            "R"
        } else if b == esc {
            "E"
        } else if Some(b) == d.subcomponent {
            "T"
        } else if Some(b) == d.truncation {
            "P"
        } else if b == b'\r' {
            "X0D"
        } else {
            "X0A"
        };
        out.push(e);
        out.push_str(code);
        out.push(e);
        i += 1;
        plain_from = i;
    }
    out.push_str(value.get(plain_from..).unwrap_or_default());
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d() -> Delimiters {
        Delimiters {
            truncation: Some(b'#'),
            ..Delimiters::default()
        }
    }

    #[test]
    fn decodes_separator_escapes() {
        assert_eq!(
            unescape(r"a\F\b\S\c\T\d\R\e\E\f\P\g", &d()),
            "a|b^c&d~e\\f#g"
        );
        assert!(matches!(unescape("plain", &d()), Cow::Borrowed(_)));
    }

    #[test]
    fn keeps_other_sequences_verbatim() {
        for s in [
            r"x\X0D\y",
            r"a\.br\b",
            r"\H\bold\N\",
            r"\Zabc\",
            r"\C2842\",
            r"\M2442\",
            r"\Q\",
            r"lone\",
            r"a\b",
            r"\\",
        ] {
            assert_eq!(unescape(s, &d()), s, "{s}");
        }
        let no_trunc = Delimiters::default();
        assert_eq!(unescape(r"\P\", &no_trunc), r"\P\");
    }

    #[test]
    fn uses_declared_escape_character() {
        let custom = Delimiters {
            field: b'$',
            component: b'%',
            repetition: b'~',
            escape: Some(b'!'),
            subcomponent: Some(b'&'),
            truncation: None,
        };
        assert_eq!(unescape("a!F!b!S!c", &custom), "a$b%c");
        assert_eq!(unescape(r"a\F\b", &custom), r"a\F\b");
        assert_eq!(escape("a$b%c!", &custom).unwrap(), "a!F!b!S!c!E!");
    }

    #[test]
    fn encodes_and_round_trips() {
        let v = "a|b^c&d~e\\f#g";
        let enc = escape(v, &d()).unwrap();
        assert_eq!(enc, r"a\F\b\S\c\T\d\R\e\E\f\P\g");
        assert_eq!(unescape(&enc, &d()), v);
        assert_eq!(
            escape("line1\r\nline2", &d()).unwrap(),
            r"line1\X0D\\X0A\line2"
        );
        assert_eq!(
            escape(r"keep \.br\ and \X41\", &d()).unwrap(),
            r"keep \.br\ and \X41\"
        );
        assert!(escape(
            "a|b",
            &Delimiters {
                escape: None,
                ..d()
            }
        )
        .is_none());
        assert!(matches!(escape("plain", &d()), Some(Cow::Borrowed(_))));
    }
}
