//! Per-destination rate limit (messages per second) for partners that impose one.

use std::time::{Duration, Instant};

/// A token bucket holding at most one second's worth of messages.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A limiter allowing `per_second` messages per second on average.
    pub fn new(per_second: f64, now: Instant) -> Self {
        let per_second = per_second.max(0.001);
        Self {
            per_second,
            tokens: per_second.min(1.0),
            last: now,
        }
    }

    /// Take a token if one is available, otherwise say how long until one is.
    pub fn acquire(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
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
        let mut sent = 0;
        // Simulate two seconds in 1 ms steps: about 10 per second plus the initial token.
        for ms in 0..2000 {
            if r.acquire(start + Duration::from_millis(ms)).is_ok() {
                sent += 1;
            }
        }
        assert!((20..=22).contains(&sent), "sent {sent}");
        let mut slow = RateLimit::new(1.0, start);
        assert!(slow.acquire(start).is_ok());
        let wait = slow.acquire(start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
    }
}
