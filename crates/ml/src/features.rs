//! Features over rolling windows of market bars, shared by training and online scoring so the
//! two cannot drift apart: the same [`FeatureExtractor`] consumes bars one at a time whether
//! they come from a candle file or are built from the live event stream.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One bar (candle) of a market, with the funding rate in force (0 when unknown) and the
/// extended inputs the live stream carries (each `NaN` when unknown: a candle file has none of
/// them, a market without outside venues has no reference price).
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// Outside-exchange reference price at the bar's close (the median of the reference
    /// venues; what the oracle is built from).
    pub ref_px: f64,
    /// Open interest at the close, in base units.
    pub open_interest: f64,
    /// Notional (USD) of the liquidation fills seen within the bar (0: none; `NaN`: no fill
    /// feed).
    pub liq_notional: f64,
    /// HLP's cumulative PnL at the close (USD).
    pub hlp_pnl: f64,
    /// HLP's account value at the close (USD).
    pub hlp_equity: f64,
}

impl Bar {
    /// A bar of prices and volume only (funding 0, extended inputs unknown).
    pub fn ohlcv(time_ms: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) -> Self {
        Self {
            time_ms,
            open,
            high,
            low,
            close,
            volume,
            funding: 0.0,
            ref_px: f64::NAN,
            open_interest: f64::NAN,
            liq_notional: f64::NAN,
            hlp_pnl: f64::NAN,
            hlp_equity: f64::NAN,
        }
    }
}

/// Core features: computed from prices, volume and funding, so every bar source has them.
pub const CORE: usize = 12;

/// Number of features in the catalogue.
pub const N_FEATURES: usize = 18;

/// One feature vector, in [`FEATURES`] order. Extended features are `NaN` when their input is
/// unknown.
pub type Row = [f64; N_FEATURES];

/// The feature catalogue, in order: the [`CORE`] features first, then the extended ones. A
/// model records the names it was trained on (a subset: the features its training data
/// carries) and the catalogue version; a model naming a feature this build does not compute,
/// or trained on another version, is refused.
pub const FEATURES: [&str; N_FEATURES] = [
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
    "basis_ref",
    "basis_ref_change_12",
    "oi_change_1",
    "oi_change_12",
    "liq_notional_ratio_48",
    "hlp_pnl_slope_12",
];

/// Version of [`FEATURES`] and of their definitions.
pub const FEATURE_VERSION: u32 = 2;

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
    /// The running code's whole catalogue.
    pub fn current() -> Self {
        Self::of(&(0..N_FEATURES).collect::<Vec<_>>())
    }

    /// The catalogue features at `columns` (indices into [`FEATURES`]).
    pub fn of(columns: &[usize]) -> Self {
        Self {
            version: FEATURE_VERSION,
            names: columns
                .iter()
                .filter_map(|&c| FEATURES.get(c).map(|s| (*s).to_owned()))
                .collect(),
        }
    }

    /// Each name's index in [`FEATURES`] (`None`: not a feature this build computes).
    pub fn columns(&self) -> Vec<Option<usize>> {
        self.names
            .iter()
            .map(|n| FEATURES.iter().position(|f| f == n))
            .collect()
    }

    /// The set's values out of a catalogue row, in the set's order (`NaN` for a name this
    /// build does not compute).
    pub fn select(columns: &[Option<usize>], row: &Row) -> Vec<f64> {
        columns
            .iter()
            .map(|c| c.map_or(f64::NAN, |c| row[c]))
            .collect()
    }
}

/// The catalogue columns a model can be trained on from `rows`: those known (finite) in at
/// least half of the rows and not constant where known. Returns the columns and, for each one
/// left out, why. Train on the rows where every kept column is known ([`complete`]): a market
/// without an input (no outside venue lists it) is left out of training rather than teaching
/// the model a made-up value, and is scored with that input marginalised.
pub fn usable(rows: &[Row]) -> (Vec<usize>, Vec<(&'static str, &'static str)>) {
    let mut keep = Vec::new();
    let mut dropped = Vec::new();
    for (j, name) in FEATURES.iter().enumerate() {
        let known: Vec<f64> = rows
            .iter()
            .map(|r| r[j])
            .filter(|v| v.is_finite())
            .collect();
        if known.is_empty() || known.len() * 2 < rows.len() {
            dropped.push((*name, "not in the training data"));
        } else if known.iter().all(|v| *v == known[0]) {
            dropped.push((*name, "constant in the training data"));
        } else {
            keep.push(j);
        }
    }
    (keep, dropped)
}

