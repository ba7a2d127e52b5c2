//! A running channel: its source, the inbox worker that runs the pipeline, and the senders of each
//! destination that drain its durable outbox (one for an ordered destination, `workers` otherwise).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use junction_config::{AckMode, ChannelConfig, DeliveryOrder, DestinationConfig};
use junction_store::{
    Disposition, InboxLease, OutboxOrder, OutboxPoll, Processed, Settlement, Store, UnixMillis,
};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::backoff;
use crate::breaker::Transition;
use crate::channels::ChannelDirectory;
use crate::destination::{Connector, Delivery};
use crate::metrics::{inc, ChannelMetrics, DestinationMetrics};
use crate::now_millis;
use crate::pipeline::{Pipeline, Run, Verdict};
use crate::pool::WorkerPool;
use crate::throttle::Throttle;

/// Most inbox messages one worker round takes (they run in parallel on the pool, commit in order).
const INBOX_BATCH: usize = 64;
/// How often idle workers look again even without a wake-up (covers hand-overs from other processes
/// of the same store after a restart, and missed wake-ups).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// What the source half of a channel needs from the rest of it.
pub struct ChannelShared {
    /// Channel name.
    pub name: String,
    /// When the sender is answered.
    pub ack: AckMode,
    /// The store shared by every channel.
    pub store: Arc<dyn Store>,
    /// Wakes the inbox worker.
    pub inbox: Arc<Notify>,
    /// Answers for `ack: processed`, by sequence id.
    waiters: Mutex<HashMap<u64, oneshot::Sender<Verdict>>>,
    /// Channel counters.
    pub metrics: Arc<ChannelMetrics>,
    /// Whether the channel's sources take messages (paused channels refuse with AE).
    pub paused: AtomicBool,
    /// Whether logs may carry message content (thrown values, peers' answers); off unless the channel
    /// sets `log_content: true`.
    pub log_content: bool,
}

