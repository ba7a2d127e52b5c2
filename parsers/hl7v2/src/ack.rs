//! Acknowledgement (ACK) messages and the original/enhanced acknowledgment-mode rules.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::charset::Charset;
use crate::datetime::push_digits;
use crate::delim::Delimiters;
use crate::error::ParseError;
use crate::escape::escape;
use crate::header::MshHeader;

/// MSA-1 acknowledgment code (HL7 table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Application accept (original mode, or enhanced-mode application ACK).
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept (enhanced mode).
    CA,
    /// Commit error (enhanced mode).
    CE,
    /// Commit reject (enhanced mode).
    CR,
}

impl AckCode {
    /// The two-letter code.
    pub fn as_str(&self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// True for AA and CA.
    pub fn is_accept(&self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }
}

/// ERR-4 severity (HL7 table 0516).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// `E`: error, the message was not processed.
    #[default]
    Error,
    /// `W`: warning.
    Warning,
    /// `I`: information.
    Information,
    /// `F`: fatal error.
    Fatal,
}

impl Severity {
    /// The one-letter code.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
            Severity::Fatal => "F",
        }
    }
}

/// ERR-2 error location (ERL): segment, its occurrence, and positions inside it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLocation {
    /// Segment id, e.g. `PID`.
    pub segment: String,
    /// Occurrence of that segment (1-based), when known.
    pub sequence: Option<usize>,
    /// Field position.
    pub field: Option<usize>,
    /// Field repetition.
    pub repetition: Option<usize>,
    /// Component.
    pub component: Option<usize>,
    /// Subcomponent.
    pub subcomponent: Option<usize>,
}

/// What goes into the ERR segment and MSA-3 of a negative (or warning) ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// HL7 error code from table 0357 (e.g. 100, 101, 102, 200, 207).
    pub code: u16,
    /// ERR-4 severity.
    pub severity: Severity,
    /// ERR-2 location.
    pub location: Option<ErrorLocation>,
    /// User message: ERR-8 and MSA-3 text.
    pub message: String,
}

/// The description of an HL7 table 0357 error code.
pub fn error_code_text(code: u16) -> &'static str {
    match code {
        0 => "Message accepted",
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        104 => "Value too long",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        202 => "Unsupported processing id",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        205 => "Duplicate key identifier",
        206 => "Application record locked",
        _ => "Application internal error",
    }
}

impl AckError {
    /// An error with code (table 0357) and user message, severity E, no location.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            location: None,
            message: message.into(),
        }
    }

    /// The same error located at `location`.
    pub fn at(mut self, location: ErrorLocation) -> Self {
        self.location = Some(location);
        self
    }

    /// The ERR content for a message that failed to parse: code, location and the parser's text.
    pub fn from_parse_error(e: &ParseError) -> Self {
        let code = match e {
            ParseError::EncodingCharactersMissing { .. }
            | ParseError::FieldSeparatorMissingInHeader { .. } => 101,
            ParseError::InvalidDelimiter { .. }
            | ParseError::InvalidEncoding { .. }
            | ParseError::UnsupportedCharset { .. } => 102,
            _ => 100,
        };
        let location = e.segment_name().map(|name| ErrorLocation {
            segment: name.to_string(),
            sequence: (name == "MSH").then_some(1),
            field: e.field_position(),
            ..ErrorLocation::default()
        });
        Self {
            code,
            severity: Severity::Error,
            location,
            message: e.to_string(),
        }
    }
}

/// A new message control id: time in milliseconds and a process-wide counter, at most 20 characters.
pub fn next_control_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut id = String::with_capacity(16);
    push_digits(&mut id, u64::try_from(millis).unwrap_or(u64::MAX), 16, 1);
    push_digits(&mut id, n & 0xFFFF, 16, 4);
    id
}

