//! Channel YAML model, loading and validation (the only module that touches serde_yaml).
