//! HL7 v2 parser: zero-copy read path, owned editable message, paths, escapes, ACK builder.
//!
//! - [`Message`]: a zero-copy view over UTF-8/ASCII bytes, one scan, values decoded on read.
//! - [`MessageBuf`]: an owned, editable message in any supported character set; encodes back to
//!   the exact input bytes when unmodified (segment terminators normalised to CR).
//! - [`Path`] / [`FieldPath`]: `PID-5-1`, `OBX[2]-5`, `PID-3[2]-1`, and `5`, `3-1` inside a segment.
//! - [`split_batch`]: FHS/BHS batch files and plain streams of messages.
//! - [`MshHeader::peek`] and [`ack`]: acknowledge even messages that do not parse.
//! - [`datetime`]: HL7 DTM to FHIR date/dateTime/instant.
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod ack;
mod batch;
mod buf;
mod charset;
pub mod datetime;
mod delim;
mod element;
mod error;
pub mod escape;
mod header;
mod message;
mod path;

pub use batch::{split_batch, Batch, BatchGroup, BatchSegment};
pub use buf::MessageBuf;
pub use charset::Charset;
pub use delim::Delimiters;
pub use error::{ParseError, PathError};
pub use header::MshHeader;
pub use message::{Message, SegmentRef};
pub use path::{FieldPath, Path};
