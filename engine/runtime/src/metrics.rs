//! Counters and latency histograms per channel and destination, read by status and `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use junction_store::{QueueStats, Store};

use crate::channel::RunningChannel;

/// Upper bounds (seconds) of the latency histogram buckets, Prometheus style.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A cumulative latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Cumulative bucket counts, total count and sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let buckets: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        // An observation racing this read may be in a bucket but not yet in the count; the
        // count must never be below a bucket, so lift it.
        let count = self
            .count
            .load(Relaxed)
            .max(buckets.iter().copied().max().unwrap_or(0));
        (buckets, count, self.sum_micros.load(Relaxed) as f64 / 1e6)
    }
}

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelMetrics {
    /// Messages durably stored by the source.
    pub received: AtomicU64,
    /// Messages dropped by the channel filter.
    pub filtered: AtomicU64,
    /// Messages that failed before reaching the destinations.
    pub errored: AtomicU64,
    /// Time from receipt to the end of processing.
    pub processing: Histogram,
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestinationMetrics {
    /// Delivered messages.
    pub sent: AtomicU64,
    /// Messages given up on.
    pub errored: AtomicU64,
    /// Failed attempts that will be retried.
    pub retried: AtomicU64,
    /// Whether the circuit breaker is open now.
    pub circuit_open: AtomicBool,
    /// Time of each delivery attempt.
    pub delivery: Histogram,
}

/// Add one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// One destination's counters and queue, read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationStatus {
    /// Destination name.
    pub name: String,
    /// Delivered messages since the engine started.
    pub sent: u64,
    /// Messages given up on since the engine started.
    pub errored: u64,
    /// Failed attempts that were retried.
    pub retried: u64,
    /// Whether the circuit breaker is open.
    pub circuit_open: bool,
    /// Messages waiting in the outbox (`None` when the store could not be read).
    pub queue_depth: Option<u64>,
    /// Age in seconds of the oldest waiting message; `None` when empty or unreadable.
    pub oldest_age_seconds: Option<f64>,
}

/// One channel's counters and queues, read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStatus {
    /// Channel name.
    pub name: String,
    /// Whether the source refuses messages.
    pub paused: bool,
    /// Messages stored by the source.
    pub received: u64,
    /// Messages dropped by the channel filter.
    pub filtered: u64,
    /// Messages waiting: inbox plus every outbox.
    pub queued: u64,
    /// Deliveries, all destinations.
    pub sent: u64,
    /// Messages that errored in processing or, for good, in delivery.
    pub errored: u64,
    /// Messages waiting to be processed.
    pub inbox_depth: Option<u64>,
    /// Age in seconds of the oldest unprocessed message.
    pub inbox_oldest_age_seconds: Option<f64>,
    /// The destinations, in configuration order.
    pub destinations: Vec<DestinationStatus>,
}

