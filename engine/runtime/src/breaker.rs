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

    /// `None` when an attempt may go now, else how long to hold off. When the cool-down has passed,
    /// exactly one caller is let through as the probe and the window restarts for the others, so a
    /// destination with several senders probes a peer that may still be down once, not once per sender.
    pub fn permit(&mut self, now: Instant) -> Option<Duration> {
        let until = self.open_until?;
        match until.checked_duration_since(now).filter(|d| !d.is_zero()) {
            Some(wait) => Some(wait),
            None => {
                self.open_until = Some(now + self.cool_down);
                None
            }
        }
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
        assert!(b.permit(now).is_none());
        assert_eq!(b.failure(now), Transition::Opened);
        assert!(b.permit(now).is_some());
        assert!(b.permit(now).is_some_and(|d| d <= Duration::from_secs(10)));
        // After the cool-down one probe is allowed; if it fails the breaker re-opens silently.
        let later = now + Duration::from_secs(11);
        assert!(b.permit(later).is_none());
        assert_eq!(b.failure(later), Transition::None);
        assert!(b.permit(later).is_some());
        assert_eq!(b.success(), Transition::Closed);
        assert!(b.permit(later).is_none());
        assert_eq!(b.success(), Transition::None);
    }

    #[test]
    fn after_the_cool_down_only_one_sender_probes() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(1, Duration::from_secs(10));
        assert_eq!(b.failure(now), Transition::Opened);
        let later = now + Duration::from_secs(10);
        assert!(b.permit(later).is_none(), "the first sender probes");
        assert!(
            b.permit(later).is_some(),
            "a second sender waits for the probe"
        );
        assert_eq!(b.success(), Transition::Closed);
        assert!(
            b.permit(later).is_none(),
            "everyone goes once the probe got through"
        );
    }
}
