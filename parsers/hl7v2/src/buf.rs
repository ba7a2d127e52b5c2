//! The owned, editable message that scripts change.
//!
//! Each segment is kept as its raw (escaped) wire text, so an unmodified message encodes back to
//! the exact bytes it was parsed from; reads find the field and decode it, writes escape and splice
//! the new text in. One string per segment rather than per field keeps parsing close to the
//! zero-copy view's speed: most fields of a message are never touched.

use std::borrow::Cow;

use crate::charset::Charset;
use crate::delim::{is_header_name, Delimiters};
use crate::element;
use crate::error::{ParseError, PathError};
use crate::escape::escape;
use crate::message::{content_start, whole_only, Message};
use crate::path::{FieldPath, Path};

/// One segment as written (name and fields, no terminator). Invariant: the name is 3 ASCII
/// characters, followed by nothing or by the field separator.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentBuf {
    raw: String,
}

impl SegmentBuf {
    fn name(&self) -> &str {
        self.raw.get(..3).unwrap_or_default()
    }

    fn is_header(&self) -> bool {
        is_header_name(self.name().as_bytes())
    }

    /// Number of fields (for MSH/FHS/BHS, MSH-1 counts), as [`crate::SegmentRef::field_count`].
    fn field_count(&self, fs: u8) -> usize {
        let bytes = self.raw.as_bytes();
        let seps = memchr::memchr_iter(fs, bytes.get(3..).unwrap_or_default()).count();
        if self.is_header() && seps > 0 {
            seps + 1
        } else {
            seps
        }
    }

    /// Byte range in `raw` of field `n` (1-based; MSH-1 is the separator itself).
    fn field_range(&self, n: usize, fs: u8) -> Option<std::ops::Range<usize>> {
        if self.raw.len() <= 3 || n == 0 {
            return None;
        }
        let piece = if self.is_header() {
            if n == 1 {
                return Some(3..4);
            }
            n - 2
        } else {
            n - 1
        };
        let r = element::piece_range(self.raw.as_bytes().get(4..)?, fs, piece)?;
        Some(r.start + 4..r.end + 4)
    }

    fn field(&self, n: usize, fs: u8) -> Option<&str> {
        self.raw.get(self.field_range(n, fs)?)
    }

    /// The fields in order (`fields()[i]` is field i + 1).
    fn fields(&self, fs: u8) -> impl Iterator<Item = &str> {
        let header = self.is_header().then(|| self.raw.get(3..4)).flatten();
        let rest = self
            .raw
            .get(4..)
            .filter(|_| self.raw.len() > 3)
            .map(|r| r.split(char::from(fs)));
        header.into_iter().chain(rest.into_iter().flatten())
    }

    /// Replace field `n` (n > 0), adding empty fields before it when the segment is shorter.
    fn set_field(&mut self, n: usize, value: &str, fs: u8) {
        match self.field_range(n, fs) {
            Some(r) => self.raw.replace_range(r, value),
            None => {
                let missing = n.saturating_sub(self.field_count(fs));
                self.raw
                    .extend(std::iter::repeat_n(char::from(fs), missing));
                self.raw.push_str(value);
            }
        }
    }

    /// Insert raw `value` as field `n`, moving field n and later ones one place right.
    fn insert_field(&mut self, n: usize, value: &str, fs: u8) {
        match self.field_range(n, fs) {
            Some(r) => {
                let mut text = String::with_capacity(value.len() + 1);
                text.push_str(value);
                text.push(char::from(fs));
                self.raw.insert_str(r.start, &text);
            }
            None => self.set_field(n, value, fs),
        }
    }

    /// Remove field `n` with its separator, moving later fields one place left.
    fn remove_field(&mut self, n: usize, fs: u8) -> bool {
        // Every field range but MSH-1's starts right after its separator.
        match self.field_range(n, fs) {
            Some(r) if r.start > 3 && !(self.is_header() && n <= 2) => {
                self.raw.replace_range(r.start - 1..r.end, "");
                true
            }
            _ => false,
        }
    }

