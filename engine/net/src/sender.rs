//! MLLP sender: one persistent connection, reconnects with capped exponential backoff, validates ACKs.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use junction_hl7::ack::AckCode;
use junction_hl7::MshHeader;
use junction_mllp::{FramingConfig, MllpCodec, MllpError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::either::Either;
use tracing::{debug, warn};

use crate::ack;
use crate::tls::{ClientTls, TlsError};

/// Sender settings; `SenderConfig::new(addr)` gives the defaults.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// `host:port` of the receiver.
    pub address: String,
    /// Limit for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for writing one message.
    pub send_timeout: Duration,
    /// Limit for the ACK to arrive after the message was written.
    pub ack_timeout: Duration,
    /// TCP keep-alive idle time; `None` leaves keep-alive off.
    pub keepalive: Option<Duration>,
    /// First reconnect delay after a failure; doubles per consecutive failure.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Framing bytes and the ACK length limit.
    pub framing: FramingConfig,
    /// Connect with TLS.
    pub tls: Option<ClientTls>,
}

impl SenderConfig {
    /// Defaults: 10 s connect and send timeouts, 30 s ACK timeout, no keep-alive, backoff 1 s doubling to 60 s,
    /// standard framing, plain TCP.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            keepalive: None,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            framing: FramingConfig::default(),
            tls: None,
        }
    }
}

/// The receiver accepted the message (AA or CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// AA or CA.
    pub code: AckCode,
    /// The ACK as received (unframed), kept for later steps.
    pub ack: Bytes,
}

/// The receiver answered, and said no (AE, AR, CE or CR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nak {
    /// AE, AR, CE or CR.
    pub code: AckCode,
    /// The receiver's reason (MSA-3, else the ERR segment's text), if it gave one.
    pub reason: Option<String>,
    /// The ACK as received (unframed), kept for later steps.
    pub ack: Bytes,
}

/// The exchange failed before a valid answer came back; the message may or may not have been received.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The message to send has no readable MSH-10, so its ACK could not be matched.
    #[error("message not sent: {0}")]
    InvalidMessage(String),
    /// TLS configuration could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Connecting failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The receiver.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting (or the TLS handshake) took too long.
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    /// Writing the message or reading the ACK failed.
    #[error("I/O error talking to {address}: {source}")]
    Io {
        /// The receiver.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the message took too long.
    #[error("sending to {0} timed out")]
    SendTimeout(String),
    /// No ACK arrived in time.
    #[error("no ACK from {0} within the timeout")]
    AckTimeout(String),
    /// The receiver closed the connection without answering.
    #[error("{0} closed the connection before acknowledging")]
    Closed(String),
    /// The answer was not an MLLP frame we could read.
    #[error("bad frame from {address}: {source}")]
    Framing {
        /// The receiver.
        address: String,
        /// Why.
        source: MllpError,
    },
    /// The answer was not an ACK (no MSA, unknown MSA-1, unparseable).
    #[error("invalid ACK from {address}: {reason}")]
    InvalidAck {
        /// The receiver.
        address: String,
        /// What was wrong.
        reason: String,
        /// The answer as received.
        response: Bytes,
    },
    /// The ACK acknowledges another message (MSA-2 differs from the sent MSH-10).
    #[error("ACK from {address} is for control id {got:?}, expected {expected:?}")]
    ControlIdMismatch {
        /// The receiver.
        address: String,
        /// MSH-10 of the message sent.
        expected: String,
        /// MSA-2 of the ACK received.
        got: String,
        /// The answer as received.
        response: Bytes,
    },
}

type Stream = Either<TcpStream, TlsStream<TcpStream>>;

struct Connection {
    stream: Stream,
    codec: MllpCodec,
    buf: BytesMut,
}

/// A persistent MLLP client: one message at a time, each answered by an ACK.
pub struct Sender {
    config: SenderConfig,
    connector: Option<TlsConnector>,
    codec: MllpCodec,
    connection: Option<Connection>,
    failures: u32,
    next_attempt: Option<Instant>,
}

impl Sender {
    /// Validates the framing and loads TLS files; does not connect yet.
    pub fn new(config: SenderConfig) -> Result<Self, TransportError> {
        let codec = MllpCodec::with_config(config.framing)
            .map_err(|e| TransportError::InvalidMessage(e.to_string()))?;
        let connector = config.tls.as_ref().map(ClientTls::connector).transpose()?;
        Ok(Self {
            config,
            connector,
            codec,
            connection: None,
            failures: 0,
            next_attempt: None,
        })
    }

    /// The receiver's address.
    pub fn address(&self) -> &str {
        &self.config.address
    }

