//! The HLP vault: losses read from `pnlHistory` (deposits and withdrawals are not losses), the
//! 24 h loss thresholds, drawdown of PnL from its peak, a sigma anomaly on bucketed returns once
//! enough samples exist, the exposure of each child vault's positions against the market's open
//! interest and volume (the JELLY signal), and the Liquidator's losses approaching the point where
//! auto-deleveraging is triggered.

use std::collections::{BTreeMap, VecDeque};

use kamiyo_core_models::units::usd;
use kamiyo_core_models::{
    Address, Decimal, Detection, Evidence, Fill, IncidentKey, MarketEvent, PositionRecord,
    PositionSnapshot, Severity, ThreatType, Timestamp, VaultPoint, VaultSnapshot,
};
use rust_decimal::MathematicalOps;

use super::{Detector, Sink, pct};
use crate::config::HlpConfig;
use crate::state::MarketState;

/// Summary of the vault for the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HlpSummary {
    /// Latest account value.
    pub account_value: Decimal,
    /// Latest cumulative PnL.
    pub pnl: Decimal,
    /// PnL over the last 24 h.
    pub pnl_24h: Decimal,
    /// Drawdown of PnL from its peak, percent of account value at the peak.
    pub drawdown_pct: Decimal,
    /// Annualised Sharpe ratio of bucketed returns (drift over volatility per bucket, each
    /// return weighed by the time it spans; when enough samples).
    pub sharpe: Option<Decimal>,
    /// Return samples.
    pub samples: usize,
}

/// The HLP detector.
#[derive(Debug)]
pub struct HlpDetector {
    cfg: HlpConfig,
    /// time → (pnl, account value), the merged history.
    series: BTreeMap<i64, (Decimal, Decimal)>,
    /// Bucketed returns, each with the buckets it spans: one for back-to-back buckets, more
    /// where the vault's series is sparse (its day series has a point every hour or two, the
    /// older periods merged in at start a day or more apart).
    returns: VecDeque<(Decimal, Decimal)>,
    returns_total: u64,
    /// The bucket of the latest return's end: (index, time, pnl, account value).
    bucket: Option<(i64, i64, Decimal, Decimal)>,
    peak: Option<(Decimal, Decimal)>,
    summary: HlpSummary,
    liq_fills: BTreeMap<Address, VecDeque<(Timestamp, Decimal)>>,
}