impl ChannelStatus {
    /// Read `channel`'s counters and its queue sizes from `store`.
    pub fn read(channel: &RunningChannel, store: &dyn Store) -> Self {
        let now = crate::now_millis();
        let age = |s: &QueueStats| s.oldest_at.map(|at| now.saturating_sub(at) as f64 / 1000.0);
        let name = channel.config.name.clone();
        let inbox = store.inbox_stats(&name).ok();
        let destinations: Vec<DestinationStatus> = channel
            .destinations
            .iter()
            .map(|d| {
                let queue = store.outbox_stats(&name, &d.name).ok();
                DestinationStatus {
                    name: d.name.clone(),
                    sent: d.metrics.sent.load(Relaxed),
                    errored: d.metrics.errored.load(Relaxed),
                    retried: d.metrics.retried.load(Relaxed),
                    circuit_open: d.metrics.circuit_open.load(Relaxed),
                    queue_depth: queue.map(|q| q.depth),
                    oldest_age_seconds: queue.as_ref().and_then(age),
                }
            })
            .collect();
        let m = &channel.shared.metrics;
        ChannelStatus {
            paused: channel.shared.paused.load(Relaxed),
            received: m.received.load(Relaxed),
            filtered: m.filtered.load(Relaxed),
            queued: inbox.map_or(0, |q| q.depth)
                + destinations
                    .iter()
                    .map(|d| d.queue_depth.unwrap_or(0))
                    .sum::<u64>(),
            sent: destinations.iter().map(|d| d.sent).sum(),
            errored: m.errored.load(Relaxed) + destinations.iter().map(|d| d.errored).sum::<u64>(),
            inbox_depth: inbox.map(|q| q.depth),
            inbox_oldest_age_seconds: inbox.as_ref().and_then(age),
            destinations,
            name,
        }
    }
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Append one metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Append a histogram's `_bucket`, `_sum` and `_count` series with the given labels.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    for (bound, n) in LATENCY_BUCKETS.iter().zip(&buckets) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Every channel's metrics in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus(channels: &[Arc<RunningChannel>], store: &dyn Store, ready: bool) -> String {
    let statuses: Vec<(&RunningChannel, ChannelStatus)> = channels
        .iter()
        .map(|c| (c.as_ref(), ChannelStatus::read(c, store)))
        .collect();
    let mut out = String::new();
    family(
        &mut out,
        "junction_ready",
        "gauge",
        "1 when every configured channel is running.",
    );
    let _ = writeln!(out, "junction_ready {}", u8::from(ready));

    family(&mut out, "junction_messages_total", "counter",
        "Messages by channel and outcome since the engine started (sent and errored count deliveries).");
    for (_, s) in &statuses {
        let ch = label(&s.name);
        for (status, n) in [
            ("received", s.received),
            ("filtered", s.filtered),
            ("sent", s.sent),
            ("errored", s.errored),
        ] {
            let _ = writeln!(
                out,
                "junction_messages_total{{channel=\"{ch}\",status=\"{status}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "junction_destination_messages_total",
        "counter",
        "Delivery outcomes by destination since the engine started.",
    );
    for (_, s) in &statuses {
        let ch = label(&s.name);
        for d in &s.destinations {
            let dest = label(&d.name);
            for (status, n) in [
                ("sent", d.sent),
                ("errored", d.errored),
                ("retried", d.retried),
            ] {
                let _ = writeln!(out, "junction_destination_messages_total{{channel=\"{ch}\",destination=\"{dest}\",status=\"{status}\"}} {n}");
            }
        }
    }
    family(
        &mut out,
        "junction_channel_paused",
        "gauge",
        "1 when the channel's source refuses messages.",
    );
    for (_, s) in &statuses {
        let _ = writeln!(
            out,
            "junction_channel_paused{{channel=\"{}\"}} {}",
            label(&s.name),
            u8::from(s.paused)
        );
    }
    family(
        &mut out,
        "junction_inbox_depth",
        "gauge",
        "Messages stored but not yet processed.",
    );
    for (_, s) in &statuses {
        if let Some(depth) = s.inbox_depth {
            let _ = writeln!(
                out,
                "junction_inbox_depth{{channel=\"{}\"}} {depth}",
                label(&s.name)
            );
        }
    }
    family(
        &mut out,
        "junction_queue_depth",
        "gauge",
        "Messages waiting in a destination's outbox.",
    );
    for (_, s) in &statuses {
        for d in &s.destinations {
            if let Some(depth) = d.queue_depth {
                let _ = writeln!(
                    out,
                    "junction_queue_depth{{channel=\"{}\",destination=\"{}\"}} {depth}",
                    label(&s.name),
                    label(&d.name)
                );
            }
        }
    }
    family(
        &mut out,
        "junction_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest message waiting in a destination's outbox (0 when empty).",
    );
    for (_, s) in &statuses {
        for d in &s.destinations {
            let age = d.oldest_age_seconds.unwrap_or(0.0);
            let _ = writeln!(
                out,
                "junction_queue_oldest_age_seconds{{channel=\"{}\",destination=\"{}\"}} {age}",
                label(&s.name),
                label(&d.name)
            );
        }
    }
    family(
        &mut out,
        "junction_circuit_open",
        "gauge",
        "1 while a destination's circuit breaker is open.",
    );
    for (_, s) in &statuses {
        for d in &s.destinations {
            let _ = writeln!(
                out,
                "junction_circuit_open{{channel=\"{}\",destination=\"{}\"}} {}",
                label(&s.name),
                label(&d.name),
                u8::from(d.circuit_open)
            );
        }
    }
    family(
        &mut out,
        "junction_processing_duration_seconds",
        "histogram",
        "Time from receipt until a message is processed and queued for its destinations.",
    );
    for (c, s) in &statuses {
        histogram(
            &mut out,
            "junction_processing_duration_seconds",
            &format!("channel=\"{}\"", label(&s.name)),
            &c.shared.metrics.processing,
        );
    }
    family(
        &mut out,
        "junction_delivery_duration_seconds",
        "histogram",
        "Time of each delivery attempt to a destination.",
    );
    for (c, s) in &statuses {
        for d in &c.destinations {
            histogram(
                &mut out,
                "junction_delivery_duration_seconds",
                &format!(
                    "channel=\"{}\",destination=\"{}\"",
                    label(&s.name),
                    label(&d.name)
                ),
                &d.metrics.delivery,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        let (buckets, count, sum) = h.snapshot();
        assert_eq!(count, 2);
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[4], 2);
        assert_eq!(*buckets.last().unwrap_or(&0), 2);
        assert!((sum - 0.0205).abs() < 1e-6);
    }
}
