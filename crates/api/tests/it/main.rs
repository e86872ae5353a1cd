//! Integration tests of the API over real HTTP and WebSocket connections on loopback, backed by
//! a real (SQLite) store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on broken setup"
)]

mod auth;
mod fuzz;
mod openapi;
mod operator;
mod routes;
mod support;
mod views;
mod ws;
