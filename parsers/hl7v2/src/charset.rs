//! Character sets named in MSH-18 (HL7 table 0211).
//!
//! Policy: with MSH-18 present and supported, decode by it. With no MSH-18 (or `ASCII`), decode as
//! UTF-8 and fall back to ISO-8859-1 when the bytes are not valid UTF-8 (ISO-8859-1 maps every
//! byte, so nothing is lost and encoding gives the original bytes back). A declared single-byte
//! 8859 charset whose bytes are valid multi-byte UTF-8 is read as UTF-8, since real Latin text is
//! almost never valid UTF-8 by accident. UTF-16/UTF-32 and unknown names are refused with
//! [`ParseError::UnsupportedCharset`] when the message has non-ASCII bytes.

use std::borrow::Cow;

use encoding_rs::Encoding;

use crate::error::ParseError;
use crate::message::{content_start, locate_segment};

/// The character set a message is read and written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (and plain ASCII, which is a subset).
    Utf8,
    /// ISO-8859-1 (MSH-18 `8859/1`), mapped byte for byte.
    Latin1,
    /// Another encoding decoded with `encoding_rs` (8859/2-15, GB 18030, BIG-5, KS X 1001, ISO IR87).
    Other(&'static Encoding),
}

/// What an MSH-18 value asks for.
enum Declared {
    /// No MSH-18, ASCII, or a Unicode name that means UTF-8.
    Default,
    Utf8,
    Charset(Charset),
    Unsupported,
}

fn declared(msh18: Option<&str>) -> Declared {
    let Some(name) = msh18.map(str::trim).filter(|s| !s.is_empty()) else {
        return Declared::Default;
    };
    let upper = name.to_ascii_uppercase();
    let label = match upper.as_str() {
        "ASCII" | "ISO IR6" | "ISO-IR6" | "US-ASCII" => return Declared::Default,
        "UNICODE UTF-8" | "UTF-8" | "UTF8" | "UNICODE" => return Declared::Utf8,
        "8859/1" | "ISO IR100" | "ISO-8859-1" | "8859" => {
            return Declared::Charset(Charset::Latin1)
        }
        "8859/2" => "iso-8859-2",
        "8859/3" => "iso-8859-3",
        "8859/4" => "iso-8859-4",
        "8859/5" => "iso-8859-5",
        "8859/6" => "iso-8859-6",
        "8859/7" => "iso-8859-7",
        "8859/8" => "iso-8859-8",
        "8859/9" => "iso-8859-9",
        "8859/15" => "iso-8859-15",
        "GB 18030-2000" | "GB18030" => "gb18030",
        "BIG-5" | "BIG5" => "big5",
        "KS X 1001" => "euc-kr",
        "ISO IR87" => "iso-2022-jp",
        _ => return Declared::Unsupported,
    };
    match Encoding::for_label(label.as_bytes()) {
        Some(enc) => Declared::Charset(Charset::Other(enc)),
        None => Declared::Unsupported,
    }
}

fn first_non_ascii(bytes: &[u8]) -> Option<usize> {
    // `is_ascii` checks a word at a time; most messages are ASCII and never need the position.
    if bytes.is_ascii() {
        return None;
    }
    bytes.iter().position(|b| !b.is_ascii())
}

