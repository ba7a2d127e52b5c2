//! The `junction` binary: one command line for every Junction capability.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod input;
mod parse;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Parse(args) => parse::run(args),
    }
}
