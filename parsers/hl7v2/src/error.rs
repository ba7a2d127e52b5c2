//! Typed errors for parsing messages and paths.

use thiserror::Error;

/// Why a message (or batch) could not be parsed; every variant says where.
///
/// Segment indices are 1-based as an interface analyst counts them; byte offsets are 0-based
/// positions in the input handed to the parser (after a leading BOM/whitespace has been skipped
/// they still refer to the original input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input holds no segment at all.
    #[error("byte 0: message is empty")]
    Empty,
    /// The first segment is not MSH (or FHS/BHS where a batch is expected).
    #[error("byte {offset}: message does not start with MSH")]
    NotMsh {
        /// Where the first segment starts.
        offset: usize,
    },
    /// The header has no field separator after its name.
    #[error("segment 1 ({segment}): field separator (MSH-1) missing")]
    FieldSeparatorMissingInHeader {
        /// Header segment name (MSH, FHS or BHS).
        segment: String,
        /// Byte offset of the header.
        offset: usize,
    },
    /// MSH-2 is absent or shorter than the two characters every message needs.
    #[error("segment {segment_index} ({segment}): encoding characters ({segment}-2) missing")]
    EncodingCharactersMissing {
        /// 1-based segment index.
        segment_index: usize,
        /// Header segment name.
        segment: String,
        /// Byte offset of MSH-2.
        offset: usize,
    },
    /// A delimiter is unusable (non-ASCII, a line break, a letter/digit or a duplicate).
    #[error("segment {segment_index} ({segment}): invalid delimiter at byte {offset}: {reason}")]
    InvalidDelimiter {
        /// 1-based segment index.
        segment_index: usize,
        /// Header segment name.
        segment: String,
        /// Byte offset of the offending character.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A segment's 3-character name is not followed by the field separator.
    #[error("segment {segment_index} ({segment}): field separator missing after segment name (byte {offset})")]
    FieldSeparatorMissing {
        /// 1-based segment index.
        segment_index: usize,
        /// The segment's first characters, shown lossily.
        segment: String,
        /// Byte offset of the segment.
        offset: usize,
    },
    /// A segment name is not three characters A-Z/0-9.
    #[error("segment {segment_index} ({segment}): invalid segment name at byte {offset} (expected 3 characters A-Z, 0-9)")]
    InvalidSegmentName {
        /// 1-based segment index.
        segment_index: usize,
        /// The name as found, shown lossily.
        segment: String,
        /// Byte offset of the segment.
        offset: usize,
    },
    /// The bytes are not valid in the character set the message is read as.
    #[error("segment {segment_index} ({segment}): byte {offset} is not valid {charset}")]
    InvalidEncoding {
        /// 1-based segment index (0 when unknown).
        segment_index: usize,
        /// Segment name (empty when unknown).
        segment: String,
        /// Byte offset of the first bad byte.
        offset: usize,
        /// The character set the bytes were read as.
        charset: String,
    },
    /// MSH-18 names a character set this parser cannot decode and the message has non-ASCII bytes.
    #[error("segment 1 (MSH): character set '{charset}' (MSH-18) is not supported for non-ASCII data (first non-ASCII byte at {offset})")]
    UnsupportedCharset {
        /// MSH-18 as written.
        charset: String,
        /// First non-ASCII byte.
        offset: usize,
    },
    /// A batch file's FHS/BHS/BTS/FTS structure is broken.
    #[error("segment {segment_index} ({segment}): {reason} (byte {offset})")]
    BatchStructure {
        /// 1-based segment index within the file.
        segment_index: usize,
        /// Segment name.
        segment: String,
        /// Byte offset of the segment.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The input is larger than this parser indexes (4 GiB).
    #[error("byte 0: message too large ({len} bytes)")]
    TooLarge {
        /// Input length.
        len: usize,
    },
}

impl ParseError {
    /// 1-based index of the segment the error is in, when known.
    pub fn segment_index(&self) -> Option<usize> {
        match self {
            Self::FieldSeparatorMissingInHeader { .. } | Self::UnsupportedCharset { .. } => Some(1),
            Self::EncodingCharactersMissing { segment_index, .. }
            | Self::InvalidDelimiter { segment_index, .. }
            | Self::FieldSeparatorMissing { segment_index, .. }
            | Self::InvalidSegmentName { segment_index, .. }
            | Self::BatchStructure { segment_index, .. } => Some(*segment_index),
            Self::InvalidEncoding { segment_index, .. } if *segment_index > 0 => {
                Some(*segment_index)
            }
            _ => None,
        }
    }

    /// Name of the segment the error is in, when known.
    pub fn segment_name(&self) -> Option<&str> {
        match self {
            Self::FieldSeparatorMissingInHeader { segment, .. }
            | Self::EncodingCharactersMissing { segment, .. }
            | Self::InvalidDelimiter { segment, .. }
            | Self::FieldSeparatorMissing { segment, .. }
            | Self::InvalidSegmentName { segment, .. }
            | Self::BatchStructure { segment, .. } => Some(segment),
            Self::InvalidEncoding { segment, .. } if !segment.is_empty() => Some(segment),
            Self::UnsupportedCharset { .. } => Some("MSH"),
            _ => None,
        }
    }

    /// HL7 field position (e.g. 2 for MSH-2) the error is about, when it is about one field.
    pub fn field_position(&self) -> Option<usize> {
        match self {
            Self::FieldSeparatorMissingInHeader { .. } => Some(1),
            Self::EncodingCharactersMissing { .. } | Self::InvalidDelimiter { .. } => Some(2),
            Self::UnsupportedCharset { .. } => Some(18),
            _ => None,
        }
    }

    /// Byte offset in the input the error points at.
    pub fn offset(&self) -> usize {
        match self {
            Self::Empty | Self::TooLarge { .. } => 0,
            Self::NotMsh { offset }
            | Self::FieldSeparatorMissingInHeader { offset, .. }
            | Self::EncodingCharactersMissing { offset, .. }
            | Self::InvalidDelimiter { offset, .. }
            | Self::FieldSeparatorMissing { offset, .. }
            | Self::InvalidSegmentName { offset, .. }
            | Self::InvalidEncoding { offset, .. }
            | Self::UnsupportedCharset { offset, .. }
            | Self::BatchStructure { offset, .. } => *offset,
        }
    }

    /// Shift every byte offset by `by` (used when a message was cut out of a larger input).
    pub(crate) fn shifted(self, by: usize) -> Self {
        self.map_offset(|offset| offset + by)
    }

    /// Rewrite the byte offset (e.g. from decoded text back to the input's bytes).
    pub(crate) fn map_offset(mut self, f: impl FnOnce(usize) -> usize) -> Self {
        match &mut self {
            Self::Empty | Self::TooLarge { .. } => {}
            Self::NotMsh { offset }
            | Self::FieldSeparatorMissingInHeader { offset, .. }
            | Self::EncodingCharactersMissing { offset, .. }
            | Self::InvalidDelimiter { offset, .. }
            | Self::FieldSeparatorMissing { offset, .. }
            | Self::InvalidSegmentName { offset, .. }
            | Self::InvalidEncoding { offset, .. }
            | Self::UnsupportedCharset { offset, .. }
            | Self::BatchStructure { offset, .. } => *offset = f(*offset),
        }
        self
    }
}

/// Why a path is malformed or cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path text is empty.
    #[error("empty path")]
    Empty,
    /// The segment name is not 3 characters A-Z/0-9.
    #[error("invalid segment name in path '{path}' (expected 3 characters A-Z, 0-9)")]
    InvalidSegment {
        /// The path as written.
        path: String,
    },
    /// A position is not a number.
    #[error("invalid number '{part}' in path '{path}'")]
    InvalidNumber {
        /// The path as written.
        path: String,
        /// The offending part.
        part: String,
    },
    /// A position is 0 (HL7 positions are 1-based).
    #[error("position 0 in path '{path}' (HL7 positions start at 1)")]
    Zero {
        /// The path as written.
        path: String,
    },
    /// A `[n]` index is misplaced or unterminated, or there are too many levels.
    #[error("invalid path syntax '{path}': {reason}")]
    Syntax {
        /// The path as written.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The operation needs a field position (e.g. set on a whole segment).
    #[error("path '{path}' must name a field")]
    FieldRequired {
        /// The path as written.
        path: String,
    },
    /// A write would create more than [`crate::MAX_WRITE_REACH`] positions or segments at once: a
    /// number taken from a message (`NTE[4000000000]`) must not make one write build gigabytes.
    #[error("path '{path}' reaches {what} {number}, more than {limit} past what exists; write closer to the end")]
    TooFar {
        /// The path as written.
        path: String,
        /// What the number counts (segment, field, repetition, component, subcomponent).
        what: &'static str,
        /// The number asked for.
        number: usize,
        /// How far past the existing ones a write may reach.
        limit: usize,
    },
    /// MSH-1/MSH-2 (and FHS/BHS) hold the delimiters and cannot be changed by path.
    #[error("path '{path}' addresses the delimiters, which cannot be set")]
    ReadOnly {
        /// The path as written.
        path: String,
    },
    /// The message declares no subcomponent separator, so a subcomponent above 1 cannot exist.
    #[error("path '{path}': the message declares no subcomponent separator")]
    NoSubcomponentSeparator {
        /// The path as written.
        path: String,
    },
    /// The value holds a delimiter but the message declares no escape character.
    #[error(
        "value for '{path}' contains a delimiter and the message declares no escape character"
    )]
    CannotEscape {
        /// The path as written.
        path: String,
    },
    /// The segment index is past the end of the message.
    #[error("segment index {index} is out of range (message has {count} segments)")]
    SegmentIndex {
        /// Requested 0-based index.
        index: usize,
        /// Number of segments.
        count: usize,
    },
}