impl ChannelShared {
    /// The senders waiting for their verdict under `ack: processed`. A poisoned lock only means a thread
    /// panicked while holding it; the map itself is intact, and refusing it would leave senders hanging.
    pub fn waiting(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Verdict>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A destination's worker settings and counters.
pub struct DestinationRuntime {
    /// Destination name.
    pub name: String,
    /// Wakes the destination worker when something is queued.
    pub notify: Arc<Notify>,
    /// Counters.
    pub metrics: Arc<DestinationMetrics>,
}

/// A channel whose tasks are running.
pub struct RunningChannel {
    /// Shared state (also used by sources).
    pub shared: Arc<ChannelShared>,
    /// The destinations, in configuration order.
    pub destinations: Vec<Arc<DestinationRuntime>>,
    /// The configuration it runs.
    pub config: ChannelConfig,
}

/// What a channel's workers run with.
pub struct WorkerContext<'a> {
    /// The store shared by every channel.
    pub store: &'a Arc<dyn Store>,
    /// The script thread pool shared by every channel.
    pub pool: &'a Arc<WorkerPool>,
    /// Inbox wake-ups of every channel.
    pub directory: &'a Arc<ChannelDirectory>,
}

/// Start the inbox worker and destination workers of a channel on `tasks`.
///
/// `previous` is the same channel's earlier incarnation when it is restarted by a reload: its counters
/// carry over, so metrics stay monotonic. A channel paused through the admin API stays paused (the store
/// remembers it, across restarts too).
pub fn start_workers(
    config: &ChannelConfig,
    pipeline: Arc<Pipeline>,
    ctx: &WorkerContext<'_>,
    previous: Option<&RunningChannel>,
    tasks: &mut tokio::task::JoinSet<()>,
    stop: &CancellationToken,
) -> Result<RunningChannel, crate::destination::ConnectorError> {
    let paused = match ctx.store.is_paused(&config.name) {
        Ok(paused) => paused,
        Err(e) => {
            error!(channel = %config.name, error = %e, "cannot read whether the channel was paused");
            previous.is_some_and(|p| p.shared.paused.load(Ordering::Relaxed))
        }
    };
    if paused && previous.is_none() {
        warn!(channel = %config.name, "channel starts paused, as it was left: resume it through the admin API");
    }
    let shared = Arc::new(ChannelShared {
        name: config.name.clone(),
        ack: config.source.ack,
        store: Arc::clone(ctx.store),
        inbox: ctx.directory.inbox(&config.name),
        waiters: Mutex::new(HashMap::new()),
        metrics: previous.map_or_else(Arc::default, |p| Arc::clone(&p.shared.metrics)),
        paused: AtomicBool::new(paused),
        log_content: config.log_content,
    });
    warn_unserved_queues(config, ctx.store.as_ref());
    let mut destinations = Vec::new();
    for d in &config.destinations {
        let metrics = previous
            .and_then(|p| p.destinations.iter().find(|o| o.name == d.name))
            .map_or_else(Arc::default, |o| Arc::clone(&o.metrics));
        // A new worker starts with a closed breaker.
        metrics.circuit_open.store(false, Ordering::Relaxed);
        let rt = Arc::new(DestinationRuntime {
            name: d.name.clone(),
            notify: Arc::new(Notify::new()),
            metrics,
        });
        let (order, workers) = match d.order {
            DeliveryOrder::Ordered => (OutboxOrder::Ordered, 1),
            DeliveryOrder::Unordered { workers } => (OutboxOrder::Unordered, workers),
        };
        let throttle = Arc::new(Throttle::new(d, Instant::now()));
        for _ in 0..workers {
            let sender = Sender {
                config: d.clone(),
                order,
                connector: Connector::build(&d.kind, ctx.directory)?,
                throttle: Arc::clone(&throttle),
            };
            tasks.spawn(destination_worker(
                Arc::clone(&shared),
                sender,
                Arc::clone(&rt),
                stop.clone(),
            ));
        }
        destinations.push(rt);
    }
    tasks.spawn(inbox_worker(
        Arc::clone(&shared),
        pipeline,
        Arc::clone(ctx.pool),
        destinations.clone(),
        stop.clone(),
    ));
    Ok(RunningChannel {
        shared,
        destinations,
        config: config.clone(),
    })
}

/// Says, at every start, which queued messages no destination of this configuration will send: a
/// destination that was removed, renamed or switched off by `when_env` leaves its queue in the store,
/// and without this those messages would wait silently. Adding the destination back sends them.
fn warn_unserved_queues(config: &ChannelConfig, store: &dyn Store) {
    let queued = match store.queued_destinations(&config.name) {
        Ok(queued) => queued,
        Err(e) => {
            error!(channel = %config.name, error = %e, "cannot list the channel's destination queues");
            return;
        }
    };
    for (destination, messages) in queued {
        if !config.destinations.iter().any(|d| d.name == destination) {
            error!(channel = %config.name, destination, messages,
                "messages are queued for a destination this channel no longer has; they are sent once a destination of that name is configured again");
        }
    }
}

/// Wait for a wake-up, the stop signal or the idle poll, whichever comes first; `false` when stopping.
async fn idle(notify: &Notify, stop: &CancellationToken, at_most: Duration) -> bool {
    tokio::select! {
        _ = notify.notified() => true,
        _ = tokio::time::sleep(at_most) => true,
        _ = stop.cancelled() => false,
    }
}

async fn inbox_worker(
    ch: Arc<ChannelShared>,
    pipeline: Arc<Pipeline>,
    pool: Arc<WorkerPool>,
    destinations: Vec<Arc<DestinationRuntime>>,
    stop: CancellationToken,
) {
    // Panics per message still in the inbox; only messages being retried are here.
    let mut panics: HashMap<u64, u32> = HashMap::new();
    loop {
        let leases = match ch.store.lease_inbox(&ch.name, INBOX_BATCH) {
            Ok(l) => l,
            Err(e) => {
                error!(channel = %ch.name, error = %e, "cannot read the inbox; retrying");
                Vec::new()
            }
        };
        if leases.is_empty() {
            // Stop only when the inbox is drained: in-flight messages finish before shutdown.
            if stop.is_cancelled() || !idle(&ch.inbox, &stop, IDLE_POLL).await {
                return;
            }
            continue;
        }
        // One pool job per worker thread rather than per message: each job is a cross-thread hand-off
        // and wake-up, which cost more than running a short script.
        let per_job = leases.len().div_ceil(pool.threads());
        let mut runs = FuturesOrdered::new();
        let mut leases = leases.into_iter().peekable();
        while leases.peek().is_some() {
            let chunk: Vec<InboxLease> = leases.by_ref().take(per_job).collect();
            let raws: Vec<Vec<u8>> = chunk.iter().map(|l| l.raw().to_vec()).collect();
            let pipeline = Arc::clone(&pipeline);
            let job = pool.run(move || {
                raws.iter()
                    .map(|raw| {
                        // A panic is a bug in one message's handling: it must not take the others of
                        // the job with it.
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            pipeline.run(raw, now_millis())
                        }))
                        .ok()
                    })
                    .collect::<Vec<_>>()
            });
            runs.push_back(async move { (chunk, job.await) });
        }
        let mut done = Vec::new();
        let mut answers = Vec::new();
        let mut stuck = false;
        while let Some((chunk, job)) = runs.next().await {
            let results = match job {
                Ok(results) => results,
                Err(e) => {
                    error!(channel = %ch.name, messages = chunk.len(), error = %e, "script worker failed");
                    stuck = true;
                    continue;
                }
            };
            for (lease, run) in chunk.into_iter().zip(results) {
                let run = match run {
                    Some(run) => {
                        panics.remove(&lease.seq());
                        run
                    }
                    None => {
                        error!(channel = %ch.name, control_id = control_id(&lease), seq = lease.seq(), "processing panicked on this message");
                        let count = panics.entry(lease.seq()).or_insert(0);
                        *count += 1;
                        if *count < PANIC_LIMIT {
                            // The lease drops here, so the message stays in the inbox for the next round.
                            stuck = true;
                            continue;
                        }
                        panics.remove(&lease.seq());
                        panicked()
                    }
                };
                answers.push((run.verdict, run.summary));
                done.push((lease, run.processed));
            }
        }
        let committed = commit_round(&ch, &done);
        let mut progressed = false;
        for (((lease, processed), answer), ok) in done.iter().zip(answers).zip(committed) {
            if ok {
                progressed = true;
                finish(&ch, &destinations, lease, &processed.disposition, answer);
            } else {
                stuck = true;
            }
        }
        // A round where every message failed would repeat at once, forever: wait before the next try,
        // and let a stop through (the messages stay in the inbox for the restart).
        if stuck && !progressed && !idle_for(IDLE_POLL, &stop).await {
            return;
        }
    }
}

