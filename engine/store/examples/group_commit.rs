//! Measures what group commit buys: durable writes per second with one flush per write versus one flush
//! shared by every writer that arrived meanwhile. Run with
//! `cargo run --release -p junction-store --example group_commit [seconds-per-case]`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_store::{ReceiveMeta, SledStore, Store};

const MESSAGE: &[u8] = b"MSH|^~\\&|EPIC|HOSP|LAB|HOSP|20240101120000||ADT^A01^ADT_A01|MSG00001|P|2.5\rEVN|A01|20240101120000\rPID|1||123456^^^HOSP^MR||DOE^JOHN^A||19800101|M|||1 MAIN ST^^CITY^ST^12345||555-1234\rPV1|1|I|ICU^101^A|E|||1234^SMITH^JANE\r";

fn meta() -> ReceiveMeta {
    ReceiveMeta {
        received_at: 1_700_000_000_000,
        control_id: Some("MSG00001".into()),
        message_type: Some("ADT^A01".into()),
        reprocess_of: None,
    }
}

/// sled alone: insert then flush, one write at a time (the floor any store on sled starts from).
fn raw_sled(dir: &std::path::Path, run: Duration) -> f64 {
    let db = sled::open(dir.join("raw")).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < run {
        db.insert(n.to_be_bytes(), MESSAGE).unwrap();
        db.flush().unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The store with one writer: every write waits for its own flush.
fn flush_per_write(dir: &std::path::Path, run: Duration) -> f64 {
    let store = SledStore::open(dir.join("single")).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < run {
        store
            .receive("adt", MESSAGE, meta())
            .unwrap()
            .wait()
            .unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The store with `writers` concurrent async writers (like MLLP connections) sharing flushes.
fn shared_flush(dir: &std::path::Path, run: Duration, writers: usize) -> f64 {
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(dir.join(format!("shared-{writers}"))).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let stored = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let (store, stored, stop) =
                    (Arc::clone(&store), Arc::clone(&stored), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        store
                            .receive("adt", MESSAGE, meta())
                            .unwrap()
                            .durable()
                            .await
                            .unwrap();
                        stored.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(run).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    });
    stored.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let run = Duration::from_secs(seconds);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "durable writes/s, {seconds}s per case, {} byte message",
        MESSAGE.len()
    );
    println!(
        "{:<42} {:>10.0}",
        "sled insert + flush, 1 writer",
        raw_sled(dir.path(), run)
    );
    println!(
        "{:<42} {:>10.0}",
        "store, 1 flush per write (1 writer)",
        flush_per_write(dir.path(), run)
    );
    for writers in [4, 16, 64, 256] {
        let label = format!("store, shared flush, {writers} writers");
        println!(
            "{label:<42} {:>10.0}",
            shared_flush(dir.path(), run, writers)
        );
    }
}
