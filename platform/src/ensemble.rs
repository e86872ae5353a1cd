//! The ensemble anomaly model (Pro and Enterprise): the open core's Isolation Forest, a
//! One-Class SVM and a Random Forest, combined by a weighted vote (0.4 / 0.3 / 0.3 by default)
//! into a score, a confidence and a severity from confidence and agreement — critical only when
//! all three flag the row with high confidence.
//!
//! - **Isolation Forest**: `kamiyo_ml::iforest`, as the open core fits it.
//! - **One-Class SVM**: [`OneClassSvm`], implemented here (smartcore has no one-class SVM; see
//!   docs/DEPENDENCIES.md): libsvm's formulation (`0 ≤ αᵢ ≤ 1`, `Σαᵢ = νl`, RBF kernel), solved
//!   by SMO with second-order working-set selection, `ρ` as libsvm computes it. Validated
//!   against scikit-learn's `OneClassSVM`: its fitted model loads and scores exactly, and a fit
//!   on the same rows ranks like scikit-learn's (`tests/it/ensemble.rs`).
//! - **Random Forest**: [`RandomForest`], smartcore's bootstrapped, feature-subsampled CART
//!   trees (`RandomForestClassifier`, one tree per seed so the forest's vote fraction is the
//!   probability — smartcore's forest only returns the majority class).
//!
//! Each unsupervised model's output becomes a probability by its empirical distribution over
//! the training rows (the share of training rows less anomalous): the same alert budget on the
//! training data means the same expected false-alert rate, so the models' votes are comparable.

use kamiyo_core_models::{Decimal, Severity};
use kamiyo_ml::iforest::{IsolationForest, Params as ForestParams};
use kamiyo_ml::model::Scaler;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// Most rows the One-Class SVM trains on (its kernel matrix is `n²`; a larger training set is
/// subsampled evenly).
pub const SVM_MAX_ROWS: usize = 2_048;

/// Why a model could not be fitted or loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnsembleError {
    /// Nothing to train on.
    #[error("no training rows")]
    Empty,
    /// Rows of different widths or a non-finite value.
    #[error("training rows must all have {0} finite features")]
    Shape(usize),
    /// A parameter outside its range.
    #[error("invalid parameter: {0}")]
    Param(&'static str),
    /// The random forest needs both classes.
    #[error("the random forest needs labelled rows of both classes")]
    OneClass,
    /// smartcore refused.
    #[error("random forest: {0}")]
    Forest(String),
}

fn check(rows: &[Vec<f64>]) -> Result<usize, EnsembleError> {
    let d = rows.first().ok_or(EnsembleError::Empty)?.len();
    if d == 0
        || rows
            .iter()
            .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
    {
        return Err(EnsembleError::Shape(d));
    }
    Ok(d)
}

/// A fitted One-Class SVM with an RBF kernel: `f(x) = Σ αᵢ exp(−γ‖sᵢ − x‖²) − ρ`, negative
/// outside the learnt support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvm {
    /// Kernel width.
    pub gamma: f64,
    /// Offset.
    pub rho: f64,
    /// Features per row.
    pub dim: usize,
    /// Support vectors, row after row.
    pub support: Vec<f64>,
    /// Their coefficients `αᵢ`.
    pub coef: Vec<f64>,
}

