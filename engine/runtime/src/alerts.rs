//! Alerts: one evaluator task per channel looks at the counters and the outboxes every second and
//! reports each condition once when it starts (firing) and once when it ends (resolved), in the log
//! and, when configured, as a JSON POST to a webhook. Posting runs on its own task with a bounded
//! queue, so a slow or dead webhook never holds up the evaluator, let alone message traffic.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use junction_config::Alerts;
use junction_store::{QueueStats, UnixMillis};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::RunningChannel;
use crate::now_millis;

/// How often conditions are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Tries per webhook event, waiting 0.5 s, 1 s, 2 s between them.
const WEBHOOK_ATTEMPTS: u32 = 4;
const WEBHOOK_FIRST_WAIT: Duration = Duration::from_millis(500);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Events waiting for the webhook; past this they are dropped (and the log still has them).
const WEBHOOK_QUEUE: usize = 256;

/// The kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AlertKind {
    QueueAge,
    Errors,
    CircuitOpen,
}

impl AlertKind {
    fn as_str(self) -> &'static str {
        match self {
            AlertKind::QueueAge => "queue_age",
            AlertKind::Errors => "errors",
            AlertKind::CircuitOpen => "circuit_open",
        }
    }
}

/// One start or end of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AlertEvent {
    channel: String,
    alert: AlertKind,
    /// The destination it concerns; `None` for channel-wide alerts (errors).
    destination: Option<String>,
    firing: bool,
    /// Counts, ages and thresholds; never message content.
    detail: String,
    at: UnixMillis,
}

impl AlertEvent {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "channel": self.channel,
            "alert": self.alert.as_str(),
            "destination": self.destination,
            "state": if self.firing { "firing" } else { "resolved" },
            "detail": self.detail,
            "at": self.at,
        })
    }

    fn log(&self) {
        let (channel, alert, destination, detail) = (
            &self.channel,
            self.alert.as_str(),
            self.destination.as_deref().unwrap_or("-"),
            &self.detail,
        );
        if self.firing {
            warn!(channel, alert, destination, detail, "alert firing");
        } else {
            info!(channel, alert, destination, detail, "alert resolved");
        }
    }
}

/// What one check sees.
#[derive(Debug, Default)]
struct Observation {
    /// Messages errored so far, in processing and in delivery (monotonic).
    errored_total: u64,
    destinations: Vec<DestinationObservation>,
}

#[derive(Debug)]
struct DestinationObservation {
    name: String,
    /// `None` when the outbox could not be read this time (the alert keeps its state).
    queue: Option<QueueStats>,
    circuit_open: bool,
}

/// The alert state of one channel: which conditions are on, and the error counts of the window.
struct Evaluator {
    channel: String,
    config: Alerts,
    firing: HashSet<(AlertKind, Option<String>)>,
    /// (time, errored_total) samples; the first one is the newest at or before the window start.
    error_samples: VecDeque<(UnixMillis, u64)>,
}

/// A condition as one check finds it.
struct Condition {
    alert: AlertKind,
    destination: Option<String>,
    active: bool,
    detail: String,
}

impl Evaluator {
    fn new(channel: String, config: Alerts, now: UnixMillis, errored_total: u64) -> Self {
        Self {
            channel,
            config,
            firing: HashSet::new(),
            error_samples: VecDeque::from([(now, errored_total)]),
        }
    }

