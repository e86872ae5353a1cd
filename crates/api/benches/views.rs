//! What a reload of the dashboard's market view costs the requests that read it meanwhile.
//!
//! `cargo bench -p kamiyo-api --bench views`
//!
//! The view holds the watched vault's last 90 days, the latest deviations and the day's
//! liquidations, and reads them whole again every 30 s (rows dated in the past, a backfill,
//! are otherwise missed). Seeded here at production size — 90 days of one-minute vault points
//! (129,600), 20,000 liquidations in the last day, 1,000 deviation samples; values synthetic —
//! in the in-memory store, so the figures are the view's own work, not a database's. One
//! thread reads the figures back to back (as request workers do) and times every read: first
//! while nothing else runs (the baseline, same run), then while the view reloads back to back
//! on another thread. Prints the time of one whole load and the readers' percentiles.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kamiyo_api::views::MarketView;
use kamiyo_core_models::testing::MemoryStore;
use kamiyo_core_models::{
    Address, Coin, Decimal, DeviationKind, DeviationSample, IngestBatch, LiquidationMethod,
    LiquidationRecord, MarketStore, ProtocolId, Side, Timestamp, VaultPoint,
};

const NOW: i64 = 1_764_806_400_000;
const SECS: u64 = 5;

fn seed() -> IngestBatch {
    let vault = Address::from_bytes([0xdf; 20]);
    let mut b = IngestBatch::default();
    let minutes = MarketView::VAULT_HOURS * 60;
    for m in 0..minutes {
        b.vault_points.push(VaultPoint {
            protocol: ProtocolId::HYPERLIQUID,
            vault,
            time: Timestamp(NOW - (minutes - m) * Timestamp::MINUTE),
            account_value: Decimal::new(300_000_000 + m % 977, 0),
            pnl: Decimal::new(60_000_000 - m * 3, 0),
        });
    }
    let coins = ["BTC", "ETH", "SOL", "HYPE", "XRP"];
    for k in 0..20_000i64 {
        b.liquidations.push(LiquidationRecord {
            protocol: ProtocolId::HYPERLIQUID,
            time: Timestamp(NOW - Timestamp::DAY + 1 + k * (Timestamp::DAY / 20_001)),
            coin: Coin::new(coins[(k % 5) as usize]).unwrap_or_else(|_| unreachable!()),
            user: Address::from_bytes([(k % 251) as u8; 20]),
            liquidated_user: None,
            side: if k % 2 == 0 { Side::Buy } else { Side::Sell },
            px: Decimal::new(2000 + k % 100, 0),
            sz: Decimal::new(1 + k % 50, 1),
            notional: Decimal::new((2000 + k % 100) * (1 + k % 50), 1),
            method: Some(LiquidationMethod::Market),
            is_adl: k % 97 == 0,
            tid: k as u64,
        });
    }
    for k in 0..1_000i64 {
        b.deviations.push(DeviationSample {
            protocol: ProtocolId::HYPERLIQUID,
            coin: Coin::new(coins[(k % 5) as usize]).unwrap_or_else(|_| unreachable!()),
            time: Timestamp(NOW - 10 * Timestamp::MINUTE + k * 600),
            kind: DeviationKind::OracleVsReference,
            venue: None,
            value: Decimal::new(200_000 + k, 2),
            reference: Decimal::new(200_000, 2),
            deviation_pct: Decimal::new(k, 4),
        });
    }
    b
}

/// Times `view.figures` back to back until `stop`; the durations in µs, sorted.
fn read_until(view: &MarketView, stop: &AtomicBool) -> Vec<f64> {
    let now = Timestamp(NOW);
    let mut times = Vec::with_capacity(1 << 20);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        std::hint::black_box(view.figures(None, now));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn report(label: &str, times: &[f64]) {
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let _ = writeln!(
        std::io::stdout(),
        "{label:<40} {:>9} reads  p50 {:>8.1} µs  p99 {:>8.1} µs  p99.9 {:>8.1} µs  max {:>9.1} µs",
        times.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let store = MemoryStore::new();
    let vault = Address::from_bytes([0xdf; 20]);
    rt.block_on(store.commit(&seed()))
        .unwrap_or_else(|e| panic!("seed: {e}"));
    let store: Arc<dyn MarketStore> = Arc::new(store);
    let now = Timestamp(NOW);

    // One whole load, five times (the store read included).
    let mut loads = Vec::new();
    for _ in 0..5 {
        let fresh = Arc::new(MarketView::new(Duration::from_secs(3600)));
        let t = Instant::now();
        rt.block_on(fresh.sync(store.clone(), vault, now))
            .unwrap_or_else(|e| panic!("load: {e}"));
        loads.push(t.elapsed().as_secs_f64() * 1e3);
    }
    loads.sort_by(f64::total_cmp);
    let _ = writeln!(
        std::io::stdout(),
        "whole load of the view (90 days of minute points, 20,000 liquidations): best {:.1} ms, median {:.1} ms",
        loads[0],
        loads[2]
    );

    // Every look reloads (a reload period of zero).
    let view = Arc::new(MarketView::new(Duration::ZERO));
    rt.block_on(view.sync(store.clone(), vault, now))
        .unwrap_or_else(|e| panic!("load: {e}"));
    let stop = AtomicBool::new(false);
    let quiet = std::thread::scope(|s| {
        let reader = s.spawn(|| read_until(&view, &stop));
        std::thread::sleep(Duration::from_secs(SECS));
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap_or_default()
    });
    report("figures, nothing else running", &quiet);

    stop.store(false, Ordering::Relaxed);
    let mut looks = 0u32;
    let busy = std::thread::scope(|s| {
        let reader = s.spawn(|| read_until(&view, &stop));
        let until = Instant::now() + Duration::from_secs(SECS);
        while Instant::now() < until {
            // A look (here always a reload) runs in the background; one at a time (a look
            // that finds one running is dropped).
            rt.block_on(async {
                let _ = view.sync(store.clone(), vault, now).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
            looks += 1;
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap_or_default()
    });
    report(&format!("figures, reloading ({looks} looks)"), &busy);
}
