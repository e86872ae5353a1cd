//! The GMX, Paradex and Drift adapters against their recorded answers (copied with provenance
//! under testdata/protocols/), decoded directly and polled from a loopback venue that also
//! fails, stalls and answers garbage.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kamiyo_core_models::{FeedState, MarketEvent, Side, Timestamp};
use kamiyo_platform::adapters::poll::{self, Forced, PollConfig, Venue};
use kamiyo_platform::adapters::{drift, gmx, paradex};
use tokio_util::sync::CancellationToken;

use crate::dydx::{Script, venue};

fn recorded(dir: &str, name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/testdata/protocols/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn gmx_answers() -> (String, String, String) {
    (
        recorded("gmx", "REAL_arbitrum_tokens_2026-07.json"),
        recorded("gmx", "REAL_arbitrum_markets_2026-07.json"),
        recorded("gmx", "REAL_arbitrum_prices_tickers_2026-07-06.json"),
    )
}

const GARBAGE: [&str; 6] = [
    "",
    "{",
    "[]",
    "null",
    r#"{"results":5}"#,
    "<html>502</html>",
];

#[test]
fn gmx_keeper_prices_become_contexts_with_their_spread() {
    let (tokens, markets, tickers) = gmx_answers();
    let mut g = gmx::Gmx::default();
    assert_eq!(g.read_tokens(&tokens).unwrap(), 127);
    // 134 markets, swap-only ones and unlisted ones left out, several per index token.
    assert_eq!(g.read_markets(&markets).unwrap(), 113);
    let ctxs = g.decode_tickers(&tickers).unwrap();
    assert_eq!(ctxs.len(), 113);
    let by = |c: &str| ctxs.iter().find(|x| x.coin.as_str() == c).unwrap();
    // BTC (8 decimals): 61536387027772485… / 10^22; both keeper prices equal that second.
    let btc = by("BTC");
    assert_eq!(btc.oracle_px.round_dp(6).to_string(), "61536.387028");
    assert_eq!(btc.mark_px, btc.oracle_px);
    assert!((1_783_345_314_787..=1_783_345_314_988).contains(&btc.time.0));
    // SOL (9 decimals): min 79.9920, max 80.0010 — the pair is kept as impact prices.
    let sol = by("SOL");
    let [lo, hi] = sol.impact_pxs.unwrap();
    assert_eq!(
        (lo.round_dp(4).to_string(), hi.round_dp(4).to_string()),
        ("79.9920".into(), "80.0010".into())
    );
    assert!(lo < sol.oracle_px && sol.oracle_px < hi);
    // Before tokens and markets are read nothing is decoded; garbage is an error, never a panic.
    assert!(
        gmx::Gmx::default()
            .decode_tickers(&tickers)
            .unwrap()
            .is_empty()
    );
    // An empty list is a valid (empty) answer; the rest is garbage.
    assert!(g.decode_tickers("[]").unwrap().is_empty());
    for bad in GARBAGE {
        assert!(bad == "[]" || g.decode_tickers(bad).is_err(), "{bad}");
        assert!(gmx::Gmx::default().read_tokens(bad).is_err(), "{bad}");
        assert!(gmx::Gmx::default().read_markets(bad).is_err(), "{bad}");
    }
    // A price that is not an unsigned integer is refused with its token.
    let broken = tickers.replacen("\"minPrice\": \"", "\"minPrice\": \"-", 1);
    assert!(g.decode_tickers(&broken).is_err());
}

#[test]
fn paradex_summary_and_trades_decode_with_liquidations() {
    let summary = recorded(
        "paradex",
        "REAL-ccxt_markets_summary_BTC-USD-PERP_2024-06-14.json",
    );
    let ctxs = paradex::decode_summary(&summary).unwrap();
    assert_eq!(ctxs.len(), 1);
    let btc = &ctxs[0];
    assert_eq!(btc.coin.as_str(), "BTC");
    assert_eq!(btc.oracle_px.to_string(), "67307.7225876");
    assert_eq!(btc.mark_px.to_string(), "67307.7225876");
    assert_eq!(btc.open_interest.to_string(), "152.777");
    assert_eq!(btc.funding.to_string(), "0.00749938923192");
    assert_eq!(btc.mid_px.unwrap().to_string(), "67232.15");
    assert_eq!(btc.time, Timestamp(1_718_377_962_698));
    let trades = recorded(
        "paradex",
        "REAL-ccxt_trades_BTC-USD-PERP_page_size1_2024-06-14.json",
    );
    let t = paradex::decode_trades(&trades).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, "1718377985380201703994000001");
    assert_eq!(
        (
            t[0].1.side,
            t[0].1.px.to_string(),
            t[0].1.sz.to_string(),
            t[0].2
        ),
        (Side::Buy, "67643.2".into(), "0.026".into(), None)
    );
    // The recorded FILL with its trade_type changed here to LIQUIDATION.
    let liq = trades.replacen("\"FILL\"", "\"LIQUIDATION\"", 1);
    assert_eq!(
        paradex::decode_trades(&liq).unwrap()[0].2,
        Some(Forced::Liquidation)
    );
    for bad in GARBAGE {
        assert!(paradex::decode_summary(bad).is_err(), "{bad}");
        assert!(paradex::decode_trades(bad).is_err(), "{bad}");
    }
    // Options and other instruments are not perpetual contexts.
    let option = summary.replacen("BTC-USD-PERP", "BTC-USD-100000-C", 1);
    assert!(paradex::decode_summary(&option).unwrap().is_empty());
}

