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

#[derive(Debug, Clone)]
struct Liq {
    time: Timestamp,
    notional: Decimal,
}

/// The liquidation detector.
#[derive(Debug)]
pub struct LiquidationDetector {
    cfg: LiquidationConfig,
    seen: BTreeSet<(Timestamp, Coin, u64)>,
    seen_order: VecDeque<(Timestamp, Coin, u64)>,
    by_coin: BTreeMap<Coin, VecDeque<Liq>>,
    by_user: BTreeMap<Address, VecDeque<Liq>>,
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
        let q = self.by_coin.entry(coin.clone()).or_default();
        q.push_back(Liq {
            time: now,
            notional,
        });
        let horizon =
            i64::from(self.cfg.cascade_window_secs.max(self.cfg.large_window_secs)) * 1000;
        while q
            .front()
            .is_some_and(|l| now.millis_since(l.time) > horizon)
        {
            q.pop_front();
        }
        let large_ms = i64::from(self.cfg.large_window_secs) * 1000;
        let (n10, usd10) = q
            .iter()
            .filter(|l| now.millis_since(l.time) <= large_ms)
            .fold((0usize, Decimal::ZERO), |(n, s), l| (n + 1, s + l.notional));
        let cascade_ms = i64::from(self.cfg.cascade_window_secs) * 1000;
        let (n_c, usd_c) = q
            .iter()
            .filter(|l| now.millis_since(l.time) <= cascade_ms)
            .fold((0usize, Decimal::ZERO), |(n, s), l| (n + 1, s + l.notional));

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
        let q = self.by_user.entry(v).or_default();
        q.push_back(Liq {
            time: now,
            notional,
        });
        let horizon = i64::from(self.cfg.coordinated_window_secs) * 1000;
        while q
            .front()
            .is_some_and(|l| now.millis_since(l.time) > horizon)
        {
            q.pop_front();
        }
        let n = q.len();
        let usd: Decimal = q.iter().map(|l| l.notional).sum();
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
            self.by_user.retain(|_, q| {
                q.back()
                    .is_some_and(|l| now.millis_since(l.time) <= horizon)
            });
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
