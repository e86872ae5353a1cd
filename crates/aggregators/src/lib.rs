//! Hyperliquid and reference-venue market data: REST and WebSocket clients, wire decoders, weighted median, feed freshness and scenario replay.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
