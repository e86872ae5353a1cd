//! Hyperliquid: wire formats, the `/info` REST client with its weight budget, the WebSocket
//! client, deduplication, and HLP discovery.

pub mod budget;
pub mod dedup;
pub mod discovery;
pub mod fast;
pub mod num;
pub mod rest;
pub mod wire;
pub mod ws;

/// Mainnet REST base URL.
pub const MAINNET_URL: &str = "https://api.hyperliquid.xyz";
/// Mainnet WebSocket URL.
pub const MAINNET_WS_URL: &str = "wss://api.hyperliquid.xyz/ws";
/// The HLP parent vault on mainnet.
pub const HLP_VAULT: &str = "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303";
