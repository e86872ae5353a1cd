//! Isolation Forest (Liu, Ting & Zhou 2008), with scikit-learn's conventions so scores can be
//! compared with `IsolationForest.score_samples`: `max_samples = min(256, n)` rows drawn without
//! replacement per tree, depth limit `ceil(log2(max_samples))`, a random feature that is not
//! constant in the node and a threshold drawn uniformly between its min and max, path length
//! plus `c(n)` for the rows left in a leaf, and score `2^(-E[h(x)] / c(max_samples))` (sklearn's
//! `score_samples` is its negative). Trees are stored as flat node arrays.

#![allow(
    clippy::needless_range_loop,
    reason = "column-wise scans over row-major data"
)]

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Euler–Mascheroni constant.
const EULER: f64 = 0.577_215_664_901_532_9;

/// Average path length of an unsuccessful search in a binary search tree of `n` items.
pub fn c(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Trees.
    pub trees: usize,
    /// Rows per tree (capped at the training size).
    pub max_samples: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            trees: 100,
            max_samples: 256,
            seed: 0,
        }
    }
}

/// One node: an internal split, or a leaf holding its depth + c(size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Split feature; `u32::MAX` for a leaf.
    pub feature: u32,
    /// Split threshold (go left when `x[feature] < threshold`), or the leaf's path length.
    pub value: f64,
    /// Left child index (right is stored in `right`).
    pub left: u32,
    /// Right child index.
    pub right: u32,
    /// Training rows that reached the node.
    pub size: u32,
}

const LEAF: u32 = u32::MAX;

/// A fitted forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    /// Settings used.
    pub params: Params,
    /// Features per row.
    pub dims: usize,
    /// Rows per tree actually used.
    pub samples: usize,
    /// Trees as node arrays (root at 0).
    pub trees: Vec<Vec<Node>>,
}

/// Why a fit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FitError {
    /// No rows.
    #[error("no training rows")]
    Empty,
    /// Rows of different widths, or a non-finite value.
    #[error("row {0} is malformed (wrong width or a non-finite value)")]
    BadRow(usize),
}

impl IsolationForest {
    /// Fits on `rows` (all the same width, finite).
    pub fn fit(rows: &[Vec<f64>], params: Params) -> Result<Self, FitError> {
        let dims = rows.first().ok_or(FitError::Empty)?.len();
        if let Some(i) = rows
            .iter()
            .position(|r| r.len() != dims || r.iter().any(|x| !x.is_finite()))
        {
            return Err(FitError::BadRow(i));
        }
        let samples = params.max_samples.min(rows.len()).max(1);
        let max_depth = (samples as f64).log2().ceil() as usize;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(params.seed);
        let mut trees = Vec::with_capacity(params.trees);
        let mut idx: Vec<usize> = (0..rows.len()).collect();
        for _ in 0..params.trees.max(1) {
            // Partial Fisher–Yates: the first `samples` entries are a uniform sample.
            for i in 0..samples {
                let j = rng.random_range(i..idx.len());
                idx.swap(i, j);
            }
            let mut sample: Vec<usize> = idx[..samples].to_vec();
            let mut nodes = Vec::with_capacity(2 * samples);
            build(rows, &mut sample, 0, max_depth, dims, &mut rng, &mut nodes);
            trees.push(nodes);
        }
        Ok(Self {
            params,
            dims,
            samples,
            trees,
        })
    }

    /// Path length of `x` in one tree. A split on a feature `x` does not know (`NaN`) takes
    /// both sides, weighted by the training rows that went each way: the expected path length
    /// over the training distribution of the unknown input.
    fn path(tree: &[Node], x: &[f64]) -> f64 {
        let mut i = 0usize;
        loop {
            let n = tree[i];
            if n.feature == LEAF {
                return n.value;
            }
            let v = x[n.feature as usize];
            if v.is_nan() {
                return Self::marginal(tree, x, i);
            }
            i = if v < n.value {
                n.left as usize
            } else {
                n.right as usize
            };
        }
    }

    fn marginal(tree: &[Node], x: &[f64], i: usize) -> f64 {
        let n = tree[i];
        if n.feature == LEAF {
            return n.value;
        }
        let v = x[n.feature as usize];
        if !v.is_nan() {
            let next = if v < n.value { n.left } else { n.right };
            return Self::marginal(tree, x, next as usize);
        }
        let (l, r) = (n.left as usize, n.right as usize);
        let (sl, sr) = (f64::from(tree[l].size), f64::from(tree[r].size));
        if sl + sr <= 0.0 {
            return 0.5 * (Self::marginal(tree, x, l) + Self::marginal(tree, x, r));
        }
        (sl * Self::marginal(tree, x, l) + sr * Self::marginal(tree, x, r)) / (sl + sr)
    }

