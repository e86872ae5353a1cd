//! Liquidations, from the fills' real `liquidation` field, the Liquidator vaults' backstop
//! fills, and Auto-Deleveraging fills (never from heuristics on `closedPnl`):
//!
//! - large: liquidated notional in one market within 10 s ≥ $500k is high, ≥ $10M critical;
//! - cascade: ≥ 5 liquidations in one market within 300 s is high; ≥ 15, or ≥ $10M, critical;
//! - coordinated: one account liquidated ≥ 3 times for ≥ $1M within an hour is high;
//! - the first ADL fill in a market is critical.
//!
//! The same liquidation seen from both sides (the liquidated user's fill and the Liquidator's)
//! is counted once, by `(time, coin, tid)`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use kamiyo_core_models::{
    Address, Coin, Decimal, Detection, Evidence, Fill, IncidentKey, LiquidationMethod,
    LiquidationRecord, MarketEvent, Severity, ThreatType, Timestamp,
};

use super::{Detector, Sink};
use crate::config::LiquidationConfig;
use crate::state::MarketState;

/// Liquidations within a sliding window of event time, with their count and notional kept as
/// running totals: adding a fill and evicting expired ones is O(1) amortised, whatever the
/// window holds. Decimal sums are exact, so the totals never drift from a rescan.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlidingSum {
    q: VecDeque<(Timestamp, Decimal)>,
    sum: Decimal,
    newest: Option<Timestamp>,
}

impl SlidingSum {
    /// Adds one fill and evicts what fell out of `span_ms` before the newest time seen; returns
    /// (count, notional) of the window. A late fill (older than the newest) is placed in time
    /// order, so eviction stays exact.
    pub(crate) fn add(&mut self, t: Timestamp, v: Decimal, span_ms: i64) -> (usize, Decimal) {
        let newest = self.newest.map_or(t, |n| n.max(t));
        self.newest = Some(newest);
        if newest.millis_since(t) <= span_ms {
            let at = self
                .q
                .iter()
                .rposition(|(u, _)| *u <= t)
                .map_or(0, |i| i + 1);
            self.q.insert(at, (t, v));
            self.sum += v;
        }
        while let Some(&(u, old)) = self.q.front() {
            if newest.millis_since(u) <= span_ms {
                break;
            }
            self.q.pop_front();
            self.sum -= old;
        }
        (self.q.len(), self.sum)
    }

    /// The time of the newest fill, if any.
    pub(crate) fn newest(&self) -> Option<Timestamp> {
        self.newest
    }
}

/// The per-market windows: the large-liquidation window and the cascade window.
#[derive(Debug, Clone, Default)]
struct CoinWindows {
    large: SlidingSum,
    cascade: SlidingSum,
}

/// The liquidation detector.
#[derive(Debug)]
pub struct LiquidationDetector {
    cfg: LiquidationConfig,
    seen: BTreeSet<(Timestamp, Coin, u64)>,
    seen_order: VecDeque<(Timestamp, Coin, u64)>,
    by_coin: BTreeMap<Coin, CoinWindows>,
    by_user: BTreeMap<Address, SlidingSum>,
    adl: BTreeMap<Coin, (Timestamp, u32, Decimal)>,
}

