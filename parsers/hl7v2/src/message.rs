//! The zero-copy, read-only message view: one scan over the bytes records where segments and
//! fields are; values are cut out and decoded only when read.

use std::borrow::Cow;

use crate::delim::{is_header_name, read_header, Delimiters};
use crate::element;
use crate::error::ParseError;
use crate::path::{FieldPath, Path};
use crate::MessageBuf;

/// Where the content starts: after a UTF-8 BOM and any leading whitespace or blank lines.
pub(crate) fn content_start(bytes: &[u8]) -> usize {
    let start = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let rest = bytes.get(start..).unwrap_or_default();
    start + rest.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

/// 1-based index and name of the segment holding byte `offset` of `text` (for error messages).
pub(crate) fn locate_segment(text: &[u8], offset: usize) -> (usize, String) {
    let before = text.get(..offset).unwrap_or(text);
    let mut index = 0;
    let mut start = 0;
    let mut in_line = false;
    for (i, &b) in before.iter().enumerate() {
        if b == b'\r' || b == b'\n' {
            in_line = false;
        } else if !in_line {
            in_line = true;
            index += 1;
            start = i;
        }
    }
    if !in_line {
        index += 1;
        start = offset;
    }
    let name = text
        .get(start..(start + 3).min(text.len()))
        .unwrap_or_default();
    (index, String::from_utf8_lossy(name).into_owned())
}

/// True for a valid segment name in a message: three characters A-Z or 0-9.
pub(crate) fn is_segment_name(name: &[u8]) -> bool {
    name.len() == 3
        && name
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A sufficient condition for [`Message::parse`] to succeed: UTF-8 from a valid MSH header on, every
/// non-empty line a segment name followed by the field separator. `false` means "not sure".
fn surely_parses(bytes: &[u8]) -> bool {
    if u32::try_from(bytes.len()).is_err() {
        return false;
    }
    let body = bytes.get(content_start(bytes)..).unwrap_or_default();
    if !body.starts_with(b"MSH") || std::str::from_utf8(body).is_err() {
        return false;
    }
    let first_end = memchr::memchr2(b'\r', b'\n', body).unwrap_or(body.len());
    let Ok(delimiters) = read_header(body.get(..first_end).unwrap_or_default(), 0, 1) else {
        return false;
    };
    // The field separator is never a letter or digit, so a valid name before it is the whole name.
    let named = |line: &[u8]| {
        line.is_empty()
            || (line.get(3) == Some(&delimiters.field)
                && is_segment_name(line.get(..3).unwrap_or_default()))
    };
    let mut start = 0;
    for end in memchr::memchr2_iter(b'\r', b'\n', body).chain(std::iter::once(body.len())) {
        if !named(body.get(start..end).unwrap_or_default()) {
            return false;
        }
        start = end + 1;
    }
    true
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    /// Index into `Message::bounds` of this segment's first field separator.
    first: u32,
    /// Number of field separators in this segment.
    count: u32,
}

/// A zero-copy, read-only view of one message; the fast path for routing and filtering.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    text: &'a str,
    /// Offset of `text` in the bytes given to `parse` (BOM and leading whitespace skipped).
    base: usize,
    delimiters: Delimiters,
    spans: Vec<Span>,
    bounds: Vec<u32>,
}

/// One segment of a [`Message`].
#[derive(Debug, Clone, Copy)]
pub struct SegmentRef<'a, 'm> {
    msg: &'m Message<'a>,
    index: usize,
}

impl<'a> Message<'a> {
    /// Parse UTF-8 (or ASCII) bytes; other character sets need [`MessageBuf::parse`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(ParseError::TooLarge { len: bytes.len() });
        }
        let base = content_start(bytes);
        let body = bytes.get(base..).unwrap_or_default();
        if body.is_empty() {
            return Err(ParseError::Empty);
        }
        let text = std::str::from_utf8(body).map_err(|e| {
            let (segment_index, segment) = locate_segment(body, e.valid_up_to());
            ParseError::InvalidEncoding {
                segment_index,
                segment,
                offset: base + e.valid_up_to(),
                charset: "UTF-8".to_string(),
            }
        })?;
        Self::scan(text, base)
    }

    /// Whether `bytes` parse, with exactly the error [`Message::parse`] would return, without building
    /// the field index: what a receiver needs to accept or reject a message it keeps as bytes.
    ///
    /// Well-formed messages are checked line by line instead of field by field; anything else is
    /// handed to `parse`, so the two always agree.
    pub fn check(bytes: &[u8]) -> Result<(), ParseError> {
        if surely_parses(bytes) {
            Ok(())
        } else {
            Message::parse(bytes).map(drop)
        }
    }

    /// Index `text` (which starts at a segment) in one pass.
    fn scan(text: &'a str, base: usize) -> Result<Self, ParseError> {
        let bytes = text.as_bytes();
        if !bytes.starts_with(b"MSH") {
            return Err(ParseError::NotMsh { offset: base });
        }
        let first_end = memchr::memchr2(b'\r', b'\n', bytes).unwrap_or(bytes.len());
        let delimiters = read_header(bytes.get(..first_end).unwrap_or_default(), base, 1)?;
        let fs = delimiters.field;
        let mut spans: Vec<Span> = Vec::with_capacity(16);
        let mut bounds: Vec<u32> = Vec::with_capacity(bytes.len() / 8);
        let mut seg_start = 0usize;
        let mut first = 0usize;
        let err_name = |start: usize, end: usize, index: usize| {
            let shown =
                String::from_utf8_lossy(bytes.get(start..end.min(start + 3)).unwrap_or_default())
                    .into_owned();
            let name = bytes.get(start..end).unwrap_or_default();
            if name.len() > 3 && is_segment_name(name.get(..3).unwrap_or_default()) {
                ParseError::FieldSeparatorMissing {
                    segment_index: index,
                    segment: shown,
                    offset: base + start,
                }
            } else {
                ParseError::InvalidSegmentName {
                    segment_index: index,
                    segment: shown,
                    offset: base + start,
                }
            }
        };
        // Positions fit in u32: the caller checked the length.
        let pos32 = |p: usize| u32::try_from(p).unwrap_or(u32::MAX);
        for pos in memchr::memchr3_iter(fs, b'\r', b'\n', bytes) {
            if bytes.get(pos) == Some(&fs) {
                if bounds.len() == first {
                    let name = bytes.get(seg_start..pos).unwrap_or_default();
                    if !is_segment_name(name) {
                        return Err(err_name(seg_start, pos, spans.len() + 1));
                    }
                }
                bounds.push(pos32(pos));
                continue;
            }
            if pos > seg_start {
                Self::close(
                    bytes,
                    seg_start,
                    pos,
                    first,
                    &mut bounds,
                    &mut spans,
                    &err_name,
                )?;
            }
            seg_start = pos + 1;
            first = bounds.len();
        }
        if seg_start < bytes.len() {
            Self::close(
                bytes,
                seg_start,
                bytes.len(),
                first,
                &mut bounds,
                &mut spans,
                &err_name,
            )?;
        }
        Ok(Self {
            text,
            base,
            delimiters,
            spans,
            bounds,
        })
    }

    fn close(
        bytes: &[u8],
        start: usize,
        end: usize,
        first: usize,
        bounds: &mut [u32],
        spans: &mut Vec<Span>,
        err_name: &dyn Fn(usize, usize, usize) -> ParseError,
    ) -> Result<(), ParseError> {
        let count = bounds.len() - first;
        let line = bytes.get(start..end).unwrap_or_default();
        if count == 0 && line.iter().all(u8::is_ascii_whitespace) {
            // A whitespace-only line is a blank line, not a segment.
            return Ok(());
        }
        if count == 0 && !is_segment_name(bytes.get(start..end).unwrap_or_default()) {
            return Err(err_name(start, end, spans.len() + 1));
        }
        let p = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        spans.push(Span {
            start: p(start),
            end: p(end),
            first: p(first),
            count: p(count),
        });
        Ok(())
    }

    /// The decoded value at `path`; `None` when the segment or element is absent.
    ///
    /// Leaf values are unescaped (borrowed when they hold no escape sequence); an element that
    /// still holds separators (a whole field with components, say) comes back as raw HL7 text.
    pub fn get(&self, path: &Path) -> Option<Cow<'a, str>> {
        let seg = self.find(path.segment(), path.occurrence())?;
        match path.field() {
            None => Some(Cow::Borrowed(seg.raw())),
            Some(fp) => seg.get(fp),
        }
    }

    /// The raw (still escaped) text at `path`.
    pub fn get_raw(&self, path: &Path) -> Option<&'a str> {
        let seg = self.find(path.segment(), path.occurrence())?;
        match path.field() {
            None => Some(seg.raw()),
            Some(fp) => seg.get_raw(fp),
        }
    }

    /// The `occurrence`th (1-based) segment named `name`.
    pub fn find(&self, name: &str, occurrence: usize) -> Option<SegmentRef<'a, '_>> {
        self.segments()
            .filter(|s| s.name() == name)
            .nth(occurrence.checked_sub(1)?)
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.spans.len()
    }

    /// The segments in order.
    pub fn segments(&self) -> impl Iterator<Item = SegmentRef<'a, '_>> {
        (0..self.spans.len()).map(move |index| SegmentRef { msg: self, index })
    }

    /// The segment at a 0-based index.
    pub fn segment(&self, index: usize) -> Option<SegmentRef<'a, '_>> {
        (index < self.spans.len()).then_some(SegmentRef { msg: self, index })
    }

    /// The delimiters declared in MSH.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }

    /// The message text (from MSH on, as given, terminators not normalised).
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Byte offset of the MSH segment in the input (after a BOM/leading whitespace).
    pub fn start_offset(&self) -> usize {
        self.base
    }

    /// An owned, editable copy (UTF-8, or the ASCII-compatible charset MSH-18 declares).
    pub fn to_owned(&self) -> MessageBuf {
        let charset = crate::charset::Charset::for_utf8_text(self.text, self.msh18());
        MessageBuf::from_view(self, charset)
    }

    fn msh18(&self) -> Option<&'a str> {
        let seg = self.segment(0)?;
        let raw = seg.field(18)?;
        element::nth_piece(raw, self.delimiters.repetition, 0)
    }
}

