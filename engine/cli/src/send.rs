//! `junction send`: sends every message in HL7 files over MLLP and prints each ACK's MSA segment.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use junction_net::{ClientTls, Sender, SenderConfig};

/// Options of `junction send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Receiver address.
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Connect with TLS, trusting the server certificate if it chains to this PEM CA.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for servers that require one (needs --tls-key and --tls-ca).
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds to wait for each ACK.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// HL7 files: one message, several, or an FHS/BHS batch.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Sends the files' messages in order; exit status 1 if any message was not accepted (AA/CA).
pub fn run(args: SendArgs) -> ExitCode {
    let mut config = SenderConfig::new(args.to.clone());
    config.ack_timeout = Duration::from_secs(args.timeout);
    config.tls = args.tls_ca.map(|ca| ClientTls {
        ca,
        identity: args.tls_cert.zip(args.tls_key),
        server_name: None,
    });
    let mut sender = match Sender::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("junction send: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("junction send: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut all_accepted = true;
    for path in &args.files {
        let messages = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| junction_hl7::split_batch(&bytes).map_err(|e| e.to_string()))
        {
            Ok(batch) => batch.messages,
            Err(e) => {
                eprintln!("junction send: {}: {e}", path.display());
                all_accepted = false;
                continue;
            }
        };
        for (index, message) in messages.iter().enumerate() {
            let label = format!("{}#{}", path.display(), index + 1);
            match runtime.block_on(sender.send(message)) {
                Ok(Ok(delivered)) => println!("{label}: {}", msa_line(&delivered.ack)),
                Ok(Err(nak)) => {
                    println!("{label}: {}", msa_line(&nak.ack));
                    all_accepted = false;
                }
                Err(e) => {
                    eprintln!("junction send: {label}: {e}");
                    all_accepted = false;
                }
            }
        }
    }
    if all_accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The ACK's MSA segment as text, decoded by the ACK's MSH-18 (the sender has already checked that
/// there is one).
fn msa_line(ack: &[u8]) -> String {
    let Ok((text, _)) = junction_hl7::Charset::decode_message(ack) else {
        return String::new();
    };
    junction_hl7::Message::parse(text.as_bytes())
        .ok()
        .and_then(|m| m.find("MSA", 1).map(|msa| msa.raw().to_owned()))
        .unwrap_or_default()
}
