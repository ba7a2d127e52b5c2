//! Retry timing for destinations: capped exponential backoff with jitter.

use std::time::Duration;

use junction_config::{MaxAttempts, RetryPolicy};

/// Delay before retry number `attempt` (1 = first retry), with up to 20% random jitter subtracted
/// so that many queues failing together do not retry in lockstep.
pub fn delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = policy
        .initial
        .saturating_mul(1u32 << exp)
        .min(policy.max)
        .max(Duration::from_millis(1));
    let jitter = base.mul_f64(fastrand::f64() * 0.2);
    base.saturating_sub(jitter)
}

/// Whether a message that has failed `attempts` times should be given up on.
pub fn exhausted(policy: &RetryPolicy, attempts: u32) -> bool {
    match policy.max_attempts {
        MaxAttempts::Forever => false,
        MaxAttempts::Limit(max) => attempts >= max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_and_are_capped() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: MaxAttempts::Limit(3),
        };
        let d1 = delay(&p, 1);
        assert!(d1 <= Duration::from_millis(100) && d1 >= Duration::from_millis(80));
        let d3 = delay(&p, 3);
        assert!(d3 <= Duration::from_millis(400) && d3 >= Duration::from_millis(320));
        let d30 = delay(&p, 30);
        assert!(d30 <= Duration::from_secs(1) && d30 >= Duration::from_millis(800));
        assert!(delay(&p, u32::MAX) <= Duration::from_secs(1));
        assert!(!exhausted(&p, 2));
        assert!(exhausted(&p, 3));
        assert!(!exhausted(&RetryPolicy::default(), u32::MAX));
    }
}
