//! Features over rolling windows of market bars, shared by training and online scoring so the
//! two cannot drift apart: the same [`FeatureExtractor`] consumes bars one at a time whether
//! they come from a candle file or are built from the live event stream.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One bar (candle) of a market, with the funding rate in force (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Open time, ms since the epoch.
    pub time_ms: i64,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume in base units.
    pub volume: f64,
    /// Funding rate per hour in force at the bar.
    pub funding: f64,
}

/// The features, in order. A model records this list and its version; a model whose list
/// differs from the running code's is refused.
pub const FEATURES: [&str; 12] = [
    "ret_1",
    "ret_6",
    "ret_24",
    "vol_12",
    "vol_48",
    "vol_ratio_12_48",
    "range_pct",
    "log_volume_ratio_48",
    "volume_z_48",
    "ret_z_48",
    "funding",
    "funding_change_24",
];

/// Version of [`FEATURES`] and of their definitions.
pub const FEATURE_VERSION: u32 = 1;

/// Bars needed before the first feature vector.
pub const WARMUP: usize = 49;

/// The feature set a model was trained with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSet {
    /// Version.
    pub version: u32,
    /// Names, in order.
    pub names: Vec<String>,
}

impl FeatureSet {
    /// The running code's feature set.
    pub fn current() -> Self {
        Self {
            version: FEATURE_VERSION,
            names: FEATURES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Rolling state over the last [`WARMUP`] bars of one market.
#[derive(Debug, Clone, Default)]
pub struct FeatureExtractor {
    bars: VecDeque<Bar>,
    rets: VecDeque<f64>,
}

fn mean_std(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count() as f64;
    if n < 2.0 {
        return (0.0, 0.0);
    }
    let m = xs.clone().sum::<f64>() / n;
    let v = xs.map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, v.max(0.0).sqrt())
}

fn safe_ln_ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
        (a / b).ln()
    } else {
        0.0
    }
}

impl FeatureExtractor {
    /// An empty extractor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a bar; returns the feature vector once [`WARMUP`] bars have been seen. Bars with a
    /// non-positive or non-finite close are ignored (returns `None`).
    pub fn push(&mut self, b: Bar) -> Option<[f64; 12]> {
        if !(b.close.is_finite() && b.close > 0.0) {
            return None;
        }
        if let Some(prev) = self.bars.back() {
            self.rets.push_back(safe_ln_ratio(b.close, prev.close));
            if self.rets.len() > WARMUP {
                self.rets.pop_front();
            }
        }
        self.bars.push_back(b);
        if self.bars.len() > WARMUP {
            self.bars.pop_front();
        }
        if self.bars.len() < WARMUP {
            return None;
        }
        let n = self.bars.len();
        let close = |k: usize| self.bars[n - 1 - k].close;
        let r = &self.rets;
        let last = |k: usize| r.iter().rev().take(k).copied();
        let (_, vol_12) = mean_std(last(12));
        let (_, vol_48) = mean_std(last(48));
        let vols = self
            .bars
            .iter()
            .rev()
            .skip(1)
            .take(48)
            .map(|b| b.volume.max(0.0));
        let (vm, vs) = mean_std(vols);
        let v = b.volume.max(0.0);
        let ret_1 = r.back().copied().unwrap_or(0.0);
        let f = [
            ret_1,
            safe_ln_ratio(close(0), close(6)),
            safe_ln_ratio(close(0), close(24)),
            vol_12,
            vol_48,
            if vol_48 > 0.0 { vol_12 / vol_48 } else { 1.0 },
            if b.high >= b.low {
                (b.high - b.low) / b.close
            } else {
                0.0
            },
            safe_ln_ratio(v + 1e-12, vm + 1e-12),
            if vs > 0.0 { (v - vm) / vs } else { 0.0 },
            if vol_48 > 0.0 { ret_1 / vol_48 } else { 0.0 },
            b.funding,
            b.funding - self.bars[n - 1 - 24].funding,
        ];
        Some(f.map(|x| if x.is_finite() { x } else { 0.0 }))
    }
}

/// Feature rows of a whole bar series (with the time of each row).
pub fn extract(bars: &[Bar]) -> Vec<(i64, [f64; 12])> {
    let mut fx = FeatureExtractor::new();
    bars.iter()
        .filter_map(|b| fx.push(*b).map(|f| (b.time_ms, f)))
        .collect()
}

/// Parses a candle CSV (`timestamp_ms,open,high,low,close,volume`, header first).
pub fn parse_candles(text: &str) -> Result<Vec<Bar>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let c: Vec<&str> = line.split(',').collect();
        let num = |k: usize| -> Result<f64, String> {
            c.get(k)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("line {}: column {} is not a number", i + 1, k + 1))
        };
        out.push(Bar {
            time_ms: num(0)? as i64,
            open: num(1)?,
            high: num(2)?,
            low: num(3)?,
            close: num(4)?,
            volume: num(5)?,
            funding: 0.0,
        });
    }
    Ok(out)
}

/// Parses a funding CSV (`timestamp_ms,funding_rate`) and sets each bar's funding to the last
/// rate published at or before its open time.
pub fn apply_funding(bars: &mut [Bar], funding_csv: &str) -> Result<(), String> {
    let mut rates: Vec<(i64, f64)> = Vec::new();
    for (i, line) in funding_csv.lines().enumerate().skip(1) {
        let mut it = line.split(',');
        let (Some(t), Some(r)) = (it.next(), it.next()) else {
            continue;
        };
        let t: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("funding line {}: bad time", i + 1))?;
        let r: f64 = r
            .trim()
            .parse()
            .map_err(|_| format!("funding line {}: bad rate", i + 1))?;
        rates.push((t as i64, r));
    }
    rates.sort_by_key(|x| x.0);
    let mut k = 0;
    let mut cur = 0.0;
    for b in bars.iter_mut() {
        while k < rates.len() && rates[k].0 <= b.time_ms + 999 {
            cur = rates[k].1;
            k += 1;
        }
        b.funding = cur;
    }
    Ok(())
}