impl OneClassSvm {
    /// Fits on `rows` with `nu` (the share of training rows allowed outside, 0 < ν ≤ 1) and
    /// `gamma` (scikit-learn's `"scale"`, `1 / (d · Var(X))`, when `None`), to tolerance `tol`
    /// on the KKT gap (libsvm's `eps`).
    pub fn fit(
        rows: &[Vec<f64>],
        nu: f64,
        gamma: Option<f64>,
        tol: f64,
    ) -> Result<Self, EnsembleError> {
        let d = check(rows)?;
        if !(nu > 0.0 && nu <= 1.0) {
            return Err(EnsembleError::Param("nu must be in (0, 1]"));
        }
        let rows: Vec<&Vec<f64>> = if rows.len() > SVM_MAX_ROWS {
            let step = rows.len() as f64 / SVM_MAX_ROWS as f64;
            (0..SVM_MAX_ROWS)
                .map(|i| &rows[(i as f64 * step) as usize])
                .collect()
        } else {
            rows.iter().collect()
        };
        let l = rows.len();
        let gamma = match gamma {
            Some(g) if g > 0.0 && g.is_finite() => g,
            Some(_) => return Err(EnsembleError::Param("gamma must be positive")),
            None => {
                let all = rows.iter().flat_map(|r| r.iter());
                let n = (l * d) as f64;
                let mean = all.clone().sum::<f64>() / n;
                let var = all.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                if var > 0.0 {
                    1.0 / (d as f64 * var)
                } else {
                    1.0
                }
            }
        };
        let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let kernel = |i: usize, j: usize| rbf(gamma, &flat[i * d..][..d], &flat[j * d..][..d]);
        let mut q = vec![0.0; l * l];
        for i in 0..l {
            q[i * l + i] = 1.0;
            for j in 0..i {
                let k = kernel(i, j);
                q[i * l + j] = k;
                q[j * l + i] = k;
            }
        }
        // libsvm's start: the first ⌊νl⌋ at the bound, the remainder on the next.
        let mut alpha = vec![0.0; l];
        let total = nu * l as f64;
        let full = (total.floor() as usize).min(l);
        alpha[..full].fill(1.0);
        if full < l {
            alpha[full] = total - full as f64;
        }
        let mut grad: Vec<f64> = (0..l)
            .map(|i| (0..l).map(|j| q[i * l + j] * alpha[j]).sum())
            .collect();
        const TAU: f64 = 1e-12;
        let max_iter = 100_000.max(l * 100).min(10_000_000);
        for _ in 0..max_iter {
            // i: the steepest feasible increase; j: the best second-order decrease.
            let mut gmax = f64::NEG_INFINITY;
            let mut i = usize::MAX;
            for (t, (&a, &g)) in alpha.iter().zip(&grad).enumerate() {
                if a < 1.0 && -g >= gmax {
                    gmax = -g;
                    i = t;
                }
            }
            if i == usize::MAX {
                break;
            }
            let mut gmax2 = f64::NEG_INFINITY;
            let mut j = usize::MAX;
            let mut best = f64::INFINITY;
            for (t, (&a, &g)) in alpha.iter().zip(&grad).enumerate() {
                if a > 0.0 {
                    gmax2 = gmax2.max(g);
                    let diff = gmax + g;
                    if diff > 0.0 {
                        let quad = q[i * l + i] + q[t * l + t] - 2.0 * q[i * l + t];
                        let obj = -(diff * diff) / if quad > 0.0 { quad } else { TAU };
                        if obj <= best {
                            best = obj;
                            j = t;
                        }
                    }
                }
            }
            if gmax + gmax2 < tol || j == usize::MAX {
                break;
            }
            let (ai, aj) = (alpha[i], alpha[j]);
            let quad = q[i * l + i] + q[j * l + j] - 2.0 * q[i * l + j];
            let delta = (grad[i] - grad[j]) / if quad > 0.0 { quad } else { TAU };
            let sum = ai + aj;
            let (mut ni, mut nj) = (ai - delta, aj + delta);
            if sum > 1.0 {
                if ni > 1.0 {
                    ni = 1.0;
                    nj = sum - 1.0;
                }
            } else if nj < 0.0 {
                nj = 0.0;
                ni = sum;
            }
            if sum > 1.0 {
                if nj > 1.0 {
                    nj = 1.0;
                    ni = sum - 1.0;
                }
            } else if ni < 0.0 {
                ni = 0.0;
                nj = sum;
            }
            let (di, dj) = (ni - ai, nj - aj);
            alpha[i] = ni;
            alpha[j] = nj;
            for (t, g) in grad.iter_mut().enumerate() {
                *g += q[t * l + i] * di + q[t * l + j] * dj;
            }
        }
        // ρ: the mean gradient over free α, else the middle of the bounds (libsvm).
        let (mut ub, mut lb, mut free, mut sum_free) =
            (f64::INFINITY, f64::NEG_INFINITY, 0usize, 0.0);
        for (&a, &g) in alpha.iter().zip(&grad) {
            if a >= 1.0 {
                lb = lb.max(g);
            } else if a <= 0.0 {
                ub = ub.min(g);
            } else {
                free += 1;
                sum_free += g;
            }
        }
        let rho = if free > 0 {
            sum_free / free as f64
        } else {
            (ub + lb) / 2.0
        };
        let mut support = Vec::new();
        let mut coef = Vec::new();
        for (t, &a) in alpha.iter().enumerate() {
            if a > 0.0 {
                support.extend_from_slice(&flat[t * d..][..d]);
                coef.push(a);
            }
        }
        Ok(Self {
            gamma,
            rho,
            dim: d,
            support,
            coef,
        })
    }