impl LiquidationDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: LiquidationConfig) -> Self {
        Self {
            cfg,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            by_coin: BTreeMap::new(),
            by_user: BTreeMap::new(),
            adl: BTreeMap::new(),
        }
    }

    fn first_time(&mut self, f: &Fill) -> bool {
        let k = (f.time, f.coin.clone(), f.tid.unwrap_or(f.oid));
        if !self.seen.insert(k.clone()) {
            return false;
        }
        self.seen_order.push_back(k);
        while self.seen_order.len() > 100_000 {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn record(f: &Fill, sink: &mut Sink) {
        sink.observations.liquidations.push(LiquidationRecord {
            time: f.time,
            coin: f.coin.clone(),
            user: f.user,
            liquidated_user: f.liquidation.as_ref().and_then(|l| l.liquidated_user),
            side: f.side,
            px: f.px,
            sz: f.sz,
            notional: f.notional(),
            method: f.liquidation.as_ref().map(|l| l.method.clone()),
            is_adl: f.is_adl(),
            tid: f.tid.unwrap_or(f.oid),
        });
    }

    fn on_liquidation(&mut self, f: &Fill, sink: &mut Sink) {
        let now = f.time;
        let notional = f.notional();
        let victim = f.liquidation.as_ref().and_then(|l| l.liquidated_user);
        let backstop = f
            .liquidation
            .as_ref()
            .is_some_and(|l| l.method == LiquidationMethod::Backstop);
        let coin = f.coin.clone();
        let w = self.by_coin.entry(coin.clone()).or_default();
        let large_ms = i64::from(self.cfg.large_window_secs) * 1000;
        let cascade_ms = i64::from(self.cfg.cascade_window_secs) * 1000;
        let (n10, usd10) = w.large.add(now, notional, large_ms);
        let (n_c, usd_c) = w.cascade.add(now, notional, cascade_ms);

        if usd10 >= self.cfg.large_usd || (backstop && notional >= self.cfg.large_usd) {
            let critical = usd10 >= self.cfg.large_critical_usd
                || (backstop && notional >= self.cfg.large_critical_usd);
            let mut ev = Evidence::new()
                .with("window_notional_usd", usd10.round_dp(2))
                .with("window_liquidations", n10)
                .with("window_secs", i64::from(self.cfg.large_window_secs))
                .with("largest_fill_usd", notional.round_dp(2))
                .with("px", f.px)
                .with(
                    "method",
                    f.liquidation
                        .as_ref()
                        .map_or("liquidated", |l| l.method.as_str()),
                );
            if let Some(v) = victim {
                ev.insert("liquidated_user", v.to_string());
            }
            ev.insert("fill_user", f.user.to_string());
            sink.detections.push(Detection {
                direction: None,
                key: IncidentKey::new("large_liquidation", &[coin.as_str()]),
                detector: "liquidations".into(),
                threat_type: ThreatType::LargeLiquidation,
                severity: if critical {
                    Severity::Critical
                } else {
                    Severity::High
                },
                asset: Some(coin.clone()),
                title: format!(
                    "{coin}: ${} liquidated within {} s{}",
                    usd10.round_dp(0),
                    self.cfg.large_window_secs,
                    if backstop {
                        " (backstop takeover by the Liquidator)"
                    } else {
                        ""
                    }
                ),
                indicators: vec![if backstop {
                    "backstop".into()
                } else {
                    "market".into()
                }],
                evidence: ev,
                time: now,
            });
        }
        if n_c >= self.cfg.cascade_count as usize {
            let critical = n_c >= self.cfg.cascade_critical_count as usize
                || usd_c >= self.cfg.cascade_critical_usd;
            sink.detections.push(Detection {
                direction: None,
                key: IncidentKey::new("liquidation_cascade", &[coin.as_str()]),
                detector: "liquidations".into(),
                threat_type: ThreatType::LiquidationCascade,
                severity: if critical {
                    Severity::Critical
                } else {
                    Severity::High
                },
                asset: Some(coin.clone()),
                title: format!(
                    "{coin}: {n_c} liquidations (${}) within {} s",
                    usd_c.round_dp(0),
                    self.cfg.cascade_window_secs
                ),
                indicators: vec!["cascade".into()],
                evidence: Evidence::new()
                    .with("liquidations", n_c)
                    .with("notional_usd", usd_c.round_dp(2))
                    .with("window_secs", i64::from(self.cfg.cascade_window_secs)),
                time: now,
            });
        }
        if let Some(v) = victim {
            self.on_victim(v, now, notional, Some(&coin), sink);
        }
    }

    fn on_victim(
        &mut self,
        v: Address,
        now: Timestamp,
        notional: Decimal,
        coin: Option<&Coin>,
        sink: &mut Sink,
    ) {
        let horizon = i64::from(self.cfg.coordinated_window_secs) * 1000;
        let (n, usd) = self
            .by_user
            .entry(v)
            .or_default()
            .add(now, notional, horizon);
        if n >= self.cfg.coordinated_count as usize && usd >= self.cfg.coordinated_usd {
            sink.detections.push(Detection {
                direction: None,
                key: IncidentKey::new("coordinated_liquidation", &[&v.to_string()]),
                detector: "liquidations".into(),
                threat_type: ThreatType::CoordinatedLiquidation,
                severity: Severity::High,
                asset: coin.cloned(),
                title: format!(
                    "{} liquidated {n} times for ${} within {} min",
                    v.short(),
                    usd.round_dp(0),
                    self.cfg.coordinated_window_secs / 60
                ),
                indicators: vec!["repeat_liquidation".into()],
                evidence: Evidence::new()
                    .with("liquidated_user", v.to_string())
                    .with("liquidations", n)
                    .with("notional_usd", usd.round_dp(2)),
                time: now,
            });
        }
        if self.by_user.len() > 50_000 {
            self.by_user
                .retain(|_, w| w.newest().is_some_and(|t| now.millis_since(t) <= horizon));
        }
    }

    fn on_adl(&mut self, f: &Fill, sink: &mut Sink) {
        let e = self
            .adl
            .entry(f.coin.clone())
            .or_insert((f.time, 0, Decimal::ZERO));
        e.1 += 1;
        e.2 += f.notional();
        let (first, n, usd) = *e;
        let mut ev = Evidence::new()
            .with("adl_fills", i64::from(n))
            .with("adl_notional_usd", usd.round_dp(2))
            .with("first_adl_at", first.0)
            .with("px", f.px);
        if let Some(u) = f.liquidation.as_ref().and_then(|l| l.liquidated_user) {
            ev.insert("underwater_account", u.to_string());
        }
        sink.detections.push(Detection {
            direction: None,
            key: IncidentKey::new("auto_deleveraging", &[f.coin.as_str()]),
            detector: "liquidations".into(),
            threat_type: ThreatType::AutoDeleveraging,
            severity: Severity::Critical,
            asset: Some(f.coin.clone()),
            title: format!("{}: auto-deleveraging — {n} ADL fill(s), ${} (the backstop could not absorb the losses)", f.coin, usd.round_dp(0)),
            indicators: vec!["adl".into()],
            evidence: ev,
            time: f.time,
        });
    }
}

impl Detector for LiquidationDetector {
    fn name(&self) -> &'static str {
        "liquidations"
    }

    fn on_event(&mut self, event: &MarketEvent, _state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::Fill(f) if f.is_adl() && self.first_time(f) => {
                Self::record(f, sink);
                self.on_adl(f, sink);
            }
            MarketEvent::Fill(f) if f.is_liquidation() && self.first_time(f) => {
                Self::record(f, sink);
                self.on_liquidation(f, sink);
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Timestamp, _state: &MarketState, _sink: &mut Sink) {
        // Forget ADL streaks that ended an hour ago, so a later ADL is "first" again.
        self.adl
            .retain(|_, (first, _, _)| now.millis_since(*first) < 6 * Timestamp::HOUR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running totals equal a rescan of every fill within the span before the newest time,
    /// for random sequences with late (out-of-order) fills.
    #[test]
    fn sliding_sums_equal_a_rescan() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for span_ms in [0_i64, 10_000, 300_000] {
            let mut w = SlidingSum::default();
            let mut all: Vec<(i64, Decimal)> = Vec::new();
            let mut t = 0_i64;
            for _ in 0..5_000 {
                t += (next() % 4_000) as i64;
                // One fill in ten is up to 20 s late.
                let at = if next() % 10 == 0 {
                    t - (next() % 20_000) as i64
                } else {
                    t
                };
                let v = Decimal::new((next() % 10_000_000) as i64, 2);
                all.push((at, v));
                let (n, sum) = w.add(Timestamp(at), v, span_ms);
                let newest = all.iter().map(|(u, _)| *u).max().unwrap_or(at);
                let inside: Vec<&(i64, Decimal)> =
                    all.iter().filter(|(u, _)| newest - u <= span_ms).collect();
                assert_eq!(n, inside.len(), "count, span {span_ms}");
                assert_eq!(sum, inside.iter().map(|(_, v)| *v).sum::<Decimal>(), "sum");
            }
        }
    }
}