#[test]
fn drift_stats_fills_and_books_decode() {
    let stats = recorded(
        "drift",
        "REAL-ccxt_data-api_stats_markets_trimmed-BTC-PERP_2026-02-10.json",
    );
    let ctxs = drift::decode_stats(&stats, Timestamp(7)).unwrap();
    assert_eq!(ctxs.len(), 1);
    let btc = &ctxs[0];
    assert_eq!(
        (
            btc.oracle_px.to_string(),
            btc.mark_px.to_string(),
            btc.open_interest.to_string(),
            btc.funding.to_string(),
            btc.day_ntl_vlm.to_string(),
            btc.time
        ),
        (
            "68525.837797".into(),
            "68481.850665".into(),
            "264.7866".into(),
            "0.00093".into(),
            "20508203.775252".into(),
            Timestamp(7)
        )
    );
    let fills = recorded(
        "drift",
        "REAL-ccxt_data-api_market_BTC-PERP_trades_1record_2026-02-10.json",
    );
    let t = drift::decode_trades(&fills).unwrap();
    assert_eq!(t.len(), 1);
    // 68.9361 USDC for 0.001 BTC, the taker long.
    assert_eq!(
        (
            t[0].0.as_str(),
            t[0].1.side,
            t[0].1.px.to_string(),
            t[0].1.sz.to_string(),
            t[0].1.time,
            t[0].2
        ),
        (
            "7062235",
            Side::Buy,
            "68936.1".into(),
            "0.001".into(),
            Timestamp(1_770_731_837_000),
            None
        )
    );
    let liq = fills.replacen("\"orderFilledWithMatch\"", "\"liquidation\"", 1);
    assert_eq!(
        drift::decode_trades(&liq).unwrap()[0].2,
        Some(Forced::Liquidation)
    );
    for name in [
        "REAL-ccxt_dlob_l2_BTC-PERP_1level_2026-02-10T13-28.json",
        "REAL-ccxt_dlob_l2_BTC-PERP_1level_vamm_2026-02-10T13-52.json",
    ] {
        let b = drift::decode_l2(&recorded("drift", name)).unwrap();
        assert_eq!((b.bids.len(), b.asks.len()), (1, 1), "{name}");
        assert!(b.bids[0].px < b.asks[0].px, "{name}");
    }
    let b = drift::decode_l2(&recorded(
        "drift",
        "REAL-ccxt_dlob_l2_BTC-PERP_1level_2026-02-10T13-28.json",
    ))
    .unwrap();
    // 68691600000 / 1e6 and 110200000 / 1e9.
    assert_eq!(
        (b.bids[0].px.to_string(), b.bids[0].sz.to_string(), b.time),
        (
            "68691.6".into(),
            "0.1102".into(),
            Timestamp(1_770_730_108_227)
        )
    );
    for bad in GARBAGE {
        assert!(drift::decode_stats(bad, Timestamp(0)).is_err(), "{bad}");
        assert!(drift::decode_trades(bad).is_err(), "{bad}");
        assert!(drift::decode_l2(bad).is_err(), "{bad}");
    }
}

/// What a poll of a venue saw.
#[derive(Debug, Default)]
struct Seen {
    trades: Vec<u64>,
    liquidations: usize,
    contexts: usize,
    books: usize,
    feed: Vec<FeedState>,
}

/// Polls `v` at the loopback venue until `enough` or 20 s.
async fn poll_venue<V: Venue>(
    v: V,
    script: Script,
    prefixes: &[&str],
    markets: &[&str],
    enough: impl Fn(&Seen) -> bool,
) -> (Seen, usize) {
    kamiyo_aggregators::install_crypto_provider();
    let (root, log) = venue(script).await;
    let cfg = PollConfig {
        base_urls: prefixes.iter().map(|p| format!("{root}{p}")).collect(),
        markets: markets.iter().map(|m| (*m).to_owned()).collect(),
        contexts_every: Duration::from_millis(100),
        trades_every: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        requests_per_10s: 200,
        resume_after: None,
    };
    let stop = CancellationToken::new();
    let mut s = poll::stream(
        v,
        cfg,
        reqwest::Client::new(),
        Arc::new(|| 1_770_000_000_000),
        stop.clone(),
    );
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && !enough(&seen) {
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), s.next()).await else {
            break;
        };
        match e {
            MarketEvent::Trade(t) => seen.trades.push(t.tid),
            MarketEvent::Fill(f) if f.is_liquidation() => seen.liquidations += 1,
            MarketEvent::AssetCtx(_) => seen.contexts += 1,
            MarketEvent::Book(_) => seen.books += 1,
            MarketEvent::Feed(f) => seen.feed.push(f.state),
            _ => {}
        }
    }
    stop.cancel();
    let n = log.lock().unwrap().len();
    (seen, n)
}