    /// A model from its parts (e.g. scikit-learn's `support_vectors_`, `dual_coef_`,
    /// `-intercept_` and `gamma`).
    pub fn from_parts(
        gamma: f64,
        rho: f64,
        support: &[Vec<f64>],
        coef: Vec<f64>,
    ) -> Result<Self, EnsembleError> {
        let dim = check(support)?;
        if support.len() != coef.len() || !gamma.is_finite() || gamma <= 0.0 {
            return Err(EnsembleError::Param(
                "one coefficient per support vector and a positive gamma",
            ));
        }
        Ok(Self {
            gamma,
            rho,
            dim,
            support: support.iter().flatten().copied().collect(),
            coef,
        })
    }

    /// Support vectors.
    pub fn support_vectors(&self) -> usize {
        self.coef.len()
    }

    /// The decision value: negative outside the support (more negative, more anomalous).
    pub fn decision(&self, x: &[f64]) -> f64 {
        let d = self.dim;
        self.coef
            .iter()
            .zip(self.support.chunks_exact(d))
            .map(|(a, s)| a * rbf(self.gamma, s, x))
            .sum::<f64>()
            - self.rho
    }
}

fn rbf(gamma: f64, a: &[f64], b: &[f64]) -> f64 {
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (-gamma * d2).exp()
}

/// A random forest of smartcore CART trees, each on its own bootstrap sample with `√d`
/// features tried per split (scikit-learn's defaults: Gini, grown until pure); the
/// probability of the positive class is the share of trees voting for it.
pub struct RandomForest {
    trees: Vec<RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>>,
    dim: usize,
}

impl std::fmt::Debug for RandomForest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomForest")
            .field("trees", &self.trees.len())
            .field("dim", &self.dim)
            .finish()
    }
}

impl RandomForest {
    /// Fits `trees` trees on labelled rows (`true` = anomalous), seeded by `seed`.
    pub fn fit(
        rows: &[Vec<f64>],
        labels: &[bool],
        trees: u16,
        seed: u64,
    ) -> Result<Self, EnsembleError> {
        let dim = check(rows)?;
        if labels.len() != rows.len() {
            return Err(EnsembleError::Param("one label per row"));
        }
        if labels.iter().all(|&l| l) || labels.iter().all(|&l| !l) {
            return Err(EnsembleError::OneClass);
        }
        let x = DenseMatrix::from_2d_vec(&rows.to_vec())
            .map_err(|e| EnsembleError::Forest(e.to_string()))?;
        let y: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        let m = ((dim as f64).sqrt().floor() as usize).max(1);
        let trees = (0..u64::from(trees.max(1)))
            .map(|t| {
                let p = RandomForestClassifierParameters::default()
                    .with_n_trees(1)
                    .with_m(m)
                    .with_seed(seed.wrapping_mul(1_000_003).wrapping_add(t));
                RandomForestClassifier::fit(&x, &y, p)
                    .map_err(|e| EnsembleError::Forest(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { trees, dim })
    }

    /// Trees.
    pub fn trees(&self) -> usize {
        self.trees.len()
    }

    /// The share of trees voting anomalous for each row (rows must have the training width).
    pub fn proba(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        if rows.is_empty() || rows.iter().any(|r| r.len() != self.dim) {
            return vec![f64::NAN; rows.len()];
        }
        let Ok(x) = DenseMatrix::from_2d_vec(&rows.to_vec()) else {
            return vec![f64::NAN; rows.len()];
        };
        let mut votes = vec![0u32; rows.len()];
        for t in &self.trees {
            if let Ok(p) = t.predict(&x) {
                for (v, c) in votes.iter_mut().zip(p) {
                    *v += c;
                }
            }
        }
        let n = self.trees.len().max(1) as f64;
        votes.into_iter().map(|v| f64::from(v) / n).collect()
    }

    /// One row's probability.
    pub fn proba_one(&self, row: &[f64]) -> f64 {
        if row.len() != self.dim {
            return f64::NAN;
        }
        let Ok(x) = DenseMatrix::new(1, self.dim, row.to_vec(), false) else {
            return f64::NAN;
        };
        let votes: u32 = self
            .trees
            .iter()
            .filter_map(|t| t.predict(&x).ok())
            .map(|p| p.first().copied().unwrap_or(0))
            .sum();
        f64::from(votes) / self.trees.len().max(1) as f64
    }
}

/// Vote weights (normalised when used).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// Isolation Forest.
    pub iforest: f64,
    /// One-Class SVM.
    pub ocsvm: f64,
    /// Random Forest.
    pub forest: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            iforest: 0.4,
            ocsvm: 0.3,
            forest: 0.3,
        }
    }
}

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Vote weights.
    pub weights: Weights,
    /// An unsupervised model flags a row above this share of the training rows (its alert
    /// budget on training data).
    pub flag_quantile: f64,
    /// The random forest flags a row at or above this vote share.
    pub forest_flag: f64,
    /// One-Class SVM ν.
    pub nu: f64,
    /// Random-forest trees.
    pub trees: u16,
    /// Seed of both forests.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            weights: Weights::default(),
            flag_quantile: 0.999,
            forest_flag: 0.5,
            nu: 0.05,
            trees: 100,
            seed: 0,
        }
    }
}

