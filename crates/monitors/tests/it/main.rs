//! Integration tests of kamiyo-monitors: the scenario targets of the ground truth, and rule
//! tests through one `check` helper (events in, incident steps out).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a test failure"
)]

mod anomaly;
mod rules;
mod scenarios;