    /// Anomaly score in (0, 1]: above 0.5 is unusual, near 1 very. Equals the negative of
    /// scikit-learn's `score_samples`. Unknown (`NaN`) inputs are marginalised (see `path`).
    /// A row of the wrong width scores 0.
    pub fn score(&self, x: &[f64]) -> f64 {
        if x.len() != self.dims {
            return 0.0;
        }
        let mean =
            self.trees.iter().map(|t| Self::path(t, x)).sum::<f64>() / self.trees.len() as f64;
        let norm = c(self.samples).max(f64::MIN_POSITIVE);
        2f64.powf(-mean / norm)
    }

    /// Which features isolated `x`: every split on its path credits its feature with
    /// `ln(rows in the node / rows on the side x goes)` — a split that peels `x` off into a
    /// small minority isolates it, one that keeps it with the crowd does not — summed over the
    /// trees and normalised to 1.
    pub fn explain(&self, x: &[f64]) -> Vec<f64> {
        let mut credit = vec![0.0; self.dims];
        if x.len() != self.dims {
            return credit;
        }
        for t in &self.trees {
            let mut i = 0usize;
            loop {
                let n = t[i];
                if n.feature == LEAF {
                    break;
                }
                let v = x[n.feature as usize];
                if v.is_nan() {
                    // An unknown input isolates nothing: follow the majority, credit none.
                    i = if t[n.left as usize].size >= t[n.right as usize].size {
                        n.left as usize
                    } else {
                        n.right as usize
                    };
                    continue;
                }
                let next = if v < n.value {
                    n.left as usize
                } else {
                    n.right as usize
                };
                let (parent, child) = (f64::from(n.size.max(1)), f64::from(t[next].size.max(1)));
                credit[n.feature as usize] += (parent / child).ln();
                i = next;
            }
        }
        let total: f64 = credit.iter().sum();
        if total > 0.0 {
            for c in &mut credit {
                *c /= total;
            }
        }
        credit
    }
}

/// A fitted scikit-learn `IsolationForest` as scikit-learn stores it: per tree, the columns it
/// was given (`estimators_features_`) and its `tree_` arrays. `crates/ml/reference/
/// make_reference.py` writes one (`export_trees`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SklearnForest {
    /// `max_samples_`: rows each tree was grown on.
    pub max_samples: usize,
    /// `n_features_in_`.
    pub n_features: usize,
    /// The trees.
    pub trees: Vec<SklearnTree>,
}

/// One scikit-learn `ExtraTreeRegressor` of an isolation forest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SklearnTree {
    /// Input column of each of the tree's features (`estimators_features_[i]`).
    pub features: Vec<usize>,
    /// `tree_.children_left` (-1 at a leaf).
    pub children_left: Vec<i64>,
    /// `tree_.children_right` (-1 at a leaf).
    pub children_right: Vec<i64>,
    /// `tree_.feature` (an index into `features`; negative at a leaf).
    pub feature: Vec<i64>,
    /// `tree_.threshold`: go left when `x <= threshold`.
    pub threshold: Vec<f64>,
    /// `tree_.n_node_samples`.
    pub n_node_samples: Vec<u64>,
}

/// Why a scikit-learn forest could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scikit-learn forest, tree {tree}: {reason}")]
pub struct ImportError {
    /// Tree index.
    pub tree: usize,
    /// What is wrong.
    pub reason: String,
}

/// The smallest `f64` threshold `t'` with `x < t'` exactly when `x <= t`, for every `x` that is
/// an `f32` value — scikit-learn casts its inputs to `f32` before walking its trees.
fn f32_boundary(t: f64) -> f64 {
    let mut u = t as f32;
    if f64::from(u) > t {
        u = u.next_down();
    }
    f64::from(u.next_up())
}

