//! The promise: a message that was ACKed is never lost, not on `kill -9`.
//!
//! 20,000 messages over 4 connections into `junction run` (MLLP in, MLLP out to a `junction listen`
//! sink) while the engine is SIGKILLed at random moments at least 5 times and restarted. At the end
//! every ACKed control id must have reached the sink; duplicates (at-least-once) are counted and printed.
#![allow(clippy::unwrap_used)]

#[path = "support/engine.rs"]
mod engine;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{adt, connect_retrying, control_ids_in, eventually, Engine};

const CONNECTIONS: usize = 4;
const PER_CONNECTION: usize = 5_000;
const KILLS: usize = 6;

#[test]
fn acked_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let port = support::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "crash.yaml",
        &format!(
            "name: crash\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             destinations:\n  - name: sink\n    mllp: {{ connect: \"{sink_addr}\" }}\n    \
             retry: {{ initial: 50ms, max: 1s }}\n"
        ),
    );
    engine.start();
    support::wait_listening(addr);

    let acked = Arc::new(Mutex::new(HashSet::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let acked = Arc::clone(&acked);
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                let mut client = connect_retrying(addr);
                for i in 0..PER_CONNECTION {
                    let id = format!("K{c}-{i}");
                    let msg = adt(&id);
                    // Resend until ACKed: a sender that loses its connection does not know whether
                    // the message was stored, exactly as in production.
                    loop {
                        match client.send(&msg) {
                            Ok((code, msa2)) if code == "AA" => {
                                assert_eq!(msa2, id, "MSA-2 must echo MSH-10");
                                acked.lock().unwrap().insert(id.clone());
                                break;
                            }
                            Ok((code, _)) => panic!("unexpected {code} for {id}"),
                            Err(_) => client = connect_retrying(addr),
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Kill at random moments while traffic flows, restarting each time.
    let mut kills = 0;
    while kills < KILLS {
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(0..800)));
        if sent.load(Ordering::Relaxed) >= CONNECTIONS * PER_CONNECTION {
            break;
        }
        engine.kill();
        kills += 1;
        engine.start();
    }
    for s in senders {
        s.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(
        kills >= 5,
        "the engine finished before it could be killed 5 times ({kills}); raise the message count"
    );

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), CONNECTIONS * PER_CONNECTION);
    let all_arrived = eventually(120, || {
        let got: HashSet<String> = control_ids_in(&sink_file).into_iter().collect();
        acked.iter().all(|id| got.contains(id))
    });
    let received = control_ids_in(&sink_file);
    let unique: HashSet<&String> = received.iter().collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !unique.contains(id))
        .take(10)
        .collect();
    println!(
        "crash test: {} ACKed, {} kills, {} delivered, {} duplicates, {} missing",
        acked.len(),
        kills,
        received.len(),
        received.len() - unique.len(),
        acked.len() - acked.iter().filter(|id| unique.contains(id)).count()
    );
    assert!(
        all_arrived,
        "ACKed messages lost after kill -9, e.g. {missing:?}\nengine log tail:\n{}",
        engine
            .log_text()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