impl<'a> SegmentRef<'a, '_> {
    fn span(&self) -> Span {
        self.msg.spans.get(self.index).copied().unwrap_or(Span {
            start: 0,
            end: 0,
            first: 0,
            count: 0,
        })
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.msg.text.get(start..end).unwrap_or_default()
    }

    fn bound(&self, i: usize) -> usize {
        self.msg.bounds.get(i).map_or(0, |&b| b as usize)
    }

    /// 0-based position of this segment in the message.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The segment name, e.g. `PID`.
    pub fn name(&self) -> &'a str {
        let s = self.span();
        self.slice(s.start as usize, s.start as usize + 3)
    }

    /// The whole segment as raw text (no terminator).
    pub fn raw(&self) -> &'a str {
        let s = self.span();
        self.slice(s.start as usize, s.end as usize)
    }

    fn is_header(&self) -> bool {
        is_header_name(self.name().as_bytes())
    }

    /// Number of fields (for MSH/FHS/BHS this counts MSH-1, the field separator).
    pub fn field_count(&self) -> usize {
        let count = self.span().count as usize;
        if self.is_header() && count > 0 {
            count + 1
        } else {
            count
        }
    }

    /// Raw text of field `n` (1-based; MSH-1 is the field separator, MSH-2 the encoding characters).
    pub fn field(&self, n: usize) -> Option<&'a str> {
        let s = self.span();
        if n == 0 {
            return None;
        }
        let (first, count) = (s.first as usize, s.count as usize);
        let k = if self.is_header() {
            if n == 1 {
                let sep = self.bound(first);
                return (count > 0).then(|| self.slice(sep, sep + 1));
            }
            n - 1
        } else {
            n
        };
        if k > count {
            return None;
        }
        let start = self.bound(first + k - 1) + 1;
        let end = if k < count {
            self.bound(first + k)
        } else {
            s.end as usize
        };
        Some(self.slice(start, end))
    }

    /// Raw text at a field path inside this segment.
    pub fn get_raw(&self, fp: &FieldPath) -> Option<&'a str> {
        let field = self.field(fp.field)?;
        if self.is_header() && fp.field <= 2 {
            return whole_only(field, fp);
        }
        element::locate(field, fp, &self.msg.delimiters)
    }

    /// Decoded value at a field path inside this segment (see [`Message::get`]).
    pub fn get(&self, fp: &FieldPath) -> Option<Cow<'a, str>> {
        let raw = self.get_raw(fp)?;
        if self.is_header() && fp.field <= 2 {
            return Some(Cow::Borrowed(raw));
        }
        Some(element::value(raw, &self.msg.delimiters))
    }
}

