//! MLLP listener: accepts connections (plain or TLS), reads frames, asks a [`Handler`] what to do with each
//! message and writes the ACK. This is the one place ACKs are built.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use junction_hl7::MshHeader;
use junction_mllp::{FramingConfig, MllpCodec, MllpError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::ack::{self, Reply};
use crate::tls::{ServerTls, TlsError};

/// What the handler decided about one message; the listener turns it into ACK(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken (stored or processed, as the channel's ACK policy requires): AA / CA.
    Accept,
    /// Could not be taken because of a problem on this side (e.g. storage failed): AE / CE.
    Error(String),
    /// Refused because of the message itself: AR / CR.
    Reject(String),
    /// Write no acknowledgement at all.
    NoAck,
}

impl Outcome {
    /// The outcome without its reason, for logs: a reason can quote the message (a script's thrown value).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Error(_) => "error",
            Self::Reject(_) => "reject",
            Self::NoAck => "no ack",
        }
    }
}

/// One message as received, handed to the [`Handler`].
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The frame's payload, unchanged.
    pub payload: Bytes,
    /// The pre-read MSH header, `None` when the payload has no readable MSH (shared with the listener,
    /// which addresses the ACK from it).
    pub header: Option<Arc<MshHeader>>,
    /// Why the listener will answer AR whatever the handler says (unreadable header or parse error);
    /// the handler should keep such a message as errored.
    pub invalid: Option<String>,
    /// The remote address.
    pub peer: SocketAddr,
}

/// The runtime's side of a listener: decides the outcome of each message.
///
/// Called for one message at a time per connection; the ACK is written when the returned future completes,
/// so the handler chooses whether that is after storing or after processing.
pub trait Handler: Send + Sync + 'static {
    /// Decides what to answer for `message`.
    fn handle(&self, message: Inbound) -> impl Future<Output = Outcome> + Send;
}

/// Whether the listener writes acknowledgements at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckPolicy {
    /// Answer each message as MSH-15/MSH-16 ask (original mode when both are empty).
    #[default]
    Respond,
    /// Never write an acknowledgement (`ack: none`).
    Never,
}

/// The slowest pace, in bytes per millisecond (16 KB/s), at which a frame's bytes extend the time it
/// may take beyond `read_timeout`.
const MIN_FRAME_BYTES_PER_MS: u64 = 16;

/// Listener settings; `ListenerConfig::new(addr)` gives the defaults.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// `host:port` to bind.
    pub bind: String,
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// How long a frame may take from its first byte to its last, plus a millisecond per 16 bytes of it
    /// (also bounds the TLS handshake).
    pub read_timeout: Duration,
    /// How long a connection may stay silent between messages; `None` keeps it open.
    pub idle_timeout: Option<Duration>,
    /// How long writing an ACK may take before the connection is dropped.
    pub write_timeout: Duration,
    /// Framing bytes and the frame length limit.
    pub framing: FramingConfig,
    /// Serve TLS instead of plain TCP.
    pub tls: Option<ServerTls>,
    /// Whether to write ACKs.
    pub ack: AckPolicy,
    /// Parse every message fully and answer AR on a syntax error (otherwise only MSH is checked).
    pub check_syntax: bool,
}

impl ListenerConfig {
    /// Defaults: 64 connections, 30 s read and write timeouts, 10 min idle timeout, standard framing,
    /// plain TCP, ACKs on, full syntax check.
    pub fn new(bind: impl Into<String>) -> Self {
        Self {
            bind: bind.into(),
            max_connections: 64,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            write_timeout: Duration::from_secs(30),
            framing: FramingConfig::default(),
            tls: None,
            ack: AckPolicy::Respond,
            check_syntax: true,
        }
    }
}

