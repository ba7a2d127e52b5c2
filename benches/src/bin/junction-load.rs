//! `junction-load`: MLLP load generator.
//!
//! Opens N connections, sends M messages in total (one in flight per connection, as MLLP senders do), and
//! reports throughput, ACK latency (p50/p99/max) and ACK codes. Targets: a running receiver (`--to`), a
//! `junction listen` it starts itself (`--junction PATH`), and a trivial in-process responder that answers
//! a fixed ACK without parsing (`--echo`), so one run shows how close Junction gets to the wire's limit.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use junction_mllp::MllpCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

/// MLLP load generator: throughput and ACK latency of an MLLP receiver.
#[derive(Debug, Parser)]
#[command(name = "junction-load")]
struct Args {
    /// Measure a receiver that is already running at HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    to: Option<String>,
    /// Start `PATH listen` on a free port (output to /dev/null) and measure it.
    #[arg(long, value_name = "PATH")]
    junction: Option<PathBuf>,
    /// Also measure a trivial in-process responder (fixed ACK, no parsing) as the baseline.
    #[arg(long)]
    echo: bool,
    /// Connection counts to run, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    connections: Vec<usize>,
    /// Messages per run (split evenly over the connections).
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Runs per target and connection count, interleaved; the run with the median throughput is reported
    /// (other load on the machine skews single runs).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Message template file (MSH-10 is replaced per message); default: a built-in ADT^A01.
    #[arg(long, value_name = "FILE")]
    message: Option<PathBuf>,
}

const DEFAULT_MESSAGE: &str = "MSH|^~\\&|LOADGEN|HOSP|JUNCTION|HOSP|20240102030405||ADT^A01^ADT_A01|CONTROL|P|2.5.1\r\
EVN|A01|20240102030405\r\
PID|1||123456^^^HOSP^MR~987654321^^^USSSA^SS||DOE^JANE^Q^^^^L||19800101|F|||123 MAIN ST^^SPRINGFIELD^IL^62701^USA||^PRN^PH^^1^217^5551234|||M||ACC123|987654321\r\
NK1|1|DOE^JOHN|SPO|123 MAIN ST^^SPRINGFIELD^IL^62701^USA|^PRN^PH^^1^217^5551234\r\
PV1|1|I|WARD1^101^A^HOSP||||1234^SMITH^ADAM^^^DR|||MED||||ADM|||1234^SMITH^ADAM^^^DR|IN||SELF|||||||||||||||||||HOSP||ADM|||20240102030000\r\
AL1|1|DA|PEN^PENICILLIN^L|SV|RASH\r\
DG1|1||I10^Essential hypertension^I10||20240102|A\r";

/// One message with a unique control id, as the template with its MSH-10 replaced.
struct Template {
    before: String,
    after: String,
}

impl Template {
    fn new(text: &str) -> Result<Self, String> {
        let normalised = text.replace("\r\n", "\r").replace('\n', "\r");
        let msh_end = normalised.find('\r').unwrap_or(normalised.len());
        let msh = normalised.get(..msh_end).unwrap_or_default();
        if !msh.starts_with("MSH") || msh.len() < 4 {
            return Err("the message template must start with MSH".into());
        }
        // MSH-10 is the 10th piece when splitting on the field separator (MSH-1 is the separator itself).
        let sep = msh.get(3..4).unwrap_or("|");
        let starts: Vec<usize> = msh.match_indices(sep).map(|(i, _)| i + 1).collect();
        let (Some(&start), end) = (starts.get(8), starts.get(9).map(|&e| e - 1)) else {
            return Err("the message template has no MSH-10 field".into());
        };
        let end = end.unwrap_or(msh_end);
        Ok(Self {
            before: normalised.get(..start).unwrap_or_default().to_owned(),
            after: normalised.get(end..).unwrap_or_default().to_owned(),
        })
    }

    fn render(&self, control_id: &str) -> String {
        format!("{}{control_id}{}", self.before, self.after)
    }
}

