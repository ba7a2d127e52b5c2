//! Batch files (`[FHS] { [BHS] { MSH... } [BTS] } [FTS]`) and plain streams of messages.

use std::ops::Range;

use crate::delim::{read_header, Delimiters};
use crate::error::ParseError;
use crate::message::content_start;

/// One FHS/BHS/BTS/FTS segment kept from a batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSegment {
    raw: Vec<u8>,
    delimiters: Delimiters,
}

impl BatchSegment {
    /// The segment's bytes (no terminator).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The segment name (FHS, BHS, BTS or FTS).
    pub fn name(&self) -> &str {
        std::str::from_utf8(self.raw.get(..3).unwrap_or_default()).unwrap_or_default()
    }

    /// Raw text of field `n`, numbered as HL7 does (FHS-1/BHS-1 is the field separator itself,
    /// FHS-2/BHS-2 the encoding characters); `None` when absent.
    pub fn field(&self, n: usize) -> Option<String> {
        let fs = self.delimiters.field;
        let header = matches!(self.raw.get(..3), Some(b"FHS" | b"BHS"));
        if header && n == 1 {
            return Some(char::from(fs).to_string());
        }
        let index = if header { n.checked_sub(1)? } else { n };
        let part = self.raw.split(|&b| b == fs).nth(index)?;
        Some(String::from_utf8_lossy(part).into_owned())
    }
}

/// One batch (BHS ... BTS) inside a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchGroup {
    /// The BHS segment, if the batch had one.
    pub header: Option<BatchSegment>,
    /// The BTS segment, if present.
    pub trailer: Option<BatchSegment>,
    /// Indices into [`Batch::messages`] of this batch's messages.
    pub messages: Range<usize>,
}

/// A split batch file or message stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The FHS segment, if any.
    pub file_header: Option<BatchSegment>,
    /// The FTS segment, if any.
    pub file_trailer: Option<BatchSegment>,
    /// The batches (BHS groups); empty for a stream or file without BHS.
    pub batches: Vec<BatchGroup>,
    /// Every message in order, segments terminated by CR (blank lines dropped).
    pub messages: Vec<Vec<u8>>,
    /// Byte offset in the input where each message's MSH starts (for error messages).
    pub message_offsets: Vec<usize>,
}