/// Why a listener could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The framing configuration is unusable.
    #[error("invalid MLLP framing: {0}")]
    Framing(#[from] junction_mllp::ConfigError),
    /// TLS files could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

/// A bound MLLP listener; call [`Listener::serve`] to run it.
pub struct Listener {
    tcp: TcpListener,
    acceptor: Option<TlsAcceptor>,
    config: ListenerConfig,
}

impl Listener {
    /// Binds the address and loads TLS files, so configuration errors surface before serving.
    pub async fn bind(config: ListenerConfig) -> Result<Self, ListenError> {
        config.framing.validate()?;
        let acceptor = config.tls.as_ref().map(ServerTls::acceptor).transpose()?;
        let tcp = TcpListener::bind(&config.bind)
            .await
            .map_err(|source| ListenError::Bind {
                addr: config.bind.clone(),
                source,
            })?;
        Ok(Self {
            tcp,
            acceptor,
            config,
        })
    }

    /// The bound address (useful when binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets each connection finish the message
    /// it is handling, and returns when all connections are closed.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, shutdown: CancellationToken) {
        let Self {
            tcp,
            acceptor,
            config,
        } = self;
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let shared = Arc::new(Shared { handler, config });
        let mut connections = JoinSet::new();
        let local = tcp.local_addr().ok();
        info!(addr = ?local, tls = acceptor.is_some(), "MLLP listener started");
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = tcp.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                warn!(%peer, max = shared.config.max_connections, "connection refused: too many connections");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&shared);
            let acceptor = acceptor.clone();
            let cancel = shutdown.child_token();
            connections.spawn(async move {
                debug!(%peer, "connection opened");
                match acceptor {
                    None => shared.connection(stream, peer, cancel).await,
                    Some(acceptor) => shared.tls_connection(&acceptor, stream, peer, cancel).await,
                }
                debug!(%peer, "connection closed");
                drop(permit);
            });
        }
        drop(tcp);
        info!(addr = ?local, open = connections.len(), "MLLP listener stopping");
        while connections.join_next().await.is_some() {}
    }
}

struct Shared<H> {
    handler: Arc<H>,
    config: ListenerConfig,
}

/// Why a connection ended early.
enum Close {
    Eof,
    /// The peer is still sending a frame we refused.
    Rejected,
    Shutdown,
    Timeout(&'static str),
    Io(std::io::Error),
}

impl<H: Handler> Shared<H> {
    async fn tls_connection(
        &self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
        cancel: CancellationToken,
    ) {
        match tokio::time::timeout(self.config.read_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.connection(tls, peer, cancel).await,
            Ok(Err(e)) => warn!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => warn!(%peer, "TLS handshake timed out"),
        }
    }

    async fn connection<S>(&self, mut stream: S, peer: SocketAddr, cancel: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        // The config was validated in `bind`, so this cannot fail; fall back to standard framing anyway.
        let mut codec = MllpCodec::with_config(self.config.framing).unwrap_or_default();
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut out = BytesMut::with_capacity(512);
        // One cancellation waiter and one timer for the whole connection, re-armed before each read:
        // making new ones per read took a lock on the token and on the timer wheel for every message.
        let mut cancelled = pin!(cancel.cancelled());
        let mut deadline = pin!(tokio::time::sleep(Duration::ZERO));
        let mut frame_started = None;
        let close = loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if frame.skipped > 0 {
                        warn!(%peer, bytes = frame.skipped, "skipped bytes outside MLLP frames");
                    }
                    if let Err(close) = self
                        .message(&mut stream, &codec, &mut out, frame.payload, peer)
                        .await
                    {
                        break close;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(MllpError::FrameTooLong { limit, head }) => {
                    warn!(%peer, limit, "frame exceeds the length limit; rejecting and closing");
                    let header = MshHeader::peek(&head);
                    let problem =
                        ack::rejection(format!("message exceeds the {limit}-byte frame limit"));
                    if self.config.ack == AckPolicy::Respond {
                        let replies = ack::replies(
                            header.as_ref(),
                            &Outcome::Reject(String::new()),
                            Some(&problem),
                        );
                        let _ = self
                            .write_acks(&mut stream, &codec, &mut out, header.as_ref(), &replies)
                            .await;
                    }
                    break Close::Rejected;
                }
                Err(e) => break Close::Io(std::io::Error::other(e.to_string())),
            }
            let now = tokio::time::Instant::now();
            let (due, what) = if codec.is_mid_frame() {
                // Timed from the frame's start, not from the last read: a peer dribbling a byte now and
                // then would otherwise hold its connection slot for ever. Bytes that arrive buy time at
                // the minimum pace, so a large frame over a slow link still gets through.
                let started = *frame_started.get_or_insert(now);
                let pace = u64::try_from(buf.len()).unwrap_or(u64::MAX) / MIN_FRAME_BYTES_PER_MS;
                (
                    Some(started + self.config.read_timeout + Duration::from_millis(pace)),
                    "peer too slow mid-frame",
                )
            } else {
                frame_started = None;
                (self.config.idle_timeout.map(|w| now + w), "idle connection")
            };
            if let Some(due) = due {
                deadline.as_mut().reset(due);
            }
            buf.reserve(8 * 1024);
            let read = tokio::select! {
                () = &mut cancelled => break Close::Shutdown,
                () = &mut deadline, if due.is_some() => break Close::Timeout(what),
                read = stream.read_buf(&mut buf) => read,
            };
            match read {
                Ok(0) => {
                    if let Err(e) = codec.decode_eof(&mut buf) {
                        warn!(%peer, error = %e, "connection closed mid-frame");
                    }
                    break Close::Eof;
                }
                Ok(_) => {}
                Err(e) => break Close::Io(e),
            }
        };
        let junk = codec.take_skipped();
        if junk > 0 {
            warn!(%peer, bytes = junk, "skipped bytes outside MLLP frames");
        }
        let _ = tokio::time::timeout(self.config.write_timeout, stream.shutdown()).await;
        match close {
            Close::Eof => {}
            Close::Rejected => {
                // Read what the peer is still sending: closing with unread data would reset the connection
                // and could destroy the NAK before the peer reads it.
                let mut sink = vec![0u8; 64 * 1024];
                let drain =
                    async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
                let _ = tokio::time::timeout(self.config.read_timeout, drain).await;
            }
            Close::Shutdown => debug!(%peer, "closing connection for shutdown"),
            Close::Timeout(what) => info!(%peer, "closing connection: {what}"),
            Close::Io(e) => warn!(%peer, error = %e, "connection failed"),
        }
    }

