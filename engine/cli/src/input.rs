//! Reading HL7 input named on the command line: files or `-` for stdin, each split into messages.

use std::io::Read;
use std::path::PathBuf;

use junction_hl7::split_batch;

/// One message read from an input, with where it came from for error reports.
pub struct InputMessage {
    /// The file name (or `-`), for error messages.
    pub source: String,
    /// 1-based position of the message within its input.
    pub number: usize,
    /// Byte offset of the message's MSH in the input.
    pub offset: usize,
    /// The message bytes, segments terminated by CR.
    pub bytes: Vec<u8>,
}

/// Read every input and split each into messages; an input that cannot be read or split is
/// reported as an error line naming it.
pub fn read_messages(inputs: &[PathBuf]) -> (Vec<InputMessage>, Vec<String>) {
    let mut messages = Vec::new();
    let mut errors = Vec::new();
    let stdin = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    for input in inputs {
        let name = input.display().to_string();
        let bytes = if name == "-" {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf)
        } else {
            std::fs::read(input)
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                errors.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        match split_batch(&bytes) {
            Ok(batch) => {
                for (i, (msg, offset)) in batch
                    .messages
                    .into_iter()
                    .zip(batch.message_offsets)
                    .enumerate()
                {
                    messages.push(InputMessage {
                        source: name.clone(),
                        number: i + 1,
                        offset,
                        bytes: msg,
                    });
                }
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    (messages, errors)
}
