//! Durable message store and per-destination queues (the only module that touches sled).