    /// Drop trailing empty fields (HL7 treats `PID|1||` as `PID|1`), keeping MSH-1 and MSH-2.
    fn trim_trailing(&mut self, fs: u8) {
        let keep = if self.is_header() { 2 } else { 0 };
        let mut count = self.field_count(fs);
        while count > keep && self.raw.as_bytes().last() == Some(&fs) {
            self.raw.pop();
            count -= 1;
        }
    }
}

/// How far past the existing segments or positions one write may create new ones.
pub const MAX_WRITE_REACH: usize = 1000;

/// An owned, editable message in any supported character set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuf {
    delimiters: Delimiters,
    charset: Charset,
    segments: Vec<SegmentBuf>,
}

impl MessageBuf {
    /// Parse one message in any supported character set (see [`Charset`] for the policy).
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let (text, charset) = Charset::decode_message(bytes)?;
        let view = Message::parse(text.as_bytes()).map_err(|e| {
            // Offsets in decoded text differ from the input's where a character changed length;
            // re-encoding the text before the error gives the input's byte count back.
            let in_input = |offset: usize| match text {
                Cow::Borrowed(_) => offset,
                Cow::Owned(ref t) => charset.encode(t.get(..offset).unwrap_or(t)).len(),
            };
            e.map_offset(in_input).shifted(content_start(bytes))
        })?;
        Ok(Self::from_view(&view, charset))
    }

    /// Whether `bytes` parse in any supported character set: [`Message::check`] on the bytes, or for
    /// bytes that are not UTF-8 on their text decoded by MSH-18. Only a message that fails goes through
    /// [`MessageBuf::parse`], whose error points at the input's bytes rather than the decoded text's.
    pub fn check(bytes: &[u8]) -> Result<(), ParseError> {
        match Message::check(bytes) {
            Err(ParseError::InvalidEncoding { .. }) => match Charset::decode_message(bytes) {
                Ok((text, _)) if Message::check(text.as_bytes()).is_ok() => Ok(()),
                _ => Self::parse(bytes).map(drop),
            },
            other => other,
        }
    }

    pub(crate) fn from_view(view: &Message<'_>, charset: Charset) -> Self {
        let segments = view
            .segments()
            .map(|s| SegmentBuf {
                raw: s.raw().to_string(),
            })
            .collect();
        Self {
            delimiters: *view.delimiters(),
            charset,
            segments,
        }
    }

    /// The delimiters declared in MSH.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }

    /// The character set [`MessageBuf::encode`] writes.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// Change the character set [`MessageBuf::encode`] writes (MSH-18 is not changed).
    pub fn set_charset(&mut self, charset: Charset) {
        self.charset = charset;
    }

    fn seg_index(&self, name: &str, occurrence: usize) -> Option<usize> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name() == name)
            .nth(occurrence.checked_sub(1)?)
            .map(|(i, _)| i)
    }

    fn raw_in(&self, index: usize, fp: &FieldPath) -> Option<&str> {
        let seg = self.segments.get(index)?;
        let field = seg.field(fp.field, self.delimiters.field)?;
        if seg.is_header() && fp.field <= 2 {
            return whole_only(field, fp);
        }
        element::locate(field, fp, &self.delimiters)
    }

    /// The raw (still escaped) HL7 text at `path`; a whole segment without its terminator.
    pub fn get_raw(&self, path: &Path) -> Option<String> {
        let index = self.seg_index(path.segment(), path.occurrence())?;
        match path.field() {
            None => self.segment_text(index),
            Some(fp) => self.raw_in(index, fp).map(str::to_string),
        }
    }

    /// The decoded value at `path`, `None` when absent.
    ///
    /// Leaves are unescaped; an element that still holds separators (e.g. `PID-5` when it has
    /// components, or `PID-3` with repetitions) is returned as raw HL7 text. `PID-3` is the whole
    /// field, `PID-3[1]` its first repetition, `PID-3-1` the first component of the first repetition.
    pub fn get(&self, path: &Path) -> Option<String> {
        let index = self.seg_index(path.segment(), path.occurrence())?;
        match path.field() {
            None => self.segment_text(index),
            Some(fp) => self.get_in(index, fp),
        }
    }

    /// The decoded value at `p` in the segment at 0-based `segment_index`.
    pub fn get_in(&self, segment_index: usize, p: &FieldPath) -> Option<String> {
        let raw = self.raw_in(segment_index, p)?;
        let header = self
            .segments
            .get(segment_index)
            .is_some_and(SegmentBuf::is_header);
        if header && p.field <= 2 {
            return Some(raw.to_string());
        }
        Some(element::value(raw, &self.delimiters).into_owned())
    }

    /// True when the element at `path` exists and is not empty (an HL7 null `""` counts as present).
    pub fn has(&self, path: &Path) -> bool {
        self.get_raw(path).is_some_and(|v| !v.is_empty())
    }

    /// True when the element at `path` is the explicit HL7 null `""` (not merely empty).
    pub fn is_null(&self, path: &Path) -> bool {
        path.field().is_some() && self.get_raw(path).is_some_and(|v| v == "\"\"")
    }

    /// Set the value at `path`, escaping separators in `value` and creating what is missing
    /// (segments are appended up to the requested occurrence).
    pub fn set(&mut self, path: &Path, value: &str) -> Result<(), PathError> {
        let encoded = escape(value, &self.delimiters).ok_or_else(|| PathError::CannotEscape {
            path: path.to_string(),
        })?;
        self.set_raw(path, &encoded)
    }

    /// Set already-encoded HL7 text at `path` (for copying a whole structured element).
    pub fn set_raw(&mut self, path: &Path, raw: &str) -> Result<(), PathError> {
        let fp = *path.field().ok_or_else(|| PathError::FieldRequired {
            path: path.to_string(),
        })?;
        let index = match self.seg_index(path.segment(), path.occurrence()) {
            Some(i) => i,
            None => {
                let have = self
                    .segments
                    .iter()
                    .filter(|s| s.name() == path.segment())
                    .count();
                if path.occurrence() - have > MAX_WRITE_REACH {
                    return Err(PathError::TooFar {
                        path: path.to_string(),
                        what: "segment",
                        number: path.occurrence(),
                        limit: MAX_WRITE_REACH,
                    });
                }
                for _ in have..path.occurrence() {
                    self.add_segment(path.segment())?;
                }
                self.segments.len().saturating_sub(1)
            }
        };
        self.write_in(index, &fp, raw)
            .map_err(|e| with_path(e, path))
    }

    /// Set the value at `p` in the segment at 0-based `segment_index` (escapes separators).
    pub fn set_in(
        &mut self,
        segment_index: usize,
        p: &FieldPath,
        value: &str,
    ) -> Result<(), PathError> {
        let encoded = escape(value, &self.delimiters).ok_or_else(|| PathError::CannotEscape {
            path: p.to_string(),
        })?;
        self.write_in(segment_index, p, &encoded)
    }

    fn write_in(&mut self, index: usize, fp: &FieldPath, raw: &str) -> Result<(), PathError> {
        let count = self.segments.len();
        let d = self.delimiters;
        let seg = self
            .segments
            .get_mut(index)
            .ok_or(PathError::SegmentIndex { index, count })?;
        if !fp.is_valid() {
            return Err(PathError::Zero {
                path: fp.to_string(),
            });
        }
        if seg.is_header() && fp.field <= 2 {
            return Err(PathError::ReadOnly {
                path: fp.to_string(),
            });
        }
        if fp.subcomponent.is_some_and(|s| s > 1) && d.subcomponent.is_none() {
            return Err(PathError::NoSubcomponentSeparator {
                path: fp.to_string(),
            });
        }
        // Positions past the end are created empty, so the distance from what exists is what a write
        // costs. A field's pieces are few, so they count from 0; the segment's fields are counted only
        // for a field number that could be too far, keeping ordinary writes cheap.
        let fields = if fp.field > MAX_WRITE_REACH {
            seg.field_count(d.field)
        } else {
            0
        };
        let reach = [
            ("field", fp.field, fields),
            ("repetition", fp.repetition.unwrap_or(1), 0),
            ("component", fp.component.unwrap_or(1), 0),
            ("subcomponent", fp.subcomponent.unwrap_or(1), 0),
        ];
        if let Some(&(what, number, _)) = reach
            .iter()
            .find(|(_, number, have)| number.saturating_sub(*have) > MAX_WRITE_REACH)
        {
            return Err(PathError::TooFar {
                path: fp.to_string(),
                what,
                number,
                limit: MAX_WRITE_REACH,
            });
        }
        let new = element::replace(
            seg.field(fp.field, d.field).unwrap_or_default(),
            fp,
            raw,
            &d,
        );
        seg.set_field(fp.field, &new, d.field);
        seg.trim_trailing(d.field);
        Ok(())
    }

    /// Remove what `path` addresses: a whole segment, a field's content, one repetition
    /// (later ones move up) or a component's/subcomponent's content. Returns whether anything was there.
    pub fn remove(&mut self, path: &Path) -> bool {
        let Some(index) = self.seg_index(path.segment(), path.occurrence()) else {
            return false;
        };
        let Some(fp) = path.field() else {
            return self.remove_segment(index);
        };
        self.remove_in(index, fp)
    }

    /// [`MessageBuf::remove`] inside the segment at 0-based `segment_index`.
    pub fn remove_in(&mut self, segment_index: usize, fp: &FieldPath) -> bool {
        if self.raw_in(segment_index, fp).is_none_or(str::is_empty) {
            return false;
        }
        let d = self.delimiters;
        if let (Some(r), None) = (fp.repetition, fp.component) {
            let Some(seg) = self.segments.get_mut(segment_index) else {
                return false;
            };
            if seg.is_header() && fp.field <= 2 {
                return false;
            }
            let Some(field) = seg.field(fp.field, d.field) else {
                return false;
            };
            return match element::delete_piece(field, d.repetition, r - 1) {
                Some(new) => {
                    seg.set_field(fp.field, &new, d.field);
                    true
                }
                None => false,
            };
        }
        self.write_in(segment_index, fp, "").is_ok()
    }

    /// Count: segments named like the path when it has no field; else the children of the
    /// addressed element (repetitions of a field, components of a repetition, subcomponents of a
    /// component).
    pub fn count(&self, path: &Path) -> usize {
        let Some(fp) = path.field() else {
            return self
                .segments
                .iter()
                .filter(|s| s.name() == path.segment())
                .count();
        };
        let Some(index) = self.seg_index(path.segment(), path.occurrence()) else {
            return 0;
        };
        let Some(seg) = self.segments.get(index) else {
            return 0;
        };
        let Some(field) = seg.field(fp.field, self.delimiters.field) else {
            return 0;
        };
        if seg.is_header() && fp.field <= 2 {
            return usize::from(whole_only(field, fp).is_some());
        }
        element::count(field, fp, &self.delimiters)
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Length of the message as text (segments and their terminators), without encoding it.
    pub fn text_len(&self) -> usize {
        self.segments.iter().map(|s| s.raw.len() + 1).sum()
    }

    /// Segment names in order.
    pub fn segment_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(SegmentBuf::name)
    }

    /// 0-based indices of the segments named `name`.
    pub fn segment_indices(&self, name: &str) -> Vec<usize> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name() == name)
            .map(|(i, _)| i)
            .collect()
    }

    /// Raw text of the segment at a 0-based index (no terminator).
    pub fn segment_text(&self, index: usize) -> Option<String> {
        self.segments.get(index).map(|s| s.raw.clone())
    }

    fn check_new_name(name: &str) -> Result<(), PathError> {
        if crate::message::is_segment_name(name.as_bytes()) && !is_header_name(name.as_bytes()) {
            Ok(())
        } else {
            Err(PathError::InvalidSegment {
                path: name.to_string(),
            })
        }
    }

    /// Insert an empty segment at 0-based `index` (1..=segment_count; nothing goes before MSH).
    pub fn insert_segment(&mut self, index: usize, name: &str) -> Result<(), PathError> {
        Self::check_new_name(name)?;
        let count = self.segments.len();
        if index == 0 || index > count {
            return Err(PathError::SegmentIndex { index, count });
        }
        self.segments.insert(
            index,
            SegmentBuf {
                raw: name.to_string(),
            },
        );
        Ok(())
    }

    /// Append an empty segment; returns its 0-based index.
    pub fn add_segment(&mut self, name: &str) -> Result<usize, PathError> {
        Self::check_new_name(name)?;
        self.segments.push(SegmentBuf {
            raw: name.to_string(),
        });
        Ok(self.segments.len() - 1)
    }

    /// Remove the segment at a 0-based index; MSH (index 0) cannot be removed.
    pub fn remove_segment(&mut self, index: usize) -> bool {
        if index == 0 || index >= self.segments.len() {
            return false;
        }
        self.segments.remove(index);
        true
    }

    /// Insert a field at 1-based position `field` of the segment at 0-based `segment_index`,
    /// moving that field and later ones one place right (`value` is escaped). Past the end, empty
    /// fields are added before it. MSH-1 and MSH-2 cannot move.
    pub fn insert_field(
        &mut self,
        segment_index: usize,
        field: usize,
        value: &str,
    ) -> Result<(), PathError> {
        let fp = FieldPath::field(field);
        let encoded = escape(value, &self.delimiters).ok_or_else(|| PathError::CannotEscape {
            path: fp.to_string(),
        })?;
        let count = self.segments.len();
        let fs = self.delimiters.field;
        let seg = self
            .segments
            .get_mut(segment_index)
            .ok_or(PathError::SegmentIndex {
                index: segment_index,
                count,
            })?;
        if field == 0 {
            return Err(PathError::Zero {
                path: fp.to_string(),
            });
        }
        if seg.is_header() && field <= 2 {
            return Err(PathError::ReadOnly {
                path: fp.to_string(),
            });
        }
        seg.insert_field(field, &encoded, fs);
        seg.trim_trailing(fs);
        Ok(())
    }

    /// Remove field `field` (1-based) of the segment at 0-based `segment_index`, moving later
    /// fields one place left; false when there is no such field (or it is MSH-1/MSH-2).
    pub fn remove_field(&mut self, segment_index: usize, field: usize) -> bool {
        let fs = self.delimiters.field;
        self.segments
            .get_mut(segment_index)
            .is_some_and(|seg| seg.remove_field(field, fs))
    }

    /// The segments in order, borrowed.
    pub fn segments(&self) -> impl Iterator<Item = SegmentView<'_>> {
        (0..self.segments.len()).map(move |index| SegmentView { buf: self, index })
    }

    /// The segment at a 0-based index, borrowed.
    pub fn segment(&self, index: usize) -> Option<SegmentView<'_>> {
        (index < self.segments.len()).then_some(SegmentView { buf: self, index })
    }

    /// Message type as `MSH-9-1^MSH-9-2`, e.g. `ADT^A01` (just `ADT` when there is no trigger).
    pub fn message_type(&self) -> String {
        let part = |c: usize| {
            self.raw_in(
                0,
                &FieldPath {
                    component: Some(c),
                    ..FieldPath::field(9)
                },
            )
            .map(|v| element::value(v, &self.delimiters).into_owned())
            .unwrap_or_default()
        };
        let (code, trigger) = (part(1), part(2));
        if trigger.is_empty() {
            code
        } else {
            format!("{code}^{trigger}")
        }
    }

    /// MSH-10, the message control id (empty when absent).
    pub fn control_id(&self) -> String {
        self.get_in(0, &FieldPath::field(10)).unwrap_or_default()
    }

    /// The message as UTF-8 text with CR segment terminators.
    pub fn to_hl7_string(&self) -> String {
        let mut out = String::with_capacity(self.segments.iter().map(|s| s.raw.len() + 1).sum());
        for seg in &self.segments {
            out.push_str(&seg.raw);
            out.push('\r');
        }
        out
    }

    /// The message in its character set with CR segment terminators.
    pub fn encode(&self) -> Vec<u8> {
        self.charset.encode(&self.to_hl7_string())
    }

    /// The message as JSON: `{"segments":[{"name":"PID","fields":[...]}]}`.
    ///
    /// `fields[i]` is field i+1. A field with no separators is a decoded string (`""` when empty,
    /// `null` for the HL7 null `""`). A structured field is an array of repetitions; a repetition
    /// with components is an array of components; a component with subcomponents is an array of
    /// subcomponent strings. MSH-1 and MSH-2 are plain strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value};
        let d = &self.delimiters;
        let leaf = |s: &str| -> Value {
            if s == "\"\"" {
                Value::Null
            } else {
                Value::String(crate::escape::unescape(s, d).into_owned())
            }
        };
        let split = |s: &str, sep: Option<u8>| -> Vec<String> {
            match sep {
                Some(c) => s.split(char::from(c)).map(str::to_string).collect(),
                None => vec![s.to_string()],
            }
        };
        let has = |s: &str, sep: Option<u8>| sep.is_some_and(|c| s.as_bytes().contains(&c));
        let comp = |c: &str| -> Value {
            if has(c, d.subcomponent) {
                Value::Array(split(c, d.subcomponent).iter().map(|s| leaf(s)).collect())
            } else {
                leaf(c)
            }
        };
        let rep = |r: &str| -> Value {
            if has(r, Some(d.component)) {
                Value::Array(
                    split(r, Some(d.component))
                        .iter()
                        .map(|c| comp(c))
                        .collect(),
                )
            } else {
                comp(r)
            }
        };
        let field = |f: &str| -> Value {
            if has(f, Some(d.repetition)) || has(f, Some(d.component)) || has(f, d.subcomponent) {
                Value::Array(
                    split(f, Some(d.repetition))
                        .iter()
                        .map(|r| rep(r))
                        .collect(),
                )
            } else {
                leaf(f)
            }
        };
        let segments: Vec<Value> = self
            .segments
            .iter()
            .map(|seg| {
                let fields: Vec<Value> = seg
                    .fields(d.field)
                    .enumerate()
                    .map(|(i, f)| {
                        if seg.is_header() && i < 2 {
                            Value::String(f.to_string())
                        } else {
                            field(f)
                        }
                    })
                    .collect();
                json!({ "name": seg.name(), "fields": fields })
            })
            .collect();
        json!({ "segments": segments })
    }
}