/// What one run measured.
struct Report {
    elapsed: Duration,
    latencies: Vec<Duration>,
    codes: BTreeMap<String, usize>,
    failures: usize,
}

impl Report {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn percentile(&self, p: usize) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let i = (n * p / 100).min(n - 1);
        self.latencies.get(i).copied().unwrap_or_default()
    }

    fn print(&self, target: &str, connections: usize) {
        let codes: Vec<String> = self.codes.iter().map(|(c, n)| format!("{c}={n}")).collect();
        let max = self.latencies.last().copied().unwrap_or_default();
        println!(
            "{target:<10} {connections:>5} {:>9} {:>10.0} {:>8} {:>8} {:>8}  {}{}",
            self.latencies.len(),
            self.rate(),
            self.percentile(50).as_micros(),
            self.percentile(99).as_micros(),
            max.as_micros(),
            codes.join(" "),
            if self.failures > 0 {
                format!(" failures={}", self.failures)
            } else {
                String::new()
            },
        );
    }
}

/// The MSA-1 code of an ACK, or a label saying why there is none.
fn ack_code(ack: &[u8]) -> String {
    match junction_hl7::Message::parse(ack) {
        Ok(msg) => msg
            .find("MSA", 1)
            .and_then(|msa| msa.field(1))
            .map_or_else(|| "no-MSA".to_owned(), str::to_owned),
        Err(_) => "unparseable".to_owned(),
    }
}

/// One connection's share: sends `count` messages one at a time and times each ACK.
async fn connection(
    addr: SocketAddr,
    template: &Template,
    conn: usize,
    count: usize,
) -> std::io::Result<(Vec<Duration>, BTreeMap<String, usize>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut codec = MllpCodec::new();
    let (mut out, mut buf) = (BytesMut::new(), BytesMut::with_capacity(8192));
    let mut latencies = Vec::with_capacity(count);
    let mut codes = BTreeMap::new();
    for i in 0..count {
        out.clear();
        let message = template.render(&format!("L{conn}-{i}"));
        codec
            .encode(message.as_bytes(), &mut out)
            .map_err(std::io::Error::other)?;
        let sent = Instant::now();
        stream.write_all(&out).await?;
        let frame = loop {
            if let Some(frame) = codec.decode(&mut buf).map_err(std::io::Error::other)? {
                break frame;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        latencies.push(sent.elapsed());
        *codes.entry(ack_code(&frame.payload)).or_insert(0) += 1;
    }
    Ok((latencies, codes))
}

async fn run(addr: SocketAddr, template: &Template, connections: usize, messages: usize) -> Report {
    let per = messages / connections.max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|conn| {
            let template = Template {
                before: template.before.clone(),
                after: template.after.clone(),
            };
            tokio::spawn(async move { connection(addr, &template, conn, per).await })
        })
        .collect();
    let mut report = Report {
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(messages),
        codes: BTreeMap::new(),
        failures: 0,
    };
    for task in tasks {
        match task.await {
            Ok(Ok((latencies, codes))) => {
                report.latencies.extend(latencies);
                for (code, n) in codes {
                    *report.codes.entry(code).or_insert(0) += n;
                }
            }
            Ok(Err(e)) => {
                eprintln!("junction-load: connection failed: {e}");
                report.failures += 1;
            }
            Err(e) => {
                eprintln!("junction-load: connection task failed: {e}");
                report.failures += 1;
            }
        }
    }
    report.elapsed = start.elapsed();
    report.latencies.sort_unstable();
    report
}

/// The baseline: answers every frame with one fixed ACK, on its own runtime threads (like a separate process).
fn start_echo() -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = TcpListener::from_std(std_listener) else {
                return;
            };
            let mut ack = BytesMut::new();
            let fixed = "MSH|^~\\&|ECHO|ECHO|LOADGEN|HOSP|20240102030405||ACK^A01^ACK|1|P|2.5.1\rMSA|AA|0\r";
            if MllpCodec::new().encode(fixed, &mut ack).is_err() {
                return;
            }
            let ack = ack.freeze();
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let ack = ack.clone();
                tokio::spawn(async move {
                    let (mut codec, mut buf) = (MllpCodec::new(), BytesMut::with_capacity(8192));
                    loop {
                        match codec.decode(&mut buf) {
                            Ok(Some(_)) => {
                                if stream.write_all(&ack).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => match stream.read_buf(&mut buf).await {
                                Ok(n) if n > 0 => {}
                                _ => return,
                            },
                            Err(_) => return,
                        }
                    }
                });
            }
        });
    });
    Ok(addr)
}

