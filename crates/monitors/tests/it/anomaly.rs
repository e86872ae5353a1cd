//! The anomaly detector scores live bars exactly as the model scores candle files: real BTC 5m
//! candles replayed as trades produce detections at the very bars the offline evaluation flags;
//! and its bars carry the extended inputs (reference, open interest, liquidations, HLP) from
//! the event stream.

use std::sync::Arc;

use kamiyo_core_models::{Coin, Decimal, MarketEvent, Side, ThreatType, Timestamp, Trade};
use kamiyo_ml::AnomalyModel;
use kamiyo_ml::eval::alerts;
use kamiyo_ml::features::{self, Bar, CORE, FeatureSet};
use kamiyo_ml::iforest::{IsolationForest, Params};
use kamiyo_ml::model::{AnomalyModelFile, FORMAT, Scaler};
use kamiyo_monitors::detectors::anomaly::{AnomalyDetector, AnomalySettings};
use kamiyo_monitors::{Engine, MonitorsConfig};

fn btc() -> Vec<Bar> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/market/hyperliquid/candles_5m/hl_perp_BTC_5m_2025-03-14_2025-07-26.csv"
    ))
    .unwrap();
    features::parse_candles(&text).unwrap()
}

fn d(v: f64) -> Decimal {
    Decimal::from_f64_retain(v).unwrap().round_dp(8)
}

#[test]
fn live_bars_from_trades_score_like_the_candle_file() {
    let bars = btc();
    // Train on the first 6,000 bars, with a threshold low enough to flag a few later bars.
    let model = core_model(&bars[..6000], 0.995);
    // Offline: the flagged bars of the next 3,000 bars.
    let test = &bars[6000..9000];
    let offline: Vec<i64> = features::extract(test)
        .into_iter()
        .filter(|(_, x)| AnomalyModel::score(&*model, &x[..CORE]) > model.threshold)
        .map(|(t, _)| t)
        .collect();
    assert!(
        !offline.is_empty(),
        "the test window should contain flagged bars"
    );

    // Live: each candle becomes four trades (open, high, low, close) inside its interval.
    let coin = Coin::new("BTC").unwrap();
    let mut engine = Engine::new(&MonitorsConfig::default())
        .unwrap()
        .with_detector(Box::new(AnomalyDetector::new(
            model.clone(),
            AnomalySettings::default(),
        )));
    let mut live = Vec::new();
    let mut tid = 0;
    for b in test.iter().chain(std::iter::once(&Bar {
        time_ms: test[test.len() - 1].time_ms + 300_000,
        ..test[0]
    })) {
        for (k, px) in [b.open, b.high, b.low, b.close].into_iter().enumerate() {
            tid += 1;
            let e = MarketEvent::Trade(Trade {
                coin: coin.clone(),
                side: Side::Buy,
                px: d(px),
                sz: d(b.volume / 4.0),
                time: Timestamp(b.time_ms + 1_000 + k as i64 * 60_000),
                tid,
                users: None,
            });
            for u in engine.process(&e).updates {
                if u.event.threat_type == ThreatType::MlAnomaly {
                    live.push(
                        u.event.evidence.0["bar_start_ms"]
                            .to_string()
                            .parse::<i64>()
                            .unwrap(),
                    );
                }
            }
        }
    }
    // The incident lifecycle folds consecutive anomalous bars into one incident: compare the
    // first bar of each alert run (1 h merge), as the engine only reports steps.
    let offline_alerts = alerts(
        &offline.iter().map(|t| (*t, 1.0)).collect::<Vec<_>>(),
        0.5,
        3_600_000,
    );
    assert!(!live.is_empty());
    for t in &live {
        assert!(
            offline.contains(t),
            "live flagged bar {t} that the offline scoring did not"
        );
    }
    for t in &offline_alerts {
        assert!(
            live.contains(t),
            "offline alert at {t} not raised live; live: {live:?}"
        );
    }
}

/// A model of the core features trained on `train` (real BTC 5m bars), its threshold at
/// quantile `q` of the training scores (`q = 0`: threshold 0, every scored bar a detection,
/// so each one's evidence can be read).
fn core_model(train: &[Bar], q: f64) -> Arc<AnomalyModelFile> {
    let rows: Vec<Vec<f64>> = features::extract(train)
        .into_iter()
        .map(|(_, x)| x[..CORE].to_vec())
        .collect();
    let scaler = Scaler::fit(&rows);
    let scaled: Vec<Vec<f64>> = rows.iter().map(|r| scaler.apply(r)).collect();
    let forest = IsolationForest::fit(&scaled, Params::default()).unwrap();
    let mut scores: Vec<f64> = scaled.iter().map(|r| forest.score(r)).collect();
    scores.sort_by(f64::total_cmp);
    Arc::new(AnomalyModelFile {
        format: FORMAT,
        library_version: "test".into(),
        features: FeatureSet::of(&(0..CORE).collect::<Vec<_>>()),
        trained_on: "BTC 5m (test)".into(),
        bar_ms: 300_000,
        window: (0, 0),
        rows: rows.len(),
        data_hash: String::new(),
        threshold: if q > 0.0 {
            scores[(scores.len() as f64 * q) as usize]
        } else {
            0.0
        },
        threshold_quantile: q,
        scaler,
        forest,
    })
}