/// Build an ACK for `header` stamped with the current UTC time (see [`build_ack_at`]).
pub fn build_ack(
    header: &MshHeader,
    code: AckCode,
    error: Option<&AckError>,
    control_id: &str,
) -> Vec<u8> {
    build_ack_at(header, code, error, control_id, &crate::datetime::now_hl7())
}

/// Appends `value` escaped for the message's delimiters; delimiters are dropped when there is no
/// escape character.
fn push_escaped(out: &mut String, value: &str, d: &Delimiters) {
    match escape(value, d) {
        Some(v) => out.push_str(&v),
        None => out.extend(value.chars().filter(|c| {
            !u8::try_from(u32::from(*c)).is_ok_and(|b| d.is_special(b) || b == b'\r' || b == b'\n')
        })),
    }
}

fn version_before_2_5(version: &str) -> bool {
    let first = version
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap_or_default();
    let mut nums = first.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    major == 2 && minor < 5
}

/// Build an ACK for `header` with MSH-7 = `timestamp` (HL7 DTM), MSH-10 = `control_id`.
///
/// Uses the original delimiters; swaps sending and receiving application/facility; MSH-9 is
/// `ACK^<trigger>^ACK`; MSH-11/12 (and MSH-18) are echoed; MSA-2 is the original MSH-10. With an
/// error, MSA-3 holds its message and an ERR segment is added in the v2.5+ layout (ERR-2 location,
/// ERR-3 code^text^HL70357, ERR-4 severity, ERR-8 message); for versions before 2.5 ERR-1 is
/// filled as well so older receivers see the code.
pub fn build_ack_at(
    header: &MshHeader,
    code: AckCode,
    error: Option<&AckError>,
    control_id: &str,
    timestamp: &str,
) -> Vec<u8> {
    // Written straight into one buffer: a listener builds one of these for every message.
    let d = &header.delimiters;
    let fs = char::from(d.field);
    let cs = char::from(d.component);
    let mut out = String::with_capacity(160 + error.map_or(0, |e| 2 * e.message.len() + 96));
    out.push_str("MSH");
    out.push(fs);
    if header.encoding_characters.is_empty() {
        out.push_str(&d.encoding_characters());
    } else {
        out.push_str(&header.encoding_characters);
    }
    for echoed in [
        &header.receiving_application,
        &header.receiving_facility,
        &header.sending_application,
        &header.sending_facility,
    ] {
        out.push(fs);
        out.push_str(echoed);
    }
    out.push(fs);
    push_escaped(&mut out, timestamp, d);
    out.push(fs);
    out.push(fs);
    out.push_str("ACK");
    out.push(cs);
    push_escaped(&mut out, header.trigger_event(), d);
    out.push(cs);
    out.push_str("ACK");
    out.push(fs);
    push_escaped(&mut out, control_id, d);
    out.push(fs);
    out.push_str(&header.processing_id);
    out.push(fs);
    out.push_str(&header.version);
    if !header.charset.is_empty() {
        // MSH-13 to MSH-17 empty, then MSH-18.
        for _ in 12..18 {
            out.push(fs);
        }
        out.push_str(&header.charset);
    }
    out.push_str("\rMSA");
    out.push(fs);
    out.push_str(code.as_str());
    out.push(fs);
    out.push_str(&header.control_id);
    if let Some(e) = error {
        out.push(fs);
        push_escaped(&mut out, &e.message, d);
    }
    out.push('\r');
    if let Some(e) = error {
        push_err_segment(&mut out, e, d, version_before_2_5(&header.version));
        out.push('\r');
    }
    let first_rep = header
        .charset
        .split(char::from(d.repetition))
        .next()
        .unwrap_or_default();
    match Charset::for_msh18(first_rep).unwrap_or(Charset::Utf8) {
        Charset::Utf8 => out.into_bytes(),
        other => other.encode(&out),
    }
}

