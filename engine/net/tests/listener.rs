//! Listener behaviour on real sockets: ACK choreography, bad input, limits, timeouts, shutdown.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use junction_net::{AckPolicy, Outcome};
use support::{adt, message, msa, segment, start, Client, Recorder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn accepted_message_gets_aa_echoing_control_id() {
    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    client.send(&adt("MSG00001")).await;
    let ack = client.recv().await.unwrap();
    assert!(
        ack.starts_with("MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP|SENDFAC|"),
        "{ack}"
    );
    assert!(segment(&ack, "MSH").unwrap().contains("|ACK^A01"), "{ack}");
    assert_eq!(msa(&ack), "MSA|AA|MSG00001");
    let seen = handler.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(&seen[0].payload[..], &adt("MSG00001")[..]);
    assert!(seen[0].header.is_some() && seen[0].invalid.is_none());
    // The same connection carries the next message.
    assert_eq!(client.round_trip("MSG00002").await, "MSA|AA|MSG00002");
}

#[tokio::test]
async fn handler_errors_and_rejections_become_ae_and_ar_with_reason() {
    for (outcome, code) in [
        (Outcome::Error("store unavailable".into()), "AE"),
        (Outcome::Reject("unsupported event".into()), "AR"),
    ] {
        let server = start(Recorder::new(outcome), |_| {}).await;
        let mut client = Client::connect(server.addr).await;
        client.send(&adt("X1")).await;
        let ack = client.recv().await.unwrap();
        assert!(msa(&ack).starts_with(&format!("MSA|{code}|X1")), "{ack}");
        let reason = if code == "AE" {
            "store unavailable"
        } else {
            "unsupported event"
        };
        assert!(ack.contains(reason), "reason missing from {ack}");
        assert!(segment(&ack, "ERR").is_some(), "no ERR in {ack}");
    }
}

#[tokio::test]
async fn no_ack_outcome_and_never_policy_write_nothing() {
    let server = start(Recorder::new(Outcome::NoAck), |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    client.send(&adt("N1")).await;
    assert_eq!(client.recv_within(QUIET).await, Err(()), "expected silence");

    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |c| c.ack = AckPolicy::Never).await;
    let mut client = Client::connect(server.addr).await;
    client.send(&adt("N2")).await;
    client.send(&adt("N3")).await;
    assert_eq!(client.recv_within(QUIET).await, Err(()), "expected silence");
    assert_eq!(handler.seen().len(), 2, "messages are still handled");
}

#[tokio::test]
async fn enhanced_mode_follows_msh15_and_msh16() {
    let server = start(Recorder::new(Outcome::Accept), |_| {}).await;
    let mut client = Client::connect(server.addr).await;

    client.send(&message("E1", "AL", "NE")).await;
    assert_eq!(msa(&client.recv().await.unwrap()), "MSA|CA|E1");
    assert_eq!(
        client.recv_within(QUIET).await,
        Err(()),
        "no app ACK when MSH-16 is NE"
    );

    client.send(&message("E2", "AL", "AL")).await;
    assert_eq!(msa(&client.recv().await.unwrap()), "MSA|CA|E2");
    assert_eq!(msa(&client.recv().await.unwrap()), "MSA|AA|E2");

    client.send(&message("E3", "NE", "AL")).await;
    assert_eq!(msa(&client.recv().await.unwrap()), "MSA|AA|E3");

    client.send(&message("E4", "NE", "NE")).await;
    client.send(&message("E5", "ER", "NE")).await;
    assert_eq!(
        client.recv_within(QUIET).await,
        Err(()),
        "NE/NE and ER on success: no ACK"
    );
}

#[tokio::test]
async fn enhanced_mode_error_only_acks_report_failures() {
    let server = start(Recorder::new(Outcome::Error("disk full".into())), |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    client.send(&message("F1", "ER", "NE")).await;
    assert!(msa(&client.recv().await.unwrap()).starts_with("MSA|CE|F1"));
}

#[tokio::test]
async fn frame_without_msh_gets_ar_and_connection_keeps_working() {
    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    client.send(b"PID|1||12345\r").await;
    let ack = client.recv().await.unwrap();
    assert!(msa(&ack).starts_with("MSA|AR|"), "{ack}");
    let err = segment(&ack, "ERR").expect("ERR segment");
    assert!(err.contains("MSH"), "ERR should say MSH is missing: {err}");
    let seen = handler.seen();
    assert!(
        seen[0].header.is_none() && seen[0].invalid.is_some(),
        "handler told it is invalid"
    );

    assert_eq!(client.round_trip("OK1").await, "MSA|AA|OK1");
}

#[tokio::test]
async fn syntax_error_after_a_good_header_gets_ar_with_the_parse_error() {
    let server = start(Recorder::new(Outcome::Accept), |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    let mut bad = adt("BAD1");
    bad.extend_from_slice(b"P!D\r");
    client.send(&bad).await;
    let ack = client.recv().await.unwrap();
    assert!(msa(&ack).starts_with("MSA|AR|BAD1"), "{ack}");
    assert!(
        ack.contains("segment 4"),
        "ERR should locate the bad segment: {ack}"
    );
}

#[tokio::test]
async fn latin1_message_declared_in_msh18_is_accepted_and_handed_over_unchanged() {
    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    let latin1 =
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|L1|P|2.5|||||DEU|8859/1\rPID|1||||M\xfcller^J\xfcrgen\r";
    client.send(latin1).await;
    assert_eq!(msa(&client.recv().await.unwrap()), "MSA|AA|L1");
    // Not UTF-8 and a broken segment: the parse error, not the encoding, is what the AR says.
    let mut broken = latin1.to_vec();
    broken.extend_from_slice(b"P!D|Stra\xdfe\r");
    client.send(&broken).await;
    let ack = client.recv().await.unwrap();
    assert!(msa(&ack).starts_with("MSA|AR|L1|segment 3"), "{ack}");
    let seen = handler.seen();
    assert_eq!(&seen[0].payload[..], &latin1[..]);
    assert!(seen[0].invalid.is_none());
}

#[tokio::test]
async fn connection_flood_beyond_the_maximum_is_refused_politely() {
    let server = start(Recorder::new(Outcome::Accept), |c| c.max_connections = 2).await;
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    assert_eq!(a.round_trip("A1").await, "MSA|AA|A1");
    assert_eq!(b.round_trip("B1").await, "MSA|AA|B1");

    let mut flood = Vec::new();
    for _ in 0..20 {
        let mut extra = Client::connect(server.addr).await;
        extra.send(&adt("F")).await;
        flood.push(extra);
    }
    for extra in &mut flood {
        assert_eq!(
            extra.recv().await,
            None,
            "extra connection should be closed"
        );
    }
    assert_eq!(a.round_trip("A2").await, "MSA|AA|A2");
    assert_eq!(b.round_trip("B2").await, "MSA|AA|B2");

    // A freed slot is available again.
    drop(a);
    let mut answered = false;
    for _ in 0..50 {
        let mut c = Client::connect(server.addr).await;
        c.send(&adt("C1")).await;
        if let Some(ack) = c.recv().await {
            assert_eq!(msa(&ack), "MSA|AA|C1");
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "slot was not released");
}

#[tokio::test]
async fn peer_stalling_mid_frame_is_timed_out_while_others_are_served() {
    let server = start(Recorder::new(Outcome::Accept), |c| {
        c.read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut staller = Client::connect(server.addr).await;
    staller
        .stream
        .write_all(b"\x0bMSH|^~\\&|HALF")
        .await
        .unwrap();
    let mut other = Client::connect(server.addr).await;
    assert_eq!(other.round_trip("O1").await, "MSA|AA|O1");
    assert_eq!(
        staller.recv().await,
        None,
        "stalled connection should be closed"
    );
    assert_eq!(other.round_trip("O2").await, "MSA|AA|O2");
}

#[tokio::test]
async fn peer_dribbling_a_frame_is_timed_out_from_the_frame_start() {
    let server = start(Recorder::new(Outcome::Accept), |c| {
        c.read_timeout = Duration::from_millis(600);
    })
    .await;
    let mut dribbler = Client::connect(server.addr).await;
    dribbler.stream.write_all(b"\x0bMSH|^~\\&|").await.unwrap();
    // A byte every 100 ms never lets a per-read timeout of 600 ms expire.
    let started = tokio::time::Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if dribbler.stream.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        if dribbler.recv_within(Duration::from_millis(1)).await == Ok(None) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dribbled frame kept its connection for 10 s");
}

#[tokio::test]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let server = start(Recorder::new(Outcome::Accept), |c| {
        c.idle_timeout = Some(Duration::from_millis(300));
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.round_trip("I1").await, "MSA|AA|I1");
    assert_eq!(
        client.recv().await,
        None,
        "idle connection should be closed"
    );
}

#[tokio::test]
async fn a_busy_connection_outlives_the_idle_timeout() {
    let server = start(Recorder::new(Outcome::Accept), |c| {
        c.idle_timeout = Some(Duration::from_millis(300));
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    // Twelve messages 100 ms apart span four idle timeouts: each message must re-arm the deadline.
    for i in 0..12 {
        let id = format!("B{i}");
        assert_eq!(client.round_trip(&id).await, format!("MSA|AA|{id}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.recv().await, None, "closed once it falls silent");
}

#[tokio::test]
async fn a_peer_that_never_reads_its_acks_is_dropped_after_the_write_timeout() {
    let server = start(Recorder::new(Outcome::Accept), |c| {
        c.write_timeout = Duration::from_millis(300);
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..100 {
        batch.push(0x0b);
        batch.extend_from_slice(&adt(&format!("W{i}")));
        batch.extend_from_slice(b"\x1c\r");
    }
    // Send and never read: once the ACKs fill the socket buffers the listener's write stalls, and
    // after the write timeout it closes the connection, which fails our writes.
    let failed = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.write_all(&batch).await.is_ok() {}
    })
    .await;
    assert!(
        failed.is_ok(),
        "the listener kept a connection whose peer does not read ACKs"
    );
}

#[tokio::test]
async fn twenty_mib_of_garbage_is_skipped_or_rejected_without_hurting_others() {
    let handler = Recorder::new(Outcome::Accept);
    let server = start(Arc::clone(&handler), |c| {
        c.read_timeout = Duration::from_secs(2);
    })
    .await;
    let garbage = vec![b'x'; 20 * 1024 * 1024];

    // Garbage outside any frame: skipped, and a frame after it is served.
    let mut junk = Client::connect(server.addr).await;
    junk.stream.write_all(&garbage).await.unwrap();
    assert_eq!(junk.round_trip("J1").await, "MSA|AA|J1");

    // Garbage inside a frame: over the 16 MiB limit, answered AR and closed.
    let oversize = Client::connect(server.addr).await;
    let head = adt("BIG1");
    let (mut reader, mut writer) = oversize.stream.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(b"\x0b").await?;
        writer.write_all(&head).await?;
        writer.write_all(&garbage).await
    });
    let mut other = Client::connect(server.addr).await;
    assert_eq!(other.round_trip("O1").await, "MSA|AA|O1");

    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let _ = writing.await;
    let ack = String::from_utf8_lossy(&answer);
    assert!(
        ack.starts_with('\x0b') && ack.ends_with("\x1c\r"),
        "one framed NAK: {ack:?}"
    );
    assert!(msa(&ack).starts_with("MSA|AR|BIG1"), "{ack}");
    assert!(ack.contains("frame limit"), "{ack}");
    assert_eq!(other.round_trip("O2").await, "MSA|AA|O2");
    let ids: Vec<_> = handler
        .seen()
        .iter()
        .map(|m| {
            m.header
                .as_ref()
                .map(|h| h.control_id.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        ids,
        vec!["J1", "O1", "O2"],
        "the oversized frame never reaches the handler"
    );
}

#[tokio::test]
async fn shutdown_finishes_the_message_in_flight_then_stops_accepting() {
    let handler = Arc::new(Recorder {
        outcome: Outcome::Accept,
        delay: Duration::from_millis(300),
        seen: Default::default(),
    });
    let server = start(handler, |_| {}).await;
    let mut client = Client::connect(server.addr).await;
    client.send(&adt("S1")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown.cancel();
    assert_eq!(msa(&client.recv().await.unwrap()), "MSA|AA|S1");
    assert_eq!(
        client.recv().await,
        None,
        "closed after the in-flight message"
    );
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}