#[test]
fn live_bars_carry_reference_open_interest_liquidations_and_hlp() {
    use crate::rules::{S, T0, addr, ctx_full, d as dec, liq_fill, refq};
    use kamiyo_core_models::{LiquidationMethod, SeriesPoint, VaultSnapshot};
    use kamiyo_monitors::MarketState;
    use kamiyo_monitors::detectors::{Detector, Sink};

    let cfg = MonitorsConfig::default();
    let mut state = MarketState::new(&cfg);
    let mut det = AnomalyDetector::new(core_model(&btc()[..3000], 0.0), AnomalySettings::default());
    let mut sink = Sink::default();
    // Synthetic market, one 5-minute bar per k: price P_k, open interest 1000 + 10k, two
    // outside venues at +0.3 %, a trade of 2 and a liquidation
    // fill of 1 at P_k, and HLP's cumulative PnL rising 1,000 USD per bar on 1 M of equity.
    // (The venues' weights decide a two-venue median: both quote the same price here.)
    let px = |k: i64| format!("{:.4}", 100.0 + (k as f64 / 5.0).sin());
    let p = |k: i64| px(k).parse::<f64>().unwrap();
    let oi = |k: i64| 1000.0 + 10.0 * k as f64;
    let bar0 = (T0 / 300_000 + 1) * 300; // first bar boundary, in seconds
    let mut history = Vec::new();
    let mut tid = 0;
    for k in 0..70i64 {
        let s = bar0 - T0 / S + k * 300;
        tid += 1;
        history.push(SeriesPoint {
            time: Timestamp(T0 + (s + 40) * S),
            value: dec(&format!("{}", 1000 * k)),
        });
        let events = [
            refq("binance", "BTC", s + 5, &format!("{:.6}", p(k) * 1.003)),
            refq("coinbase", "BTC", s + 5, &format!("{:.6}", p(k) * 1.003)),
            ctx_full(
                "BTC",
                s + 10,
                &px(k),
                &px(k),
                &format!("{}", oi(k)),
                "1000000",
            ),
            MarketEvent::Trade(Trade {
                coin: Coin::new("BTC").unwrap(),
                side: Side::Buy,
                px: dec(&px(k)),
                sz: dec("2"),
                time: Timestamp(T0 + (s + 20) * S),
                tid,
                users: None,
            }),
            liq_fill(
                addr(9),
                "BTC",
                s + 30,
                &px(k),
                "1",
                None,
                tid,
                LiquidationMethod::Market,
            ),
            // The same liquidation from the liquidated user's side: counted once.
            liq_fill(
                addr(7),
                "BTC",
                s + 30,
                &px(k),
                "1",
                None,
                tid,
                LiquidationMethod::Market,
            ),
            MarketEvent::Vault(VaultSnapshot {
                vault: cfg.hlp.vault,
                name: "HLP".into(),
                time: Timestamp(T0 + (s + 40) * S),
                account_value: dec("1000000"),
                pnl_history: history.clone(),
                account_value_history: Vec::new(),
            }),
        ];
        for e in &events {
            state.apply(e);
            det.on_event(e, &state, &mut sink);
        }
    }
    assert!(sink.detections.len() >= 15, "{}", sink.detections.len());
    let num = |det: &kamiyo_core_models::Detection, key: &str| -> f64 {
        det.evidence.0[key]
            .to_string()
            .trim_matches('"')
            .parse()
            .unwrap()
    };
    for det in &sink.detections {
        let start = num(det, "bar_start_ms") as i64;
        let k = (start / 1000 - bar0) / 300;
        let close = |j: i64| p(j);
        let near = |key: &str, want: f64| {
            let got = num(det, key);
            assert!((got - want).abs() < 2e-6, "bar {k} {key}: {got} vs {want}");
        };
        let reference: f64 = format!("{:.6}", p(k) * 1.003).parse().unwrap();
        near("basis_ref", (close(k) / reference).ln());
        near("oi_change_1", (oi(k) / oi(k - 1)).ln());
        near("oi_change_12", (oi(k) / oi(k - 12)).ln());
        let traded = (1..=48).map(|j| 2.0 * close(k - j)).sum::<f64>() / 48.0;
        near("liq_notional_ratio_48", close(k) / traded);
        near("hlp_pnl_slope_12", 0.012);
    }
}

