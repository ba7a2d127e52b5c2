//! Counters and latency histograms per channel and destination, read by status and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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
        (
            self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            self.count.load(Relaxed),
            self.sum_micros.load(Relaxed) as f64 / 1e6,
        )
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
