//! Fuzz every entry point that sees untrusted bytes; parsed messages must re-encode stably.
#![no_main]

use junction_hl7::{split_batch, Message, MessageBuf, MshHeader};
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
});
