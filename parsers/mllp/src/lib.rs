//! MLLP frame codec (tokio-util Decoder/Encoder) with bounded frames and junk skipping.
//!
//! A frame is `start payload end [trailer]`, by default `0x0B payload 0x1C 0x0D`. The decoder scans
//! incrementally (it remembers how far it has looked, so a frame arriving in many reads costs one pass),
//! skips and counts bytes outside frames, accepts a missing trailer, and refuses frames longer than a limit.
//! It never logs: counts and errors go to the caller, and no error's `Display` contains payload bytes.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Standard MLLP start-of-block byte (VT).
pub const START_BYTE: u8 = 0x0B;
/// Standard MLLP end-of-block byte (FS).
pub const END_BYTE: u8 = 0x1C;
/// Standard byte after the end-of-block byte (CR).
pub const TRAILER_BYTE: u8 = 0x0D;
/// Default largest accepted payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;
/// How much of an oversized frame is kept so the receiver can still read its MSH for the NAK.
const OVERSIZE_HEAD_LIMIT: usize = 4096;

/// Framing bytes and limits; `Default` is standard MLLP with a 16 MiB limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingConfig {
    /// Byte that opens a frame.
    pub start_byte: u8,
    /// Byte that closes a frame.
    pub end_byte: u8,
    /// Byte written after `end_byte`, and swallowed if present when reading (`None`: write nothing).
    pub trailer: Option<u8>,
    /// Largest payload accepted, in bytes.
    pub max_frame_length: usize,
}

impl Default for FramingConfig {
    fn default() -> Self {
        Self {
            start_byte: START_BYTE,
            end_byte: END_BYTE,
            trailer: Some(TRAILER_BYTE),
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
        }
    }
}

/// A framing configuration that could not delimit frames unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Start and end bytes are the same.
    #[error("MLLP start byte and end byte must differ (both are 0x{0:02X})")]
    SameStartAndEnd(u8),
    /// The trailer collides with the start or end byte.
    #[error("MLLP trailer byte 0x{0:02X} must differ from the start and end bytes")]
    TrailerCollides(u8),
    /// A zero frame limit would refuse every message.
    #[error("MLLP maximum frame length must be at least 1 byte")]
    ZeroMaxLength,
}

impl FramingConfig {
    /// Checks that frames can be delimited with these bytes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.start_byte == self.end_byte {
            return Err(ConfigError::SameStartAndEnd(self.start_byte));
        }
        if let Some(t) = self.trailer {
            if t == self.start_byte || t == self.end_byte {
                return Err(ConfigError::TrailerCollides(t));
            }
        }
        if self.max_frame_length == 0 {
            return Err(ConfigError::ZeroMaxLength);
        }
        Ok(())
    }
}

/// Errors from reading or writing MLLP frames. `Display` never includes payload bytes.
#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    /// A frame exceeded the limit; the decoder discards the rest of it and then resumes.
    #[error("MLLP frame longer than the {limit}-byte limit")]
    FrameTooLong {
        /// The configured limit.
        limit: usize,
        /// The frame's first line (at most 4 KiB), so the receiver can read MSH to address its NAK.
        head: Bytes,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside an MLLP frame after {received} payload bytes")]
    Truncated {
        /// Payload bytes received before the end of the stream.
        received: usize,
    },
    /// A payload to send contains a framing byte, so the peer would split it.
    #[error("payload contains MLLP framing byte 0x{byte:02X} at offset {offset}")]
    FramingByteInPayload {
        /// The offending byte.
        byte: u8,
        /// Its position in the payload.
        offset: usize,
    },
    /// The underlying transport failed.
    #[error("MLLP transport I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The bytes between the start and end bytes.
    pub payload: Bytes,
    /// How many bytes outside any frame were skipped since the previous frame (for logging).
    pub skipped: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a start byte.
    Seeking,
    /// `buf[0]` is a start byte and `buf[1..scanned]` holds neither start nor end byte.
    InFrame { scanned: usize },
    /// Dropping the rest of an oversized frame.
    Discarding,
}

/// MLLP `Decoder` (yields [`Frame`]) and `Encoder` (frames any byte slice).
#[derive(Debug, Clone)]
pub struct MllpCodec {
    config: FramingConfig,
    state: State,
    skipped: usize,
    /// The previous frame just ended, so a leading trailer byte belongs to it and is not junk.
    after_end: bool,
}

impl Default for MllpCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl MllpCodec {
    /// A codec for standard MLLP with the default 16 MiB limit.
    pub fn new() -> Self {
        Self {
            config: FramingConfig::default(),
            state: State::Seeking,
            skipped: 0,
            after_end: false,
        }
    }

