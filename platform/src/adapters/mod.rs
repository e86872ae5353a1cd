//! Live adapters for protocols other than Hyperliquid (whose sources are the open core's):
//! each turns a venue's public data into the open core's market events, as a
//! `MarketDataStream` an engine can run on.

pub mod dydx;
