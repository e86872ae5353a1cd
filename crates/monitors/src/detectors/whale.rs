//! Whale liquidation risk. Large positions of watched accounts (discovered from the trade
//! stream and polled for their `clearinghouseState`) are checked against the current mark:
//! the closer to the liquidation price, the higher the severity (2 % medium, 1 % high, 0.3 %
//! critical by default). A margin withdrawal by the same account in the last hour, a collapse
//! of the distance within the hour, or a notional above $100M each raise it one level — the
//! ETH-whale pattern: withdraw profit, and let the Liquidator inherit the position.

use std::collections::{BTreeMap, VecDeque};

use kamiyo_core_models::{
    Address, Coin, Decimal, Detection, Evidence, IncidentKey, LedgerKind, MarketEvent, Position,
    PositionSnapshot, Severity, ThreatType, Timestamp,
};

use super::hlp::record_positions;
use super::{Detector, Sink};
use crate::config::WhaleConfig;
use crate::state::MarketState;

/// The whale detector.
#[derive(Debug)]
pub struct WhaleDetector {
    cfg: WhaleConfig,
    withdrawals: BTreeMap<Address, VecDeque<(Timestamp, Decimal)>>,
    distances: BTreeMap<(Address, Coin), VecDeque<(Timestamp, Decimal)>>,
}

fn raise(s: Severity) -> Severity {
    match s {
        Severity::Info => Severity::Low,
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        Severity::High | Severity::Critical => Severity::Critical,
    }
}

impl WhaleDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: WhaleConfig) -> Self {
        Self {
            cfg,
            withdrawals: BTreeMap::new(),
            distances: BTreeMap::new(),
        }
    }

    /// Distance from `mark` to the liquidation price, percent of mark (positive = safe side).
    pub fn distance_pct(pos: &Position, mark: Decimal) -> Option<Decimal> {
        let liq = pos.liquidation_px?;
        if mark <= Decimal::ZERO || liq <= Decimal::ZERO {
            return None;
        }
        let d = if pos.szi.is_sign_positive() {
            (mark - liq) / mark
        } else {
            (liq - mark) / mark
        };
        Some((d * Decimal::ONE_HUNDRED).round_dp(4))
    }

    fn on_positions(&mut self, p: &PositionSnapshot, state: &MarketState, sink: &mut Sink) {
        let window = i64::from(self.cfg.withdrawal_window_secs) * 1000;
        let recent_withdrawal = self.withdrawals.get(&p.user).and_then(|q| {
            q.iter()
                .rev()
                .find(|(t, _)| p.time.millis_since(*t) <= window && p.time >= *t)
                .copied()
        });
        let mut any = false;
        for pos in &p.positions {
            if pos.szi.is_zero() {
                continue;
            }
            let mark = state
                .mark(&pos.coin)
                .unwrap_or(pos.position_value / pos.szi.abs());
            let notional = (pos.szi.abs() * mark).round_dp(2);
            if notional < self.cfg.min_notional_usd {
                continue;
            }
            any = true;
            let Some(dist) = Self::distance_pct(pos, mark) else {
                continue;
            };
            let hist = self
                .distances
                .entry((p.user, pos.coin.clone()))
                .or_default();
            hist.push_back((p.time, dist));
            while hist
                .front()
                .is_some_and(|(t, _)| p.time.millis_since(*t) > Timestamp::HOUR)
            {
                hist.pop_front();
            }
            let max_1h = hist.iter().map(|(_, d)| *d).max().unwrap_or(dist);
            let collapsed = max_1h > Decimal::ZERO && dist * Decimal::TWO <= max_1h;
            let base = if dist <= self.cfg.critical_pct {
                Severity::Critical
            } else if dist <= self.cfg.high_pct {
                Severity::High
            } else if dist <= self.cfg.medium_pct {
                Severity::Medium
            } else if dist <= self.cfg.medium_pct * Decimal::TWO {
                Severity::Low
            } else {
                continue;
            };
            let mut sev = base;
            let mut indicators = vec![format!("distance_{}pct", dist.round_dp(2))];
            if recent_withdrawal.is_some() {
                sev = raise(sev);
                indicators.push("margin_withdrawal".into());
            }
            if collapsed {
                sev = raise(sev);
                indicators.push("distance_collapsed".into());
            }
            if notional >= self.cfg.huge_notional_usd {
                sev = raise(sev);
                indicators.push("huge_position".into());
            }
            if sev < Severity::Medium {
                continue;
            }
            let mut ev = Evidence::new()
                .with("user", p.user.to_string())
                .with("szi", pos.szi)
                .with("notional_usd", notional)
                .with("mark_px", mark)
                .with("distance_to_liquidation_pct", dist)
                .with("max_distance_1h_pct", max_1h)
                .with("account_value_usd", p.account_value.round_dp(2));
            if let Some(l) = pos.liquidation_px {
                ev.insert("liquidation_px", l);
            }
            if let Some(e) = pos.entry_px {
                ev.insert("entry_px", e);
            }
            if let Some((t, amt)) = recent_withdrawal {
                ev.insert("withdrawal_usd", amt.round_dp(2));
                ev.insert("withdrawal_at", t.0);
            }
            let why = match recent_withdrawal {
                Some((_, amt)) => format!(
                    " after a ${}M withdrawal",
                    (amt / Decimal::from(1_000_000)).round_dp(2)
                ),
                None => String::new(),
            };
            sink.detections.push(Detection {
                protocol: Default::default(),
                direction: None,
                group: None,
                key: IncidentKey::new(
                    "whale_liquidation_risk",
                    &[&p.user.to_string(), pos.coin.as_str()],
                ),
                detector: "whales".into(),
                threat_type: ThreatType::WhaleLiquidationRisk,
                severity: sev,
                asset: Some(pos.coin.clone()),
                title: format!(
                    "{} {} ${}M {} is {}% from liquidation at {}{why}",
                    p.user.short(),
                    pos.coin,
                    (notional / Decimal::from(1_000_000)).round_dp(1),
                    if pos.szi.is_sign_positive() {
                        "long"
                    } else {
                        "short"
                    },
                    dist.round_dp(2),
                    pos.liquidation_px.unwrap_or_default()
                ),
                indicators,
                evidence: ev,
                time: p.time,
            });
        }
        if any {
            record_positions(p, sink);
        }
    }
}