impl HlpDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: HlpConfig) -> Self {
        Self {
            cfg,
            series: BTreeMap::new(),
            returns: VecDeque::new(),
            returns_total: 0,
            bucket: None,
            peak: None,
            summary: HlpSummary::default(),
            liq_fills: BTreeMap::new(),
        }
    }

    /// The latest summary.
    pub fn summary(&self) -> &HlpSummary {
        &self.summary
    }

    fn on_vault(&mut self, v: &VaultSnapshot, sink: &mut Sink) {
        let mut new_points = Vec::new();
        let av_at = |t: i64| {
            v.account_value_history
                .iter()
                .find(|p| p.time.0 == t)
                .map(|p| p.value)
        };
        for p in &v.pnl_history {
            if !self.series.contains_key(&p.time.0) {
                new_points.push(p.time.0);
            }
            let av = av_at(p.time.0).unwrap_or(v.account_value);
            self.series.insert(p.time.0, (p.value, av));
        }
        let Some((&t_last, &(pnl, av))) = self.series.iter().next_back() else {
            return;
        };
        for t in &new_points {
            if let Some(&(p, a)) = self.series.get(t) {
                sink.observations.vault_points.push(VaultPoint {
                    protocol: kamiyo_core_models::ProtocolId::default(),
                    vault: v.vault,
                    time: Timestamp(*t),
                    account_value: a,
                    pnl: p,
                });
            }
        }
        // Keep 35 days.
        let cutoff = t_last - 35 * Timestamp::DAY;
        while self
            .series
            .first_key_value()
            .is_some_and(|(t, _)| *t < cutoff)
        {
            self.series.pop_first();
        }
        let returns_before = self.returns_total;
        for t in new_points {
            self.on_point(t);
        }
        let new_return = self.returns_total > returns_before;
        let now = Timestamp(t_last);
        // When the condition was last seen to hold: this poll. The vault's own series moves
        // in steps of an hour or two (the day series has 13 points), so a loss dated by its
        // latest point would look quiet — and resolve — between points while every poll still
        // shows it.
        let seen = v.time.max(now);
        // 24 h PnL: against the last point at or before now − 24 h, else the earliest point.
        let base = self
            .series
            .range(..=t_last - Timestamp::DAY)
            .next_back()
            .or_else(|| self.series.iter().next())
            .map(|(t, (p, a))| (*t, *p, *a));
        let Some((t_base, pnl_base, _)) = base else {
            return;
        };
        let pnl_24h = pnl - pnl_base;
        // Peak of PnL within the retained window.
        let (peak_pnl, peak_av) =
            self.series.values().fold(
                (pnl, av),
                |acc, (p, a)| if *p > acc.0 { (*p, *a) } else { acc },
            );
        self.peak = Some((peak_pnl, peak_av));
        let drawdown_pct = if peak_av > Decimal::ZERO {
            ((peak_pnl - pnl) * Decimal::ONE_HUNDRED / peak_av).round_dp(4)
        } else {
            Decimal::ZERO
        };
        self.summary = HlpSummary {
            account_value: av,
            pnl,
            pnl_24h,
            drawdown_pct,
            sharpe: self.sharpe(),
            samples: self.returns.len(),
        };
        let vault = v.vault.to_string();
        let evidence = || {
            Evidence::new()
                .with("pnl_24h_usd", pnl_24h.round_dp(2))
                .with("pnl_usd", pnl.round_dp(2))
                .with("account_value_usd", av.round_dp(2))
                .with("window_start", t_base)
                .with("drawdown_pct", drawdown_pct)
                .with("peak_pnl_usd", peak_pnl.round_dp(2))
        };
        let loss = -pnl_24h;
        if loss >= self.cfg.loss_high_usd {
            let sev = if loss >= self.cfg.loss_critical_usd {
                Severity::Critical
            } else {
                Severity::High
            };
            sink.detections.push(Detection {
                protocol: Default::default(),
                direction: None,
                group: None,
                key: IncidentKey::new("hlp_loss", &[&vault]),
                detector: "hlp_vault".into(),
                threat_type: ThreatType::HlpLoss,
                severity: sev,
                asset: None,
                title: format!(
                    "HLP lost {} of PnL in {} h (account value ${}M)",
                    usd(loss),
                    (now.millis_since(Timestamp(t_base)) / Timestamp::HOUR).clamp(0, 24),
                    (av / Decimal::from(1_000_000)).round_dp(1)
                ),
                indicators: vec!["pnl_history".into(), "loss_24h".into()],
                evidence: evidence(),
                time: seen,
            });
        }
        if drawdown_pct >= self.cfg.drawdown_high_pct {
            sink.detections.push(Detection {
                protocol: Default::default(),
                direction: None,
                group: None,
                key: IncidentKey::new("hlp_drawdown", &[&vault]),
                detector: "hlp_vault".into(),
                threat_type: ThreatType::HlpDrawdown,
                severity: Severity::High,
                asset: None,
                title: format!("HLP PnL {drawdown_pct}% of account value below its peak"),
                indicators: vec!["drawdown".into()],
                evidence: evidence(),
                time: seen,
            });
        }
        if new_return
            && let Some((z, r)) = self.last_z()
            && self.returns.len() > self.cfg.min_samples as usize
            && z.abs() >= self.cfg.sigma
            && r.is_sign_negative()
        {
            let sev = if z.abs() >= self.cfg.sigma * Decimal::TWO {
                Severity::High
            } else {
                Severity::Medium
            };
            sink.detections.push(Detection {
                protocol: Default::default(),
                direction: None,
                group: None,
                key: IncidentKey::new("hlp_anomaly", &[&vault]),
                detector: "hlp_vault".into(),
                threat_type: ThreatType::HlpAnomaly,
                severity: sev,
                asset: None,
                title: format!(
                    "HLP return {}σ below normal ({} samples)",
                    z.abs().round_dp(1),
                    self.returns.len()
                ),
                indicators: vec![format!("sigma_{}", self.cfg.sigma)],
                evidence: evidence()
                    .with("z_score", z.round_dp(2))
                    .with("bucket_return", r.round_dp(8))
                    .with("samples", self.returns.len()),
                time: now,
            });
        }
    }

    fn on_point(&mut self, t: i64) {
        let Some(&(pnl, av)) = self.series.get(&t) else {
            return;
        };
        let b = i64::from(self.cfg.return_bucket_secs.max(1)) * 1000;
        match self.bucket {
            None => self.bucket = Some((t / b, t, pnl, av)),
            Some((idx, t0, p0, a0)) if t / b > idx => {
                if a0 > Decimal::ZERO {
                    // The bucket is the resolution: a return over less counts as one.
                    let span = (Decimal::from(t - t0) / Decimal::from(b)).max(Decimal::ONE);
                    self.returns.push_back(((pnl - p0) / a0, span));
                    self.returns_total += 1;
                    if self.returns.len() > 4000 {
                        self.returns.pop_front();
                    }
                }
                self.bucket = Some((t / b, t, pnl, av));
            }
            Some(_) => {}
        }
    }

    /// Drift and volatility per bucket of returns spanning different numbers of buckets, as
    /// for a random walk: the drift is the total return over the total span, and each return's
    /// deviation from the drift over its span is scaled by the square root of the span (a
    /// return over four buckets varies twice as much as one over one).
    fn stats(v: impl Iterator<Item = (Decimal, Decimal)> + Clone) -> Option<(Decimal, Decimal)> {
        let n = Decimal::from(v.clone().count());
        if n < Decimal::TWO {
            return None;
        }
        let span: Decimal = v.clone().map(|(_, u)| u).sum();
        if span <= Decimal::ZERO {
            return None;
        }
        let drift = v.clone().map(|(r, _)| r).sum::<Decimal>() / span;
        let var = v
            .map(|(r, u)| {
                let e = r - drift * u;
                e * e / u
            })
            .sum::<Decimal>()
            / (n - Decimal::ONE);
        Some((drift, var.sqrt()?))
    }

    /// z-score of the newest return against the ones before it (over its own span), and the
    /// return.
    fn last_z(&self) -> Option<(Decimal, Decimal)> {
        let n = self.returns.len();
        let (last, span) = *self.returns.back()?;
        let (drift, sd) = Self::stats(self.returns.iter().take(n - 1).copied())?;
        let scale = sd * span.sqrt()?;
        if scale.is_zero() {
            return None;
        }
        Some(((last - drift * span) / scale, last))
    }

    fn sharpe(&self) -> Option<Decimal> {
        if self.returns.len() < self.cfg.min_samples as usize {
            return None;
        }
        let (drift, sd) = Self::stats(self.returns.iter().copied())?;
        if sd.is_zero() {
            return None;
        }
        let per_year =
            Decimal::from(365 * 86_400) / Decimal::from(self.cfg.return_bucket_secs.max(1));
        Some((drift / sd * per_year.sqrt()?).round_dp(3))
    }

    fn on_positions(&mut self, p: &PositionSnapshot, state: &MarketState, sink: &mut Sink) {
        let child = p.user.to_string();
        for pos in &p.positions {
            let mark = state.mark(&pos.coin).unwrap_or_else(|| {
                if pos.szi.is_zero() {
                    Decimal::ZERO
                } else {
                    pos.position_value / pos.szi.abs()
                }
            });
            let notional = (pos.szi.abs() * mark).round_dp(2);
            if notional < self.cfg.exposure_min_usd {
                continue;
            }
            let Some(ctx) = state.ctx(&pos.coin) else {
                continue;
            };
            let oi_usd = ctx.open_interest_usd();
            let Some(oi_share) = pct(notional, oi_usd).map(|x| x + Decimal::ONE_HUNDRED) else {
                continue;
            };
            let vol_share = pct(notional, ctx.day_ntl_vlm).map(|x| x + Decimal::ONE_HUNDRED);
            if oi_share >= self.cfg.exposure_high_oi_pct {
                let sev = if oi_share >= self.cfg.exposure_critical_oi_pct {
                    Severity::Critical
                } else {
                    Severity::High
                };
                let mut ev = Evidence::new()
                    .with("position_notional_usd", notional)
                    .with("szi", pos.szi)
                    .with("open_interest_usd", oi_usd.round_dp(2))
                    .with("share_of_open_interest_pct", oi_share.round_dp(2))
                    .with("day_volume_usd", ctx.day_ntl_vlm.round_dp(2))
                    .with("child_vault", child.clone());
                if let Some(v) = vol_share {
                    ev.insert("share_of_day_volume_pct", v.round_dp(2));
                }
                sink.detections.push(Detection {
                    protocol: Default::default(),
                    direction: None,
                    group: None,
                    key: IncidentKey::new("hlp_exposure", &[&child, pos.coin.as_str()]),
                    detector: "hlp_vault".into(),
                    threat_type: ThreatType::HlpExposure,
                    severity: sev,
                    asset: Some(pos.coin.clone()),
                    title: format!(
                        "HLP child {} holds {}% of {} open interest ({})",
                        p.user.short(),
                        oi_share.round_dp(1),
                        pos.coin,
                        usd(notional)
                    ),
                    indicators: vec!["child_vault_exposure".into()],
                    evidence: ev,
                    time: p.time,
                });
            }
        }
        if state.liquidators.contains(&p.user) {
            self.liquidator_stress(p, sink);
        }
    }

    fn liquidator_stress(&mut self, p: &PositionSnapshot, sink: &mut Sink) {
        let unrealized: Decimal = p.positions.iter().map(|x| x.unrealized_pnl).sum();
        let realized = self
            .liq_fills
            .get(&p.user)
            .map(|q| {
                q.iter()
                    .filter(|(t, _)| p.time.millis_since(*t) <= Timestamp::DAY)
                    .map(|(_, r)| *r)
                    .sum::<Decimal>()
            })
            .unwrap_or_default();
        let loss = -(unrealized + realized);
        let capital = p.account_value - unrealized;
        if loss <= Decimal::ZERO || capital <= Decimal::ZERO {
            return;
        }
        let share = (loss * Decimal::ONE_HUNDRED / capital).round_dp(2);
        if share < self.cfg.liquidator_loss_high_pct {
            return;
        }
        let sev = if share >= self.cfg.liquidator_loss_critical_pct {
            Severity::Critical
        } else {
            Severity::High
        };
        let coins: Vec<&str> = p.positions.iter().map(|x| x.coin.as_str()).collect();
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
            key: IncidentKey::new("liquidator_stress", &[&p.user.to_string()]),
            detector: "hlp_vault".into(),
            threat_type: ThreatType::LiquidatorStress,
            severity: sev,
            asset: p
                .positions
                .iter()
                .max_by_key(|x| x.position_value)
                .map(|x| x.coin.clone()),
            title: format!(
                "HLP Liquidator {} down {} ({share}% of its capital): ADL trigger approaching",
                p.user.short(),
                usd(loss)
            ),
            indicators: vec!["liquidator_loss".into()],
            evidence: Evidence::new()
                .with("loss_usd", loss.round_dp(2))
                .with("unrealized_pnl_usd", unrealized.round_dp(2))
                .with("realized_pnl_24h_usd", realized.round_dp(2))
                .with("capital_usd", capital.round_dp(2))
                .with("loss_share_pct", share)
                .with("positions", coins.join(",")),
            time: p.time,
        });
    }

    fn on_liquidator_fill(&mut self, f: &Fill) {
        let q = self.liq_fills.entry(f.user).or_default();
        q.push_back((f.time, f.closed_pnl));
        while q
            .front()
            .is_some_and(|(t, _)| f.time.millis_since(*t) > Timestamp::DAY)
        {
            q.pop_front();
        }
    }
}

/// Records watched positions for storage.
pub(crate) fn record_positions(p: &PositionSnapshot, sink: &mut Sink) {
    for pos in &p.positions {
        sink.observations.positions.push(PositionRecord {
            protocol: kamiyo_core_models::ProtocolId::default(),
            user: p.user,
            time: p.time,
            coin: pos.coin.clone(),
            szi: pos.szi,
            position_value: pos.position_value,
            liquidation_px: pos.liquidation_px,
            account_value: p.account_value,
        });
    }
}

impl Detector for HlpDetector {
    fn name(&self) -> &'static str {
        "hlp_vault"
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::Vault(v) if v.vault == state.hlp_vault => self.on_vault(v, sink),
            MarketEvent::Positions(p) if state.hlp_children.contains(&p.user) => {
                record_positions(p, sink);
                self.on_positions(p, state, sink);
            }
            MarketEvent::Fill(f) if state.liquidators.contains(&f.user) => {
                self.on_liquidator_fill(f)
            }
            _ => {}
        }
    }
}
