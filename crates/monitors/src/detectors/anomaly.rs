//! The ML anomaly detector: builds fixed-interval bars per market from trades and asset
//! contexts (prices, traded volume, funding), feeds them through the very feature extractor the
//! model was trained with, scores each closed bar with the Isolation Forest, and raises an
//! `ml_anomaly` detection (incident key `ml_anomaly:<coin>`) when the score crosses the
//! model's threshold, with the features that drove it as evidence.

use std::collections::BTreeMap;
use std::sync::Arc;

use kamiyo_core_models::{
    Coin, Decimal, Detection, Evidence, IncidentKey, MarketEvent, Severity, ThreatType, Timestamp,
};
use kamiyo_ml::AnomalyModel;
use kamiyo_ml::features::{Bar, FeatureExtractor};

use super::{Detector, Sink};
use crate::state::MarketState;

/// Settings of the anomaly detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnomalySettings {
    /// Bar length in milliseconds (the model's training interval: 5 minutes).
    pub bar_ms: i64,
    /// Score above which the detection is high rather than medium.
    pub high_score: f64,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            bar_ms: 300_000,
            high_score: 0.78,
        }
    }
}

#[derive(Debug, Default)]
struct Building {
    bar: Option<Bar>,
    funding: f64,
    fx: FeatureExtractor,
}

/// The detector.
pub struct AnomalyDetector {
    model: Arc<dyn AnomalyModel>,
    settings: AnomalySettings,
    markets: BTreeMap<Coin, Building>,
}

impl std::fmt::Debug for AnomalyDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyDetector")
            .field("model", &self.model.name())
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
            model,
            settings,
            markets: BTreeMap::new(),
        }
    }

    fn observe(&mut self, coin: &Coin, time: Timestamp, px: f64, volume: f64, sink: &mut Sink) {
        if !(px.is_finite() && px > 0.0) {
            return;
        }
        let start = time.0 - time.0.rem_euclid(self.settings.bar_ms);
        let m = self.markets.entry(coin.clone()).or_default();
        if let Some(b) = m.bar
            && start > b.time_ms
        {
            // The bar closed: score it. (A gap leaves no bars in between: the extractor sees
            // the next bar directly, as a candle file with a missing interval.)
            let closed = b;
            m.bar = None;
            if let Some(x) = m.fx.push(closed) {
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
        let b = m.bar.get_or_insert(Bar {
            time_ms: start,
            open: px,
            high: px,
            low: px,
            close: px,
            volume: 0.0,
            funding,
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

    fn on_event(&mut self, event: &MarketEvent, _state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::Trade(t) => {
                self.observe(&t.coin, t.time, f64_of(t.px), f64_of(t.sz), sink);
            }
            MarketEvent::AssetCtx(c) => {
                self.markets.entry(c.coin.clone()).or_default().funding = f64_of(c.funding);
                self.observe(&c.coin, c.time, f64_of(c.mark_px), 0.0, sink);
            }
            _ => {}
        }
    }
}
