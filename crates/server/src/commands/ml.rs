//! `kamiyo-hyperliquid ml train` and `ml evaluate`: the Isolation Forest anomaly model on real
//! Hyperliquid candles, and its event-level evaluation (plus the ARIMA risk forecast's
//! rolling-origin evaluation), printed as the tables of docs/ML_MODELS.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kamiyo_ml::eval::{LabelledEvent, alerts, event_metrics};
use kamiyo_ml::features::{self, Bar, FeatureSet};
use kamiyo_ml::iforest::{IsolationForest, Params};
use kamiyo_ml::model::{AnomalyModelFile, FORMAT, Scaler, fnv_hex};
use kamiyo_ml::{AnomalyModel, Arima};

/// 2025-03-14T00:00Z … 2025-06-01T00:00Z: the training window of the 5m model.
const TRAIN: (i64, i64) = (1_741_910_400_000, 1_748_736_000_000);
/// The calm fortnight 2025-06-01 … 2025-06-15.
const CALM: (i64, i64) = (1_748_736_000_000, 1_749_945_600_000);

/// The market-data directory: `--data`, else `./testdata/market`, else the source tree's.
pub fn data_root(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates = [
        arg.map(Path::to_path_buf),
        Some(PathBuf::from("testdata/market")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/market")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("hyperliquid").is_dir())
        .context("market data not found: pass --data DIR (the layout of testdata/market)")
}

fn load(root: &Path, rel: &str, funding: Option<&str>) -> anyhow::Result<(Vec<Bar>, Vec<u8>)> {
    let path = root.join(rel);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut bars =
        features::parse_candles(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut raw = text.into_bytes();
    if let Some(f) = funding {
        let fp = root.join(f);
        let ft =
            std::fs::read_to_string(&fp).with_context(|| format!("reading {}", fp.display()))?;
        features::apply_funding(&mut bars, &ft).map_err(|e| anyhow::anyhow!("{e}"))?;
        raw.extend_from_slice(ft.as_bytes());
    }
    Ok((bars, raw))
}

fn hl5m(coin: &str) -> (String, String) {
    (
        format!("hyperliquid/candles_5m/hl_perp_{coin}_5m_2025-03-14_2025-07-26.csv"),
        format!("hyperliquid/funding/hl_funding_{coin}_1h.csv"),
    )
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Trains the 5m model on BTC and ETH and writes it to `out`.
pub fn train(data: Option<&Path>, out: &Path, q: f64, w: &mut impl Write) -> anyhow::Result<()> {
    if !(0.5..1.0).contains(&q) {
        bail!("--quantile {q}: expected a value in [0.5, 1)");
    }
    let root = data_root(data)?;
    let mut rows = Vec::new();
    let mut hashed: Vec<Vec<u8>> = Vec::new();
    let mut window = (i64::MAX, i64::MIN);
    for coin in ["BTC", "ETH"] {
        let (c, f) = hl5m(coin);
        let (bars, raw) = load(&root, &c, Some(&f))?;
        hashed.push(raw);
        for (t, x) in features::extract(&bars) {
            if (TRAIN.0..TRAIN.1).contains(&t) {
                window = (window.0.min(t), window.1.max(t));
                rows.push(x.to_vec());
            }
        }
    }
    if rows.is_empty() {
        bail!("no training rows in the window");
    }
    let scaler = Scaler::fit(&rows);
    let scaled: Vec<Vec<f64>> = rows.iter().map(|r| scaler.apply(r)).collect();
    let forest = IsolationForest::fit(&scaled, Params::default())?;
    let scores: Vec<f64> = scaled.iter().map(|r| forest.score(r)).collect();
    let threshold = quantile(scores, q);
    let parts: Vec<&[u8]> = hashed.iter().map(Vec::as_slice).collect();
    let model = AnomalyModelFile {
        format: FORMAT,
        library_version: env!("CARGO_PKG_VERSION").to_owned(),
        features: FeatureSet::current(),
        trained_on: "hyperliquid BTC,ETH 5m".into(),
        window,
        rows: rows.len(),
        data_hash: fnv_hex(&parts),
        threshold,
        threshold_quantile: q,
        scaler,
        forest,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, model.to_json())?;
    writeln!(
        w,
        "trained isolation forest on {} rows ({} .. {}), threshold {threshold:.4} (quantile {q}); wrote {}",
        model.rows,
        kamiyo_core_models::Timestamp(window.0),
        kamiyo_core_models::Timestamp(window.1),
        out.display()
    )?;
    Ok(())
}

/// Reads a model file, refusing one built for other features.
pub fn read_model(path: &Path) -> anyhow::Result<AnomalyModelFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading model {} (train one with `ml train`)",
            path.display()
        )
    })?;
    AnomalyModelFile::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Feature rows in `span` with their scores, extracted once.
fn scored(model: &AnomalyModelFile, bars: &[Bar], span: (i64, i64)) -> Vec<(i64, [f64; 12], f64)> {
    features::extract(bars)
        .into_iter()
        .filter(|(t, _)| (span.0..span.1).contains(t))
        .map(|(t, x)| (t, x, AnomalyModel::score(model, &x)))
        .collect()
}

fn scores(rows: &[(i64, [f64; 12], f64)]) -> Vec<(i64, f64)> {
    rows.iter().map(|(t, _, s)| (*t, *s)).collect()
}

fn ts(ms: i64) -> String {
    kamiyo_core_models::Timestamp(ms).to_rfc3339()
}

/// The scenarios `ml evaluate` replays through the engine, in this order.
const SCENARIOS: [&str; 4] = [
    "calm-2025-06-01-14",
    "eth-whale-2025-03-12",
    "jelly-2025-03-26",
    "xpl-2025-08-26",
];

/// 2b. The scenarios replayed through the engine with the anomaly detector, as `replay` runs
/// them: the `ml_anomaly` incidents opened, against each scenario's ground truth. An incident
/// counts for a labelled incident when it opens from an hour before its start to its end, on
/// any market (the asset is printed); every other one is a false alert.
fn scenario_section(model: &AnomalyModelFile, w: &mut impl Write) -> anyhow::Result<()> {
    use kamiyo_aggregators::replay::Scenario;
    use kamiyo_core_models::IncidentChange;

    writeln!(
        w,
        "## Scenarios replayed through the engine: `ml_anomaly` incidents (bars from replayed mark prices; no traded volume)"
    )?;
    writeln!(
        w,
        "| scenario | days | anomaly incidents | in a labelled window | false alerts/day | labelled incidents detected | lead time (first, per incident) |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---|---|")?;
    // The detector as `replay` builds it (default configuration), sharing one model.
    let cfg = crate::config::Config::default();
    let model = std::sync::Arc::new(model.clone());
    for name in SCENARIOS {
        let dir = super::resolve_scenario(name)?;
        let sc = Scenario::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        let mut engine = kamiyo_monitors::Engine::new(&cfg.monitors)?
            .with_detector(crate::storage::anomaly_detector(&cfg, &model));
        engine
            .state_mut()
            .set_reference_max_age_ms(sc.stale_after_ms());
        let mut opened = Vec::new();
        let mut collect = |out: kamiyo_monitors::EngineOutput| {
            for u in out.updates {
                if u.event.detector == "ml_anomaly" && u.event.change == IncidentChange::Opened {
                    opened.push((u.incident.first_seen, u.incident.asset.clone()));
                }
            }
        };
        for e in &sc.events {
            collect(engine.process(e));
        }
        collect(engine.finish(sc.manifest.scenario.end));
        // Attributed to a labelled incident: opened from an hour before its start to its end.
        let during = |t: kamiyo_core_models::Timestamp,
                      i: &kamiyo_aggregators::replay::TruthIncident| {
            t.0 >= i.start.0 - 3_600_000 && t.0 <= i.end.0
        };
        let in_window = opened
            .iter()
            .filter(|(t, _)| sc.truth.incident.iter().any(|i| during(*t, i)))
            .count();
        let days =
            (sc.manifest.scenario.end.0 - sc.manifest.scenario.start.0) as f64 / 86_400_000.0;
        // Each labelled incident's first anomaly incident, if any.
        let firsts: Vec<_> = sc
            .truth
            .incident
            .iter()
            .map(|i| (i, opened.iter().find(|(t, _)| during(*t, i))))
            .collect();
        let n_detected = firsts.iter().filter(|(_, f)| f.is_some()).count();
        let detected: Vec<String> = firsts
            .iter()
            .map(|(i, first)| match first {
                Some((t, asset)) => format!(
                    "{}: {:+.0} min ({})",
                    i.id,
                    (t.0 - i.start.0) as f64 / 60_000.0,
                    asset.as_ref().map_or("-", |c| c.as_str())
                ),
                None => format!("{}: —", i.id),
            })
            .collect();
        writeln!(
            w,
            "| {name} | {days:.2} | {} | {in_window} | {:.2} | {n_detected} of {} | {} |",
            opened.len(),
            (opened.len() - in_window) as f64 / days.max(1e-9),
            sc.truth.incident.len(),
            if detected.is_empty() {
                "—".to_owned()
            } else {
                detected.join("; ")
            }
        )?;
        for (t, asset) in opened.iter().take(6) {
            writeln!(
                w,
                "|   | opened {} on {} | | | | | |",
                ts(t.0),
                asset.as_ref().map_or("-", |c| c.as_str())
            )?;
        }
    }
    writeln!(w)?;
    Ok(())
}

/// Prints the evaluation tables.
pub fn evaluate(data: Option<&Path>, model_path: &Path, w: &mut impl Write) -> anyhow::Result<()> {
    let root = data_root(data)?;
    let model = read_model(model_path)?;
    writeln!(
        w,
        "model: {} ({} rows, {} .. {}, threshold {:.4} = training quantile {}, data hash {})\n",
        model.trained_on,
        model.rows,
        ts(model.window.0),
        ts(model.window.1),
        model.threshold,
        model.threshold_quantile,
        model.data_hash
    )?;
    // 1. False alerts per day on the calm fortnight (no incident on these markets).
    writeln!(
        w,
        "## Calm fortnight 2025-06-01..14, 5m bars: false alerts per day"
    )?;
    writeln!(
        w,
        "| market | bars | anomalous bars | alerts (1 h merge) | alerts/day |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|")?;
    let calm_files = [
        ("BTC (Hyperliquid)", hl5m("BTC").0, Some(hl5m("BTC").1)),
        ("ETH (Hyperliquid)", hl5m("ETH").0, Some(hl5m("ETH").1)),
        (
            "SOL (Hyperliquid)",
            "hyperliquid/candles_5m/hl_perp_SOL_5m_calm_2025-06-01_14.csv".into(),
            Some("hyperliquid/funding/hl_funding_SOL_1h.csv".into()),
        ),
        (
            "HYPE (Hyperliquid)",
            "hyperliquid/candles_5m/hl_perp_HYPE_5m_calm_2025-06-01_14.csv".into(),
            Some("hyperliquid/funding/hl_funding_HYPE_1h.csv".into()),
        ),
        (
            "POPCAT (Hyperliquid)",
            "hyperliquid/candles_5m/hl_perp_POPCAT_5m_calm_2025-06-01_14.csv".into(),
            Some("hyperliquid/funding/hl_funding_POPCAT_1h.csv".into()),
        ),
    ];
    let mut total = (0usize, 0.0f64);
    for (label, file, funding) in calm_files {
        let (bars, _) = load(&root, &file, funding.as_deref())?;
        let s = scored(&model, &bars, CALM);
        let a = alerts(&scores(&s), model.threshold, 3_600_000);
        let m = event_metrics(&a, &[], CALM, 0, 0);
        let hot = s.iter().filter(|(_, _, x)| *x > model.threshold).count();
        total = (total.0 + a.len(), total.1 + m.days);
        writeln!(
            w,
            "| {label} | {} | {hot} | {} | {:.2} |",
            s.len(),
            a.len(),
            m.false_alerts_per_day
        )?;
    }
    writeln!(
        w,
        "| all | | | {} | {:.2} per market-day |\n",
        total.0,
        total.0 as f64 / total.1.max(1e-9)
    )?;

    // 2. The labelled incident the 5m data covers: the ETH whale (Binance ETH 5m; Hyperliquid's
    // own 5m file starts two days later).
    writeln!(w, "## Labelled incident windows, 5m bars")?;
    writeln!(
        w,
        "| incident | market | window scored | alerts | in the incident window | detected | lead time |"
    )?;
    writeln!(w, "|---|---|---|---:|---:|---|---|")?;
    let incidents = [
        (
            "ETH whale 2025-03-12",
            "ETH (Binance USD-M)",
            "binance/candles_5m/binance_usdm_ETHUSDT_5m_2025-03-12_eth_whale.csv",
            LabelledEvent {
                name: "eth-whale".into(),
                start_ms: 1_741_782_600_000,
                end_ms: 1_741_791_600_000,
            },
        ),
        (
            "JELLY 2025-03-26 (HYPE, the venue's token)",
            "HYPE (Hyperliquid)",
            "hyperliquid/candles_5m/hl_perp_HYPE_5m_2025-03-26_jelly.csv",
            LabelledEvent {
                name: "jelly".into(),
                start_ms: 1_743_001_200_000,
                end_ms: 1_743_008_400_000,
            },
        ),
    ];
    for (name, market, file, ev) in incidents {
        let (bars, _) = load(&root, file, None)?;
        let span = (
            bars.first().map_or(0, |b| b.time_ms),
            bars.last().map_or(0, |b| b.time_ms + 300_000),
        );
        let s = scored(&model, &bars, span);
        let a = alerts(&scores(&s), model.threshold, 3_600_000);
        let m = event_metrics(&a, std::slice::from_ref(&ev), span, 3_600_000, 3_600_000);
        let lead = m.lead_ms.first().map_or("—".to_owned(), |(_, l)| {
            format!("{:+.0} min", *l as f64 / 60_000.0)
        });
        writeln!(
            w,
            "| {name} | {market} | {} .. {} | {} | {} | {} | {lead} |",
            ts(span.0),
            ts(span.1),
            m.alerts,
            m.true_alerts,
            if m.detected > 0 { "yes" } else { "no" }
        )?;
        for t in a.iter().take(8) {
            let x = s.iter().find(|(tt, _, _)| tt == t).map(|(_, x, _)| *x);
            let why = x.map(|x| {
                AnomalyModel::explain(&model, &x)
                    .into_iter()
                    .take(3)
                    .map(|(n, v)| format!("{n} {:.0}%", v * 100.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            writeln!(
                w,
                "|   | alert at {} | {} | | | | |",
                ts(*t),
                why.unwrap_or_default()
            )?;
        }
    }
    writeln!(w)?;
    scenario_section(&model, w)?;

    // 3. The 24h risk forecast: rolling origin on the BTC hourly log range.
    writeln!(
        w,
        "## 24h risk forecast: BTC hourly log range, rolling origin (refit daily on the previous 720 h)"
    )?;
    let (bars, _) = load(&root, "hyperliquid/candles_1h/hl_perp_BTC_1h.csv", None)?;
    let y: Vec<(i64, f64)> = bars
        .iter()
        .filter(|b| b.close > 0.0 && b.high > b.low)
        .map(|b| (b.time_ms, ((b.high - b.low) / b.close).ln()))
        .collect();
    let mut covered = 0usize;
    let mut n = 0usize;
    let (mut mae, mut mae_naive, mut mae_mean) = (0.0, 0.0, 0.0);
    let mut orders = std::collections::BTreeMap::new();
    let mut origin = y.iter().position(|(t, _)| *t >= CALM.0).unwrap_or(y.len());
    let stop = y.iter().position(|(t, _)| *t >= CALM.1).unwrap_or(y.len());
    while origin + 24 <= stop && origin >= 720 {
        let hist: Vec<f64> = y[origin - 720..origin].iter().map(|v| v.1).collect();
        let m = Arima::select(&hist, 3, 0, 3)?;
        *orders.entry((m.p, m.q)).or_insert(0) += 1;
        let f = m.forecast(24, 0.95);
        let mean = hist.iter().sum::<f64>() / hist.len() as f64;
        for h in 0..24 {
            let actual = y[origin + h].1;
            covered += usize::from(actual >= f.lower[h] && actual <= f.upper[h]);
            mae += (f.mean[h] - actual).abs();
            mae_naive += (hist[hist.len() - 1] - actual).abs();
            mae_mean += (mean - actual).abs();
            n += 1;
        }
        origin += 24;
    }
    let nf = n.max(1) as f64;
    writeln!(
        w,
        "| origins | forecasts | 95 % interval coverage | MAE ARIMA | MAE last value | MAE 720 h mean | orders chosen |"
    )?;
    writeln!(w, "|---:|---:|---:|---:|---:|---:|---|")?;
    writeln!(
        w,
        "| {} | {n} | {:.1} % | {:.4} | {:.4} | {:.4} | {} |",
        n / 24,
        100.0 * covered as f64 / nf,
        mae / nf,
        mae_naive / nf,
        mae_mean / nf,
        orders
            .iter()
            .map(|((p, q), c)| format!("({p},0,{q})×{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    Ok(())
}