/// How often processing may panic on one message before it is recorded as errored.
const PANIC_LIMIT: u32 = 3;

/// What is recorded for a message whose processing panicked [`PANIC_LIMIT`] times: a bug in Junction,
/// not in the message or the scripts, so the reason says so and carries no content.
fn panicked() -> Run {
    let error =
        String::from("processing panicked on this message (a bug in Junction; please report it)");
    Run {
        processed: Processed {
            at: now_millis(),
            stages: Vec::new(),
            disposition: Disposition::Errored {
                error: error.clone(),
            },
        },
        verdict: Verdict::Error(error.clone()),
        summary: Some(error),
    }
}

fn control_id(lease: &InboxLease) -> &str {
    lease.meta().control_id.as_deref().unwrap_or_default()
}

/// Records a round of processed messages; says which ones were recorded (a message the store refused
/// stays in the inbox for the next round without holding back the others).
fn commit_round(ch: &ChannelShared, done: &[(InboxLease, Processed)]) -> Vec<bool> {
    let results = ch.store.complete_all(done);
    done.iter()
        .zip(results)
        .map(|((lease, _), result)| match result {
            Ok(()) => true,
            Err(e) => {
                error!(channel = %ch.name, control_id = control_id(lease), seq = lease.seq(), error = %e, "cannot record processing; will retry");
                false
            }
        })
        .collect()
}

