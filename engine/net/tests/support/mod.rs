//! Shared helpers for the listener and sender tests: a recording handler, raw MLLP clients, messages.
#![allow(dead_code, clippy::unwrap_used)]

pub mod pki;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use junction_mllp::MllpCodec;
use junction_net::{CancellationToken, Handler, Inbound, Listener, ListenerConfig, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};

/// An ADT^A01 with the given MSH-10 and MSH-15/16.
pub fn message(control_id: &str, accept_ack: &str, app_ack: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20240102030405||ADT^A01^ADT_A01|{control_id}|P|2.5.1|||{accept_ack}|{app_ack}\r\
         EVN|A01|20240102030405\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
    )
    .into_bytes()
}

/// An original-mode message.
pub fn adt(control_id: &str) -> Vec<u8> {
    message(control_id, "", "")
}

/// A handler that records what it saw and answers a fixed outcome after an optional delay.
pub struct Recorder {
    pub outcome: Outcome,
    pub delay: Duration,
    pub seen: Mutex<Vec<Inbound>>,
}

impl Recorder {
    pub fn new(outcome: Outcome) -> Arc<Self> {
        Arc::new(Self {
            outcome,
            delay: Duration::ZERO,
            seen: Mutex::new(Vec::new()),
        })
    }

    pub fn seen(&self) -> Vec<Inbound> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    async fn handle(&self, message: Inbound) -> Outcome {
        self.seen.lock().unwrap().push(message);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.outcome.clone()
    }
}

/// A running listener.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

/// Binds 127.0.0.1:0 with `tweak` applied to the default config and serves `handler`.
pub async fn start<H: Handler>(
    handler: Arc<H>,
    tweak: impl FnOnce(&mut ListenerConfig),
) -> Running {
    let mut config = ListenerConfig::new("127.0.0.1:0");
    tweak(&mut config);
    let listener = Listener::bind(config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(listener.serve(handler, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// A raw MLLP client over plain TCP.
pub struct Client {
    pub stream: TcpStream,
    codec: MllpCodec,
    buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            codec: MllpCodec::new(),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, payload: &[u8]) {
        let mut out = BytesMut::new();
        self.codec.encode(payload, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next frame as text, or `None` on EOF; fails the test after 5 s.
    pub async fn recv(&mut self) -> Option<String> {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("no answer within the time limit")
    }

    /// `Err(())` when nothing (not even EOF) arrives within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Result<Option<String>, ()> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                    return Some(String::from_utf8(frame.payload.to_vec()).unwrap());
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .map_err(|_| ())
    }

    /// Sends a message and returns its MSA segment.
    pub async fn round_trip(&mut self, control_id: &str) -> String {
        self.send(&adt(control_id)).await;
        msa(&self.recv().await.expect("connection closed instead of ACK"))
    }
}

/// The MSA segment of an ACK.
pub fn msa(ack: &str) -> String {
    segment(ack, "MSA").unwrap_or_else(|| panic!("no MSA in {ack:?}"))
}

/// The first segment named `name`.
pub fn segment(message: &str, name: &str) -> Option<String> {
    message
        .split('\r')
        .find(|s| s.starts_with(&format!("{name}|")))
        .map(str::to_owned)
}
