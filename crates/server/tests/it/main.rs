//! Integration tests of the `kamiyo-hyperliquid` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on broken setup"
)]

mod alerts;
mod browser;
mod deploy;
mod e2e;
mod exploits;
mod ml;
mod resume;
mod serve;
mod stalls;
mod support;
