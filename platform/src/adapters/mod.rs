//! Live adapters for protocols other than Hyperliquid (whose sources are the open core's):
//! each turns a venue's public data into the open core's market events, as an event stream
//! an engine can run on. Polled venues implement [`poll::Venue`].

pub mod drift;
pub mod dydx;
pub mod gmx;
pub mod paradex;
pub mod poll;
pub mod reference;