/// One row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Isolation Forest probability (share of training rows less anomalous).
    pub iforest: f64,
    /// One-Class SVM probability (the same, on `−decision`).
    pub ocsvm: f64,
    /// Random Forest vote share.
    pub forest: f64,
    /// Models flagging the row (0–3).
    pub agree: u8,
    /// Weighted vote of the flags (0–1).
    pub vote: f64,
    /// Weighted probability (0–1).
    pub confidence: f64,
    /// From confidence and agreement (medium and above are alerts); `None` when no model
    /// flags the row.
    pub severity: Option<Severity>,
}

/// The fitted ensemble.
#[derive(Debug)]
pub struct Ensemble {
    scaler: Scaler,
    iforest: IsolationForest,
    ocsvm: OneClassSvm,
    forest: RandomForest,
    /// Training scores, sorted, of the Isolation Forest and of `−decision`.
    calib_if: Vec<f64>,
    calib_svm: Vec<f64>,
    settings: Settings,
}

/// The share of `sorted` strictly below `x`.
fn cdf(sorted: &[f64], x: f64) -> f64 {
    if sorted.is_empty() || x.is_nan() {
        return 0.0;
    }
    sorted.partition_point(|&v| v < x) as f64 / sorted.len() as f64
}

impl Ensemble {
    /// Fits on labelled rows: the unsupervised models on the unlabelled-normal rows
    /// (`labels[i] == false`), the random forest on all of them.
    pub fn fit(
        rows: &[Vec<f64>],
        labels: &[bool],
        settings: Settings,
    ) -> Result<Self, EnsembleError> {
        check(rows)?;
        if labels.len() != rows.len() {
            return Err(EnsembleError::Param("one label per row"));
        }
        let scaler = Scaler::fit(rows);
        let scaled: Vec<Vec<f64>> = rows.iter().map(|r| scaler.apply(r)).collect();
        let normal: Vec<Vec<f64>> = scaled
            .iter()
            .zip(labels)
            .filter(|(_, l)| !**l)
            .map(|(r, _)| r.clone())
            .collect();
        let iforest = IsolationForest::fit(
            &normal,
            ForestParams {
                seed: settings.seed,
                ..ForestParams::default()
            },
        )
        .map_err(|e| EnsembleError::Forest(e.to_string()))?;
        let ocsvm = OneClassSvm::fit(&normal, settings.nu, None, 1e-3)?;
        let forest = RandomForest::fit(&scaled, labels, settings.trees, settings.seed)?;
        let mut calib_if: Vec<f64> = normal.iter().map(|r| iforest.score(r)).collect();
        let mut calib_svm: Vec<f64> = normal.iter().map(|r| -ocsvm.decision(r)).collect();
        calib_if.sort_by(f64::total_cmp);
        calib_svm.sort_by(f64::total_cmp);
        Ok(Self {
            scaler,
            iforest,
            ocsvm,
            forest,
            calib_if,
            calib_svm,
            settings,
        })
    }

    /// The settings it was fitted with.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Scores one row.
    pub fn score(&self, row: &[f64]) -> Verdict {
        let x = self.scaler.apply(row);
        let p_if = cdf(&self.calib_if, self.iforest.score(&x));
        let p_svm = cdf(&self.calib_svm, -self.ocsvm.decision(&x));
        let p_rf = self.forest.proba_one(&x);
        self.combine(p_if, p_svm, p_rf)
    }