/// The rows where every one of `columns` is known, reduced to those columns.
pub fn complete(rows: &[Row], columns: &[usize]) -> Vec<Vec<f64>> {
    rows.iter()
        .filter(|r| columns.iter().all(|&c| r[c].is_finite()))
        .map(|r| columns.iter().map(|&c| r[c]).collect())
        .collect()
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

/// `ln(a / b)`, `NaN` unless both are positive and finite.
fn ln_ratio_or_nan(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite() {
        (a / b).ln()
    } else {
        f64::NAN
    }
}

impl FeatureExtractor {
    /// An empty extractor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a bar; returns the feature vector once [`WARMUP`] bars have been seen. Bars with a
    /// non-positive or non-finite close are ignored (returns `None`).
    pub fn push(&mut self, b: Bar) -> Option<Row> {
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
        let ago = |k: usize| &self.bars[n - 1 - k];
        let close = |k: usize| ago(k).close;
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
        let core = [
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
            b.funding - ago(24).funding,
        ];
        // Extended features: NaN when an input is unknown (never replaced by 0: an unknown
        // input is not a calm one).
        let basis = |k: usize| ln_ratio_or_nan(close(k), ago(k).ref_px);
        let traded: f64 = self
            .bars
            .iter()
            .rev()
            .skip(1)
            .take(48)
            .map(|b| b.volume.max(0.0) * b.close)
            .sum::<f64>()
            / 48.0;
        let ext = [
            basis(0),
            basis(0) - basis(12),
            ln_ratio_or_nan(b.open_interest, ago(1).open_interest),
            ln_ratio_or_nan(b.open_interest, ago(12).open_interest),
            if b.liq_notional >= 0.0 && traded > 0.0 {
                b.liq_notional / traded
            } else {
                f64::NAN
            },
            if b.hlp_equity.is_finite() && b.hlp_equity > 0.0 {
                (b.hlp_pnl - ago(12).hlp_pnl) / b.hlp_equity
            } else {
                f64::NAN
            },
        ];
        let mut row = [0.0; N_FEATURES];
        for (o, x) in row.iter_mut().zip(core) {
            *o = if x.is_finite() { x } else { 0.0 };
        }
        for (o, x) in row[CORE..].iter_mut().zip(ext) {
            *o = if x.is_finite() { x } else { f64::NAN };
        }
        Some(row)
    }
}

/// Feature rows of a whole bar series (with the time of each row).
pub fn extract(bars: &[Bar]) -> Vec<(i64, Row)> {
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
        out.push(Bar::ohlcv(
            num(0)? as i64,
            num(1)?,
            num(2)?,
            num(3)?,
            num(4)?,
            num(5)?,
        ));
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

/// Sets each bar's reference price from the outside venues' bars with the same open time
/// (`venues`: each venue's parsed candles): `median` receives `(venue index, close)` for the
/// venues that cover the bar and returns the reference — pass the live reference book's own
/// rule (the weighted median with the oracle's venue weights) so a trained basis means what the
/// live one does. A bar no venue covers keeps an unknown reference.
pub fn apply_reference(
    bars: &mut [Bar],
    venues: &[Vec<Bar>],
    median: impl Fn(&[(usize, f64)]) -> Option<f64>,
) {
    let maps: Vec<std::collections::HashMap<i64, f64>> = venues
        .iter()
        .map(|v| {
            v.iter()
                .filter(|b| b.close.is_finite() && b.close > 0.0)
                .map(|b| (b.time_ms, b.close))
                .collect()
        })
        .collect();
    let mut px = Vec::with_capacity(maps.len());
    for b in bars.iter_mut() {
        px.clear();
        px.extend(
            maps.iter()
                .enumerate()
                .filter_map(|(i, m)| m.get(&b.time_ms).map(|c| (i, *c))),
        );
        b.ref_px = if px.is_empty() {
            f64::NAN
        } else {
            median(&px).unwrap_or(f64::NAN)
        };
    }
}
