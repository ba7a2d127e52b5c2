//! Channel YAML model, loading and validation (the only module that touches serde_yaml).
//!
//! One YAML file per channel in a `channels/` folder. [`load_dir`] reads them all, checks each
//! against the schema and the files it names, then checks them against each other
//! ([`validate`]); every problem comes back at once in [`Diagnostics`], each naming the file,
//! line and column: `channels/adt.yaml:7:5: unknown field 'destinatons', expected one of ...`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cases;
mod convert;
mod env;
mod error;
mod load;
mod locate;
mod model;
mod raw;
mod units;
mod validate;

pub use cases::{
    load_test_dir, load_test_file, parse_test_file, Expectation, ExpectedFile, TestCase, TestFile,
};
pub use convert::parse_channel;
pub use error::{ConfigError, Diagnostics, Location, Problem};
pub use load::{base_dir, load_dir, load_file};
pub use model::*;
pub use validate::validate;

/// Re-exported so users of [`MatchRule::pattern`] need not depend on it themselves.
pub use regex;