/// One segment of a [`MessageBuf`], as [`MessageBuf::segments`] yields it.
#[derive(Debug, Clone, Copy)]
pub struct SegmentView<'m> {
    buf: &'m MessageBuf,
    index: usize,
}

impl<'m> SegmentView<'m> {
    fn seg(&self) -> Option<&'m SegmentBuf> {
        self.buf.segments.get(self.index)
    }

    /// 0-based position in the message (what [`MessageBuf::set_in`] and friends take).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The segment name, e.g. `PID`.
    pub fn name(&self) -> &'m str {
        self.seg().map_or("", SegmentBuf::name)
    }

    /// The segment's raw HL7 text (no terminator).
    pub fn raw(&self) -> &'m str {
        self.seg().map_or("", |s| s.raw.as_str())
    }

    /// Number of fields (for MSH this counts MSH-1).
    pub fn field_count(&self) -> usize {
        self.seg()
            .map_or(0, |s| s.field_count(self.buf.delimiters.field))
    }

    /// The decoded value at `p` inside this segment.
    pub fn get(&self, p: &FieldPath) -> Option<String> {
        self.buf.get_in(self.index, p)
    }

    /// The raw (still escaped) text at `p` inside this segment.
    pub fn get_raw(&self, p: &FieldPath) -> Option<&'m str> {
        self.buf.raw_in(self.index, p)
    }
}

