//! The ML anomaly detector: builds bars of the model's interval per market from the event
//! stream — prices and traded volume from trades and marks, funding, open interest and the
//! outside-exchange reference from asset contexts and the reference book, liquidation notional
//! from liquidation fills, HLP's PnL and equity from its vault snapshots — feeds them through
//! the very feature extractor the model was trained with, scores each closed bar on the
//! model's features, and raises an `ml_anomaly` detection (incident key `ml_anomaly:<coin>`)
//! when the score crosses the model's threshold, with the features that drove it as evidence.

use std::collections::BTreeMap;
use std::sync::Arc;

use kamiyo_core_models::{
    Coin, Decimal, Detection, Evidence, IncidentKey, MarketEvent, Severity, ThreatType, Timestamp,
};
use kamiyo_ml::AnomalyModel;
use kamiyo_ml::features::{Bar, CORE, FEATURES, FeatureExtractor, FeatureSet};

use super::{Detector, Sink};
use crate::state::MarketState;

/// Settings of the anomaly detector (the bar length is the model's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalySettings {
    /// Score above which the detection is high rather than medium.
    pub high_score: f64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self { high_score: 0.78 }
    }
}

#[derive(Debug)]
struct Building {
    bar: Option<Bar>,
    funding: f64,
    ref_px: f64,
    open_interest: f64,
    /// Liquidation notional since the last bar closed.
    liq: f64,
    fx: FeatureExtractor,
}

impl Default for Building {
    fn default() -> Self {
        Self {
            bar: None,
            funding: 0.0,
            ref_px: f64::NAN,
            open_interest: f64::NAN,
            liq: 0.0,
            fx: FeatureExtractor::new(),
        }
    }
}

/// The detector.
pub struct AnomalyDetector {
    model: Arc<dyn AnomalyModel>,
    /// The model's features as catalogue columns.
    columns: Vec<Option<usize>>,
    bar_ms: i64,
    settings: AnomalySettings,
    markets: BTreeMap<Coin, Building>,
    /// A fill feed is present (so a bar without liquidations had none, rather than unknown).
    fills_seen: bool,
    /// HLP's latest cumulative PnL and account value.
    hlp: (f64, f64),
}

impl std::fmt::Debug for AnomalyDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyDetector")
            .field("model", &self.model.name())
            .field("bar_ms", &self.bar_ms)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn f64_of(d: Decimal) -> f64 {
    f64::try_from(d).unwrap_or(f64::NAN)
}

impl AnomalyDetector {
    /// A detector scoring with `model`.
    pub fn new(model: Arc<dyn AnomalyModel>, settings: AnomalySettings) -> Self {
        Self {
            columns: model.feature_set().columns(),
            bar_ms: model.bar_ms().max(1),
            model,
            settings,
            markets: BTreeMap::new(),
            fills_seen: false,
            hlp: (f64::NAN, f64::NAN),
        }
    }

