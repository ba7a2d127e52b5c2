//! Network connectors: MLLP listener and sender (plain and TLS).
