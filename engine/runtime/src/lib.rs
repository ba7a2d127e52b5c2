//! Channel runtime: pipeline, workers, retries, shutdown.