    /// The events this check produces: only changes, so each episode logs once each way.
    fn check(&mut self, now: UnixMillis, seen: &Observation) -> Vec<AlertEvent> {
        let mut conditions = Vec::new();
        if let Some(threshold) = self.config.queue_age {
            let limit = millis(threshold);
            for d in &seen.destinations {
                let Some(queue) = d.queue else { continue };
                let age = queue
                    .oldest_at
                    .filter(|_| queue.depth > 0)
                    .map(|t| now.saturating_sub(t));
                conditions.push(Condition {
                    alert: AlertKind::QueueAge,
                    destination: Some(d.name.clone()),
                    active: age.is_some_and(|a| a > limit),
                    detail: match age {
                        Some(a) => format!(
                            "oldest of {} queued messages is {} old (limit {})",
                            queue.depth,
                            human(a),
                            human(limit)
                        ),
                        None => "nothing queued".into(),
                    },
                });
            }
        }
        if let Some(errors) = self.config.errors {
            let window = millis(errors.within);
            let start = now.saturating_sub(window);
            self.error_samples.push_back((now, seen.errored_total));
            while self.error_samples.get(1).is_some_and(|(t, _)| *t <= start) {
                self.error_samples.pop_front();
            }
            let base = self.error_samples.front().map_or(0, |(_, n)| *n);
            let count = seen.errored_total.saturating_sub(base);
            conditions.push(Condition {
                alert: AlertKind::Errors,
                destination: None,
                active: count >= u64::from(errors.count),
                detail: format!(
                    "{count} messages errored in the last {} (limit {})",
                    human(window),
                    errors.count
                ),
            });
        }
        if self.config.circuit_open {
            for d in &seen.destinations {
                conditions.push(Condition {
                    alert: AlertKind::CircuitOpen,
                    destination: Some(d.name.clone()),
                    active: d.circuit_open,
                    detail: if d.circuit_open {
                        "circuit breaker open: deliveries paused after repeated failures".into()
                    } else {
                        "circuit breaker closed: the destination answers again".into()
                    },
                });
            }
        }
        let mut events = Vec::new();
        for c in conditions {
            let key = (c.alert, c.destination.clone());
            let changed = if c.active {
                self.firing.insert(key)
            } else {
                self.firing.remove(&key)
            };
            if changed {
                events.push(AlertEvent {
                    channel: self.channel.clone(),
                    alert: c.alert,
                    destination: c.destination,
                    firing: c.active,
                    detail: c.detail,
                    at: now,
                });
            }
        }
        events
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration as an operator reads it: `750ms`, `42s`, `5m`, `3h`.
fn human(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..120_000 => format!("{}s", ms / 1_000),
        120_000..7_200_000 => format!("{}m", ms / 60_000),
        _ => format!("{}h", ms / 3_600_000),
    }
}

fn observe(running: &RunningChannel) -> Observation {
    let name = &running.config.name;
    let mut seen = Observation {
        errored_total: running.shared.metrics.errored.load(Relaxed),
        destinations: Vec::with_capacity(running.destinations.len()),
    };
    for d in &running.destinations {
        seen.errored_total += d.metrics.errored.load(Relaxed);
        let queue = match running.shared.store.outbox_stats(name, &d.name) {
            Ok(q) => Some(q),
            Err(e) => {
                warn!(channel = %name, destination = %d.name, error = %e, "alerts cannot read the outbox");
                None
            }
        };
        seen.destinations.push(DestinationObservation {
            name: d.name.clone(),
            queue,
            circuit_open: d.metrics.circuit_open.load(Relaxed),
        });
    }
    seen
}

/// The evaluator task of one channel (returns at once when the channel has no alerts). Spawn it
/// beside the channel's workers and stop it with them.
pub(crate) async fn watch(running: Arc<RunningChannel>, stop: CancellationToken) {
    let Some(config) = running.config.alerts.clone() else {
        return;
    };
    let channel = running.config.name.clone();
    let webhook = config
        .webhook
        .clone()
        .and_then(|url| Webhook::start(&channel, url));
    let mut evaluator = Evaluator::new(
        channel,
        config,
        now_millis(),
        observe(&running).errored_total,
    );
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        for event in evaluator.check(now_millis(), &observe(&running)) {
            event.log();
            if let Some(webhook) = &webhook {
                webhook.send(event);
            }
        }
    }
}

/// The sending side of a channel's webhook poster.
struct Webhook {
    tx: mpsc::Sender<AlertEvent>,
}

impl Webhook {
    /// Starts the poster task; `None` (logged) when no HTTP client can be made.
    fn start(channel: &str, url: String) -> Option<Self> {
        let client = match reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                warn!(channel, error = %e, "cannot set up the alert webhook; alerts are only logged");
                return None;
            }
        };
        let (tx, mut rx) = mpsc::channel::<AlertEvent>(WEBHOOK_QUEUE);
        // Events go out one at a time, in order, so a receiver never sees `resolved` before `firing`.
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                post(&client, &url, &event, WEBHOOK_FIRST_WAIT).await;
            }
        });
        Some(Self { tx })
    }

    fn send(&self, event: AlertEvent) {
        if let Err(e) = self.tx.try_send(event) {
            let event = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            warn!(channel = %event.channel, alert = event.alert.as_str(), "alert webhook is behind; event not posted");
        }
    }
}

