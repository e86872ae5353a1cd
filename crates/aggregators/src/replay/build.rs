//! Expansion of a scenario manifest into a time-ordered event list. Deterministic: the same
//! files give the same events, byte for byte.
//!
//! Real candles become price paths that never look ahead: the value at time `t` is the close of
//! the last candle that had closed by `t` (the first candle's open until then), held until the
//! next close — a candle is only known once it has closed, so a replayed value is never taken
//! from a candle still open at `t`. Inside a data gap (more than two missing candles) there is
//! no value at all. The price of this honesty is resolution: a replayed venue moves once per
//! candle, up to one candle after the market did, and lead times measured on candle prices are
//! late by up to one candle, never early (reports state the resolution next to each lead time).
//! Reconstructed values come from `[[path]]` waypoints written in the manifest next to the
//! public fact they encode, interpolated as the manifest says.

use std::collections::BTreeMap;
use std::path::Path;

use kamiyo_core_models::{
    AssetCtx, Coin, Decimal, MarketEvent, Mids, Position, PositionSnapshot, ReferenceQuote,
    SeriesPoint, Timestamp, VaultSnapshot, Venue,
};

use super::scenario::{Interp, Manifest, ScenarioError, SeriesRole, invalid, io_err};
use crate::aggregate::{VenueWeights, replica_median};
use crate::hyperliquid::num::parse_decimal;

/// A candle read from a CSV file (`timestamp_ms,open,high,low,close,volume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvCandle {
    /// Open time.
    pub open_time: i64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Base volume.
    pub volume: Decimal,
}

/// Reads a candle CSV (header line first).
pub fn read_candles(path: &Path) -> Result<Vec<CsvCandle>, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = || {
            invalid(
                path,
                format!(
                    "line {}: expected timestamp_ms,open,high,low,close,volume",
                    i + 1
                ),
            )
        };
        if f.len() < 6 {
            return Err(bad());
        }
        let num = |s: &str| parse_decimal(s).ok_or_else(bad);
        out.push(CsvCandle {
            open_time: f[0].trim().parse().map_err(|_| bad())?,
            open: num(f[1])?,
            high: num(f[2])?,
            low: num(f[3])?,
            close: num(f[4])?,
            volume: num(f[5])?,
        });
    }
    out.sort_by_key(|c| c.open_time);
    Ok(out)
}

/// Reads a funding CSV (`timestamp_ms,funding_rate`).
pub fn read_funding(path: &Path) -> Result<Vec<(i64, Decimal)>, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut f = line.split(',');
        let (Some(t), Some(r)) = (f.next(), f.next()) else {
            continue;
        };
        let t = t
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid(path, format!("line {}: bad timestamp", i + 1)))?;
        let r =
            parse_decimal(r).ok_or_else(|| invalid(path, format!("line {}: bad rate", i + 1)))?;
        out.push((t, r));
    }
    out.sort_by_key(|p| p.0);
    Ok(out)
}

/// A value over time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path1 {
    points: Vec<(i64, Decimal)>,
    interp: Interp,
    hold_after: bool,
    /// Consecutive points farther apart than this are a gap: no value in between.
    max_gap_ms: Option<i64>,
}

impl Path1 {
    fn new(mut points: Vec<(i64, Decimal)>, interp: Interp, hold_after: bool) -> Self {
        points.sort_by_key(|p| p.0);
        Self {
            points,
            interp,
            hold_after,
            max_gap_ms: None,
        }
    }

    /// The value at `t` and the time it became known: for a held (step) path the time of the
    /// point it holds — a candle's close time — for an interpolated path `t` itself.
    pub fn at_known(&self, t: i64) -> Option<(Decimal, i64)> {
        let first = self.points.first()?;
        if t < first.0 {
            return None;
        }
        let idx = self.points.partition_point(|p| p.0 <= t);
        let (t0, v0) = self.points[idx - 1];
        // A held value is as old as its point; an interpolated one is of time `t`.
        let held = |v| match self.interp {
            Interp::Step => (v, t0),
            Interp::Linear => (v, t),
        };
        match self.points.get(idx) {
            None => (t == t0 || self.hold_after).then_some(held(v0)),
            Some(&(t1, _)) if t != t0 && self.max_gap_ms.is_some_and(|g| t1 - t0 > g) => None,
            Some(&(t1, v1)) => match self.interp {
                Interp::Step => Some((v0, t0)),
                Interp::Linear => {
                    let frac = Decimal::from(t - t0) / Decimal::from(t1 - t0);
                    Some(((v0 + (v1 - v0) * frac).round_dp(10).normalize(), t))
                }
            },
        }
    }

