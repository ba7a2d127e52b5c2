//! A destination's circuit breaker and rate limit, shared by all of its senders (`workers: N`), so
//! the limits hold for the destination as a whole, not per connection.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use junction_config::DestinationConfig;

use crate::breaker::{CircuitBreaker, Transition};
use crate::rate_limit::RateLimit;

/// The shared limits of one destination; either may be absent.
pub struct Throttle {
    breaker: Option<Mutex<CircuitBreaker>>,
    limiter: Option<Mutex<RateLimit>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay valid even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Throttle {
    /// The limits a destination's configuration asks for.
    pub fn new(config: &DestinationConfig, now: Instant) -> Self {
        Self {
            breaker: config
                .circuit_breaker
                .map(|c| Mutex::new(CircuitBreaker::new(c.failures, c.cool_down))),
            limiter: config
                .rate_limit
                .map(|r| Mutex::new(RateLimit::new(f64::from(r), now))),
        }
    }

    /// How long to hold off while the breaker is open (`None`: go, possibly as the one probe).
    pub fn breaker_wait(&self, now: Instant) -> Option<Duration> {
        self.breaker.as_ref().and_then(|b| lock(b).permit(now))
    }

    /// Take a send slot from the rate limit, or say how long until one is free.
    pub fn acquire(&self, now: Instant) -> Result<(), Duration> {
        self.limiter
            .as_ref()
            .map_or(Ok(()), |l| lock(l).acquire(now))
    }

    /// Record that the peer answered (delivered, or refused for good: it is up either way).
    pub fn success(&self) -> Transition {
        self.breaker
            .as_ref()
            .map_or(Transition::None, |b| lock(b).success())
    }

    /// Record an attempt that may pass later (peer down, timeout, 5xx, NAK to retry).
    pub fn failure(&self, now: Instant) -> Transition {
        self.breaker
            .as_ref()
            .map_or(Transition::None, |b| lock(b).failure(now))
    }
}
