//! The Hyperliquid and reference-venue clients of kamiyo-aggregators against the loopback
//! simulator speaking the real wire formats: REST, WebSocket resilience, and the merged live
//! source (no fill lost or doubled across drops and stalls).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a test failure"
)]

mod live;
mod rest;
mod venues;
mod ws;

use std::path::PathBuf;
use std::sync::OnceLock;

use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::{Coin, Timestamp};
use kamiyo_simulator::{SimHandle, SimOptions};

/// The ETH-whale scenario, loaded once.
pub fn eth_whale() -> &'static Scenario {
    static S: OnceLock<Scenario> = OnceLock::new();
    S.get_or_init(|| {
        Scenario::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/eth-whale-2025-03-12"),
        )
        .unwrap()
    })
}

/// Starts the simulator on the ETH-whale scenario at `start_at` and `speed`.
pub async fn sim(start_at: &str, speed: f64) -> SimHandle {
    let s = eth_whale();
    let universe: Vec<Coin> = s.manifest.market.iter().map(|m| m.coin.clone()).collect();
    let opts = SimOptions {
        speed,
        start_at: Timestamp::parse(start_at),
        ..SimOptions::default()
    };
    kamiyo_simulator::start(s.events.clone(), universe, s.manifest.scenario.end, opts)
        .await
        .unwrap()
}