    /// The value at `t`: `None` before the first point (and after the last, unless held).
    pub fn at(&self, t: i64) -> Option<Decimal> {
        self.at_known(t).map(|(v, _)| v)
    }
}

/// True for a candle that stands for missing data: downloaders such as freqtrade fill gaps with
/// the previous close and zero volume.
fn is_filled_gap(c: &CsvCandle) -> bool {
    c.volume.is_zero() && c.open == c.high && c.high == c.low && c.low == c.close
}

fn close_path(candles: &[CsvCandle], interval_ms: i64) -> Path1 {
    let mut pts = Vec::with_capacity(candles.len() + 1);
    if let Some(c) = candles.iter().find(|c| !is_filled_gap(c)) {
        pts.push((c.open_time, c.open));
    }
    pts.extend(
        candles
            .iter()
            .filter(|c| !is_filled_gap(c))
            .map(|c| (c.open_time + interval_ms, c.close)),
    );
    pts.dedup_by_key(|p| p.0);
    // Held, not interpolated: between two closes the later one is not known yet.
    let mut p = Path1::new(pts, Interp::Step, false);
    // More than two missing candles in a row is a gap: no value inside it.
    p.max_gap_ms = Some(3 * interval_ms);
    p
}

/// Merges `candles` of `native` ms into candles of `coarse` ms aligned on multiples of it
/// (first open, highest high, lowest low, last close, summed volume). Only complete coarse
/// candles are kept; a coarse candle made only of gap fillers stays a gap filler.
pub fn resample(candles: &[CsvCandle], native: i64, coarse: i64) -> Vec<CsvCandle> {
    let per = (coarse / native.max(1)) as usize;
    let mut out: Vec<CsvCandle> = Vec::new();
    let mut cur: Option<(CsvCandle, usize)> = None;
    for c in candles {
        let bucket = c.open_time.div_euclid(coarse) * coarse;
        match &mut cur {
            Some((b, n)) if b.open_time == bucket => {
                b.high = b.high.max(c.high);
                b.low = b.low.min(c.low);
                b.close = c.close;
                b.volume += c.volume;
                *n += 1;
            }
            _ => {
                if let Some((b, n)) = cur.take()
                    && n == per
                {
                    out.push(b);
                }
                cur = Some((
                    CsvCandle {
                        open_time: bucket,
                        ..*c
                    },
                    1,
                ));
            }
        }
    }
    if let Some((b, n)) = cur
        && n == per
    {
        out.push(b);
    }
    out
}

fn waypoints(
    path: &Path,
    what: &str,
    pts: &[(String, Decimal)],
) -> Result<Vec<(i64, Decimal)>, ScenarioError> {
    pts.iter()
        .map(|(t, v)| {
            Timestamp::parse(t)
                .map(|t| (t.0, *v))
                .ok_or_else(|| invalid(path, format!("{what}: invalid time {t:?}")))
        })
        .collect()
}

/// The oracle at `t` rebuilt from the venues' paths by the engine's reference rule: the replica
/// over the venues whose known value is at most `max_age` ms old and of about the same moment as
/// the newest, the independent venues only when no oracle venue is.
fn reconstructed_oracle(
    refs: &BTreeMap<Venue, Path1>,
    t: i64,
    max_age: i64,
    weights: &VenueWeights,
) -> Option<Decimal> {
    let known: Vec<(Decimal, i64, Decimal)> = refs
        .iter()
        .filter_map(|(v, p)| {
            p.at_known(t)
                .filter(|(_, k)| t - k <= max_age)
                .map(|(px, k)| (px, k, weights.weight(v)))
        })
        .collect();
    // Only prices of about the same moment as the newest, as the engine does.
    let newest = known.iter().map(|k| k.1).max()?;
    let pts: Vec<(Decimal, Decimal)> = known
        .iter()
        .filter(|k| newest - k.1 <= REFERENCE_SKEW_MS)
        .map(|k| (k.0, k.2))
        .collect();
    replica_median(&pts).map(|d| d.round_dp(10).normalize())
}

/// How much older than the newest reference a quote may be and still count, in the
/// reconstructed oracle: the engine's default (`monitors.venues.max_skew_secs`).
const REFERENCE_SKEW_MS: i64 = 60_000;

