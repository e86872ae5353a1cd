//! Integration tests of kamiyo-alerts: exact payloads per vendor, loopback receivers, a real
//! SMTP conversation, and the delivery service over a real SQLite store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests stop at the first broken expectation"
)]

mod delivery;
mod payloads;
mod smtp;
mod support;
