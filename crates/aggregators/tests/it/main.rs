//! Integration tests of kamiyo-aggregators: every recorded response decodes, and no input makes
//! a decoder panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a test failure"
)]

mod fixtures;
mod fuzz;
mod scenarios;

use std::path::PathBuf;

/// Path of a file under the repository's `testdata/fixtures`.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(rel)
}

/// Contents of a fixture.
pub fn fixture(rel: &str) -> String {
    std::fs::read_to_string(fixture_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}