/// A `junction listen` child process, killed when dropped.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_junction(path: &PathBuf) -> Result<(Spawned, SocketAddr), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new(path)
        .args(["listen", "--port", &port.to_string(), "--out", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let spawned = Spawned(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok((spawned, addr));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{} did not start listening on {addr}",
        path.display()
    ))
}

async fn main_async(args: Args) -> Result<(), String> {
    let text = match &args.message {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => DEFAULT_MESSAGE.to_owned(),
    };
    let template = Template::new(&text)?;
    let mut targets: Vec<(String, SocketAddr)> = Vec::new();
    if args.echo {
        targets.push((
            "echo".into(),
            start_echo().map_err(|e| format!("echo responder: {e}"))?,
        ));
    }
    let _child = match &args.junction {
        Some(path) => {
            let (child, addr) = start_junction(path).await?;
            targets.push(("junction".into(), addr));
            Some(child)
        }
        None => None,
    };
    if let Some(to) = &args.to {
        let addr = tokio::net::lookup_host(to)
            .await
            .map_err(|e| format!("{to}: {e}"))?
            .next()
            .ok_or_else(|| format!("{to}: no address"))?;
        targets.push((to.clone(), addr));
    }
    if targets.is_empty() {
        return Err(
            "nothing to measure: give --echo, --junction PATH and/or --to HOST:PORT".into(),
        );
    }
    println!(
        "{:<10} {:>5} {:>9} {:>10} {:>8} {:>8} {:>8}  acks",
        "target", "conns", "messages", "msgs/s", "p50(us)", "p99(us)", "max(us)"
    );
    for &connections in &args.connections {
        for (_, addr) in &targets {
            // Warm-up: connections, allocator and caches, not counted.
            run(
                *addr,
                &template,
                connections,
                (args.messages / 10).max(connections),
            )
            .await;
        }
        let mut runs: Vec<Vec<Report>> = targets.iter().map(|_| Vec::new()).collect();
        for _ in 0..args.repeat.max(1) {
            for ((_, addr), reports) in targets.iter().zip(&mut runs) {
                reports.push(run(*addr, &template, connections, args.messages).await);
            }
        }
        let mut rates = Vec::new();
        for ((name, _), mut reports) in targets.iter().zip(runs) {
            reports.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
            let all: Vec<String> = reports.iter().map(|r| format!("{:.0}", r.rate())).collect();
            let Some(median) = reports.get(reports.len() / 2) else {
                continue;
            };
            median.print(name, connections);
            println!(
                "{:<10} {connections:>5}  all runs msgs/s: {}",
                "",
                all.join(" ")
            );
            rates.push((name.clone(), median.rate()));
        }
        if let (Some((_, echo)), true) = (rates.first(), args.echo && rates.len() > 1) {
            for (name, rate) in rates.iter().skip(1) {
                println!(
                    "  {name} = {:.0}% of echo at {connections} connection(s) (medians)",
                    100.0 * rate / echo
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("junction-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction-load: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_replaces_msh10_only() {
        let t = Template::new("MSH|^~\\&|A|B|C|D|T||ADT^A01|OLD|P|2.5\nPID|1\n").unwrap();
        assert_eq!(
            t.render("NEW"),
            "MSH|^~\\&|A|B|C|D|T||ADT^A01|NEW|P|2.5\rPID|1\r"
        );
        assert!(Template::new("PID|1").is_err());
        assert!(Template::new("MSH|^~\\&|A").is_err());
    }
}
