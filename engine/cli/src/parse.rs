//! `junction parse`: print messages as JSON, read one path, or re-encode them.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use junction_hl7::{MessageBuf, Path};

use crate::input::read_messages;

/// Arguments of `junction parse`.
#[derive(Args)]
pub struct ParseArgs {
    /// Print only the decoded value at this path (e.g. PID-5-1, OBX[2]-5), one line per message.
    #[arg(long, value_name = "PATH")]
    get: Option<String>,
    /// Output format when --get is not given.
    #[arg(long, value_enum, default_value_t = Emit::Json)]
    emit: Emit,
    /// HL7 files (a file may hold many messages or a batch); `-` or nothing reads stdin.
    files: Vec<PathBuf>,
}

/// What `junction parse` prints for each message.
#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// One JSON document per message: segments, fields, repetitions, components.
    Json,
    /// The message re-encoded with CR segment terminators (for round-trip checks).
    Hl7,
}

/// Run `junction parse`.
pub fn run(args: ParseArgs) -> ExitCode {
    let path = match args.get.as_deref().map(str::parse::<Path>).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("junction parse: invalid --get path: {e}");
            return ExitCode::from(2);
        }
    };
    let (messages, mut errors) = read_messages(&args.files);
    let mut out = std::io::stdout().lock();
    for m in messages {
        let parsed = match MessageBuf::parse(&m.bytes) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!(
                    "{}: message {} (byte {}): {e}",
                    m.source,
                    m.number,
                    m.offset + e.offset()
                ));
                continue;
            }
        };
        let written = match (&path, args.emit) {
            (Some(p), _) => writeln!(out, "{}", parsed.get(p).unwrap_or_default()),
            (None, Emit::Json) => writeln!(out, "{}", parsed.to_json()),
            (None, Emit::Hl7) => out.write_all(&parsed.encode()),
        };
        if let Err(e) = written {
            eprintln!("junction parse: cannot write output: {e}");
            return ExitCode::FAILURE;
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