/// MSH-1/MSH-2 are read whole: they are never split or unescaped.
pub(crate) fn whole_only<'s>(field: &'s str, fp: &FieldPath) -> Option<&'s str> {
    let first = |x: Option<usize>| x.is_none_or(|v| v == 1);
    (first(fp.repetition) && first(fp.component) && first(fp.subcomponent)).then_some(field)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ADT: &[u8] = b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101||ADT^A01|C1|P|2.5\rPID|1||123^^^H~456^^^M||Doe^John\\T\\Jr\r";

    fn get(m: &Message, p: &str) -> Option<String> {
        m.get(&p.parse().unwrap()).map(|c| c.into_owned())
    }

    #[test]
    fn reads_fields() {
        let m = Message::parse(ADT).unwrap();
        assert_eq!(m.segment_count(), 2);
        assert_eq!(get(&m, "MSH-1").unwrap(), "|");
        assert_eq!(get(&m, "MSH-2").unwrap(), "^~\\&");
        assert_eq!(get(&m, "MSH-3").unwrap(), "APP");
        assert_eq!(get(&m, "MSH-9-2").unwrap(), "A01");
        assert_eq!(get(&m, "PID-5-2").unwrap(), "John&Jr");
        assert_eq!(get(&m, "PID-3[2]-1").unwrap(), "456");
        assert_eq!(get(&m, "PID-3").unwrap(), "123^^^H~456^^^M");
        assert_eq!(get(&m, "PID-99"), None);
        assert_eq!(get(&m, "OBX-1"), None);
        assert!(matches!(
            m.get(&"PID-5-1".parse().unwrap()),
            Some(Cow::Borrowed("Doe"))
        ));
    }

    #[test]
    fn errors_point_at_segment() {
        let e = Message::parse(b"MSH|^~\\&|A\rPID|1\rPIDX1\r").unwrap_err();
        assert_eq!(
            e.to_string(),
            "segment 3 (PID): field separator missing after segment name (byte 17)"
        );
        let e = Message::parse(b"PID|1\r").unwrap_err();
        assert_eq!(e.to_string(), "byte 0: message does not start with MSH");
        let e = Message::parse(b"MSH|^~\\&\rpid|1").unwrap_err();
        assert_eq!(Message::check(b"MSH|^~\\&\rpid|1"), Err(e.clone()));
        assert!(matches!(
            e,
            ParseError::InvalidSegmentName {
                segment_index: 2,
                ..
            }
        ));
    }
}
