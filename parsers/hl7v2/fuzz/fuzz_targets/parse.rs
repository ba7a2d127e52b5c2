//! Fuzz every entry point that sees untrusted bytes; parsed messages must re-encode stably.
//!
//! The first line of the input also serves as a path and a date/time (script and mapping text),
//! and a value set at that path must read back and survive a re-parse.
#![no_main]

use junction_hl7::{datetime, split_batch, FieldPath, Message, MessageBuf, MshHeader, Path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = MshHeader::peek(data);
    if let Ok(m) = Message::parse(data) {
        let owned = m.to_owned();
        let _ = MessageBuf::parse(&owned.encode());
    }
    if let Ok(m) = MessageBuf::parse(data) {
        let enc = m.encode();
        if let Ok(again) = MessageBuf::parse(&enc) {
            assert_eq!(
                again.encode(),
                enc,
                "re-encoding a parsed message changed it"
            );
        } else {
            panic!("an encoded message no longer parses");
        }
        let _ = m.to_json();
    }
    if let Ok(batch) = split_batch(data) {
        for msg in &batch.messages {
            let _ = MessageBuf::parse(msg).map(|m| m.encode());
        }
    }
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(text) = std::str::from_utf8(first) else {
        return;
    };
    let _ = datetime::to_fhir_instant(text);
    let _ = text.parse::<FieldPath>();
    let Ok(path) = text.parse::<Path>() else {
        return;
    };
    assert_eq!(
        path.to_string().parse::<Path>().as_ref(),
        Ok(&path),
        "a path no longer parses as itself once written"
    );
    if let Ok(mut m) = MessageBuf::parse(rest) {
        if m.set(&path, "v1").is_ok() {
            assert_eq!(m.get(&path).as_deref(), Some("v1"), "a set value reads back");
            let enc = m.encode();
            let again = MessageBuf::parse(&enc).expect("an edited message parses");
            assert_eq!(again.encode(), enc, "an edited message re-encodes stably");
        }
        let _ = m.remove(&path);
        let _ = m.count(&path);
    }
});
