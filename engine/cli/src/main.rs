//! The `junction` binary: one command line for every Junction capability.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod input;
mod listen;
mod parse;
mod send;

/// Junction: an HL7 v2 interface engine.
#[derive(Parser)]
#[command(name = "junction", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands, one per capability.
#[derive(Subcommand)]
enum Command {
    /// Parse HL7 v2 messages and print them as JSON, one path's value, or re-encoded HL7.
    Parse(parse::ParseArgs),
    /// Send HL7 files to an MLLP receiver and print each ACK's MSA segment.
    Send(send::SendArgs),
    /// Run a standalone MLLP listener that acknowledges and prints every message.
    Listen(listen::ListenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse(args) => parse::run(args),
        Command::Send(args) => send::run(args),
        Command::Listen(args) => listen::run(args),
    }
}
