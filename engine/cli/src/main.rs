//! The `junction` binary: one command line for every Junction capability.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod input;
mod listen;
mod messages;
mod parse;
mod run;
mod send;
mod status;
mod test_cmd;
mod transform;
mod validate;

/// mimalloc instead of glibc malloc: measured in the README (Benchmarks, end to end).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Junction: an HL7 v2 interface engine.
#[derive(Parser)]
#[command(name = "junction", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// For people.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
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
    /// Start every channel with the durable store (Ctrl-C or SIGTERM stops it cleanly).
    Run(run::RunArgs),
    /// Check channel files and compile their scripts without starting anything.
    Validate(validate::ValidateArgs),
    /// Browse, show and reprocess stored messages (store files, or a running engine with --admin).
    Messages(messages::MessagesArgs),
    /// Print the channel table of a running engine, read from its admin API.
    Status(status::StatusArgs),
    /// Run a channel's filters and transforms on messages offline and print each destination's output.
    Transform(transform::TransformArgs),
    /// Run the channel test cases in <channels>/tests/*.yaml (no sockets, no store).
    Test(test_cmd::TestArgs),
}

/// Log to stderr; `RUST_LOG` filters (default `info`). Logs never carry message content.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Parse(args) => parse::run(args),
        Command::Send(args) => send::run(args),
        Command::Listen(args) => listen::run(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Messages(args) => messages::run(args),
        Command::Status(args) => status::run(args),
        Command::Transform(args) => transform::run(args),
        Command::Test(args) => test_cmd::run(args),
    }
}