/// After a processed message is recorded: wake its destinations, count it, answer a waiting
/// `ack: processed` sender. `answer` is the verdict and the content-free summary of an error.
fn finish(
    ch: &ChannelShared,
    destinations: &[Arc<DestinationRuntime>],
    lease: &InboxLease,
    disposition: &Disposition,
    (verdict, summary): (Verdict, Option<String>),
) {
    let seq = lease.seq();
    let control_id = control_id(lease);
    ch.metrics.processing.observe(Duration::from_millis(
        now_millis().saturating_sub(lease.meta().received_at),
    ));
    match disposition {
        Disposition::Routed(outputs) => {
            for o in outputs {
                if let Some(d) = destinations.iter().find(|d| d.name == o.destination) {
                    d.notify.notify_one();
                }
            }
        }
        Disposition::Filtered { .. } => inc(&ch.metrics.filtered),
        Disposition::Errored { error } => {
            inc(&ch.metrics.errored);
            let shown = match summary {
                Some(summary) if !ch.log_content => summary,
                _ => error.clone(),
            };
            warn!(channel = %ch.name, control_id, seq, error = %shown, "message errored");
        }
    }
    let waiter = ch.waiting().remove(&seq);
    if let Some(tx) = waiter {
        let _ = tx.send(verdict);
    }
}

/// One sender of a destination: an ordered destination has one, an unordered one `workers`.
struct Sender {
    config: DestinationConfig,
    order: OutboxOrder,
    connector: Connector,
    /// Shared by all senders of the destination.
    throttle: Arc<Throttle>,
}

async fn destination_worker(
    ch: Arc<ChannelShared>,
    sender: Sender,
    rt: Arc<DestinationRuntime>,
    stop: CancellationToken,
) {
    let Sender {
        config,
        order,
        mut connector,
        throttle,
    } = sender;
    while !stop.is_cancelled() {
        if let Some(reason) = connector.held(&ch.store) {
            debug!(channel = %ch.name, destination = %config.name, reason, "holding the queue");
            if !idle_for(IDLE_POLL, &stop).await {
                return;
            }
            continue;
        }
        let now = now_millis();
        let lease = match ch.store.poll_outbox(&ch.name, &config.name, order, now) {
            Ok(OutboxPoll::Ready(lease)) => lease,
            Ok(OutboxPoll::NotBefore(at)) => {
                let wait = Duration::from_millis(at.saturating_sub(now)).min(IDLE_POLL);
                if !idle(&rt.notify, &stop, wait).await {
                    return;
                }
                continue;
            }
            Ok(OutboxPoll::Idle) => {
                if !idle(&rt.notify, &stop, IDLE_POLL).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                error!(channel = %ch.name, destination = %config.name, error = %e, "cannot read the outbox");
                if !idle_for(IDLE_POLL, &stop).await {
                    return;
                }
                continue;
            }
        };
        // The breaker's permit is asked for only with a message in hand, so the one probe after a
        // cool-down is never spent on an empty or not-yet-due queue.
        while let Some(wait) = throttle.breaker_wait(Instant::now()) {
            // Check again at least every poll: another sender's probe may close the breaker early.
            // Stopping drops the lease: the message stays queued for the next start.
            if !idle_for(wait.min(IDLE_POLL), &stop).await {
                return;
            }
        }
        while let Err(wait) = throttle.acquire(Instant::now()) {
            if !idle_for(wait, &stop).await {
                return;
            }
        }
        let started = Instant::now();
        let delivery = connector.deliver(&lease, &ch.store).await;
        rt.metrics.delivery.observe(started.elapsed());
        let control_id = lease.control_id().unwrap_or_default().to_owned();
        let (seq, attempt) = (lease.seq(), lease.attempt());
        let settlement = settle(&config, &delivery, attempt, now_millis());
        // Only failures that may pass count against the peer: a refusal for good (4xx, a NAK with
        // `on_nak: error`) means the peer is up, and must not hold every other message for a cool-down.
        match &delivery {
            Delivery::Retry(_) => {
                if throttle.failure(Instant::now()) == Transition::Opened {
                    rt.metrics.circuit_open.store(true, Ordering::Relaxed);
                    warn!(channel = %ch.name, destination = %config.name, "circuit open: pausing deliveries for the cool-down");
                }
            }
            Delivery::Sent(_) | Delivery::Permanent(_) => {
                if throttle.success() == Transition::Closed {
                    rt.metrics.circuit_open.store(false, Ordering::Relaxed);
                    info!(channel = %ch.name, destination = %config.name, "circuit closed: destination is answering again");
                }
            }
        }
        match &settlement {
            Settlement::Sent { .. } => inc(&rt.metrics.sent),
            Settlement::Retry { error, .. } => {
                inc(&rt.metrics.retried);
                let error = loggable(ch.log_content, error);
                warn!(channel = %ch.name, destination = %config.name, control_id, seq, attempt, error, "delivery failed; will retry");
            }
            Settlement::Failed { error } => {
                inc(&rt.metrics.errored);
                let error = loggable(ch.log_content, error);
                warn!(channel = %ch.name, destination = %config.name, control_id, seq, attempt, error, "delivery failed for good; message errored");
            }
        }
        if let Err(e) = ch.store.settle(lease, now_millis(), settlement) {
            error!(channel = %ch.name, destination = %config.name, control_id, seq, error = %e, "cannot record the delivery; it will be retried");
            // The entry is due again at once: without a pause a store that keeps refusing would have
            // the partner sent the same message as fast as it answers.
            if !idle_for(IDLE_POLL, &stop).await {
                return;
            }
        }
    }
}

