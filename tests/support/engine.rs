//! Helpers for end-to-end tests of `junction run`: a channel folder, the engine as a child
//! process (restartable, killable), and a small blocking MLLP client.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `junction run` child process over one channels folder and one data folder.
pub struct Engine {
    pub channels: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    /// Extra `junction run` arguments for every later `start` (e.g. `--admin ADDR`).
    pub args: Vec<String>,
    /// Extra environment for the engine process (JUNCTION_ADMIN_TOKEN is cleared unless set here).
    pub envs: Vec<(String, String)>,
    child: Option<Child>,
}

impl Engine {
    /// An engine over `root/channels` and `root/data`, logging to `root/engine.log`.
    pub fn new(root: &Path) -> Self {
        let channels = root.join("channels");
        std::fs::create_dir_all(&channels).unwrap();
        Self {
            channels,
            data: root.join("data"),
            log: root.join("engine.log"),
            args: Vec::new(),
            envs: Vec::new(),
            child: None,
        }
    }

    /// Write a channel file.
    pub fn channel(&self, file: &str, yaml: &str) {
        std::fs::write(self.channels.join(file), yaml).unwrap();
    }

    /// Start the engine (logs appended to the log file, never to a pipe nobody reads).
    pub fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["run", "--channels"])
            .arg(&self.channels)
            .arg("--data")
            .arg(&self.data)
            .args(&self.args)
            .env_remove("JUNCTION_ADMIN_TOKEN")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL the engine and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the engine and wait for a clean exit; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().ok().and_then(|s| s.code())
    }

    /// Send a signal (e.g. `HUP`) to the running engine.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([format!("-{name}"), c.id().to_string()])
                .status();
        }
    }

    /// The engine's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal ADT^A01 with the given control id.
pub fn adt(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|SEND|FAC|RECV|FAC|20260101120000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A01|20260101120000\r\
         PID|1||{control_id}^^^FAC^MR||Tester^Pat||19800101|F\r\
         PV1|1|I|W1^1^1\r"
    )
}

/// A blocking MLLP client connection.
pub struct MllpClient {
    stream: TcpStream,
}

impl MllpClient {
    /// Connect (with a timeout) to `addr`.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream })
    }

    /// Send one message and return (MSA-1, MSA-2) of the answer.
    pub fn send(&mut self, message: &str) -> std::io::Result<(String, String)> {
        let text = self.send_for_ack(message)?;
        let msa = text
            .split(['\r', '\n'])
            .find(|s| s.starts_with("MSA"))
            .unwrap_or_default()
            .to_owned();
        let mut fields = msa.split('|').skip(1);
        let code = fields.next().unwrap_or_default().to_owned();
        let id = fields.next().unwrap_or_default().to_owned();
        Ok((code, id))
    }

    /// Send one message and return the whole answer (ACK segments, without the MLLP framing bytes).
    pub fn send_for_ack(&mut self, message: &str) -> std::io::Result<String> {
        self.write_frame(message)?;
        let mut buf = Vec::new();
        let mut byte = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut byte)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before the ACK",
                ));
            }
            buf.extend_from_slice(&byte[..n]);
            if buf.ends_with(&[0x1C, 0x0D]) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&buf);
        Ok(text.trim_matches(['\x0b', '\x1c', '\r']).to_owned())
    }

    /// Send one message and count the bytes that come back within `wait` (an `ack: none` channel
    /// should send none). A connection the peer closes is an error, not silence.
    pub fn send_expecting_silence(
        &mut self,
        message: &str,
        wait: Duration,
    ) -> std::io::Result<usize> {
        self.write_frame(message)?;
        self.stream.set_read_timeout(Some(wait))?;
        let mut byte = [0u8; 4096];
        let answer = match self.stream.read(&mut byte) {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            )),
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))?;
        answer
    }

    fn write_frame(&mut self, message: &str) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(message.len() + 3);
        frame.push(0x0B);
        frame.extend_from_slice(message.as_bytes());
        frame.extend_from_slice(&[0x1C, 0x0D]);
        self.stream.write_all(&frame)
    }
}

/// Connect to `addr`, retrying for up to 30 s (the engine may be restarting).
pub fn connect_retrying(addr: SocketAddr) -> MllpClient {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match MllpClient::connect(addr) {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cannot connect to {addr}: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// MSH-10 of every message in a `junction listen --out` file, in order.
pub fn control_ids_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("MSH|"))
        .filter_map(|l| l.split('|').nth(9).map(str::to_owned))
        .collect()
}

/// Poll `check` every 100 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// An MLLP peer on a free port that answers every message with `code` (e.g. `AE`) and `text` in
/// MSA-3; runs until the test process ends.
pub fn spawn_naking_peer(code: &'static str, text: &'static str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_every_frame(stream, code, text));
        }
    });
    addr
}

fn answer_every_frame(mut stream: TcpStream, code: &str, text: &str) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.windows(2).position(|w| w == [0x1C, 0x0D]) {
            let frame: Vec<u8> = pending.drain(..end + 2).collect();
            let message = String::from_utf8_lossy(&frame);
            let control_id = message
                .split(['\r', '\n'])
                .find_map(|l| l.trim_start_matches('\x0b').strip_prefix("MSH|"))
                .and_then(|msh| msh.split('|').nth(8))
                .unwrap_or_default()
                .to_owned();
            let ack = format!(
                "\x0bMSH|^~\\&|PEER|FAC|SEND|FAC|20260101120000||ACK|A{control_id}|P|2.5.1\rMSA|{code}|{control_id}|{text}\r\x1c\r"
            );
            if stream.write_all(ack.as_bytes()).is_err() {
                return;
            }
        }
    }
}