    /// Handles one frame and writes its ACK(s).
    async fn message<S>(
        &self,
        stream: &mut S,
        codec: &MllpCodec,
        out: &mut BytesMut,
        payload: Bytes,
        peer: SocketAddr,
    ) -> Result<(), Close>
    where
        S: AsyncWrite + Unpin + Send,
    {
        let header = MshHeader::peek(&payload).map(Arc::new);
        let problem = ack::problem(&payload, header.as_deref(), self.config.check_syntax);
        let control_id = header.as_ref().map_or("", |h| h.control_id.as_str());
        if let Some(problem) = &problem {
            warn!(%peer, control_id, reason = %problem.message, "unparseable message; answering AR");
        }
        let inbound = Inbound {
            payload,
            header: header.clone(),
            invalid: problem.as_ref().map(|p| p.message.clone()),
            peer,
        };
        let outcome = self.handler.handle(inbound).await;
        debug!(%peer, control_id, outcome = outcome.kind(), "message handled");
        if self.config.ack == AckPolicy::Never {
            return Ok(());
        }
        let replies = ack::replies(header.as_deref(), &outcome, problem.as_ref());
        self.write_acks(stream, codec, out, header.as_deref(), &replies)
            .await
    }

    async fn write_acks<S>(
        &self,
        stream: &mut S,
        codec: &MllpCodec,
        out: &mut BytesMut,
        header: Option<&MshHeader>,
        replies: &[Reply],
    ) -> Result<(), Close>
    where
        S: AsyncWrite + Unpin + Send,
    {
        if replies.is_empty() {
            return Ok(());
        }
        out.clear();
        let mut codec = codec.clone();
        for reply in replies {
            let ack = ack::build(header, reply);
            if let Err(e) = codec.encode(&ack[..], out) {
                // Only possible if the peer's own MSH fields carried framing bytes into the ACK.
                warn!(error = %e, "cannot frame ACK");
                return Err(Close::Io(std::io::Error::other(e.to_string())));
            }
        }
        let write = async {
            stream.write_all(out).await?;
            stream.flush().await
        };
        match within(self.config.write_timeout, write).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Close::Io(e)),
            None => Err(Close::Timeout("peer not reading ACKs")),
        }
    }
}

/// Awaits `fut`, giving up after `limit`; `None` means it timed out.
///
/// The timer is only armed when `fut` does not finish at its first poll, which is the rule for an ACK
/// write (it fits in the socket buffer): registering a timer per message is a measurable cost.
async fn within<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(done) => Some(done),
        Poll::Pending => tokio::time::timeout(limit, fut).await.ok(),
    }
}