/// Split a batch file or a stream of messages into messages.
///
/// A new message starts at every MSH, whatever blank lines or line endings stand between. FHS,
/// BHS, BTS and FTS are kept in the result. Errors: input not starting with FHS/BHS/MSH, a
/// segment outside any message, FHS anywhere but first, BHS inside an open batch, BTS without
/// BHS, anything after FTS.
pub fn split_batch(bytes: &[u8]) -> Result<Batch, ParseError> {
    let mut batch = Batch::default();
    let mut delimiters = Delimiters::default();
    let mut open_batch: Option<BatchGroup> = None;
    let mut current: Option<Vec<u8>> = None;
    let mut seen_any = false;
    let mut ended = false;
    let start = content_start(bytes);
    let mut pos = start;
    let mut index = 0usize;
    let finish = |batch: &mut Batch, current: &mut Option<Vec<u8>>| {
        if let Some(m) = current.take() {
            batch.messages.push(m);
        }
    };
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or_default();
        let len = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        let line = rest.get(..len).unwrap_or_default();
        let line_at = pos;
        pos += len + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        index += 1;
        let name = line.get(..3).unwrap_or(line);
        let err = |reason: &'static str| ParseError::BatchStructure {
            segment_index: index,
            segment: String::from_utf8_lossy(name).into_owned(),
            offset: line_at,
            reason,
        };
        if ended {
            return Err(err("segment after the file trailer (FTS)"));
        }
        match name {
            b"FHS" => {
                if seen_any {
                    return Err(err("file header (FHS) must be the first segment"));
                }
                delimiters = read_header(line, line_at, index)?;
                batch.file_header = Some(BatchSegment {
                    raw: line.to_vec(),
                    delimiters,
                });
            }
            b"BHS" => {
                if open_batch.is_some() {
                    return Err(err(
                        "batch header (BHS) inside a batch that has no trailer (BTS)",
                    ));
                }
                finish(&mut batch, &mut current);
                delimiters = read_header(line, line_at, index)?;
                open_batch = Some(BatchGroup {
                    header: Some(BatchSegment {
                        raw: line.to_vec(),
                        delimiters,
                    }),
                    trailer: None,
                    messages: batch.messages.len()..batch.messages.len(),
                });
            }
            b"BTS" => {
                finish(&mut batch, &mut current);
                let Some(mut group) = open_batch.take() else {
                    return Err(err("batch trailer (BTS) without a batch header (BHS)"));
                };
                group.trailer = Some(BatchSegment {
                    raw: line.to_vec(),
                    delimiters,
                });
                group.messages.end = batch.messages.len();
                batch.batches.push(group);
            }
            b"FTS" => {
                finish(&mut batch, &mut current);
                if let Some(mut group) = open_batch.take() {
                    group.messages.end = batch.messages.len();
                    batch.batches.push(group);
                }
                batch.file_trailer = Some(BatchSegment {
                    raw: line.to_vec(),
                    delimiters,
                });
                ended = true;
            }
            b"MSH" => {
                finish(&mut batch, &mut current);
                if let Ok(d) = read_header(line, line_at, index) {
                    delimiters = d;
                }
                batch.message_offsets.push(line_at);
                let mut m = Vec::with_capacity(1024);
                m.extend_from_slice(line);
                m.push(b'\r');
                current = Some(m);
            }
            _ => match current.as_mut() {
                Some(m) => {
                    m.extend_from_slice(line);
                    m.push(b'\r');
                }
                None if !seen_any => return Err(ParseError::NotMsh { offset: line_at }),
                None => return Err(err("segment outside a message (no MSH before it)")),
            },
        }
        seen_any = true;
    }
    finish(&mut batch, &mut current);
    if let Some(mut group) = open_batch.take() {
        group.messages.end = batch.messages.len();
        batch.batches.push(group);
    }
    if !seen_any {
        return Err(ParseError::Empty);
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splits_stream_with_blank_lines() {
        let b = split_batch(b"MSH|^~\\&|A\nPID|1\n\n\nMSH|^~\\&|B\r\nPID|2").unwrap();
        assert_eq!(
            b.messages,
            vec![
                b"MSH|^~\\&|A\rPID|1\r".to_vec(),
                b"MSH|^~\\&|B\rPID|2\r".to_vec()
            ]
        );
        assert!(b.file_header.is_none());
    }

    #[test]
    fn keeps_headers() {
        let b = split_batch(
            b"FHS|^~\\&|FAPP\rBHS|^~\\&|BAPP\rMSH|^~\\&|A\rMSH|^~\\&|B\rBTS|2\rFTS|1\r",
        )
        .unwrap();
        assert_eq!(b.messages.len(), 2);
        assert_eq!(b.file_header.as_ref().unwrap().field(3).unwrap(), "FAPP");
        assert_eq!(b.file_header.as_ref().unwrap().field(2).unwrap(), "^~\\&");
        assert_eq!(
            b.batches[0].header.as_ref().unwrap().field(3).unwrap(),
            "BAPP"
        );
        assert_eq!(
            b.batches[0].trailer.as_ref().unwrap().field(1).unwrap(),
            "2"
        );
        assert_eq!(b.batches[0].messages, 0..2);
        assert_eq!(b.file_trailer.as_ref().unwrap().field(1).unwrap(), "1");
    }

    #[test]
    fn malformed() {
        assert!(split_batch(b"BHS|^~\\&\rBHS|^~\\&\r").is_err());
        assert!(split_batch(b"MSH|^~\\&\rFHS|^~\\&\r").is_err());
        assert!(split_batch(b"BTS|0\r").is_err());
        assert!(split_batch(b"PID|1\r").is_err());
        assert!(split_batch(b"\r\n").is_err());
        let empty = split_batch(b"BHS|^~\\&\rBTS|0\r").unwrap();
        assert!(empty.messages.is_empty());
        assert_eq!(empty.batches.len(), 1);
    }
}