    /// Each feature's share in the Isolation Forest's isolation of the row (the open core's
    /// explanation; the other models give none).
    pub fn explain(&self, row: &[f64]) -> Vec<f64> {
        self.iforest.explain(&self.scaler.apply(row))
    }

    /// Scores many rows (the forest in one pass).
    pub fn score_all(&self, rows: &[Vec<f64>]) -> Vec<Verdict> {
        let xs: Vec<Vec<f64>> = rows.iter().map(|r| self.scaler.apply(r)).collect();
        let rf = self.forest.proba(&xs);
        xs.iter()
            .zip(rf)
            .map(|(x, p_rf)| {
                let p_if = cdf(&self.calib_if, self.iforest.score(x));
                let p_svm = cdf(&self.calib_svm, -self.ocsvm.decision(x));
                self.combine(p_if, p_svm, p_rf)
            })
            .collect()
    }

    fn combine(&self, p_if: f64, p_svm: f64, p_rf: f64) -> Verdict {
        let s = &self.settings;
        let w = s.weights;
        let total = (w.iforest + w.ocsvm + w.forest).max(f64::MIN_POSITIVE);
        let p_rf = if p_rf.is_nan() { 0.0 } else { p_rf };
        let flags = [
            (p_if >= s.flag_quantile, w.iforest),
            (p_svm >= s.flag_quantile, w.ocsvm),
            (p_rf >= s.forest_flag, w.forest),
        ];
        let agree = flags.iter().filter(|(f, _)| *f).count() as u8;
        let vote = flags
            .iter()
            .filter(|(f, _)| *f)
            .map(|(_, w)| w)
            .sum::<f64>()
            / total;
        let confidence = (w.iforest * p_if + w.ocsvm * p_svm + w.forest * p_rf) / total;
        // Critical only when all three flag with high confidence; an alert (medium) takes two
        // models agreeing or a high weighted probability.
        let severity = if agree == 3 && confidence >= 0.9 {
            Some(Severity::Critical)
        } else if agree >= 2 && confidence >= 0.75 {
            Some(Severity::High)
        } else if agree >= 2 || confidence >= 0.8 {
            Some(Severity::Medium)
        } else if agree == 1 {
            Some(Severity::Low)
        } else {
            None
        };
        Verdict {
            iforest: p_if,
            ocsvm: p_svm,
            forest: p_rf,
            agree,
            vote,
            confidence,
            severity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_core_models::{AssetCtx, Coin, MarketEvent, Timestamp};

    /// A deterministic walk of minute marks: calm (±0.05 %), with `jump` added from minute
    /// `at` on.
    fn marks(n: usize, seed: u64, at: usize, jump: f64) -> Vec<f64> {
        let mut x = seed;
        let mut px = 100.0;
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                px *= 1.0 + ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.001;
                if i >= at { px * (1.0 + jump) } else { px }
            })
            .collect()
    }

    fn ctx(minute: usize, px: f64) -> MarketEvent {
        let d = Decimal::from_f64_retain(px).unwrap_or_default().round_dp(4);
        MarketEvent::AssetCtx(AssetCtx {
            coin: Coin::new("BTC").unwrap_or_else(|e| panic!("{e}")),
            time: Timestamp(1_750_000_000_000 + minute as i64 * 60_000),
            oracle_px: d,
            mark_px: d,
            mid_px: None,
            open_interest: Decimal::ONE_HUNDRED,
            funding: Decimal::ZERO,
            day_ntl_vlm: Decimal::from(1_000_000_000),
            prev_day_px: None,
            premium: None,
            impact_pxs: None,
        })
    }

    const PRICE_FEATURES: [&str; 5] = ["ret_1", "ret_6", "vol_12", "vol_48", "ret_z_48"];