    /// Sends one message and waits for its ACK.
    ///
    /// Outer `Err`: the wire failed (connection dropped, will reconnect after a backoff on the next call).
    /// Inner `Err`: the receiver answered AE/AR/CE/CR.
    pub async fn send(&mut self, message: &[u8]) -> Result<Result<Delivered, Nak>, TransportError> {
        let header = MshHeader::peek(message)
            .ok_or_else(|| TransportError::InvalidMessage("no readable MSH segment".to_string()))?;
        let control_id = header.control_id;
        if control_id.is_empty() {
            return Err(TransportError::InvalidMessage(
                "MSH-10 (message control id) is empty".to_string(),
            ));
        }
        let mut frame = BytesMut::with_capacity(message.len() + 3);
        self.codec
            .clone()
            .encode(message, &mut frame)
            .map_err(|e| TransportError::InvalidMessage(e.to_string()))?;
        let result = self.exchange(&frame, &control_id).await;
        match &result {
            Ok(_) => self.failures = 0,
            Err(e) => {
                self.connection = None;
                self.failures = self.failures.saturating_add(1);
                let delay = backoff(
                    self.config.backoff_initial,
                    self.config.backoff_max,
                    self.failures,
                );
                self.next_attempt = Some(Instant::now() + delay);
                warn!(address = %self.config.address, control_id, error = %e, retry_in = ?delay, "MLLP send failed");
            }
        }
        result
    }

    async fn exchange(
        &mut self,
        frame: &[u8],
        control_id: &str,
    ) -> Result<Result<Delivered, Nak>, TransportError> {
        let address = self.config.address.clone();
        let (send_timeout, ack_timeout) = (self.config.send_timeout, self.config.ack_timeout);
        let conn = self.connected().await?;
        let write = async {
            conn.stream.write_all(frame).await?;
            conn.stream.flush().await
        };
        match tokio::time::timeout(send_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(TransportError::Io { address, source }),
            Err(_) => return Err(TransportError::SendTimeout(address)),
        }
        let response = match tokio::time::timeout(ack_timeout, conn.read_frame()).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Err(TransportError::Closed(address)),
            Ok(Err(source)) => return Err(TransportError::Framing { address, source }),
            Err(_) => return Err(TransportError::AckTimeout(address)),
        };
        let answer = ack::read(&response).map_err(|reason| TransportError::InvalidAck {
            address: address.clone(),
            reason,
            response: response.clone(),
        })?;
        if answer.control_id != control_id {
            return Err(TransportError::ControlIdMismatch {
                address,
                expected: control_id.to_owned(),
                got: answer.control_id,
                response,
            });
        }
        debug!(%address, control_id, code = ?answer.code, "ACK received");
        Ok(if answer.code.is_accept() {
            Ok(Delivered {
                code: answer.code,
                ack: response,
            })
        } else {
            Err(Nak {
                code: answer.code,
                reason: answer.reason,
                ack: response,
            })
        })
    }

    /// The live connection, reconnecting (after the backoff delay) when there is none or the peer hung up.
    async fn connected(&mut self) -> Result<&mut Connection, TransportError> {
        if !self.connection.as_mut().is_some_and(Connection::is_usable) {
            if self.connection.take().is_some() {
                debug!(address = %self.config.address, "connection closed by peer; reconnecting");
            }
            if let Some(at) = self.next_attempt.take() {
                tokio::time::sleep_until(at).await;
            }
            let stream = tokio::time::timeout(self.config.connect_timeout, self.connect())
                .await
                .map_err(|_| TransportError::ConnectTimeout(self.config.address.clone()))??;
            debug!(address = %self.config.address, "connected");
            self.connection = Some(Connection {
                stream,
                codec: self.codec.clone(),
                buf: BytesMut::with_capacity(4096),
            });
        }
        self.connection
            .as_mut()
            .ok_or_else(|| TransportError::Closed(self.config.address.clone()))
    }

    async fn connect(&self) -> Result<Stream, TransportError> {
        let address = &self.config.address;
        let connect_err = |source| TransportError::Connect {
            address: address.clone(),
            source,
        };
        let tcp = TcpStream::connect(address).await.map_err(connect_err)?;
        let _ = tcp.set_nodelay(true);
        if let Some(idle) = self.config.keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(idle);
            socket2::SockRef::from(&tcp)
                .set_tcp_keepalive(&keepalive)
                .map_err(connect_err)?;
        }
        let (Some(connector), Some(tls)) = (&self.connector, &self.config.tls) else {
            return Ok(Either::Left(tcp));
        };
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        let name = tls.server_name(host)?;
        let stream = connector.connect(name, tcp).await.map_err(connect_err)?;
        Ok(Either::Right(stream))
    }
}

impl Connection {
    /// False when the peer has closed the connection (or sent something unexpected) while we were idle.
    fn is_usable(&mut self) -> bool {
        match self.read_frame().now_or_never() {
            None => true,
            Some(Ok(Some(_))) => {
                // A late answer (e.g. the application ACK after a commit ACK) that nobody waits for.
                debug!("discarding unsolicited frame on idle connection");
                true
            }
            Some(Ok(None) | Err(_)) => false,
        }
    }

    async fn read_frame(&mut self) -> Result<Option<Bytes>, MllpError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame.payload));
            }
            self.buf.reserve(4096);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return self
                    .codec
                    .decode_eof(&mut self.buf)
                    .map(|f| f.map(|f| f.payload));
            }
        }
    }
}

/// Delay before the next connection attempt after `failures` consecutive failures.
fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(31))
        .unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (1..=7)
            .map(|n| backoff(initial, max, n).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(initial, max, u32::MAX), max);
    }
}
