//! Sender behaviour against real sockets: ACK validation, NAKs vs transport errors, connect/send/ACK timeouts,
//! one persistent connection, reconnects and their backoff, keep-alive, non-standard framing, TLS.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use junction_hl7::ack::AckCode;
use junction_mllp::FramingConfig;
use junction_net::{ClientTls, ListenerConfig, Outcome, Sender, SenderConfig, TransportError};
use socket2::{Domain, Socket, Type};
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

/// A peer that answers every frame with `reply` (already framed), or nothing when empty.
async fn scripted_peer(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_scripted(listener, reply);
    addr
}

/// Serves `listener` as [`scripted_peer`] does.
fn serve_scripted(listener: TcpListener, reply: &'static [u8]) {
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

/// A listening socket on 127.0.0.1 made by hand, for peers the standard listener cannot imitate: a tiny
/// accept queue (`backlog`) or a tiny receive buffer (inherited by accepted connections).
fn raw_listener(backlog: i32, recv_buffer: Option<usize>) -> std::net::TcpListener {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.listen(backlog).unwrap();
    let listener: std::net::TcpListener = socket.into();
    listener.set_nonblocking(true).unwrap();
    listener
}

#[tokio::test]
async fn peer_that_never_reads_hits_the_send_timeout() {
    let listener = TcpListener::from_std(raw_listener(8, Some(4096))).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Accept and hold every connection without reading, so the sender's writes fill the buffers.
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    // Far more than the kernel buffers on both sides hold (the send buffer grows to tcp_wmem's maximum,
    // 4 MiB by default), yet under the 16 MiB frame limit.
    let mut big = adt("BIG1");
    big.extend_from_slice(b"NTE|1||");
    big.resize(big.len() + 12 * 1024 * 1024, b'x');
    big.push(b'\r');
    let mut config = fast(addr);
    config.send_timeout = Duration::from_millis(300);
    config.ack_timeout = Duration::from_secs(30);
    let mut sender = Sender::new(config).unwrap();
    let started = Instant::now();
    let err = sender.send(&big).await.unwrap_err();
    assert!(matches!(err, TransportError::SendTimeout(_)), "{err:?}");
    // Generous bounds, only to tell the configured 300 ms from the 10 s default.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(9),
        "{took:?}"
    );
}

#[tokio::test]
async fn peer_whose_accept_queue_is_full_hits_the_connect_timeout_then_is_retried() {
    // A non-routable address is no use here: this machine's network answers or refuses those at once.
    // A listener that never accepts, with its queue full, drops further SYNs, so connecting hangs.
    let std_listener = raw_listener(0, None);
    let addr = std_listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        queued.push(stream);
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    let mut config = fast(addr);
    config.connect_timeout = Duration::from_millis(300);
    let mut sender = Sender::new(config).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let err = sender.send(&adt("CT1")).await.unwrap_err();
        assert!(matches!(err, TransportError::ConnectTimeout(_)), "{err:?}");
        // As above: the configured 300 ms, not the 10 s default (nor the kernel's two minutes).
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(9),
            "{took:?}"
        );
    }
    // Once the peer has taken what was queued, the next attempt connects and delivers.
    let listener = TcpListener::from_std(std_listener).unwrap();
    for _ in &queued {
        listener.accept().await.unwrap();
    }
    serve_scripted(
        listener,
        b"\x0bMSH|^~\\&|R|R|S|S|20240101||ACK^A01^ACK|9|P|2.5.1\rMSA|AA|CT2\r\x1c\r",
    );
    let delivered = sender.send(&adt("CT2")).await.unwrap().unwrap();
    assert_eq!(delivered.code, AckCode::AA);
}

#[tokio::test]
async fn one_connection_carries_every_message() {
    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |_| {}).await;
    let mut sender = Sender::new(fast(server.addr)).unwrap();
    for n in 0..20 {
        let delivered = sender.send(&adt(&format!("P{n}"))).await.unwrap();
        assert!(delivered.is_ok(), "{delivered:?}");
    }
    let mut peers: Vec<SocketAddr> = handler.seen().iter().map(|m| m.peer).collect();
    assert_eq!(peers.len(), 20);
    peers.dedup();
    assert_eq!(
        peers.len(),
        1,
        "each connection has its own port: {peers:?}"
    );
}