/// Live, down on a failure or stall, live again.
fn recovered(feed: &[FeedState]) -> bool {
    feed.first() == Some(&FeedState::Live)
        && feed.contains(&FeedState::Down)
        && feed.last() == Some(&FeedState::Live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gmx_polls_through_failures_and_garbage() {
    let (tokens, markets, tickers) = gmx_answers();
    let script: Script = Arc::new(move |path, n| match path {
        p if p.ends_with("/tokens") => (200, tokens.clone(), 0),
        p if p.ends_with("/markets") => (200, markets.clone(), 0),
        _ => match n {
            2 => (503, "upstream".into(), 0),
            3 => (200, "[{\"tokenAddress\": 5".into(), 0),
            4 => (200, tickers.clone(), 1_500),
            _ => (200, tickers.clone(), 0),
        },
    });
    let (seen, _) = poll_venue(gmx::Gmx::default(), script, &[""], &[], |s| {
        s.contexts >= 3 * 113 && s.feed.len() >= 3
    })
    .await;
    assert!(recovered(&seen.feed), "{seen:?}");
    assert!(seen.contexts >= 3 * 113, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paradex_polls_through_failures_and_emits_each_trade_once() {
    let summary = recorded(
        "paradex",
        "REAL-ccxt_markets_summary_BTC-USD-PERP_2024-06-14.json",
    );
    let trades = recorded(
        "paradex",
        "REAL-ccxt_trades_BTC-USD-PERP_page_size1_2024-06-14.json",
    );
    // From the third page on, the venue adds a liquidation (the recorded trade, its id and
    // type changed here) to the recorded one.
    let liq = trades.replacen("\"FILL\"", "\"LIQUIDATION\"", 1).replacen(
        "1718377985380201703994000001",
        "1718377985380201703994000002",
        1,
    );
    let both = {
        let a: serde_json::Value = serde_json::from_str(&trades).unwrap();
        let b: serde_json::Value = serde_json::from_str(&liq).unwrap();
        serde_json::json!({"results": [b["results"][0], a["results"][0]]}).to_string()
    };
    let script: Script = Arc::new(move |path, n| {
        if path.ends_with("/markets/summary") {
            match n {
                2 => (503, "down".into(), 0),
                3 => (200, "{\"results\": [{".into(), 0),
                _ => (200, summary.clone(), 0),
            }
        } else {
            match n {
                1 | 2 => (200, trades.clone(), if n == 2 { 1_500 } else { 0 }),
                _ => (200, both.clone(), 0),
            }
        }
    });
    let (seen, polls) = poll_venue(paradex::Paradex, script, &["/v1"], &["BTC-USD-PERP"], |s| {
        s.trades.len() >= 2 && s.contexts >= 4 && s.feed.len() >= 3
    })
    .await;
    assert_eq!(seen.trades.len(), 2, "{seen:?}");
    assert_eq!(seen.liquidations, 1, "{seen:?}");
    assert!(recovered(&seen.feed), "{seen:?}");
    assert!(polls >= 6, "{polls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_polls_two_bases_through_failures() {
    let stats = recorded(
        "drift",
        "REAL-ccxt_data-api_stats_markets_trimmed-BTC-PERP_2026-02-10.json",
    );
    let fills = recorded(
        "drift",
        "REAL-ccxt_data-api_market_BTC-PERP_trades_1record_2026-02-10.json",
    );
    let l2 = recorded(
        "drift",
        "REAL-ccxt_dlob_l2_BTC-PERP_1level_2026-02-10T13-28.json",
    );
    let script: Script = Arc::new(move |path, n| {
        if path.starts_with("/dlob/l2") {
            (200, l2.clone(), 0)
        } else if path.ends_with("/stats/markets") {
            match n {
                2 => (500, "oops".into(), 0),
                _ => (200, stats.clone(), 0),
            }
        } else {
            match n {
                2 => (200, "{\"records\": [".into(), 0),
                3 => (200, fills.clone(), 1_500),
                _ => (200, fills.clone(), 0),
            }
        }
    });
    let (seen, _) = poll_venue(
        drift::Drift::default(),
        script,
        &["/data", "/dlob"],
        &["BTC-PERP"],
        |s| s.books >= 3 && s.contexts >= 3 && s.feed.len() >= 3,
    )
    .await;
    assert_eq!(seen.trades.len(), 1, "{seen:?}");
    assert!(seen.books >= 3 && seen.contexts >= 3, "{seen:?}");
    assert!(recovered(&seen.feed), "{seen:?}");
}
