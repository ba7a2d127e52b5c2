//! The glue between listener/sender outcomes and junction-hl7's ACK builder and reader.

use std::borrow::Cow;

use junction_hl7::ack::{build_ack, next_control_id, AckCode, AckError, AckMode};
use junction_hl7::{Charset, FieldPath, Message, MessageBuf, MshHeader};

use crate::listener::Outcome;

/// Table 0357 "application internal error": the generic code for handler errors and rejections.
const APPLICATION_ERROR: u16 = 207;
/// Table 0357 "segment sequence error": the message does not start with MSH.
const SEGMENT_SEQUENCE_ERROR: u16 = 100;

/// One acknowledgement to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) code: AckCode,
    pub(crate) error: Option<AckError>,
}

/// Why a frame cannot be accepted before the handler sees it: no readable MSH, or (when `check_syntax`)
/// a parse error. `None` when it is fine.
pub(crate) fn problem(
    payload: &[u8],
    header: Option<&MshHeader>,
    check_syntax: bool,
) -> Option<AckError> {
    if header.is_none() {
        let message = if payload.iter().all(u8::is_ascii_whitespace) {
            "message is empty"
        } else {
            "message has no readable MSH segment"
        };
        return Some(AckError::new(SEGMENT_SEQUENCE_ERROR, message));
    }
    if !check_syntax {
        return None;
    }
    // Any charset MSH-18 names is fine here; handlers read the message with `MessageBuf::parse`.
    MessageBuf::check(payload)
        .err()
        .map(|e| AckError::from_parse_error(&e))
}

/// The ACK for a frame refused before it reached the handler (e.g. over the size limit).
pub(crate) fn rejection(reason: impl Into<String>) -> AckError {
    AckError::new(APPLICATION_ERROR, reason)
}

/// The acknowledgements due for `outcome`, as MSH-15/MSH-16 ask (original mode without a header).
pub(crate) fn replies(
    header: Option<&MshHeader>,
    outcome: &Outcome,
    problem: Option<&AckError>,
) -> Vec<Reply> {
    let (ok, commit, application, error) = match (problem, outcome) {
        (_, Outcome::NoAck) => return Vec::new(),
        (Some(p), _) => (false, AckCode::CR, AckCode::AR, Some(p.clone())),
        (None, Outcome::Accept) => (true, AckCode::CA, AckCode::AA, None),
        (None, Outcome::Error(reason)) => (
            false,
            AckCode::CE,
            AckCode::AE,
            Some(AckError::new(APPLICATION_ERROR, reason.as_str())),
        ),
        (None, Outcome::Reject(reason)) => (
            false,
            AckCode::CR,
            AckCode::AR,
            Some(rejection(reason.as_str())),
        ),
    };
    let mode = header.map_or(AckMode::Original, AckMode::from_header);
    let mut out = Vec::new();
    if mode.commit_ack_wanted(ok) {
        out.push(Reply {
            code: commit,
            error: error.clone(),
        });
    }
    if mode.application_ack_wanted(ok) {
        out.push(Reply {
            code: application,
            error,
        });
    }
    out
}

/// The ACK message bytes for `reply`; without a header the ACK has default delimiters and an empty MSA-2.
pub(crate) fn build(header: Option<&MshHeader>, reply: &Reply) -> Vec<u8> {
    let fallback;
    let header = match header {
        Some(h) => h,
        None => {
            fallback = MshHeader::default();
            &fallback
        }
    };
    build_ack(header, reply.code, reply.error.as_ref(), &next_control_id())
}

/// What an ACK said.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) code: AckCode,
    pub(crate) control_id: String,
    pub(crate) reason: Option<String>,
}

fn code_from(text: &str) -> Option<AckCode> {
    Some(match text.trim() {
        "AA" => AckCode::AA,
        "AE" => AckCode::AE,
        "AR" => AckCode::AR,
        "CA" => AckCode::CA,
        "CE" => AckCode::CE,
        "CR" => AckCode::CR,
        _ => return None,
    })
}

