//! A cheap, lenient pre-read of MSH for routing and for acknowledging messages that do not parse.

use crate::delim::{read_header, Delimiters};
use crate::message::content_start;

/// MSH fields read without parsing the message. Values are raw (still escaped) HL7 text, decoded
/// from UTF-8, or ISO-8859-1 when not valid UTF-8; absent fields are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MshHeader {
    /// Delimiters (the standard set for any part MSH-2 does not declare validly).
    pub delimiters: Delimiters,
    /// MSH-2 exactly as written (echoed in ACKs).
    pub encoding_characters: String,
    /// MSH-3.
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// MSH-9 whole, e.g. `ADT^A01^ADT_A01`.
    pub message_type: String,
    /// MSH-10, the message control id.
    pub control_id: String,
    /// MSH-11, processing id.
    pub processing_id: String,
    /// MSH-12, version id.
    pub version: String,
    /// MSH-15, accept acknowledgment type.
    pub accept_ack_type: String,
    /// MSH-16, application acknowledgment type.
    pub application_ack_type: String,
    /// MSH-18, character set (whole field).
    pub charset: String,
}

fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

impl MshHeader {
    /// Pre-read MSH from the start of `bytes` (after a BOM, whitespace, FHS and BHS), best effort.
    ///
    /// Returns `None` only when no `MSH` segment followed by a field separator is found; a
    /// truncated or malformed MSH still yields whatever fields could be read.
    pub fn peek(bytes: &[u8]) -> Option<MshHeader> {
        let mut rest = bytes.get(content_start(bytes)..)?;
        // Skip batch header lines so a one-message batch can be acknowledged too.
        while rest.starts_with(b"FHS") || rest.starts_with(b"BHS") {
            let end = memchr::memchr2(b'\r', b'\n', rest)?;
            let next = rest.get(end..)?;
            rest = next.get(next.iter().take_while(|b| b.is_ascii_whitespace()).count()..)?;
        }
        if !rest.starts_with(b"MSH") {
            return None;
        }
        let line = rest.get(..memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len()))?;
        let fs = *line.get(3)?;
        if !fs.is_ascii_graphic() {
            return None;
        }
        let delimiters = read_header(line, 0, 1).unwrap_or(Delimiters {
            field: fs,
            ..Delimiters::default()
        });
        // fields[n - 1] is MSH-n for n >= 2, up to MSH-18: a fixed array rather than a Vec of every
        // field, since every received message is peeked (some twice).
        let mut fields: [&[u8]; 18] = [&[]; 18];
        for (slot, part) in fields.iter_mut().zip(line.split(|&b| b == fs)) {
            *slot = part;
        }
        let f = |n: usize| fields.get(n - 1).map(|b| text(b)).unwrap_or_default();
        Some(MshHeader {
            delimiters,
            encoding_characters: f(2),
            sending_application: f(3),
            sending_facility: f(4),
            receiving_application: f(5),
            receiving_facility: f(6),
            message_type: f(9),
            control_id: f(10),
            processing_id: f(11),
            version: f(12),
            accept_ack_type: f(15),
            application_ack_type: f(16),
            charset: f(18),
        })
    }

    fn type_component(&self, n: usize) -> &str {
        self.message_type
            .split(char::from(self.delimiters.component))
            .nth(n)
            .unwrap_or_default()
    }

    /// MSH-9-1, the message code (e.g. `ADT`).
    pub fn message_code(&self) -> &str {
        self.type_component(0)
    }

    /// MSH-9-2, the trigger event (e.g. `A01`).
    pub fn trigger_event(&self) -> &str {
        self.type_component(1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn peeks_fields() {
        let h = MshHeader::peek(b"\xEF\xBB\xBFMSH|^~\\&|SA|SF|RA|RF|2024||ORU^R01^ORU_R01|X9|P|2.5.1|||AL|NE||UNICODE UTF-8\rPID").unwrap();
        assert_eq!(h.sending_application, "SA");
        assert_eq!(h.receiving_facility, "RF");
        assert_eq!(h.trigger_event(), "R01");
        assert_eq!(h.control_id, "X9");
        assert_eq!(
            (h.accept_ack_type.as_str(), h.application_ack_type.as_str()),
            ("AL", "NE")
        );
        assert_eq!(h.charset, "UNICODE UTF-8");
    }

    #[test]
    fn lenient_on_broken_messages() {
        let h = MshHeader::peek(b"MSH|^~\\&|A|B|C|D|E||ADT^A01|CTRL\rPIDbroken").unwrap();
        assert_eq!(h.control_id, "CTRL");
        let h = MshHeader::peek(b"MSH||A|B|C|D|E||ADT|ID7").unwrap();
        assert_eq!(h.control_id, "ID7");
        let h = MshHeader::peek(b"FHS|^~\\&\nBHS|^~\\&\nMSH|^~\\&|A||||||ACK|Z").unwrap();
        assert_eq!(h.control_id, "Z");
        assert!(MshHeader::peek(b"PID|1").is_none());
        assert!(MshHeader::peek(b"MSH").is_none());
        assert!(MshHeader::peek(b"").is_none());
    }
}