/// A delivery error as the log may show it. Delivery errors read `context: detail`, where the context
/// is content-free (`AE from 10.1.2.3:6661`, `HTTP 500 Internal Server Error`, `cannot connect to
/// host:port`) and the detail may be the peer's own words (a NAK's text, a response body) quoting the
/// message; without `log_content` only the context is logged, the whole error stays on the record.
fn loggable(log_content: bool, error: &str) -> &str {
    if log_content {
        return error;
    }
    error.split_once(": ").map_or(error, |(context, _)| context)
}

async fn idle_for(wait: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stop.cancelled() => false,
    }
}

/// Turn a delivery result into what the store records, applying the retry policy.
fn settle(
    config: &DestinationConfig,
    delivery: &Delivery,
    attempt: u32,
    now: UnixMillis,
) -> Settlement {
    match delivery {
        Delivery::Sent(response) => Settlement::Sent {
            response: response.clone(),
        },
        Delivery::Permanent(error) => Settlement::Failed {
            error: error.clone(),
        },
        Delivery::Retry(error) if backoff::exhausted(&config.retry, attempt) => {
            Settlement::Failed {
                error: format!("{error} (gave up after {attempt} attempts)"),
            }
        }
        Delivery::Retry(error) => {
            let wait = backoff::delay(&config.retry, attempt);
            Settlement::Retry {
                error: error.clone(),
                next_attempt_at: now
                    .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn a_delivery_error_is_logged_without_the_peers_words() {
        let nak = "AE from 127.0.0.1:6661: unknown patient Quillfeather (gave up after 3 attempts)";
        assert_eq!(loggable(false, nak), "AE from 127.0.0.1:6661");
        assert_eq!(loggable(true, nak), nak);
        let http = "HTTP 500 Internal Server Error: {\"issue\":\"Quillfeather\"}";
        assert_eq!(loggable(false, http), "HTTP 500 Internal Server Error");
        assert_eq!(
            loggable(false, "no ACK from [::1]:6661 within the timeout"),
            "no ACK from [::1]:6661 within the timeout"
        );
    }
}