    fn observe(&mut self, coin: &Coin, time: Timestamp, px: f64, volume: f64, sink: &mut Sink) {
        if !(px.is_finite() && px > 0.0) {
            return;
        }
        let start = time.0 - time.0.rem_euclid(self.bar_ms);
        let m = self.markets.entry(coin.clone()).or_default();
        if let Some(mut closed) = m.bar
            && start > closed.time_ms
        {
            // The bar closed: score it. (A gap leaves no bars in between: the extractor sees
            // the next bar directly, as a candle file with a missing interval.)
            m.bar = None;
            closed.ref_px = m.ref_px;
            closed.open_interest = m.open_interest;
            closed.liq_notional = if self.fills_seen { m.liq } else { f64::NAN };
            m.liq = 0.0;
            (closed.hlp_pnl, closed.hlp_equity) = self.hlp;
            if let Some(row) = m.fx.push(closed) {
                let x = FeatureSet::select(&self.columns, &row);
                let score = self.model.score(&x);
                if score > self.model.threshold() {
                    let explain = self.model.explain(&x);
                    let top: Vec<String> = explain
                        .iter()
                        .take(3)
                        .map(|(n, s)| format!("{n} {:.0}%", s * 100.0))
                        .collect();
                    let mut evidence = Evidence::new()
                        .with(
                            "score",
                            Decimal::from_f64_retain(score)
                                .unwrap_or_default()
                                .round_dp(4),
                        )
                        .with(
                            "threshold",
                            Decimal::from_f64_retain(self.model.threshold())
                                .unwrap_or_default()
                                .round_dp(4),
                        )
                        .with("bar_start_ms", closed.time_ms)
                        .with(
                            "close",
                            Decimal::from_f64_retain(closed.close)
                                .unwrap_or_default()
                                .normalize(),
                        );
                    for (i, (n, share)) in explain.iter().take(3).enumerate() {
                        evidence = evidence.with(
                            &format!("driver_{}", i + 1),
                            format!("{n} ({:.0}%)", share * 100.0).as_str(),
                        );
                    }
                    // The bar's extended features that are known, whether or not the model
                    // uses them: the reference basis, open interest, liquidations and HLP
                    // context an analyst reads the anomaly against.
                    for (name, v) in FEATURES[CORE..].iter().zip(&row[CORE..]) {
                        if let Some(d) = Decimal::from_f64_retain(*v) {
                            evidence = evidence.with(name, d.round_dp(6).normalize());
                        }
                    }
                    sink.detections.push(Detection {
                        key: IncidentKey::new("ml_anomaly", &[coin.as_str()]),
                        detector: "ml_anomaly".into(),
                        threat_type: ThreatType::MlAnomaly,
                        severity: if score >= self.settings.high_score {
                            Severity::High
                        } else {
                            Severity::Medium
                        },
                        asset: Some(coin.clone()),
                        title: format!(
                            "{coin} market unusual (anomaly score {score:.3} > {:.3}): {}",
                            self.model.threshold(),
                            top.join(", ")
                        ),
                        indicators: vec![format!("model:{}", self.model.name())],
                        evidence,
                        time,
                    });
                }
            }
        }
        let funding = m.funding;
        let b = m.bar.get_or_insert_with(|| Bar {
            funding,
            ..Bar::ohlcv(start, px, px, px, px, 0.0)
        });
        b.high = b.high.max(px);
        b.low = b.low.min(px);
        b.close = px;
        b.volume += volume.max(0.0);
        b.funding = funding;
    }
}

impl Detector for AnomalyDetector {
    fn name(&self) -> &'static str {
        "ml_anomaly"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::Trade(t) => {
                self.observe(&t.coin, t.time, f64_of(t.px), f64_of(t.sz), sink);
            }
            MarketEvent::AssetCtx(c) => {
                self.markets.entry(c.coin.clone()).or_default().funding = f64_of(c.funding);
                // The mark may close the previous bar (with the open interest and reference
                // it had); this context's values belong to the bar it lands in.
                self.observe(&c.coin, c.time, f64_of(c.mark_px), 0.0, sink);
                let m = self.markets.entry(c.coin.clone()).or_default();
                m.open_interest = f64_of(c.open_interest);
                m.ref_px = state
                    .reference_median(&c.coin)
                    .map_or(f64::NAN, |(px, _)| f64_of(px));
            }
            MarketEvent::Fill(f) => {
                self.fills_seen = true;
                if f.is_liquidation() {
                    self.markets.entry(f.coin.clone()).or_default().liq += f64_of(f.notional());
                }
            }
            MarketEvent::Vault(v) if v.vault == state.hlp_vault => {
                let pnl = v.pnl_history.last().map_or(f64::NAN, |p| f64_of(p.value));
                self.hlp = (pnl, f64_of(v.account_value));
            }
            _ => {}
        }
    }
}
