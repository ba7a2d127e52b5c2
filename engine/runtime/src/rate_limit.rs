//! Per-destination rate limit (messages per second) for partners that impose one.

use std::time::{Duration, Instant};

/// Spaces sends at least `1 / per_second` apart. There is deliberately no burst allowance: a partner
/// that allows N messages a second means in any second, and a token bucket that filled up during a
/// quiet spell would let 2N through in the first second of the next burst.
#[derive(Debug, Clone)]
pub struct RateLimit {
    interval: Duration,
    next: Instant,
}

impl RateLimit {
    /// A limiter allowing at most `per_second` messages per second.
    pub fn new(per_second: f64, now: Instant) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(0.001)),
            next: now,
        }
    }

    /// Take the send slot if it is due, otherwise say how long until it is.
    pub fn acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.next.checked_duration_since(now) {
            Some(wait) if !wait.is_zero() => Err(wait),
            // The next slot counts from this send, not from when this one was due, so a late wake-up
            // never lets the following send come early.
            _ => {
                self.next = now + self.interval;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_to_the_configured_rate() {
        let start = Instant::now();
        let mut r = RateLimit::new(10.0, start);
        // Two seconds in 1 ms steps: one send every 100 ms.
        let sent = (0..2000)
            .filter(|ms| r.acquire(start + Duration::from_millis(*ms)).is_ok())
            .count();
        assert_eq!(sent, 20);
        let mut slow = RateLimit::new(1.0, start);
        assert!(slow.acquire(start).is_ok());
        let wait = slow.acquire(start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
    }

    #[test]
    fn a_quiet_spell_earns_no_burst() {
        let start = Instant::now();
        let mut r = RateLimit::new(20.0, start);
        let later = start + Duration::from_secs(10);
        assert!(r.acquire(later).is_ok());
        let wait = r.acquire(later).unwrap_err();
        assert_eq!(wait, Duration::from_millis(50));
        assert!(r.acquire(later + wait).is_ok());
    }
}
