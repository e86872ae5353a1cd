//! Hyperliquid and reference-venue market data for kamiyo.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod aggregate;
pub mod clock;
pub mod exploits;
pub mod hyperliquid;
pub mod live;
pub mod metrics;
pub mod replay;
mod scan;
pub mod sources;
pub mod supervise;
pub mod whales;

/// Installs ring as the process-wide rustls crypto provider (idempotent). Every TLS client in
/// this crate calls it; binaries may call it first thing in `main`.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
