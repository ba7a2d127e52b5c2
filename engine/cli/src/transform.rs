//! `junction transform`: run a channel's rules, filters and transforms on messages offline (the
//! engine's own pipeline, no sockets, no store) and print what each destination would receive.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use junction_config::ChannelConfig;
use junction_runtime::Pipeline;
use junction_store::{Disposition, Output, Status};

use crate::input::read_messages;

/// Arguments of `junction transform`.
#[derive(Args)]
pub struct TransformArgs {
    /// The channel: a YAML file, or a channel name found in --channels.
    #[arg(long)]
    channel: String,
    /// Folder of channel files to find --channel by name in.
    #[arg(long, default_value = "channels")]
    channels: PathBuf,
    /// Print only what this destination receives.
    #[arg(long)]
    destination: Option<String>,
    /// HL7 files (batches allowed), or `-` for stdin (the default).
    inputs: Vec<PathBuf>,
}

/// Load one channel given as a file or by name: `<dir>/<name>.yaml` first (so a broken channel
/// elsewhere in the folder does not get in the way), else every channel in `dir`.
pub fn load_channel(channel: &str, dir: &Path) -> Result<ChannelConfig, String> {
    let as_file = Path::new(channel);
    if as_file.is_file() {
        return junction_config::load_file(as_file).map_err(|d| d.to_string());
    }
    for ext in ["yaml", "yml"] {
        let file = dir.join(format!("{channel}.{ext}"));
        if file.is_file() {
            if let Ok(c) = junction_config::load_file(&file) {
                if c.name == channel {
                    return Ok(c);
                }
            }
        }
    }
    let all = junction_config::load_dir(dir).map_err(|d| d.to_string())?;
    let known: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let known = known.join(", ");
    all.iter()
        .find(|c| c.name == channel)
        .cloned()
        .ok_or_else(|| {
            format!(
                "no channel file {channel} and no channel named '{channel}' in {} (known: {known})",
                dir.display()
            )
        })
}

/// An output payload as a person reads it: HL7 segments one per line, JSON as the pipeline
/// pretty-printed it, anything else as text.
pub fn display_payload(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.payload);
    if output.content_type == junction_runtime::CONTENT_HL7 {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.into_owned()
    }
}

/// Why a destination got nothing from a routed message, from the stage that dropped it.
pub fn destination_filter_reason(stages: &[junction_store::StageOutcome], name: &str) -> String {
    stages
        .iter()
        .find(|s| {
            s.status == Status::Filtered
                && (s.stage == format!("filter:{name}") || s.stage == format!("transform:{name}"))
        })
        .and_then(|s| s.detail.clone())
        .unwrap_or_default()
}

/// Why `name` is not a destination of the channel: switched off by `when_env`, or not there.
pub fn unknown_destination(config: &ChannelConfig, pipeline: &Pipeline, name: &str) -> String {
    match config.disabled.iter().find(|d| d.name == name) {
        Some(d) => format!(
            "destination '{name}' of channel '{}' is switched off ({} is not set)",
            config.name, d.when_env
        ),
        None => {
            let known: Vec<&str> = pipeline.destination_names().collect();
            format!(
                "channel '{}' has no destination '{name}' (has: {})",
                config.name,
                known.join(", ")
            )
        }
    }
}

/// Run `junction transform`.
pub fn run(args: TransformArgs) -> ExitCode {
    let config = match load_channel(&args.channel, &args.channels) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let pipeline = match Pipeline::build(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let destinations: Vec<&str> = match &args.destination {
        Some(d) if pipeline.destination_names().any(|n| n == d) => vec![d.as_str()],
        Some(d) => {
            eprintln!("{}", unknown_destination(&config, &pipeline, d));
            return ExitCode::FAILURE;
        }
        None => pipeline.destination_names().collect(),
    };
    let (messages, read_errors) = read_messages(&args.inputs);
    let mut failed = !read_errors.is_empty();
    for e in &read_errors {
        eprintln!("{e}");
    }
    let headers = messages.len() * destinations.len() > 1;
    let now = junction_runtime::now_millis();
    for m in &messages {
        let label = format!("{} #{}", m.source, m.number);
        let run = pipeline.run(&m.bytes, now);
        match &run.processed.disposition {
            Disposition::Errored { error } => {
                failed = true;
                eprintln!("{label}: error: {error}");
            }
            Disposition::Filtered { reason } => println!("{label}: filtered: {reason}"),
            Disposition::Routed(outputs) => {
                for d in &destinations {
                    match outputs.iter().find(|o| o.destination == *d) {
                        Some(o) => {
                            if headers {
                                println!("==> {label} -> {d} ({}) <==", o.content_type);
                            }
                            let text = display_payload(o);
                            println!("{}", text.trim_end_matches('\n'));
                        }
                        None => {
                            let reason = destination_filter_reason(&run.processed.stages, d);
                            println!("{label} -> {d}: filtered: {reason}");
                        }
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
