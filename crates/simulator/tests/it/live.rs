//! The merged live source against the simulator: every Liquidator fill arrives exactly once
//! even though the WebSocket is dropped and stalled in the middle (REST backfill + dedup), and
//! feed health, reference quotes, vault and position snapshots flow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kamiyo_aggregators::aggregate::Staleness;
use kamiyo_aggregators::hyperliquid::ws::Backoff;
use kamiyo_aggregators::live::{LiveConfig, LiveSource};
use kamiyo_core_models::{
    Address, Coin, FeedState, MarketDataStream, MarketEvent, SystemClock, Timestamp,
};
use tokio_util::sync::CancellationToken;

use crate::{eth_whale, sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fill_lost_or_doubled_across_drop_and_stall() {
    let start = "2025-03-12T13:17:00Z";
    let h = sim(start, 240.0).await;
    let clock = Arc::new(SystemClock);
    let liq = Address::parse("0x2e3d94f0562703b25c83308a05046ddaf9a8dd14").unwrap();
    let mut cfg = LiveConfig::new(
        &h.http_url(),
        &h.ws_url(),
        vec![Coin::new("ETH").unwrap()],
        Address::parse("0xdfc24b077bc1425ad1dea75bcb6f8158e10df303").unwrap(),
    );
    cfg.references = h.reference_sources(&["binance", "coinbase"]);
    cfg.reference_interval = Duration::from_millis(200);
    cfg.vault_interval = Duration::from_millis(500);
    cfg.hlp_positions_interval = Duration::from_millis(500);
    cfg.market_interval = Duration::from_millis(500);
    cfg.ping_interval = Duration::from_millis(300);
    cfg.idle_timeout = Duration::from_millis(700);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(300),
    };
    cfg.staleness = Staleness {
        stale_after_ms: 600,
        down_after_ms: 5_000,
    };
    let cancel = CancellationToken::new();
    let mut stream = Box::new(LiveSource::new(cfg, clock, cancel.clone())).into_stream();

    let mut fills: BTreeMap<(i64, u64), u32> = BTreeMap::new();
    let mut saw = BTreeMap::<&'static str, usize>::new();
    let mut feed_states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let mut dropped = false;
    let mut stalled = false;
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await else {
            break;
        };
        *saw.entry(e.kind()).or_default() += 1;
        match &e {
            MarketEvent::Fill(f) if f.user == liq => {
                *fills.entry((f.time.0, f.tid.unwrap_or(f.oid))).or_default() += 1
            }
            MarketEvent::Feed(s) => feed_states.push((s.feed.clone(), s.state)),
            _ => {}
        }
        let n = fills.len();
        if n >= 2 && !dropped {
            h.drop_connections();
            dropped = true;
        }
        if n >= 5 && !stalled {
            h.stall(Duration::from_millis(1500));
            stalled = true;
        }
        if h.now() > Timestamp::parse("2025-03-12T13:42:00Z").unwrap() {
            break;
        }
    }
    cancel.cancel();
    assert!(
        dropped && stalled,
        "the run reached the fault injections: {saw:?}"
    );
    // Every Liquidator fill of the scenario between the start and the end of the run, once.
    let end = h.now();
    let expected: Vec<(i64, u64)> = eth_whale()
        .events
        .iter()
        .filter_map(|e| match e {
            MarketEvent::Fill(f)
                if f.user == liq
                    && f.time >= Timestamp::parse(start).unwrap()
                    && f.time.0 < end.0 - 30_000 =>
            {
                Some((f.time.0, f.tid.unwrap_or(f.oid)))
            }
            _ => None,
        })
        .collect();
    assert!(expected.len() >= 8, "{expected:?}");
    for k in &expected {
        assert_eq!(
            fills.get(k),
            Some(&1),
            "fill {k:?} must arrive exactly once; got {fills:?}"
        );
    }
    assert!(fills.values().all(|n| *n == 1), "no duplicates: {fills:?}");
    for kind in [
        "asset_ctx",
        "mids",
        "reference",
        "vault",
        "positions",
        "feed",
    ] {
        assert!(
            saw.get(kind).copied().unwrap_or(0) > 0,
            "saw no {kind}: {saw:?}"
        );
    }
    assert!(
        feed_states
            .iter()
            .any(|(f, s)| f == "hyperliquid.ws" && *s == FeedState::Live)
    );
    assert!(
        feed_states
            .iter()
            .any(|(f, s)| f == "hyperliquid.ws" && *s == FeedState::Down),
        "the drop shows as DOWN: {feed_states:?}"
    );
    assert!(
        feed_states
            .iter()
            .any(|(f, s)| f == "binance" && *s == FeedState::Live)
    );
}