fn with_path(e: PathError, path: &Path) -> PathError {
    let p = path.to_string();
    match e {
        PathError::ReadOnly { .. } => PathError::ReadOnly { path: p },
        PathError::NoSubcomponentSeparator { .. } => PathError::NoSubcomponentSeparator { path: p },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ADT: &[u8] = b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101||ADT^A01|C1|P|2.5\rPID|1||123^^^H~456^^^M||Doe^John\rOBX|1\rOBX|2\r";

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip_and_edit() {
        let mut m = MessageBuf::parse(ADT).unwrap();
        assert_eq!(m.encode(), ADT);
        assert_eq!(m.message_type(), "ADT^A01");
        assert_eq!(m.control_id(), "C1");
        m.set(&p("PID-5-3"), "Q|R").unwrap();
        assert_eq!(m.get_raw(&p("PID-5")).unwrap(), "Doe^John^Q\\F\\R");
        assert_eq!(m.get(&p("PID-5-3")).unwrap(), "Q|R");
        m.set(&p("OBX[4]-5-1-2"), "x").unwrap();
        assert_eq!(m.count(&p("OBX")), 4);
        assert_eq!(m.get_raw(&p("OBX[4]")).unwrap(), "OBX|||||&x");
        assert!(m.remove(&p("PID-3[1]")));
        assert_eq!(m.get(&p("PID-3")).unwrap(), "456^^^M");
        assert_eq!(
            m.set(&p("MSH-2"), "x"),
            Err(PathError::ReadOnly {
                path: "MSH-2".into()
            })
        );
        assert!(matches!(
            m.set(&p("PID"), "x"),
            Err(PathError::FieldRequired { .. })
        ));
    }

    #[test]
    fn edits_splice_into_the_segment_text() {
        let mut m = MessageBuf::parse(b"MSH|^~\rPID\rOBX|1||x||y\r").unwrap();
        m.set(&p("MSH-5"), "R").unwrap();
        m.set(&p("PID-2"), "v").unwrap();
        m.set(&p("OBX-5"), "").unwrap();
        assert_eq!(m.to_hl7_string(), "MSH|^~|||R\rPID||v\rOBX|1||x\r");
        assert_eq!(m.get(&p("MSH-2")).unwrap(), "^~");
        m.set(&p("MSH-5"), "").unwrap();
        assert_eq!(m.segment_text(0).unwrap(), "MSH|^~");
        // Fields are 1-based; a hand-built FieldPath with 0 is refused, not a panic.
        assert!(matches!(
            m.set_in(1, &FieldPath::field(0), "x"),
            Err(PathError::Zero { .. })
        ));
        assert_eq!(m.get_in(1, &FieldPath::field(0)), None);
        let json = m.to_json();
        assert_eq!(json["segments"][0]["fields"][0], "|");
        assert_eq!(json["segments"][1]["fields"][1], "v");
    }

    #[test]
    fn check_accepts_other_charsets_and_still_finds_errors() {
        let latin1 =
            b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|L1|P|2.5|||||DEU|8859/1\rPID|1||||M\xfcller\r";
        assert!(matches!(
            Message::check(latin1),
            Err(ParseError::InvalidEncoding { .. })
        ));
        assert_eq!(MessageBuf::check(latin1), Ok(()));
        let (text, charset) = Charset::decode_message(latin1).unwrap();
        assert_eq!(charset, Charset::Latin1);
        assert!(text.ends_with("PID|1||||Müller\r"), "{text}");
        // Not UTF-8 and broken further on: the structural error is reported, not the encoding.
        let broken = b"\xef\xbb\xbfMSH|^~\\&|A\rPID|M\xfcller\rpid|1\r";
        let e = MessageBuf::check(broken).unwrap_err();
        assert!(
            matches!(
                e,
                ParseError::InvalidSegmentName {
                    segment_index: 3,
                    offset: 25,
                    ..
                }
            ),
            "{e:?}"
        );
        // Declared UTF-8 but not: still refused.
        let lying = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|L1|P|2.5|||||DEU|UNICODE UTF-8\rPID|M\xfc\r";
        assert!(matches!(
            MessageBuf::check(lying),
            Err(ParseError::InvalidEncoding { .. })
        ));
    }

    #[test]
    fn segments_iterate_and_fields_insert_and_remove() {
        let mut m = MessageBuf::parse(ADT).unwrap();
        let seen: Vec<(usize, &str, usize)> = m
            .segments()
            .map(|s| (s.index(), s.name(), s.field_count()))
            .collect();
        assert_eq!(
            seen,
            [(0, "MSH", 12), (1, "PID", 5), (2, "OBX", 1), (3, "OBX", 1)]
        );
        let pid = m.segment(1).unwrap();
        let given = FieldPath {
            component: Some(2),
            ..FieldPath::field(5)
        };
        assert_eq!(pid.get(&given).unwrap(), "John");
        assert_eq!(pid.get(&FieldPath::field(1)).unwrap(), "1");
        assert_eq!(pid.get_raw(&FieldPath::field(5)).unwrap(), "Doe^John");
        assert!(m.segment(4).is_none());

        m.insert_field(1, 2, "a|b").unwrap();
        assert_eq!(
            m.segment_text(1).unwrap(),
            "PID|1|a\\F\\b||123^^^H~456^^^M||Doe^John"
        );
        assert_eq!(m.get(&p("PID-6-2")).unwrap(), "John");
        m.insert_field(2, 4, "x").unwrap();
        assert_eq!(m.segment_text(2).unwrap(), "OBX|1|||x");
        m.insert_field(0, 3, "NEWAPP").unwrap();
        assert_eq!(m.get(&p("MSH-3")).unwrap(), "NEWAPP");
        assert_eq!(m.get(&p("MSH-4")).unwrap(), "APP");
        assert_eq!(
            m.insert_field(0, 2, "x"),
            Err(PathError::ReadOnly { path: "2".into() })
        );
        assert!(matches!(
            m.insert_field(9, 1, "x"),
            Err(PathError::SegmentIndex { index: 9, .. })
        ));
        assert!(matches!(
            m.insert_field(1, 0, "x"),
            Err(PathError::Zero { .. })
        ));

        assert!(m.remove_field(0, 3));
        assert!(m.remove_field(1, 2));
        let before = std::str::from_utf8(ADT).unwrap();
        assert_eq!(m.to_hl7_string(), before.replace("OBX|1\r", "OBX|1|||x\r"));
        assert!(m.remove_field(1, 1));
        assert_eq!(m.segment_text(1).unwrap(), "PID||123^^^H~456^^^M||Doe^John");
        assert!(!m.remove_field(0, 1) && !m.remove_field(0, 2));
        assert!(!m.remove_field(1, 9) && !m.remove_field(9, 1) && !m.remove_field(1, 0));
        assert!(m.remove_field(3, 1));
        assert_eq!(m.segment_text(3).unwrap(), "OBX");
    }

    #[test]
    fn null_and_empty() {
        let m = MessageBuf::parse(b"MSH|^~\\&|A\rPID|1|\"\"||x\r").unwrap();
        assert!(m.is_null(&p("PID-2")));
        assert!(m.has(&p("PID-2")));
        assert!(!m.is_null(&p("PID-3")));
        assert!(!m.has(&p("PID-3")));
        assert_eq!(m.get(&p("PID-3")).unwrap(), "");
        assert_eq!(m.get(&p("PID-9")), None);
    }
}