fn latin1_decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Read MSH-18's first repetition straight from the raw bytes (ASCII-compatible charsets).
fn raw_msh18(bytes: &[u8]) -> Option<String> {
    let line_end = memchr::memchr2(b'\r', b'\n', bytes).unwrap_or(bytes.len());
    let line = bytes.get(..line_end)?;
    let fs = *line.get(3)?;
    let d = crate::delim::read_header(line, 0, 1).ok();
    let field = line.split(|&b| b == fs).nth(17)?;
    let rep = d.map_or(b'~', |d| d.repetition);
    let first = field.split(|&b| b == rep).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

impl Charset {
    /// The text of one message decoded by its MSH-18 (see the module policy), from MSH on: a
    /// leading BOM and whitespace are dropped. Borrowed when the bytes are UTF-8 and read as such.
    ///
    /// For callers that keep [`crate::Message`]'s zero-copy view but may receive other charsets.
    pub fn decode_message(bytes: &[u8]) -> Result<(Cow<'_, str>, Charset), ParseError> {
        let start = content_start(bytes);
        let body = bytes.get(start..).unwrap_or_default();
        let msh18 = raw_msh18(body);
        Charset::decode(body, msh18.as_deref()).map_err(|e| e.shifted(start))
    }

    /// Decode `bytes` (one message) whose MSH-18 first repetition is `msh18`.
    pub(crate) fn decode<'b>(
        bytes: &'b [u8],
        msh18: Option<&str>,
    ) -> Result<(Cow<'b, str>, Charset), ParseError> {
        let Some(bad) = first_non_ascii(bytes) else {
            // Pure ASCII reads the same in every supported charset; keep the declared one for writing.
            let charset = match declared(msh18) {
                Declared::Charset(c) => c,
                _ => Charset::Utf8,
            };
            let text = std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .unwrap_or_else(|_| Cow::Owned(latin1_decode(bytes)));
            return Ok((text, charset));
        };
        let utf8 = std::str::from_utf8(bytes);
        match declared(msh18) {
            Declared::Default => Ok(match utf8 {
                Ok(s) => (Cow::Borrowed(s), Charset::Utf8),
                Err(_) => (Cow::Owned(latin1_decode(bytes)), Charset::Latin1),
            }),
            Declared::Utf8 => match utf8 {
                Ok(s) => Ok((Cow::Borrowed(s), Charset::Utf8)),
                Err(e) => {
                    let (segment_index, segment) = locate_segment(bytes, e.valid_up_to());
                    Err(ParseError::InvalidEncoding {
                        segment_index,
                        segment,
                        offset: e.valid_up_to(),
                        charset: "UTF-8 (MSH-18)".to_string(),
                    })
                }
            },
            Declared::Charset(c) => {
                let single_byte_8859 = matches!(c, Charset::Latin1)
                    || matches!(c, Charset::Other(e) if e.name().starts_with("ISO-8859") || e.name().starts_with("windows-125"));
                if let (true, Ok(s)) = (single_byte_8859, utf8) {
                    return Ok((Cow::Borrowed(s), Charset::Utf8));
                }
                match c {
                    Charset::Latin1 => Ok((Cow::Owned(latin1_decode(bytes)), c)),
                    Charset::Utf8 => Ok((Cow::Borrowed(utf8.unwrap_or_default()), c)),
                    Charset::Other(enc) => {
                        match enc.decode_without_bom_handling_and_without_replacement(bytes) {
                            Some(s) => Ok((Cow::Owned(s.into_owned()), c)),
                            None => {
                                let (segment_index, segment) = locate_segment(bytes, bad);
                                Err(ParseError::InvalidEncoding {
                                    segment_index,
                                    segment,
                                    offset: bad,
                                    charset: enc.name().to_string(),
                                })
                            }
                        }
                    }
                }
            }
            Declared::Unsupported => Err(ParseError::UnsupportedCharset {
                charset: msh18.unwrap_or_default().trim().to_string(),
                offset: bad,
            }),
        }
    }

    /// The charset an MSH-18 value names; `None` for an unsupported one. Empty/ASCII means UTF-8.
    pub fn for_msh18(msh18: &str) -> Option<Charset> {
        match declared(Some(msh18)) {
            Declared::Default | Declared::Utf8 => Some(Charset::Utf8),
            Declared::Charset(c) => Some(c),
            Declared::Unsupported => None,
        }
    }

    /// The charset to write a message that is already valid UTF-8 text in.
    pub(crate) fn for_utf8_text(text: &str, msh18: Option<&str>) -> Charset {
        match (text.is_ascii(), declared(msh18)) {
            (true, Declared::Charset(c)) => c,
            _ => Charset::Utf8,
        }
    }

    /// Encode text in this charset. Characters it cannot represent become `?` (ISO-8859-1) or
    /// numeric character references (`encoding_rs` encoders); UTF-8 never loses anything.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => text.as_bytes().to_vec(),
            Charset::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Charset::Other(enc) => enc.encode(text).0.into_owned(),
        }
    }

    /// A short name for messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "ISO-8859-1",
            Charset::Other(enc) => enc.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn latin1_round_trip() {
        let bytes = b"M\xfcller";
        let (text, cs) = Charset::decode(bytes, Some("8859/1")).unwrap();
        assert_eq!(text, "Müller");
        assert_eq!(cs, Charset::Latin1);
        assert_eq!(cs.encode(&text), bytes);
        // Undeclared and not UTF-8: falls back to ISO-8859-1.
        let (text, cs) = Charset::decode(bytes, None).unwrap();
        assert_eq!((text.as_ref(), cs), ("Müller", Charset::Latin1));
    }

    #[test]
    fn declared_latin1_but_utf8() {
        let (text, cs) = Charset::decode("Müller".as_bytes(), Some("8859/1")).unwrap();
        assert_eq!((text.as_ref(), cs), ("Müller", Charset::Utf8));
    }

    #[test]
    fn other_charsets() {
        let (text, cs) = Charset::decode(b"\xb3\xc2", Some("8859/2")).unwrap();
        assert_eq!(text, "łÂ");
        assert_eq!(cs.encode(&text), b"\xb3\xc2");
        let gb = Encoding::for_label(b"gb18030")
            .unwrap()
            .encode("张伟")
            .0
            .into_owned();
        let (text, cs) = Charset::decode(&gb, Some("GB 18030-2000")).unwrap();
        assert_eq!(text, "张伟");
        assert_eq!(cs.encode(&text), gb);
    }

    #[test]
    fn refuses_unsupported() {
        let e = Charset::decode(b"ab\xff\xfe", Some("UNICODE UTF-16")).unwrap_err();
        assert!(
            matches!(e, ParseError::UnsupportedCharset { offset: 2, .. }),
            "{e}"
        );
        assert!(Charset::decode(b"abc", Some("UNICODE UTF-16")).is_ok());
        assert!(Charset::decode(b"a\xff", Some("wrong")).is_err());
        assert!(matches!(
            Charset::decode(b"a\xff", Some("UNICODE UTF-8")),
            Err(ParseError::InvalidEncoding { .. })
        ));
    }
}
