//! Network connectors: MLLP listener and sender (plain and TLS).
//!
//! The listener reads frames, pre-reads MSH, asks a [`Handler`] for an [`Outcome`] and writes the ACK(s)
//! itself. The sender keeps one connection open and separates "the peer said no" ([`Nak`]) from "the wire
//! failed" ([`TransportError`]).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod ack;
mod listener;
mod sender;
mod tls;

pub use listener::{AckPolicy, Handler, Inbound, ListenError, Listener, ListenerConfig, Outcome};
pub use sender::{Delivered, Nak, Sender, SenderConfig, TransportError};
pub use tls::{ClientTls, ServerTls, TlsError};
pub use tokio_util::sync::CancellationToken;