impl IsolationForest {
    /// A forest that scores exactly as the given scikit-learn forest's `-score_samples` does,
    /// for inputs rounded to `f32` (as scikit-learn rounds them): same trees, same leaf path
    /// lengths (depth + c(rows in the leaf)), same normalisation by c(`max_samples`). Used to
    /// check this crate's scoring against scikit-learn's own fitted trees.
    pub fn from_sklearn(f: &SklearnForest) -> Result<Self, ImportError> {
        let mut trees = Vec::with_capacity(f.trees.len());
        for (ti, t) in f.trees.iter().enumerate() {
            let err = |reason: String| ImportError { tree: ti, reason };
            let n = t.children_left.len();
            if n == 0
                || [
                    t.children_right.len(),
                    t.feature.len(),
                    t.threshold.len(),
                    t.n_node_samples.len(),
                ]
                .iter()
                .any(|&l| l != n)
            {
                return Err(err(
                    "the node arrays are empty or of different lengths".into()
                ));
            }
            if let Some(c) = t.features.iter().find(|&&c| c >= f.n_features) {
                return Err(err(format!("column {c} out of range")));
            }
            let mut depth = vec![0usize; n];
            let mut nodes = Vec::with_capacity(n);
            for i in 0..n {
                let size = u32::try_from(t.n_node_samples[i])
                    .map_err(|_| err(format!("node {i}: too many samples")))?;
                let (l, r) = (t.children_left[i], t.children_right[i]);
                if l < 0 && r < 0 {
                    nodes.push(Node {
                        feature: LEAF,
                        value: depth[i] as f64 + c(size as usize),
                        left: 0,
                        right: 0,
                        size,
                    });
                    continue;
                }
                // scikit-learn numbers children after their parent, so depths fill in order.
                let child = |v: i64| {
                    usize::try_from(v)
                        .ok()
                        .filter(|&v| v > i && v < n)
                        .ok_or_else(|| err(format!("node {i}: child {v} out of order or range")))
                };
                let (l, r) = (child(l)?, child(r)?);
                depth[l] = depth[i] + 1;
                depth[r] = depth[i] + 1;
                let col = usize::try_from(t.feature[i])
                    .ok()
                    .and_then(|k| t.features.get(k))
                    .ok_or_else(|| {
                        err(format!("node {i}: feature {} out of range", t.feature[i]))
                    })?;
                if !t.threshold[i].is_finite() {
                    return Err(err(format!("node {i}: threshold is not finite")));
                }
                nodes.push(Node {
                    feature: *col as u32,
                    value: f32_boundary(t.threshold[i]),
                    left: l as u32,
                    right: r as u32,
                    size,
                });
            }
            trees.push(nodes);
        }
        if trees.is_empty() {
            return Err(ImportError {
                tree: 0,
                reason: "no trees".into(),
            });
        }
        Ok(Self {
            params: Params {
                trees: trees.len(),
                max_samples: f.max_samples,
                seed: 0,
            },
            dims: f.n_features,
            samples: f.max_samples,
            trees,
        })
    }
}

fn build(
    rows: &[Vec<f64>],
    sample: &mut [usize],
    depth: usize,
    max_depth: usize,
    dims: usize,
    rng: &mut rand::rngs::SmallRng,
    nodes: &mut Vec<Node>,
) -> u32 {
    let me = nodes.len() as u32;
    let leaf = |nodes: &mut Vec<Node>, n: usize| {
        nodes.push(Node {
            feature: LEAF,
            value: depth as f64 + c(n),
            left: 0,
            right: 0,
            size: n as u32,
        });
        me
    };
    if sample.len() <= 1 || depth >= max_depth {
        return leaf(nodes, sample.len());
    }
    // Features that are not constant here, in random order (sklearn draws among them).
    let mut ranges: Vec<(usize, f64, f64)> = Vec::with_capacity(dims);
    for f in 0..dims {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &r in sample.iter() {
            let v = rows[r][f];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi > lo {
            ranges.push((f, lo, hi));
        }
    }
    if ranges.is_empty() {
        return leaf(nodes, sample.len());
    }
    let (f, lo, hi) = ranges[rng.random_range(0..ranges.len())];
    let mut t = rng.random_range(lo..hi);
    if t <= lo {
        t = lo + (hi - lo) * 0.5;
    }
    // Partition: left = x < t.
    let mut l = 0;
    for k in 0..sample.len() {
        if rows[sample[k]][f] < t {
            sample.swap(l, k);
            l += 1;
        }
    }
    nodes.push(Node {
        feature: f as u32,
        value: t,
        left: 0,
        right: 0,
        size: sample.len() as u32,
    });
    let (left, right) = sample.split_at_mut(l);
    let li = build(rows, left, depth + 1, max_depth, dims, rng, nodes);
    let ri = build(rows, right, depth + 1, max_depth, dims, rng, nodes);
    nodes[me as usize].left = li;
    nodes[me as usize].right = ri;
    me
}
