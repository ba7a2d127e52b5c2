//! End-to-end tests of destinations: HTTP status handling, hand-over, retries, breaker, rate limit (being written).