/// POSTs one event, retrying with doubling waits; `false` when every attempt failed (logged).
async fn post(
    client: &reqwest::Client,
    url: &str,
    event: &AlertEvent,
    first_wait: Duration,
) -> bool {
    let body = event.to_json().to_string();
    let mut wait = first_wait;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        // The URL may carry a token, so errors are logged without it.
        let error = match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.without_url().to_string(),
        };
        if attempt == WEBHOOK_ATTEMPTS {
            warn!(channel = %event.channel, alert = event.alert.as_str(), attempts = attempt, error, "alert webhook failed; event not delivered");
            break;
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use junction_config::ErrorsAlert;

    use super::*;

    fn alerts() -> Alerts {
        Alerts {
            webhook: None,
            queue_age: Some(Duration::from_secs(5)),
            errors: Some(ErrorsAlert {
                count: 3,
                within: Duration::from_secs(60),
            }),
            circuit_open: true,
        }
    }

    fn seen(errored: u64, oldest: Option<u64>, depth: u64, open: bool) -> Observation {
        Observation {
            errored_total: errored,
            destinations: vec![DestinationObservation {
                name: "lab".into(),
                queue: Some(QueueStats {
                    depth,
                    oldest_at: oldest,
                }),
                circuit_open: open,
            }],
        }
    }

    fn states(events: &[AlertEvent]) -> Vec<(&'static str, bool)> {
        events
            .iter()
            .map(|e| (e.alert.as_str(), e.firing))
            .collect()
    }

    #[test]
    fn queue_age_fires_once_and_resolves_once() {
        let mut ev = Evaluator::new("adt".into(), alerts(), 0, 0);
        assert!(ev.check(1_000, &seen(0, Some(0), 1, false)).is_empty());
        let fired = ev.check(6_000, &seen(0, Some(0), 1, false));
        assert_eq!(states(&fired), [("queue_age", true)]);
        assert_eq!(fired[0].destination.as_deref(), Some("lab"));
        assert_eq!(
            fired[0].detail,
            "oldest of 1 queued messages is 6s old (limit 5s)"
        );
        assert!(
            ev.check(7_000, &seen(0, Some(0), 2, false)).is_empty(),
            "no repeat"
        );
        let resolved = ev.check(8_000, &seen(0, None, 0, false));
        assert_eq!(states(&resolved), [("queue_age", false)]);
        assert!(ev.check(9_000, &seen(0, None, 0, false)).is_empty());
        // An unreadable outbox changes nothing.
        let mut unknown = seen(0, None, 0, false);
        unknown.destinations[0].queue = None;
        assert!(ev.check(10_000, &unknown).is_empty());
    }

    #[test]
    fn errors_count_within_the_sliding_window() {
        let mut ev = Evaluator::new("adt".into(), alerts(), 0, 10);
        assert!(ev.check(1_000, &seen(12, None, 0, false)).is_empty());
        let fired = ev.check(2_000, &seen(13, None, 0, false));
        assert_eq!(states(&fired), [("errors", true)]);
        assert_eq!(fired[0].destination, None);
        assert!(fired[0]
            .detail
            .starts_with("3 messages errored in the last 60s"));
        // Sixty seconds after the burst the window holds none of it.
        assert!(ev.check(30_000, &seen(13, None, 0, false)).is_empty());
        let resolved = ev.check(62_500, &seen(13, None, 0, false));
        assert_eq!(states(&resolved), [("errors", false)]);
    }

    #[test]
    fn circuit_open_follows_the_breaker() {
        let mut ev = Evaluator::new("adt".into(), alerts(), 0, 0);
        assert_eq!(
            states(&ev.check(1_000, &seen(0, None, 0, true))),
            [("circuit_open", true)]
        );
        assert!(ev.check(2_000, &seen(0, None, 0, true)).is_empty());
        let closed = ev.check(3_000, &seen(0, None, 0, false));
        assert_eq!(states(&closed), [("circuit_open", false)]);
        let json = closed[0].to_json();
        assert_eq!(json["state"], "resolved");
        assert_eq!(json["channel"], "adt");
        assert_eq!(json["destination"], "lab");
        assert_eq!(json["at"], 3_000);
    }

    #[test]
    fn durations_read_like_config() {
        assert_eq!(human(750), "750ms");
        assert_eq!(human(42_000), "42s");
        assert_eq!(human(300_000), "5m");
        assert_eq!(human(3 * 3_600_000), "3h");
    }

    /// Answers each request with the next status of `statuses`, handing back the bodies.
    fn receiver(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for status in statuses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                bodies.push(String::from_utf8(body).unwrap());
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                reader.get_mut().write_all(answer.as_bytes()).unwrap();
            }
            bodies
        });
        (url, handle)
    }

    fn event() -> AlertEvent {
        AlertEvent {
            channel: "adt".into(),
            alert: AlertKind::QueueAge,
            destination: Some("lab".into()),
            firing: true,
            detail: "oldest of 1 queued messages is 6s old (limit 5s)".into(),
            at: 1,
        }
    }

    #[tokio::test]
    async fn webhook_posts_are_retried_until_accepted() {
        let (url, server) = receiver(vec![500, 503, 204]);
        let client = reqwest::Client::new();
        assert!(post(&client, &url, &event(), Duration::from_millis(10)).await);
        let bodies = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert_eq!(bodies.len(), 3);
        let json: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(json, event().to_json());
        assert_eq!(json["state"], "firing");
        assert_eq!(json["alert"], "queue_age");
    }

    #[tokio::test]
    async fn a_dead_webhook_gives_up_after_a_few_attempts() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let client = reqwest::Client::new();
        assert!(!post(&client, &url, &event(), Duration::from_millis(1)).await);
    }
}