#[derive(Default)]
struct CoinData {
    refs: BTreeMap<Venue, Path1>,
    mark: Option<Path1>,
    mark_volume: Vec<(i64, Decimal)>,
    /// Prefix sums of `mark_volume` (same length + 1).
    volume_prefix: Vec<Decimal>,
    basis: Option<Vec<(i64, Decimal)>>,
    fields: BTreeMap<String, Path1>,
    funding: Option<Path1>,
}

/// Expands `m` (loaded from `dir`) into events.
pub(crate) fn expand(dir: &Path, m: &Manifest) -> Result<Vec<MarketEvent>, ScenarioError> {
    let mpath = dir.join("scenario.toml");
    let root = dir.join(&m.scenario.data_root);
    let start = m.scenario.start.0;
    let end = m.scenario.end.0;
    let lookback = start - 26 * Timestamp::HOUR;
    let mut coins: BTreeMap<Coin, CoinData> = BTreeMap::new();

    for s in &m.series {
        let file = root.join(&s.file);
        let native = i64::from(s.interval_secs) * 1000;
        let mut candles = read_candles(&file)?;
        let interval = match s.resample_secs {
            Some(r) => {
                let r = i64::from(r) * 1000;
                if r < native || native <= 0 || r % native != 0 {
                    return Err(invalid(
                        &mpath,
                        format!(
                            "series {}: resample_secs must be a multiple of interval_secs",
                            s.file
                        ),
                    ));
                }
                candles = resample(&candles, native, r);
                r
            }
            None => native,
        };
        let candles: Vec<CsvCandle> = candles
            .into_iter()
            .filter(|c| c.open_time >= lookback - interval && c.open_time < end + interval)
            .collect();
        if candles.is_empty() {
            return Err(invalid(
                &file,
                format!(
                    "no candles between {} and {}",
                    Timestamp(lookback),
                    m.scenario.end
                ),
            ));
        }
        let cd = coins.entry(s.coin.clone()).or_default();
        match s.role {
            SeriesRole::Reference => {
                cd.refs
                    .insert(s.venue.clone(), close_path(&candles, interval));
            }
            SeriesRole::Mark => {
                cd.mark = Some(close_path(&candles, interval));
                cd.mark_volume = candles
                    .iter()
                    .map(|c| (c.open_time + interval, c.volume * c.close))
                    .collect();
                cd.volume_prefix = std::iter::once(Decimal::ZERO)
                    .chain(cd.mark_volume.iter().scan(Decimal::ZERO, |acc, (_, v)| {
                        *acc += *v;
                        Some(*acc)
                    }))
                    .collect();
            }
            SeriesRole::MarkBasis => {
                cd.basis = Some(
                    candles
                        .iter()
                        .map(|c| (c.open_time + interval, c.close))
                        .collect(),
                );
            }
        }
    }
    for p in &m.path {
        let pts = waypoints(&mpath, &format!("path {} {}", p.coin, p.field), &p.points)?;
        let cd = coins.entry(p.coin.clone()).or_default();
        let path = Path1::new(pts, p.interp, true);
        if let Some(venue) = p.field.strip_prefix("reference:") {
            let v =
                Venue::new(venue).map_err(|e| invalid(&mpath, format!("path {}: {e}", p.coin)))?;
            cd.refs.insert(v, path);
        } else if matches!(
            p.field.as_str(),
            "mark" | "oracle" | "mid" | "open_interest" | "day_volume_usd" | "funding"
        ) {
            cd.fields.insert(p.field.clone(), path);
        } else {
            return Err(invalid(
                &mpath,
                format!("path {}: unknown field {:?}", p.coin, p.field),
            ));
        }
    }
    for mk in &m.market {
        let cd = coins.entry(mk.coin.clone()).or_default();
        if let Some(f) = &mk.funding_file {
            let pts = read_funding(&root.join(f))?
                .into_iter()
                .filter(|p| p.0 >= lookback && p.0 < end)
                .collect();
            cd.funding = Some(Path1::new(pts, Interp::Step, true));
        }
    }

    let weights = VenueWeights::default();
    let tick = i64::from(m.scenario.tick_secs) * 1000;
    let mut events = Vec::new();

    let max_age = m.scenario.stale_after_ms();
    // Resolves (oracle, mark) at time t for a coin. Without an oracle path, the oracle is
    // reconstructed by the engine's own reference rule: the replica of the venues whose known
    // value at t is at most the replay's staleness old (a held hourly close is not an input
    // fifty minutes later, for the engine or for the oracle), independent venues only when no
    // oracle venue is fresh.
    let oracle_at = |cd: &CoinData, t: i64| -> Option<Decimal> {
        if let Some(p) = cd.fields.get("oracle").and_then(|p| p.at(t)) {
            return Some(p);
        }
        reconstructed_oracle(&cd.refs, t, max_age, &weights)
    };
    let mark_at = |cd: &CoinData, t: i64| -> Option<Decimal> {
        if let Some(p) = cd.fields.get("mark").and_then(|p| p.at(t)) {
            return Some(p);
        }
        if let Some(m) = cd.mark.as_ref() {
            // A market with its own candles has no mark inside a gap in them.
            return m.at(t);
        }
        let oracle = oracle_at(cd, t)?;
        match &cd.basis {
            Some(closes) => {
                // Basis = HL close / reference median at each HL close time, held until the
                // next close (no look-ahead).
                let pts: Vec<(i64, Decimal)> = closes
                    .iter()
                    .filter_map(|(ct, c)| {
                        oracle_at(cd, *ct)
                            .filter(|o| !o.is_zero())
                            .map(|o| (*ct, *c / o))
                    })
                    .collect();
                let ratio = Path1::new(pts, Interp::Step, true)
                    .at(t)
                    .unwrap_or(Decimal::ONE);
                Some((oracle * ratio).round_dp(10).normalize())
            }
            None => Some(oracle),
        }
    };

    let mut ticks: Vec<i64> = (0..)
        .map(|i| start + i * tick)
        .take_while(|t| *t < end)
        .collect();
    for w in &m.fine_ticks {
        let (Some(ws), Some(we)) = (Timestamp::parse(&w.start), Timestamp::parse(&w.end)) else {
            return Err(invalid(
                &mpath,
                format!("fine_ticks: invalid window {:?}..{:?}", w.start, w.end),
            ));
        };
        let step = i64::from(w.tick_secs.max(1)) * 1000;
        ticks.extend(
            (0..)
                .map(|i| ws.0 + i * step)
                .take_while(|t| *t < we.0 && *t < end)
                .filter(|t| *t >= start),
        );
    }
    ticks.sort_unstable();
    ticks.dedup();
    for &t in &ticks {
        let mut mids = Vec::new();
        for mk in &m.market {
            let Some(cd) = coins.get(&mk.coin) else {
                continue;
            };
            for (venue, p) in &cd.refs {
                // A quote carries the time its price became known (a held candle close is as
                // old as that close), so freshness and venue comparisons see its true age.
                if let Some((price, known)) = p.at_known(t) {
                    events.push(MarketEvent::Reference(ReferenceQuote {
                        venue: venue.clone(),
                        coin: mk.coin.clone(),
                        price,
                        bid: None,
                        ask: None,
                        time: Timestamp(known),
                    }));
                }
            }
            let (Some(mark), Some(oracle)) =
                (mark_at(cd, t), oracle_at(cd, t).or_else(|| mark_at(cd, t)))
            else {
                continue;
            };
            let mid = cd.fields.get("mid").and_then(|p| p.at(t)).unwrap_or(mark);
            let oi = cd
                .fields
                .get("open_interest")
                .and_then(|p| p.at(t))
                .unwrap_or(mk.open_interest);
            let funding = cd
                .fields
                .get("funding")
                .and_then(|p| p.at(t))
                .or_else(|| cd.funding.as_ref().and_then(|p| p.at(t)))
                .or(mk.funding)
                .unwrap_or_default();
            let day_ntl_vlm = cd
                .fields
                .get("day_volume_usd")
                .and_then(|p| p.at(t))
                .unwrap_or_else(|| {
                    if cd.mark_volume.is_empty() {
                        mk.day_volume_usd.unwrap_or_default()
                    } else {
                        let lo = cd
                            .mark_volume
                            .partition_point(|(ct, _)| *ct <= t - Timestamp::DAY);
                        let hi = cd.mark_volume.partition_point(|(ct, _)| *ct <= t);
                        (cd.volume_prefix[hi] - cd.volume_prefix[lo.min(hi)]).round_dp(2)
                    }
                });
            let prev_day_px = mark_at(cd, t - Timestamp::DAY);
            events.push(MarketEvent::AssetCtx(AssetCtx {
                coin: mk.coin.clone(),
                time: Timestamp(t),
                oracle_px: oracle,
                mark_px: mark,
                mid_px: Some(mid),
                open_interest: oi,
                funding,
                day_ntl_vlm,
                prev_day_px,
                premium: None,
                impact_pxs: None,
            }));
            mids.push((mk.coin.clone(), mid));
        }
        if !mids.is_empty() {
            events.push(MarketEvent::Mids(Mids {
                time: Timestamp(t),
                mids,
            }));
        }
    }

    for p in &m.position {
        let what = format!("position {} {}", p.user, p.coin);
        let held = |pts: &[(String, Decimal)]| {
            waypoints(&mpath, &what, pts).map(|v| Path1::new(v, Interp::Step, true))
        };
        let (szi, entry, liq, margin) = (
            held(&p.szi)?,
            held(&p.entry_px)?,
            held(&p.liquidation_px)?,
            held(&p.margin)?,
        );
        let Some(cd) = coins.get(&p.coin) else {
            return Err(invalid(
                &mpath,
                format!("{what}: no market data for {}", p.coin),
            ));
        };
        let step = i64::from(p.every_secs.max(1)) * 1000;
        let mut t = start;
        while t < end {
            if let (Some(sz), Some(mark), Some(mg)) = (szi.at(t), mark_at(cd, t), margin.at(t)) {
                let entry_px = entry.at(t);
                let upnl = entry_px.map_or(Decimal::ZERO, |e| (sz * (mark - e)).round_dp(2));
                let value = (sz.abs() * mark).round_dp(2);
                let positions = if sz.is_zero() {
                    Vec::new()
                } else {
                    vec![Position {
                        coin: p.coin.clone(),
                        szi: sz,
                        entry_px,
                        position_value: value,
                        unrealized_pnl: upnl,
                        liquidation_px: liq.at(t).filter(|l| !l.is_zero()),
                        margin_used: mg,
                        leverage: p.leverage,
                    }]
                };
                let account_value = (mg + upnl).round_dp(2);
                events.push(MarketEvent::Positions(PositionSnapshot {
                    user: p.user,
                    time: Timestamp(t),
                    account_value,
                    total_ntl_pos: if sz.is_zero() { Decimal::ZERO } else { value },
                    maintenance_margin: (value / Decimal::from(100)).round_dp(2),
                    withdrawable: Decimal::ZERO,
                    positions,
                }));
            }
            t += step;
        }
    }

    for v in &m.vault {
        let av = Path1::new(
            waypoints(&mpath, &format!("vault {}", v.name), &v.account_value)?,
            Interp::Linear,
            true,
        );
        let pnl = Path1::new(
            waypoints(&mpath, &format!("vault {}", v.name), &v.pnl)?,
            Interp::Linear,
            true,
        );
        let step = i64::from(v.every_secs.max(1)) * 1000;
        let mut t = start;
        while t < end {
            if let (Some(a), Some(p)) = (av.at(t), pnl.at(t)) {
                let time = Timestamp(t);
                events.push(MarketEvent::Vault(VaultSnapshot {
                    vault: v.address,
                    name: v.name.clone(),
                    time,
                    account_value: a,
                    pnl_history: vec![SeriesPoint { time, value: p }],
                    account_value_history: vec![SeriesPoint { time, value: a }],
                }));
            }
            t += step;
        }
    }

    let overlay = dir.join("events.jsonl");
    match std::fs::read_to_string(&overlay) {
        Ok(text) => {
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                    continue;
                }
                let e: MarketEvent = super::decode_event_json(line)
                    .map_err(|e| invalid(&overlay, format!("line {}: {e}", i + 1)))?;
                if e.time().0 < start || e.time().0 >= end {
                    return Err(invalid(
                        &overlay,
                        format!(
                            "line {}: event at {} is outside the scenario window",
                            i + 1,
                            e.time()
                        ),
                    ));
                }
                events.push(e);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&overlay, e)),
    }
    events.sort_by_key(MarketEvent::time);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: &str) -> Decimal {
        x.parse().unwrap()
    }

    #[test]
    fn paths_interpolate_and_hold() {
        let p = Path1::new(vec![(0, d("10")), (100, d("20"))], Interp::Linear, true);
        assert_eq!(p.at(-1), None);
        assert_eq!(p.at(0), Some(d("10")));
        assert_eq!(p.at(25), Some(d("12.5")));
        assert_eq!(p.at(100), Some(d("20")));
        assert_eq!(p.at(1000), Some(d("20")));
        let s = Path1::new(vec![(0, d("10")), (100, d("20"))], Interp::Step, false);
        assert_eq!(s.at(99), Some(d("10")));
        assert_eq!(s.at(101), None, "series do not extrapolate");
    }

    #[test]
    fn the_reconstructed_oracle_uses_fresh_inputs_only() {
        let v = |n: &str| Venue::new(n).unwrap();
        let mut refs = BTreeMap::new();
        // OKX (weight 2) quotes hourly, KuCoin (weight 1) every 15 minutes, as held closes.
        refs.insert(
            v("okx"),
            Path1::new(vec![(0, d("200"))], Interp::Step, true),
        );
        refs.insert(
            v("kucoin"),
            Path1::new(
                (0..5).map(|i| (i * 900_000, d("100"))).collect(),
                Interp::Step,
                true,
            ),
        );
        let w = VenueWeights::default();
        // Ten minutes after OKX's close it is an input, and holds the weight majority.
        assert_eq!(
            reconstructed_oracle(&refs, 600_000, 1_200_000, &w),
            Some(d("200"))
        );
        // Fifty minutes after, the hourly close is stale for the engine, so for the oracle too.
        assert_eq!(
            reconstructed_oracle(&refs, 3_000_000, 1_200_000, &w),
            Some(d("100"))
        );
        // Coinbase is no oracle input: it counts only when nothing else is fresh.
        refs.insert(
            v("coinbase"),
            Path1::new(vec![(0, d("150"))], Interp::Step, true),
        );
        assert_eq!(
            reconstructed_oracle(&refs, 600_000, 1_200_000, &w),
            Some(d("200"))
        );
        refs.remove(&v("kucoin"));
        assert_eq!(
            reconstructed_oracle(&refs, 3_000_000, 4_000_000, &w),
            Some(d("200"))
        );
        refs.insert(
            v("coinbase"),
            Path1::new(vec![(2_900_000, d("150"))], Interp::Step, true),
        );
        assert_eq!(
            reconstructed_oracle(&refs, 3_000_000, 1_200_000, &w),
            Some(d("150"))
        );
    }

    #[test]
    fn resampling_merges_complete_coarse_candles_only() {
        let c = |t: i64, o: &str, h: &str, l: &str, cl: &str| CsvCandle {
            open_time: t,
            open: d(o),
            high: d(h),
            low: d(l),
            close: d(cl),
            volume: d("1"),
        };
        // Three 5-minute candles per 15 minutes; the last 15-minute bucket is incomplete.
        let five = [
            c(0, "10", "12", "9", "11"),
            c(300, "11", "15", "10", "14"),
            c(600, "14", "14", "8", "9"),
            c(900, "9", "10", "9", "10"),
        ];
        let r = resample(&five, 300, 900);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (
                r[0].open_time,
                r[0].open,
                r[0].high,
                r[0].low,
                r[0].close,
                r[0].volume
            ),
            (0, d("10"), d("15"), d("8"), d("9"), d("3"))
        );
    }

    /// The value at `t` only uses candles that had closed by `t`: within a candle the previous
    /// close holds, whatever the candle's own close will be.
    #[test]
    fn close_path_starts_at_the_first_open_and_never_looks_ahead() {
        let c = |t, o: &str, cl: &str| CsvCandle {
            open_time: t,
            open: d(o),
            high: d(cl),
            low: d(o),
            close: d(cl),
            volume: d("1"),
        };
        let p = close_path(&[c(0, "1", "2"), c(60, "2", "4")], 60);
        assert_eq!(p.at(0), Some(d("1")));
        assert_eq!(
            p.at(59),
            Some(d("1")),
            "the first candle has not closed yet"
        );
        assert_eq!(p.at(60), Some(d("2")));
        assert_eq!(p.at(90), Some(d("2")), "held, not interpolated towards 4");
        assert_eq!(p.at(120), Some(d("4")));
        // Zero-volume flat candles are gaps; a gap longer than three candles has no values.
        let gap = |t| CsvCandle {
            open_time: t,
            open: d("4"),
            high: d("4"),
            low: d("4"),
            close: d("4"),
            volume: Decimal::ZERO,
        };
        let p = close_path(
            &[
                c(0, "1", "2"),
                gap(60),
                gap(120),
                gap(180),
                gap(240),
                c(300, "4", "6"),
            ],
            60,
        );
        assert_eq!(p.at(60), Some(d("2")));
        assert_eq!(p.at(200), None, "no invented prices inside a data gap");
        assert_eq!(p.at(360), Some(d("6")));
    }
}