/// Appends ERR-2's location (`PID^1^3`), trailing empty components left out.
fn push_location(out: &mut String, l: &ErrorLocation, d: &Delimiters) {
    let cs = char::from(d.component);
    push_escaped(out, &l.segment, d);
    let positions = [
        l.sequence,
        l.field,
        l.repetition,
        l.component,
        l.subcomponent,
    ];
    let last = positions
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    for n in positions.iter().take(last) {
        out.push(cs);
        if let Some(n) = n {
            out.push_str(&n.to_string());
        }
    }
}

/// The error as a coded element of HL7 table 0357, `code<sep>text<sep>HL70357`: components in ERR-3,
/// subcomponents inside the legacy ERR-1.
fn push_error_code(out: &mut String, code: u16, text: &str, sep: char, d: &Delimiters) {
    out.push_str(&code.to_string());
    out.push(sep);
    push_escaped(out, text, d);
    out.push(sep);
    out.push_str("HL70357");
}

fn push_err_segment(out: &mut String, e: &AckError, d: &Delimiters, legacy: bool) {
    let fs = char::from(d.field);
    let cs = char::from(d.component);
    let text = error_code_text(e.code);
    out.push_str("ERR");
    out.push(fs);
    if legacy {
        // ERR-1 (ELD): segment^sequence^field^code&text&HL70357.
        let sub = d.subcomponent.map_or(cs, char::from);
        let l = e.location.clone().unwrap_or_default();
        let num = |n: Option<usize>| n.map(|v| v.to_string()).unwrap_or_default();
        push_escaped(out, &l.segment, d);
        out.push(cs);
        out.push_str(&num(l.sequence));
        out.push(cs);
        out.push_str(&num(l.field));
        out.push(cs);
        push_error_code(out, e.code, text, sub, d);
    }
    out.push(fs);
    if let Some(l) = &e.location {
        push_location(out, l, d);
    }
    out.push(fs);
    push_error_code(out, e.code, text, cs, d);
    out.push(fs);
    out.push_str(e.severity.as_str());
    // ERR-5 to ERR-7 empty, then ERR-8.
    for _ in 4..8 {
        out.push(fs);
    }
    push_escaped(out, &e.message, d);
}

/// MSH-15/MSH-16 condition (HL7 table 0155).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCondition {
    /// `AL`: always.
    Always,
    /// `NE`: never.
    Never,
    /// `ER`: only on error/reject.
    ErrorOnly,
    /// `SU`: only on success.
    SuccessOnly,
}

impl AckCondition {
    /// Read a table 0155 code; empty or unknown codes mean [`AckCondition::Always`] (documented choice:
    /// in enhanced mode an unvalued or unrecognised condition must not silently suppress an ACK).
    pub fn parse(code: &str) -> Self {
        match code.trim() {
            "NE" => AckCondition::Never,
            "ER" => AckCondition::ErrorOnly,
            "SU" => AckCondition::SuccessOnly,
            _ => AckCondition::Always,
        }
    }

    /// Whether an acknowledgment is due for an outcome (`ok` = accepted/successful).
    pub fn wanted(&self, ok: bool) -> bool {
        match self {
            AckCondition::Always => true,
            AckCondition::Never => false,
            AckCondition::ErrorOnly => !ok,
            AckCondition::SuccessOnly => ok,
        }
    }
}

/// Which acknowledgments a received message asks for (hl7-facts §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// MSH-15 and MSH-16 both empty: one application ACK (AA/AE/AR) always.
    Original,
    /// Either is valued: a commit ACK (CA/CE/CR) per MSH-15, an application ACK per MSH-16.
    Enhanced {
        /// MSH-15 accept (commit) acknowledgment condition.
        accept: AckCondition,
        /// MSH-16 application acknowledgment condition.
        application: AckCondition,
    },
}

impl AckMode {
    /// The mode a message asks for via MSH-15/MSH-16.
    pub fn from_header(h: &MshHeader) -> Self {
        Self::from_fields(&h.accept_ack_type, &h.application_ack_type)
    }

