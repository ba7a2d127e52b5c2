//! `junction validate`: check every channel and compile every script without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use junction_runtime::Pipeline;

/// Arguments of `junction validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// A channels folder or one channel file.
    #[arg(default_value = "channels")]
    path: PathBuf,
}

/// Run `junction validate`.
pub fn run(args: ValidateArgs) -> ExitCode {
    let loaded = if args.path.is_dir() {
        junction_config::load_dir(&args.path)
    } else {
        junction_config::load_file(&args.path).map(|c| vec![c])
    };
    let configs = match loaded {
        Ok(c) => c,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for config in &configs {
        match Pipeline::build(config) {
            Ok(_) => println!("ok   {} ({})", config.name, config.file.display()),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
