//! Feature engineering, Isolation Forest anomaly scoring and ARIMA risk forecasts for kamiyo.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod arima;
pub mod eval;
pub mod features;
pub mod iforest;
pub mod model;

pub use arima::{Arima, Forecast};
pub use features::{Bar, FeatureExtractor, FeatureSet};
pub use iforest::IsolationForest;
pub use model::AnomalyModelFile;

/// An anomaly model over feature rows: the open-core Isolation Forest, and the platform's
/// ensemble, implement it.
pub trait AnomalyModel: Send + Sync {
    /// Model name.
    fn name(&self) -> &str;
    /// The features it expects, in order (a subset of [`features::FEATURES`]).
    fn feature_set(&self) -> FeatureSet;
    /// Bar interval it scores, in milliseconds.
    fn bar_ms(&self) -> i64;
    /// Anomaly score in (0, 1] of a row of [`AnomalyModel::feature_set`]'s features (`NaN`
    /// where an input is unknown); higher is more unusual.
    fn score(&self, x: &[f64]) -> f64;
    /// Score above which a row is an anomaly.
    fn threshold(&self) -> f64;
    /// Features ranked by their share in the score.
    fn explain(&self, x: &[f64]) -> Vec<(String, f64)>;
}

impl AnomalyModel for AnomalyModelFile {
    fn name(&self) -> &str {
        "isolation_forest"
    }
    fn feature_set(&self) -> FeatureSet {
        self.features.clone()
    }
    fn bar_ms(&self) -> i64 {
        self.bar_ms
    }
    fn score(&self, x: &[f64]) -> f64 {
        AnomalyModelFile::score(self, x)
    }
    fn threshold(&self) -> f64 {
        self.threshold
    }
    fn explain(&self, x: &[f64]) -> Vec<(String, f64)> {
        AnomalyModelFile::explain(self, x)
    }
}