    /// The mode for raw MSH-15 and MSH-16 values.
    pub fn from_fields(msh15: &str, msh16: &str) -> Self {
        if msh15.trim().is_empty() && msh16.trim().is_empty() {
            AckMode::Original
        } else {
            AckMode::Enhanced {
                accept: AckCondition::parse(msh15),
                application: AckCondition::parse(msh16),
            }
        }
    }

    /// Whether to send a commit ACK (CA/CE/CR) once the message is (or is not) safely stored.
    pub fn commit_ack_wanted(&self, accepted: bool) -> bool {
        match self {
            AckMode::Original => false,
            AckMode::Enhanced { accept, .. } => accept.wanted(accepted),
        }
    }

    /// Whether to send an application ACK (AA/AE/AR) once processing succeeded (or not).
    pub fn application_ack_wanted(&self, success: bool) -> bool {
        match self {
            AckMode::Original => true,
            AckMode::Enhanced { application, .. } => application.wanted(success),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(v: &str) -> MshHeader {
        let msg = format!(
            "MSH|^~\\&#|SAPP|SFAC|RAPP|RFAC|20240101||ADT^A01^ADT_A01|CTRL1|P|{v}\rPID|1\r"
        );
        MshHeader::peek(msg.as_bytes()).unwrap()
    }

    #[test]
    fn positive_ack() {
        let ack = build_ack_at(
            &header("2.5.1"),
            AckCode::AA,
            None,
            "ACK1",
            "20240101120000",
        );
        let s = String::from_utf8(ack).unwrap();
        assert_eq!(s, "MSH|^~\\&#|RAPP|RFAC|SAPP|SFAC|20240101120000||ACK^A01^ACK|ACK1|P|2.5.1\rMSA|AA|CTRL1\r");
    }

    #[test]
    fn error_ack_v25_layout() {
        let e = AckError::new(101, "PID-3 missing | required").at(ErrorLocation {
            segment: "PID".into(),
            sequence: Some(1),
            field: Some(3),
            ..ErrorLocation::default()
        });
        let s = String::from_utf8(build_ack_at(
            &header("2.5.1"),
            AckCode::AE,
            Some(&e),
            "A2",
            "2024",
        ))
        .unwrap();
        let lines: Vec<&str> = s.split('\r').collect();
        assert_eq!(lines[1], "MSA|AE|CTRL1|PID-3 missing \\F\\ required");
        assert_eq!(
            lines[2],
            "ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 missing \\F\\ required"
        );
    }

    #[test]
    fn error_ack_legacy_fills_err1() {
        let e = AckError::new(207, "boom");
        let s = String::from_utf8(build_ack_at(
            &header("2.3"),
            AckCode::AR,
            Some(&e),
            "A3",
            "2024",
        ))
        .unwrap();
        assert!(s.contains("\rERR|^^^207&Application internal error&HL70357||207^Application internal error^HL70357|E||||boom\r"), "{s}");
    }

    #[test]
    fn ack_modes() {
        assert_eq!(AckMode::from_fields("", ""), AckMode::Original);
        let m = AckMode::from_fields("AL", "NE");
        assert!(m.commit_ack_wanted(true) && !m.application_ack_wanted(true));
        let m = AckMode::from_fields("NE", "ER");
        assert!(
            !m.commit_ack_wanted(true)
                && !m.application_ack_wanted(true)
                && m.application_ack_wanted(false)
        );
        let m = AckMode::from_fields("NE", "NE");
        assert!(!m.commit_ack_wanted(false) && !m.application_ack_wanted(false));
        assert!(AckMode::Original.application_ack_wanted(true));
        assert!(!AckMode::Original.commit_ack_wanted(true));
    }

    #[test]
    fn control_ids_are_unique_and_short() {
        let (a, b) = (next_control_id(), next_control_id());
        assert_ne!(a, b);
        assert!(a.len() <= 20);
    }
}
