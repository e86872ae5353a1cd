//! HTTP API, live WebSocket stream and dashboard of kamiyo (actix-web).
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