#[tokio::test]
async fn reconnect_attempts_are_spaced_by_the_doubling_backoff() {
    // A peer that hangs up at once: every attempt fails, and each shows up here as an accept.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let times = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            times.lock().unwrap().push(Instant::now());
            drop(stream);
        }
    });
    let mut config = fast(addr);
    config.backoff_initial = Duration::from_millis(150);
    config.backoff_max = Duration::from_millis(300);
    let mut sender = Sender::new(config).unwrap();
    for _ in 0..4 {
        assert!(sender.send(&adt("B1")).await.is_err());
    }
    let times = accepted.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Lower bounds only: 150 ms, doubled to 300 ms, then held at the 300 ms cap.
    for (gap, least) in gaps.iter().zip([150, 300, 300]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
}

/// The kernel's view of the client end of a loopback connection from local port `local` to port `remote`:
/// the `tr` timer kind (2 = keep-alive timer running) and the time left on it in 1/100 s.
#[cfg(target_os = "linux")]
fn tcp_timer(local: u16, remote: u16) -> (u8, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if port(fields[1]) == local && port(fields[2]) == remote {
            let (kind, when) = fields[5].split_once(':').unwrap();
            return (
                u8::from_str_radix(kind, 16).unwrap(),
                u64::from_str_radix(when, 16).unwrap(),
            );
        }
    }
    panic!("no connection {local} -> {remote} in /proc/net/tcp");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn keepalive_arms_the_kernel_timer_with_the_configured_idle_time() {
    for keepalive in [Some(Duration::from_secs(7)), None] {
        let handler = Recorder::new(Outcome::Accept);
        let server = start(Arc::clone(&handler), |_| {}).await;
        let mut config = fast(server.addr);
        config.keepalive = keepalive;
        let mut sender = Sender::new(config).unwrap();
        assert!(sender.send(&adt("KA1")).await.unwrap().is_ok());
        let local = handler.seen()[0].peer.port();
        let (kind, left) = tcp_timer(local, server.addr.port());
        if keepalive.is_some() {
            // Without our idle time the kernel's default (2 h) would be left on the timer.
            assert_eq!(kind, 2, "keep-alive timer not running");
            assert!(left <= 700, "{left} / 100 s left, expected at most 7 s");
        } else {
            assert_eq!(
                kind, 0,
                "a timer is running on an idle connection without keep-alive"
            );
        }
    }
}

#[tokio::test]
async fn non_standard_framing_bytes_are_used_both_ways() {
    // STX ... ETX with nothing after it, as some older systems frame.
    let framing = FramingConfig {
        start_byte: 0x02,
        end_byte: 0x03,
        trailer: None,
        ..FramingConfig::default()
    };
    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |c: &mut ListenerConfig| {
        c.framing = framing
    })
    .await;

    let mut config = fast(server.addr);
    config.framing = framing;
    let mut sender = Sender::new(config).unwrap();
    let delivered = sender.send(&adt("F1")).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&delivered.ack).contains("MSA|AA|F1"));
    assert_eq!(&handler.seen()[0].payload[..], &adt("F1")[..]);

    // On the wire, the ACK is framed with the same bytes.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut frame = vec![0x02];
    frame.extend_from_slice(&adt("F2"));
    frame.push(0x03);
    raw.write_all(&frame).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while answer.last() != Some(&0x03) {
            let mut buf = [0u8; 1024];
            let n = raw.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the ACK: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap();
    assert_eq!(answer.first(), Some(&0x02));
    assert!(
        !answer.iter().any(|b| [0x0b, 0x1c].contains(b)),
        "{answer:?}"
    );
    assert!(String::from_utf8_lossy(&answer).contains("MSA|AA|F2"));

    // A standard-framed sender gets nothing it can read from this peer.
    let mut standard = Sender::new(fast(server.addr)).unwrap();
    let err = standard.send(&adt("F3")).await.unwrap_err();
    assert!(matches!(err, TransportError::AckTimeout(_)), "{err:?}");
}
