//! Circuit breaker per destination: stop hammering a dead peer.

use std::time::{Duration, Instant};

/// Breaker state after consecutive delivery failures.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// What a recorded failure did to the breaker, so the caller can log the transition once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed that needs reporting.
    None,
    /// The breaker just opened; no attempts until the cool-down ends.
    Opened,
    /// The breaker was open or half-open and a success closed it.
    Closed,
}

impl CircuitBreaker {
    /// A breaker that opens after `threshold` consecutive failures for `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            consecutive_failures: 0,
            open_until: None,
        }
    }

    /// How long to wait before the next attempt is allowed, if the breaker is open.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.open_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Record a successful delivery.
    pub fn success(&mut self) -> Transition {
        let was_tripped = self.consecutive_failures >= self.threshold;
        self.consecutive_failures = 0;
        self.open_until = None;
        if was_tripped {
            Transition::Closed
        } else {
            Transition::None
        }
    }

    /// Record a failed delivery; the breaker opens (again) every time the threshold is reached,
    /// so a half-open probe that fails starts a new cool-down.
    pub fn failure(&mut self, now: Instant) -> Transition {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= self.threshold {
            let first = self.consecutive_failures == self.threshold;
            self.open_until = Some(now + self.cool_down);
            if first {
                return Transition::Opened;
            }
        }
        Transition::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_on_success() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(10));
        assert_eq!(b.failure(now), Transition::None);
        assert_eq!(b.failure(now), Transition::None);
        assert!(b.wait(now).is_none());
        assert_eq!(b.failure(now), Transition::Opened);
        assert!(b.wait(now).is_some());
        assert!(b.wait(now).is_some_and(|d| d <= Duration::from_secs(10)));
        // After the cool-down a probe is allowed; if it fails the breaker re-opens silently.
        let later = now + Duration::from_secs(11);
        assert!(b.wait(later).is_none());
        assert_eq!(b.failure(later), Transition::None);
        assert!(b.wait(later).is_some());
        assert_eq!(b.success(), Transition::Closed);
        assert!(b.wait(later).is_none());
        assert_eq!(b.success(), Transition::None);
    }
}