impl Detector for WhaleDetector {
    fn name(&self) -> &'static str {
        "whales"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::Ledger(l) => match &l.kind {
                LedgerKind::Withdraw | LedgerKind::Transfer => {
                    let q = self.withdrawals.entry(l.user).or_default();
                    q.push_back((l.time, l.usdc));
                    while q.len() > 32 {
                        q.pop_front();
                    }
                }
                LedgerKind::Liquidation {
                    liquidated_ntl_pos,
                    account_value,
                } if *liquidated_ntl_pos >= self.cfg.min_notional_usd => {
                    let coins: Vec<String> = self
                        .distances
                        .keys()
                        .filter(|(u, _)| *u == l.user)
                        .map(|(_, c)| c.to_string())
                        .collect();
                    sink.detections.push(Detection {
                        protocol: Default::default(),
                        direction: None,
                        group: None,
                        key: IncidentKey::new(
                            "whale_liquidation_risk",
                            &[
                                &l.user.to_string(),
                                coins.first().map_or("ALL", String::as_str),
                            ],
                        ),
                        detector: "whales".into(),
                        threat_type: ThreatType::WhaleLiquidationRisk,
                        severity: Severity::Critical,
                        asset: coins.first().and_then(|c| Coin::new(c).ok()),
                        title: format!(
                            "{} liquidated: ${}M of positions",
                            l.user.short(),
                            (*liquidated_ntl_pos / Decimal::from(1_000_000)).round_dp(2)
                        ),
                        indicators: vec!["liquidated".into()],
                        evidence: Evidence::new()
                            .with("user", l.user.to_string())
                            .with("liquidated_notional_usd", liquidated_ntl_pos.round_dp(2))
                            .with("account_value_usd", account_value.round_dp(2)),
                        time: l.time,
                    });
                }
                _ => {}
            },
            MarketEvent::Positions(p) if !state.is_hlp(&p.user) => {
                self.on_positions(p, state, sink)
            }
            _ => {}
        }
    }
}