    /// A codec with custom framing bytes or limit.
    pub fn with_config(config: FramingConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            ..Self::new()
        })
    }

    /// The framing in use.
    pub fn config(&self) -> &FramingConfig {
        &self.config
    }

    /// True while part of a frame has been read but not its end (a stalled peer is mid-frame).
    pub fn is_mid_frame(&self) -> bool {
        !matches!(self.state, State::Seeking)
    }

    /// Returns and resets the count of skipped bytes not yet reported with a frame (e.g. junk before EOF).
    pub fn take_skipped(&mut self) -> usize {
        std::mem::take(&mut self.skipped)
    }

    fn swallow_trailer(&mut self, buf: &mut BytesMut) {
        if !self.after_end {
            return;
        }
        if let Some(&first) = buf.first() {
            self.after_end = false;
            if Some(first) == self.config.trailer {
                buf.advance(1);
            }
        }
    }

    fn oversize(&mut self, buf: &mut BytesMut, frame_end: Option<usize>) -> MllpError {
        let payload_end = frame_end.unwrap_or(buf.len());
        let head_end = payload_end.min(1 + OVERSIZE_HEAD_LIMIT);
        let head_slice = buf.get(1..head_end).unwrap_or_default();
        let line_len = memchr::memchr2(b'\r', b'\n', head_slice).unwrap_or(head_slice.len());
        let head = Bytes::copy_from_slice(head_slice.get(..line_len).unwrap_or_default());
        match frame_end {
            Some(end) => {
                buf.advance(end + 1);
                self.after_end = true;
                self.state = State::Seeking;
            }
            None => {
                buf.clear();
                self.state = State::Discarding;
            }
        }
        MllpError::FrameTooLong {
            limit: self.config.max_frame_length,
            head,
        }
    }
}

impl Decoder for MllpCodec {
    type Item = Frame;
    type Error = MllpError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, MllpError> {
        let FramingConfig {
            start_byte,
            end_byte,
            ..
        } = self.config;
        loop {
            match self.state {
                State::Seeking => {
                    self.swallow_trailer(buf);
                    match memchr::memchr(start_byte, buf) {
                        Some(i) => {
                            self.skipped += i;
                            buf.advance(i);
                            self.state = State::InFrame { scanned: 1 };
                        }
                        None => {
                            self.skipped += buf.len();
                            buf.clear();
                            return Ok(None);
                        }
                    }
                }
                State::InFrame { scanned } => {
                    let unscanned = buf.get(scanned..).unwrap_or_default();
                    let Some(offset) = memchr::memchr2(end_byte, start_byte, unscanned) else {
                        let scanned = buf.len();
                        if scanned.saturating_sub(1) > self.config.max_frame_length {
                            return Err(self.oversize(buf, None));
                        }
                        self.state = State::InFrame { scanned };
                        return Ok(None);
                    };
                    let at = scanned + offset;
                    if buf.get(at) == Some(&start_byte) {
                        // The peer abandoned the partial frame and started over: the partial bytes are junk.
                        self.skipped += at;
                        buf.advance(at);
                        self.state = State::InFrame { scanned: 1 };
                        continue;
                    }
                    if at.saturating_sub(1) > self.config.max_frame_length {
                        return Err(self.oversize(buf, Some(at)));
                    }
                    let mut frame = buf.split_to(at + 1).freeze();
                    frame.truncate(at);
                    frame.advance(1);
                    self.state = State::Seeking;
                    self.after_end = true;
                    return Ok(Some(Frame {
                        payload: frame,
                        skipped: self.take_skipped(),
                    }));
                }
                State::Discarding => match memchr::memchr2(end_byte, start_byte, buf) {
                    Some(i) => {
                        let restart = buf.get(i) == Some(&start_byte);
                        buf.advance(if restart { i } else { i + 1 });
                        self.after_end = !restart;
                        self.state = State::Seeking;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, MllpError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let state = std::mem::replace(&mut self.state, State::Seeking);
        let received = buf.len().saturating_sub(1);
        buf.clear();
        match state {
            State::InFrame { .. } => Err(MllpError::Truncated { received }),
            State::Seeking | State::Discarding => Ok(None),
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), MllpError> {
        let payload = item.as_ref();
        let FramingConfig {
            start_byte,
            end_byte,
            trailer,
            ..
        } = self.config;
        if let Some(offset) = memchr::memchr2(start_byte, end_byte, payload) {
            let byte = payload.get(offset).copied().unwrap_or_default();
            return Err(MllpError::FramingByteInPayload { byte, offset });
        }
        dst.reserve(payload.len() + 3);
        dst.put_u8(start_byte);
        dst.put_slice(payload);
        dst.put_u8(end_byte);
        if let Some(t) = trailer {
            dst.put_u8(t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