    /// Feature rows of a mark series, as the detector builds them (1-minute bars).
    fn rows(series: &[f64]) -> Vec<Vec<f64>> {
        let cols: Vec<usize> = PRICE_FEATURES
            .iter()
            .filter_map(|n| kamiyo_ml::features::FEATURES.iter().position(|f| f == n))
            .collect();
        let mut fx = kamiyo_ml::features::FeatureExtractor::new();
        series
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                fx.push(kamiyo_ml::features::Bar::ohlcv(
                    i as i64 * 60_000,
                    *p,
                    *p,
                    *p,
                    *p,
                    0.0,
                ))
            })
            .map(|r| cols.iter().map(|&c| r[c]).collect())
            .collect()
    }

    #[test]
    fn a_model_file_refits_and_the_detector_raises_on_a_jump_only() {
        // Calm rows, and rows just after 3 % jumps labelled.
        let mut x = rows(&marks(600, 1, usize::MAX, 0.0));
        let mut y = vec![false; x.len()];
        for seed in 2..8 {
            let r = rows(&marks(80, seed, 70, 0.03));
            let n = r.len();
            for (i, row) in r.into_iter().enumerate() {
                y.push(i + 10 >= n && i + 5 < n);
                x.push(row);
            }
        }
        let file = EnsembleFile {
            format: FILE_FORMAT,
            features: PRICE_FEATURES.iter().map(|s| (*s).to_owned()).collect(),
            interval_ms: 60_000,
            settings: Settings {
                trees: 20,
                ..Settings::default()
            },
            trained_on: "synthetic".into(),
            rows: x,
            labels: y,
        };
        let text = serde_json::to_string(&file).unwrap_or_default();
        let parsed = EnsembleFile::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            parsed.features == file.features
                && parsed.labels == file.labels
                && parsed
                    .rows
                    .iter()
                    .flatten()
                    .zip(file.rows.iter().flatten())
                    .all(|(a, b)| (a - b).abs() <= 1e-12 * b.abs().max(1e-300)),
            "the file does not read back"
        );
        // Refitting is deterministic (every model seeded).
        let (a, b) = (
            parsed.fit().unwrap_or_else(|e| panic!("{e}")),
            parsed.fit().unwrap_or_else(|e| panic!("{e}")),
        );
        let probe = &file.rows[file.rows.len() - 6];
        assert_eq!(a.model.score(probe), b.model.score(probe));
        // Through the open core's model interface.
        use kamiyo_ml::AnomalyModel as _;
        assert_eq!(a.score(probe), a.model.score(probe).confidence);
        assert!(a.score(&[f64::NAN; 5]).is_nan());
        assert_eq!(a.explain(probe).len(), PRICE_FEATURES.len());
        assert_eq!(a.feature_set().names, PRICE_FEATURES);
        // Live: a calm hour raises nothing; a 5 % jump raises ml_ensemble on BTC.
        let mut det = EnsembleDetector::new(std::sync::Arc::new(a));
        let state = kamiyo_monitors::MarketState::new(&kamiyo_monitors::MonitorsConfig::default());
        let mut sink = kamiyo_monitors::Sink::default();
        let series = marks(200, 99, 180, 0.05);
        let mut first = None;
        for (i, p) in series.iter().enumerate() {
            kamiyo_monitors::Detector::on_event(&mut det, &ctx(i, *p), &state, &mut sink);
            if first.is_none() && !sink.detections.is_empty() {
                first = Some(i);
            }
        }
        let at = first.unwrap_or_else(|| panic!("no detection"));
        assert!((180..=185).contains(&at), "raised at minute {at}");
        let d = &sink.detections[0];
        assert_eq!(
            (d.detector.as_str(), d.asset.as_ref().map(Coin::as_str)),
            (DETECTOR, Some("BTC"))
        );
        assert!(d.severity >= Severity::Medium);
        // Bad files are refused with the reason.
        for (bad, why) in [
            ("{", "not an ensemble model file"),
            (
                &text.replace("\"format\":1", "\"format\":9"),
                "another model file format",
            ),
            (
                &text.replace("ret_z_48", "ret_z_99"),
                "a feature this build does not compute",
            ),
        ] {
            let e = EnsembleFile::parse(bad)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn severity_needs_agreement_and_confidence() {
        let rows: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![(i % 10) as f64 * 0.1, (i % 7) as f64 * 0.1])
            .collect();
        let mut labels = vec![false; 200];
        labels[0] = true;
        let e = Ensemble::fit(
            &rows,
            &labels,
            Settings {
                trees: 10,
                ..Settings::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let all = e.combine(1.0, 1.0, 1.0);
        assert_eq!((all.agree, all.severity), (3, Some(Severity::Critical)));
        // Two of three (the forest's 0.4 and the SVM's 0.3): high with confidence, else medium.
        let two = e.combine(1.0, 1.0, 0.0);
        assert_eq!((two.agree, two.severity), (2, Some(Severity::Medium)));
        let one = e.combine(0.2, 0.2, 0.9);
        assert_eq!((one.agree, one.severity), (1, Some(Severity::Low)));
        // One flag but a high weighted probability: an alert.
        assert_eq!(e.combine(0.99, 1.0, 0.4).severity, Some(Severity::Medium));
        assert_eq!(e.combine(0.5, 0.5, 0.1).severity, None);
        assert!(matches!(
            Ensemble::fit(&rows, &[false; 200], Settings::default()),
            Err(EnsembleError::OneClass)
        ));
        assert!(matches!(
            OneClassSvm::fit(&[vec![1.0, f64::NAN]], 0.1, None, 1e-3),
            Err(EnsembleError::Shape(2))
        ));
    }
}

/// The model file `kamiyo-platform train-ensemble` writes: the feature names (a subset of the
/// open core's catalogue), the bar interval, the settings and the rows it was fitted on with
/// their labels. Loading refits from them (every model is seeded, so the fit is the same):
/// smartcore's trees cannot be written out without its `serde` feature (docs/DEPENDENCIES.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleFile {
    /// File format.
    pub format: u32,
    /// Feature names, in the rows' order.
    pub features: Vec<String>,
    /// Bar interval (ms).
    pub interval_ms: i64,
    /// Settings.
    pub settings: Settings,
    /// What it was trained on (one line).
    pub trained_on: String,
    /// Training rows (unscaled).
    pub rows: Vec<Vec<f64>>,
    /// Their labels (`true`: inside a labelled incident window).
    pub labels: Vec<bool>,
}