/// Reads MSA-1, MSA-2 and the reason (MSA-3, else ERR-8, else the ERR-3 text) from an ACK.
pub(crate) fn read(ack: &[u8]) -> Result<Answer, String> {
    let unparseable = |e: junction_hl7::ParseError| format!("unparseable: {e}");
    let (text, _) = Charset::decode_message(ack).map_err(unparseable)?;
    let message = Message::parse(text.as_bytes()).map_err(unparseable)?;
    let msa = message.find("MSA", 1).ok_or("no MSA segment")?;
    let field = |n: usize| {
        msa.get(&FieldPath::field(n))
            .map(Cow::into_owned)
            .unwrap_or_default()
    };
    let code_text = field(1);
    let code = code_from(&code_text).ok_or_else(|| format!("unknown MSA-1 code {code_text:?}"))?;
    let err_text = || {
        let err = message.find("ERR", 1)?;
        let text = |path: FieldPath| {
            err.get(&path)
                .map(Cow::into_owned)
                .filter(|t| !t.is_empty())
        };
        text(FieldPath::field(8)).or_else(|| {
            text(FieldPath {
                component: Some(2),
                ..FieldPath::field(3)
            })
        })
    };
    let reason = Some(field(3)).filter(|t| !t.is_empty()).or_else(err_text);
    Ok(Answer {
        code,
        control_id: field(2),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(msh15: &str, msh16: &str) -> MshHeader {
        MshHeader::peek(
            format!("MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID1|P|2.5.1|||{msh15}|{msh16}\r").as_bytes(),
        )
        .unwrap()
    }

    fn codes(replies: &[Reply]) -> Vec<&'static str> {
        replies.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn original_mode_sends_one_application_ack() {
        let h = header("", "");
        assert_eq!(codes(&replies(Some(&h), &Outcome::Accept, None)), ["AA"]);
        assert_eq!(
            codes(&replies(Some(&h), &Outcome::Error("x".into()), None)),
            ["AE"]
        );
        assert_eq!(
            codes(&replies(Some(&h), &Outcome::Reject("x".into()), None)),
            ["AR"]
        );
        assert!(replies(Some(&h), &Outcome::NoAck, None).is_empty());
        assert_eq!(
            codes(&replies(None, &Outcome::Accept, Some(&rejection("bad")))),
            ["AR"]
        );
    }

    #[test]
    fn enhanced_mode_follows_the_conditions() {
        let ok = Outcome::Accept;
        let err = Outcome::Error("disk".into());
        assert_eq!(
            codes(&replies(Some(&header("AL", "NE")), &ok, None)),
            ["CA"]
        );
        assert_eq!(
            codes(&replies(Some(&header("AL", "AL")), &ok, None)),
            ["CA", "AA"]
        );
        assert_eq!(
            codes(&replies(Some(&header("NE", "AL")), &ok, None)),
            ["AA"]
        );
        assert!(replies(Some(&header("NE", "NE")), &ok, None).is_empty());
        assert!(replies(Some(&header("ER", "ER")), &ok, None).is_empty());
        assert_eq!(
            codes(&replies(Some(&header("ER", "ER")), &err, None)),
            ["CE", "AE"]
        );
        assert_eq!(
            codes(&replies(Some(&header("SU", "NE")), &err, None)),
            Vec::<&str>::new()
        );
        let bad = rejection("unparseable");
        assert_eq!(
            codes(&replies(Some(&header("AL", "NE")), &ok, Some(&bad))),
            ["CR"]
        );
    }

    #[test]
    fn reads_what_build_writes() {
        let h = header("", "");
        let reply = Reply {
            code: AckCode::AE,
            error: Some(AckError::new(207, "store down")),
        };
        let answer = read(&build(Some(&h), &reply)).unwrap();
        assert_eq!(answer.code, AckCode::AE);
        assert_eq!(answer.control_id, "ID1");
        assert_eq!(answer.reason.as_deref(), Some("store down"));
        let ok = read(b"MSH|^~\\&|A|B|C|D|2024||ACK|9|P|2.3\rMSA|CA|X7\r").unwrap();
        assert_eq!(
            (ok.code, ok.control_id.as_str(), ok.reason),
            (AckCode::CA, "X7", None)
        );
        assert!(read(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|9|P|2.3\rPID|1\r").is_err());
        assert!(read(b"MSH|^~\\&|A|B|C|D|2024||ACK|9|P|2.3\rMSA|ZZ|X7\r").is_err());
        assert!(read(b"garbage").is_err());
        let latin1 = read(
            b"MSH|^~\\&|A|B|C|D|2024||ACK|9|P|2.5|||||DEU|8859/1\rMSA|AR|X8|Stra\xdfe fehlt\r",
        )
        .unwrap();
        assert_eq!(latin1.reason.as_deref(), Some("Straße fehlt"));
    }

    #[test]
    fn latin1_messages_are_accepted_and_broken_ones_still_refused() {
        let latin1 =
            b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|L1|P|2.5|||||DEU|8859/1\rPID|1||||M\xfcller\r";
        let h = MshHeader::peek(latin1);
        assert!(h.is_some());
        assert_eq!(problem(latin1, h.as_ref(), true), None);
        let broken = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|L1|P|2.5\rPID|M\xfcller\rpid|1\r";
        let p = problem(broken, MshHeader::peek(broken).as_ref(), true).unwrap();
        assert!(p.message.contains("segment 3 (pid)"), "{}", p.message);
    }

    #[test]
    fn headerless_frames_are_rejected_with_a_reason() {
        let p = problem(b"PID|1\r", None, true).unwrap();
        assert_eq!(p.message, "message has no readable MSH segment");
        let ack = String::from_utf8(build(
            None,
            &Reply {
                code: AckCode::AR,
                error: Some(p),
            },
        ))
        .unwrap();
        assert!(
            ack.contains("\rMSA|AR||message has no readable MSH segment\r"),
            "{ack}"
        );
        assert!(ack.contains("\rERR|"), "{ack}");
        assert_eq!(
            problem(b"  ", None, true).unwrap().message,
            "message is empty"
        );
    }
}
