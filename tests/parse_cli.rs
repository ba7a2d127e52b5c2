//! End-to-end tests of `junction parse` as a user runs it (being written).