/// The file format this build reads.
pub const FILE_FORMAT: u32 = 1;

/// A fitted ensemble with what it reads: the catalogue columns and the bar interval.
#[derive(Debug)]
pub struct LiveEnsemble {
    /// The model.
    pub model: Ensemble,
    /// Catalogue indices of its features.
    pub columns: Vec<usize>,
    /// Bar interval (ms).
    pub interval_ms: i64,
}

impl EnsembleFile {
    /// Parses and checks a model file.
    pub fn parse(text: &str) -> Result<Self, EnsembleError> {
        let f: Self = serde_json::from_str(text)
            .map_err(|_| EnsembleError::Param("not an ensemble model file (JSON)"))?;
        if f.format != FILE_FORMAT {
            return Err(EnsembleError::Param(
                "another model file format: train it again with this build",
            ));
        }
        if f.interval_ms <= 0 || f.labels.len() != f.rows.len() {
            return Err(EnsembleError::Param(
                "a positive bar interval and one label per row",
            ));
        }
        if f.rows.iter().any(|r| r.len() != f.features.len()) {
            return Err(EnsembleError::Shape(f.features.len()));
        }
        f.columns()?;
        Ok(f)
    }

    /// The catalogue columns of its features (a name this build does not compute, or named
    /// twice, is refused).
    pub fn columns(&self) -> Result<Vec<usize>, EnsembleError> {
        let mut out = Vec::new();
        for n in &self.features {
            let c = kamiyo_ml::features::FEATURES
                .iter()
                .position(|f| f == n)
                .ok_or(EnsembleError::Param(
                    "a feature this build does not compute",
                ))?;
            if out.contains(&c) {
                return Err(EnsembleError::Param("a feature named twice"));
            }
            out.push(c);
        }
        Ok(out)
    }

    /// Fits the ensemble it describes.
    pub fn fit(&self) -> Result<LiveEnsemble, EnsembleError> {
        Ok(LiveEnsemble {
            model: Ensemble::fit(&self.rows, &self.labels, self.settings)?,
            columns: self.columns()?,
            interval_ms: self.interval_ms,
        })
    }
}

/// The open core's model interface: the score is the ensemble's confidence, an anomaly at
/// 0.8 (the confidence its severity rule alerts at without agreement).
impl kamiyo_ml::AnomalyModel for LiveEnsemble {
    fn name(&self) -> &str {
        "ensemble"
    }

    fn feature_set(&self) -> kamiyo_ml::features::FeatureSet {
        kamiyo_ml::features::FeatureSet::of(&self.columns)
    }

    fn bar_ms(&self) -> i64 {
        self.interval_ms
    }

    fn score(&self, x: &[f64]) -> f64 {
        if x.len() != self.columns.len() || x.iter().any(|v| !v.is_finite()) {
            return f64::NAN;
        }
        self.model.score(x).confidence
    }

    fn threshold(&self) -> f64 {
        0.8
    }

