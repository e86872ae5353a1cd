//! Model files: versioned JSON with the metadata needed to refuse a model that does not fit
//! the running code (feature set, library version), and to say what it was trained on.

use serde::{Deserialize, Serialize};

use crate::features::FeatureSet;
use crate::iforest::IsolationForest;

/// Format version of the file (2: the feature set is a subset of the catalogue, and the bar
/// interval is recorded).
pub const FORMAT: u32 = 2;

/// Standardisation fitted on the training rows (applied before the forest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Means.
    pub mean: Vec<f64>,
    /// Standard deviations (1 where a feature was constant).
    pub std: Vec<f64>,
}

impl Scaler {
    /// Fits on rows.
    pub fn fit(rows: &[Vec<f64>]) -> Self {
        let d = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let std = (0..d)
            .map(|j| {
                let v = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if v > 0.0 { v.sqrt() } else { 1.0 }
            })
            .collect();
        Self { mean, std }
    }

    /// Applies to one row.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }
}

/// An anomaly model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyModelFile {
    /// File format.
    pub format: u32,
    /// `kamiyo-ml` version that wrote it.
    pub library_version: String,
    /// Features, in order.
    pub features: FeatureSet,
    /// Markets and bar interval trained on (`BTC,ETH 5m`).
    pub trained_on: String,
    /// Bar interval trained on, in milliseconds: the live detector builds bars of this length.
    pub bar_ms: i64,
    /// First and last bar time of the training window (ms).
    pub window: (i64, i64),
    /// Training rows.
    pub rows: usize,
    /// FNV-1a hash of the training input files.
    pub data_hash: String,
    /// Score above which a bar is an anomaly (a quantile of the training scores).
    pub threshold: f64,
    /// Quantile the threshold was set at.
    pub threshold_quantile: f64,
    /// Standardisation.
    pub scaler: Scaler,
    /// The forest.
    pub forest: IsolationForest,
}

/// Why a model file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Not JSON of this shape.
    #[error("not a kamiyo model file: {0}")]
    Malformed(String),
    /// Written by an incompatible format.
    #[error(
        "model file format {found} is not supported (this build reads format {FORMAT}); retrain with `kamiyo-hyperliquid ml train`"
    )]
    Format {
        /// Found.
        found: u32,
    },
    /// Trained on other features (another catalogue version, or a name this build does not
    /// compute).
    #[error(
        "model was trained on feature set v{found} [{found_names}], this build computes v{expected} [{expected_names}]; retrain with `kamiyo-hyperliquid ml train`"
    )]
    Features {
        /// Found version.
        found: u32,
        /// Found names.
        found_names: String,
        /// Expected version.
        expected: u32,
        /// Expected names.
        expected_names: String,
    },
}

impl AnomalyModelFile {
    /// Reads and checks a model file against the running feature set.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::Malformed(e.to_string()))?;
        let format = v
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        if format != FORMAT {
            return Err(ModelError::Format { found: format });
        }
        let m: Self =
            serde_json::from_value(v).map_err(|e| ModelError::Malformed(e.to_string()))?;
        let cur = FeatureSet::current();
        let cols = m.features.columns();
        let mut seen = std::collections::HashSet::new();
        if m.features.version != cur.version
            || m.features.names.is_empty()
            || cols.iter().any(|c| c.is_none_or(|c| !seen.insert(c)))
        {
            return Err(ModelError::Features {
                found: m.features.version,
                found_names: m.features.names.join(","),
                expected: cur.version,
                expected_names: cur.names.join(","),
            });
        }
        let d = m.features.names.len();
        if m.scaler.mean.len() != d || m.scaler.std.len() != d || m.forest.dims != d {
            return Err(ModelError::Malformed(format!(
                "{d} features but a scaler of {} and a forest of {} dimensions",
                m.scaler.mean.len(),
                m.forest.dims
            )));
        }
        if m.bar_ms <= 0 {
            return Err(ModelError::Malformed(format!(
                "bar interval {} ms",
                m.bar_ms
            )));
        }
        Ok(m)
    }

    /// The file's JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Score of a raw feature row (the model's features, in its order; `NaN` for an input
    /// unknown at scoring time).
    pub fn score(&self, x: &[f64]) -> f64 {
        self.forest.score(&self.scaler.apply(x))
    }

    /// Features ranked by how much they isolated `x`: (name, share).
    pub fn explain(&self, x: &[f64]) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .features
            .names
            .iter()
            .cloned()
            .zip(self.forest.explain(&self.scaler.apply(x)))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// FNV-1a 64, fed piece by piece (the data hash of a model's training input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// FNV-1a 64 of bytes, as hex.
pub fn fnv_hex(parts: &[&[u8]]) -> String {
    let mut h = Fnv::default();
    for p in parts {
        h.update(p);
    }
    h.hex()
}
