//! The `junction` binary: one command line for every Junction capability.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Junction: an HL7 v2 interface engine.
#[derive(Parser)]
#[command(name = "junction", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands, one per capability.
#[derive(Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