    fn explain(&self, x: &[f64]) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .columns
            .iter()
            .zip(self.model.explain(x))
            .map(|(&c, w)| (kamiyo_ml::features::FEATURES[c].to_owned(), w))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// The ensemble's name as a detector and its threat type.
pub const DETECTOR: &str = "ml_ensemble";

/// Once raised, the same severity is repeated this often while it holds.
const REPEAT_MS: i64 = 300_000;

/// The live detector: builds the model's bars from the stream (the engine's bar builder, as
/// the open core's anomaly detector does), scores each closed bar whose features are all
/// known, and raises `ml_ensemble` at the verdict's severity when it is an alert (medium or
/// above), with each model's probability as evidence. Its incidents reach tenants whose plan
/// has advanced ML only (the router filters them).
pub struct EnsembleDetector {
    live: std::sync::Arc<LiveEnsemble>,
    bars: kamiyo_monitors::detectors::bars::BarBuilder,
    features:
        std::collections::BTreeMap<kamiyo_core_models::Coin, kamiyo_ml::features::FeatureExtractor>,
    raised: std::collections::BTreeMap<kamiyo_core_models::Coin, crate::detectors::Rule>,
}

impl std::fmt::Debug for EnsembleDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsembleDetector")
            .field("markets", &self.features.len())
            .finish()
    }
}

impl EnsembleDetector {
    /// A detector scoring with `live`.
    pub fn new(live: std::sync::Arc<LiveEnsemble>) -> Self {
        Self {
            bars: kamiyo_monitors::detectors::bars::BarBuilder::new(live.interval_ms),
            live,
            features: std::collections::BTreeMap::new(),
            raised: std::collections::BTreeMap::new(),
        }
    }

    fn on_bar(
        &mut self,
        bar: &kamiyo_core_models::MarketBar,
        at: kamiyo_core_models::Timestamp,
        sink: &mut kamiyo_monitors::Sink,
    ) {
        use kamiyo_core_models::{Detection, Evidence, IncidentKey, ThreatType};
        let fx = self.features.entry(bar.coin.clone()).or_default();
        let Some(row) = fx.push(kamiyo_monitors::detectors::bars::ml_bar(bar)) else {
            return;
        };
        let x: Vec<f64> = self.live.columns.iter().map(|&c| row[c]).collect();
        if x.iter().any(|v| !v.is_finite()) {
            return;
        }
        let started = std::time::Instant::now();
        let v = self.live.model.score(&x);
        crate::metrics::record_ml(DETECTOR, started.elapsed());
        let sev = v.severity.filter(|s| *s >= Severity::Medium);
        if !self
            .raised
            .entry(bar.coin.clone())
            .or_default()
            .due_every(sev, at, REPEAT_MS)
        {
            return;
        }
        let Some(sev) = sev else { return };
        let r4 = |x: f64| Decimal::from_f64_retain(x).map_or(Decimal::ZERO, |d| d.round_dp(4));
        sink.detections.push(Detection {
            key: IncidentKey::new(DETECTOR, &[bar.coin.as_str()]),
            protocol: kamiyo_core_models::ProtocolId::default(),
            detector: DETECTOR.into(),
            threat_type: ThreatType::custom(DETECTOR).unwrap_or(ThreatType::MlAnomaly),
            severity: sev,
            asset: Some(bar.coin.clone()),
            title: format!(
                "{} unusual: ensemble confidence {:.2}, {} of 3 models agree",
                bar.coin, v.confidence, v.agree
            ),
            indicators: vec!["ensemble".into()],
            evidence: Evidence::new()
                .with("confidence", r4(v.confidence))
                .with("models_agreeing", u32::from(v.agree))
                .with("iforest_p", r4(v.iforest))
                .with("ocsvm_p", r4(v.ocsvm))
                .with("forest_p", r4(v.forest)),
            time: at,
            direction: None,
            group: None,
        });
    }
}

impl kamiyo_monitors::Detector for EnsembleDetector {
    fn name(&self) -> &'static str {
        DETECTOR
    }

    fn on_event(
        &mut self,
        event: &kamiyo_core_models::MarketEvent,
        state: &kamiyo_monitors::MarketState,
        sink: &mut kamiyo_monitors::Sink,
    ) {
        let mut closed = Vec::new();
        self.bars
            .on_event(event, state, |b, at| closed.push((b, at)));
        for (b, at) in closed {
            self.on_bar(&b, at, sink);
        }
    }
}