fn vault(hours: i64, drift: f64) -> Vec<MarketEvent> {
    use kamiyo_core_models::{SeriesPoint, VaultSnapshot};
    let hlp = MonitorsConfig::default().hlp.vault;
    let t0 = 1_743_000_000_000i64 - 1_743_000_000_000 % 3_600_000;
    let mut pnl = 60_000_000.0;
    let mut history = Vec::new();
    let mut events = Vec::new();
    for h in 0..hours {
        // Synthetic: a drift plus deterministic noise of ±50k USD per hour.
        pnl += drift + (((h * 7919) % 1001) as f64 - 500.0) * 100.0;
        history.push(SeriesPoint {
            time: Timestamp(t0 + h * 3_600_000),
            value: d(pnl),
        });
        events.push(MarketEvent::Vault(VaultSnapshot {
            vault: hlp,
            name: "Hyperliquidity Provider (HLP)".into(),
            time: Timestamp(t0 + h * 3_600_000 + 60_000),
            account_value: d(300_000_000.0),
            pnl_history: history.clone(),
            account_value_history: Vec::new(),
        }));
    }
    events
}

fn forecast_steps(events: &[MarketEvent]) -> Vec<kamiyo_core_models::IncidentUpdate> {
    use kamiyo_monitors::detectors::forecast::{ForecastDetector, ForecastSettings};
    let mut engine = Engine::new(&MonitorsConfig::default())
        .unwrap()
        .with_detector(Box::new(ForecastDetector::new(ForecastSettings::default())));
    events
        .iter()
        .flat_map(|e| engine.process(e).updates)
        .filter(|u| u.event.threat_type == ThreatType::RiskForecast)
        .collect()
}

#[test]
fn the_risk_forecast_becomes_an_incident_when_the_interval_reaches_the_loss() {
    // A vault losing 60k USD an hour: the 24 h forecast change is about -1.4M.
    let losing = forecast_steps(&vault(120, -60_000.0));
    assert!(!losing.is_empty(), "no risk_forecast incident");
    let first = &losing[0].event;
    assert_eq!(first.incident_key.as_str(), "risk_forecast:hlp_pnl");
    let mean_of = |e: &kamiyo_core_models::SecurityEvent| -> f64 {
        e.evidence.0["change_24h_mean_usd"]
            .to_string()
            .parse()
            .unwrap()
    };
    // With the first 48 hours the interval reaches the loss (high); as the history grows the
    // point forecast itself does (critical).
    let critical = losing
        .iter()
        .map(|u| &u.event)
        .find(|e| e.severity == kamiyo_core_models::Severity::Critical)
        .expect("the forecast escalates to critical");
    assert!(mean_of(critical) < -1_000_000.0, "{}", mean_of(critical));
    assert!(
        losing
            .iter()
            .all(|u| u.event.severity >= kamiyo_core_models::Severity::High)
    );
    // A vault earning steadily: no forecast incident.
    assert!(forecast_steps(&vault(120, 20_000.0)).is_empty());
}

#[test]
fn a_standing_risk_forecast_is_one_incident_between_hourly_fits() {
    use kamiyo_core_models::IncidentChange;
    use kamiyo_monitors::detectors::forecast::{ForecastDetector, ForecastSettings};
    // The live runner ticks every second; the forecast is fitted once an hour. A loss the
    // forecast keeps reaching must not resolve between two fits that both show it.
    let mut engine = Engine::new(&MonitorsConfig::default())
        .unwrap()
        .with_detector(Box::new(ForecastDetector::new(ForecastSettings::default())));
    let mut changes = Vec::new();
    for e in vault(120, -60_000.0) {
        let t = match &e {
            MarketEvent::Vault(v) => v.time,
            _ => unreachable!(),
        };
        let mut updates = engine.process(&e).updates;
        for m in 1..60 {
            updates.extend(engine.tick(t.plus_millis(m * 60_000)).updates);
        }
        changes.extend(
            updates
                .into_iter()
                .filter(|u| u.event.threat_type == ThreatType::RiskForecast)
                .map(|u| u.event.change),
        );
    }
    let opened = changes
        .iter()
        .filter(|c| **c == IncidentChange::Opened)
        .count();
    assert_eq!(opened, 1, "{changes:?}");
    assert!(!changes.contains(&IncidentChange::Resolved), "{changes:?}");
}
