//! Live adapters for protocols other than Hyperliquid (whose sources are the open core's):
//! each turns a venue's public data into the open core's market events, as an event stream
//! an engine can run on. Polled venues implement [`poll::Venue`], socket venues [`socket::Socket`].

pub mod binance;
pub mod drift;
pub mod dydx;
pub mod gmx;
pub mod lighter;
pub mod paradex;
pub mod poll;
pub mod reference;
pub mod socket;
