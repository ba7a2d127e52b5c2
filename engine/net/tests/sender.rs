//! Sender behaviour against real sockets: ACK validation, NAKs vs transport errors, reconnects, TLS.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use junction_hl7::ack::AckCode;
use junction_net::{ClientTls, Outcome, Sender, SenderConfig, TransportError};
use support::pki::Pki;
use support::{adt, message, start, Recorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fast(addr: impl ToString) -> SenderConfig {
    let mut config = SenderConfig::new(addr.to_string());
    config.ack_timeout = Duration::from_millis(500);
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(50);
    config
}

#[tokio::test]
async fn accepted_message_is_delivered_with_the_ack_kept() {
    let server = start(Recorder::new(Outcome::Accept), |_| {}).await;
    let mut sender = Sender::new(fast(server.addr)).unwrap();
    for id in ["D1", "D2", "D3"] {
        let delivered = sender.send(&adt(id)).await.unwrap().unwrap();
        assert_eq!(delivered.code, AckCode::AA);
        let ack = String::from_utf8(delivered.ack.to_vec()).unwrap();
        assert!(ack.contains(&format!("MSA|AA|{id}")), "{ack}");
    }
}

#[tokio::test]
async fn commit_accept_counts_as_delivered() {
    let server = start(Recorder::new(Outcome::Accept), |_| {}).await;
    let mut sender = Sender::new(fast(server.addr)).unwrap();
    let delivered = sender
        .send(&message("C1", "AL", "AL"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.code, AckCode::CA);
    // The application ACK that follows is not mistaken for the next message's answer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next = sender.send(&adt("C2")).await.unwrap().unwrap();
    assert_eq!(next.code, AckCode::AA);
}

#[tokio::test]
async fn negative_acks_are_naks_not_transport_errors() {
    for (outcome, code, reason) in [
        (Outcome::Error("db down".into()), AckCode::AE, "db down"),
        (
            Outcome::Reject("bad event".into()),
            AckCode::AR,
            "bad event",
        ),
    ] {
        let server = start(Recorder::new(outcome), |_| {}).await;
        let mut sender = Sender::new(fast(server.addr)).unwrap();
        let nak = sender.send(&adt("N1")).await.unwrap().unwrap_err();
        assert_eq!(nak.code, code);
        assert!(
            nak.reason.as_deref().unwrap_or_default().contains(reason),
            "{nak:?}"
        );
        assert!(String::from_utf8_lossy(&nak.ack).contains("MSA|"));
    }
}

/// A one-connection peer that answers every frame with `reply` (already framed), or nothing when empty.
async fn scripted_peer(reply: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if buf[..n].contains(&0x1c) && !reply.is_empty() {
                        let _ = stream.write_all(reply).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn ack_for_another_control_id_is_an_error() {
    let addr = scripted_peer(
        b"\x0bMSH|^~\\&|R|R|S|S|20240101||ACK^A01^ACK|9|P|2.5.1\rMSA|AA|OTHER\r\x1c\r",
    )
    .await;
    let mut sender = Sender::new(fast(addr)).unwrap();
    match sender.send(&adt("MINE")).await {
        Err(TransportError::ControlIdMismatch { expected, got, .. }) => {
            assert_eq!((expected.as_str(), got.as_str()), ("MINE", "OTHER"));
        }
        other => panic!("expected ControlIdMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn answer_that_is_not_an_ack_is_an_error() {
    let addr =
        scripted_peer(b"\x0bMSH|^~\\&|R|R|S|S|20240101||ADT^A01|9|P|2.5.1\rPID|1\r\x1c\r").await;
    let mut sender = Sender::new(fast(addr)).unwrap();
    let err = sender.send(&adt("M1")).await.unwrap_err();
    assert!(matches!(err, TransportError::InvalidAck { .. }), "{err:?}");
}

#[tokio::test]
async fn silent_peer_times_out() {
    let addr = scripted_peer(b"").await;
    let mut sender = Sender::new(fast(addr)).unwrap();
    let err = sender.send(&adt("T1")).await.unwrap_err();
    assert!(matches!(err, TransportError::AckTimeout(_)), "{err:?}");
}

#[tokio::test]
async fn refused_connection_is_a_transport_error_then_reconnects_when_the_peer_is_back() {
    // Reserve a port, then free it so nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sender = Sender::new(fast(format!("127.0.0.1:{port}"))).unwrap();
    let err = sender.send(&adt("R1")).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");

    let listener = junction_net::Listener::bind(junction_net::ListenerConfig::new(format!(
        "127.0.0.1:{port}"
    )))
    .await
    .unwrap();
    let shutdown = junction_net::CancellationToken::new();
    tokio::spawn(listener.serve(Recorder::new(Outcome::Accept), shutdown.clone()));
    assert_eq!(
        sender.send(&adt("R2")).await.unwrap().unwrap().code,
        AckCode::AA
    );
}

#[tokio::test]
async fn connection_closed_by_the_peer_while_idle_is_reopened() {
    let server = start(Recorder::new(Outcome::Accept), |c| {
        c.idle_timeout = Some(Duration::from_millis(100));
    })
    .await;
    let mut sender = Sender::new(fast(server.addr)).unwrap();
    assert!(sender.send(&adt("K1")).await.unwrap().is_ok());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        sender.send(&adt("K2")).await.unwrap().is_ok(),
        "sender should reconnect"
    );
}

#[tokio::test]
async fn message_without_control_id_is_refused_before_sending() {
    let mut sender = Sender::new(fast("127.0.0.1:9")).unwrap();
    let err = sender.send(b"PID|1\r").await.unwrap_err();
    assert!(matches!(err, TransportError::InvalidMessage(_)), "{err:?}");
}

fn tls_sender(addr: std::net::SocketAddr, tls: ClientTls) -> Sender {
    let mut config = fast(addr);
    config.tls = Some(tls);
    Sender::new(config).unwrap()
}

#[tokio::test]
async fn tls_round_trip_with_and_without_client_certificates() {
    let pki = Pki::generate();
    let server_tls = pki.server(false);
    let server = start(Recorder::new(Outcome::Accept), move |c| {
        c.tls = Some(server_tls)
    })
    .await;
    let mut sender = tls_sender(server.addr, pki.client(false));
    let delivered = sender.send(&adt("TLS1")).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&delivered.ack).contains("MSA|AA|TLS1"));

    // A plain-TCP client gets nothing useful from a TLS listener.
    let mut plain = Sender::new(fast(server.addr)).unwrap();
    assert!(plain.send(&adt("P1")).await.is_err());

    // Mutual TLS: a client with a certificate from the CA is let in, one without is not.
    let mtls = pki.server(true);
    let server = start(Recorder::new(Outcome::Accept), move |c| c.tls = Some(mtls)).await;
    let mut with_cert = tls_sender(server.addr, pki.client(true));
    assert_eq!(
        with_cert.send(&adt("M1")).await.unwrap().unwrap().code,
        AckCode::AA
    );
    let mut without_cert = tls_sender(server.addr, pki.client(false));
    assert!(without_cert.send(&adt("M2")).await.is_err());
}

#[tokio::test]
async fn tls_server_certificate_from_another_ca_is_refused() {
    let (pki, other) = (Pki::generate(), Pki::generate());
    let server_tls = pki.server(false);
    let server = start(Recorder::new(Outcome::Accept), move |c| {
        c.tls = Some(server_tls)
    })
    .await;
    let mut sender = tls_sender(server.addr, other.client(false));
    let err = sender.send(&adt("X1")).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
}

#[test]
fn missing_tls_files_are_reported_with_their_path() {
    let tls = ClientTls {
        ca: Path::new("/nonexistent/ca.pem").to_owned(),
        identity: None,
        server_name: None,
    };
    let err = tls.connector().err().unwrap();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
