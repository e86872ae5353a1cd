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
    Coin, Decimal, Detection, Evidence, IncidentKey, MarketBar, MarketEvent, Severity, ThreatType,
    Timestamp,
};
use kamiyo_ml::AnomalyModel;
use kamiyo_ml::features::{CORE, FEATURES, FeatureExtractor, FeatureSet};

use super::bars::{BarBuilder, ml_bar};
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

/// The detector.
pub struct AnomalyDetector {
    model: Arc<dyn AnomalyModel>,
    /// The model's features as catalogue columns.
    columns: Vec<Option<usize>>,
    settings: AnomalySettings,
    bars: BarBuilder,
    extractors: BTreeMap<Coin, FeatureExtractor>,
}

impl std::fmt::Debug for AnomalyDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyDetector")
            .field("model", &self.model.name())
            .field("bar_ms", &self.bars.interval_ms())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AnomalyDetector {
    /// A detector scoring with `model`, on bars of the model's interval.
    pub fn new(model: Arc<dyn AnomalyModel>, settings: AnomalySettings) -> Self {
        Self {
            columns: model.feature_set().columns(),
            bars: BarBuilder::new(model.bar_ms()),
            model,
            settings,
            extractors: BTreeMap::new(),
        }
    }

    /// Scores a closed bar (a gap leaves no bars in between: the extractor sees the next bar
    /// directly, as a candle file with a missing interval).
    fn score(&mut self, closed: &MarketBar, time: Timestamp, sink: &mut Sink) {
        let coin = &closed.coin;
        let fx = self.extractors.entry(coin.clone()).or_default();
        let Some(row) = fx.push(ml_bar(closed)) else {
            return;
        };
        let x = FeatureSet::select(&self.columns, &row);
        let score = self.model.score(&x);
        if score <= self.model.threshold() {
            return;
        }
        let explain = self.model.explain(&x);
        let top: Vec<String> = explain
            .iter()
            .take(3)
            .map(|(n, s)| format!("{n} {:.0}%", s * 100.0))
            .collect();
        let num = |v: f64| Decimal::from_f64_retain(v).unwrap_or_default().round_dp(4);
        let mut evidence = Evidence::new()
            .with("score", num(score))
            .with("threshold", num(self.model.threshold()))
            .with("bar_start_ms", closed.time.0)
            .with("close", closed.close.normalize());
        for (i, (n, share)) in explain.iter().take(3).enumerate() {
            evidence = evidence.with(
                &format!("driver_{}", i + 1),
                format!("{n} ({:.0}%)", share * 100.0).as_str(),
            );
        }
        // The bar's extended features that are known, whether or not the model uses them:
        // the reference basis, open interest, liquidations and HLP context an analyst reads
        // the anomaly against.
        for (name, v) in FEATURES[CORE..].iter().zip(&row[CORE..]) {
            if let Some(d) = Decimal::from_f64_retain(*v) {
                evidence = evidence.with(name, d.round_dp(6).normalize());
            }
        }
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
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

impl Detector for AnomalyDetector {
    fn name(&self) -> &'static str {
        "ml_anomaly"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        let mut closed = Vec::new();
        self.bars.on_event(event, state, |b, t| closed.push((b, t)));
        for (b, t) in &closed {
            self.score(b, *t, sink);
        }
    }
}
