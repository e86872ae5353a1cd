//! Thin-market manipulation: a large mark move within minutes on a market whose 24 h volume is
//! small or whose open interest dwarfs its volume (JELLY, POPCAT); any market moving by the
//! "any market" threshold (XPL); a market at its open-interest cap; and one-sided order-book
//! walls that appear and are pulled.

use std::collections::{BTreeMap, VecDeque};

use kamiyo_core_models::units::usd;
use kamiyo_core_models::{
    AssetCtx, BookLevel, BookSnapshot, Coin, Decimal, Detection, Direction, Evidence, IncidentKey,
    MarketEvent, Severity, ThreatType, Timestamp,
};

use super::{Detector, Sink, pct};
use crate::config::ThinMarketConfig;
use crate::state::MarketState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Bid,
    Ask,
}

#[derive(Debug, Clone)]
struct Wall {
    side: Side,
    px: Decimal,
    notional: Decimal,
    since: Timestamp,
}

/// The thin-market detector.
#[derive(Debug)]
pub struct ThinMarketDetector {
    cfg: ThinMarketConfig,
    marks: BTreeMap<Coin, VecDeque<(Timestamp, Decimal)>>,
    walls: BTreeMap<Coin, Vec<Wall>>,
}

impl ThinMarketDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: ThinMarketConfig) -> Self {
        Self {
            cfg,
            marks: BTreeMap::new(),
            walls: BTreeMap::new(),
        }
    }

    fn is_thin(&self, ctx: &AssetCtx) -> bool {
        ctx.day_ntl_vlm < self.cfg.thin_volume_usd
            || ctx.open_interest_usd() > ctx.day_ntl_vlm * self.cfg.thin_oi_to_volume
    }

    fn on_ctx(&mut self, ctx: &AssetCtx, state: &MarketState, sink: &mut Sink) {
        let window = i64::from(self.cfg.window_secs) * 1000;
        let q = self.marks.entry(ctx.coin.clone()).or_default();
        if q.back().is_some_and(|(t, _)| *t > ctx.time) {
            return;
        }
        q.push_back((ctx.time, ctx.mark_px));
        while q.len() > 2
            && q.get(1)
                .is_some_and(|(t, _)| ctx.time.millis_since(*t) >= window)
        {
            q.pop_front();
        }
        let Some(&(t0, p0)) = q.front() else { return };
        if ctx.time.millis_since(t0) < window / 4 {
            return; // Not enough history for a fair comparison yet.
        }
        let Some(mv) = pct(ctx.mark_px, p0) else {
            return;
        };
        if ctx.open_interest.is_zero() {
            // Nobody holds a position: a move harms no one (a delisted or empty market's mark
            // drifting), and "at the open-interest cap" would contradict the data.
            return;
        }
        let thin = self.is_thin(ctx);
        let at_cap = state.oi_cap.contains(&ctx.coin);
        let sev = if mv.abs() >= self.cfg.any_market_critical_pct
            || (thin && mv.abs() >= self.cfg.move_critical_pct)
        {
            Severity::Critical
        } else if thin && mv.abs() >= self.cfg.move_high_pct {
            Severity::High
        } else {
            return;
        };
        let mins = ctx.time.millis_since(t0) / 60_000;
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction: Some(Direction::of(mv)),
            group: None,
            key: IncidentKey::new("thin_market", &[ctx.coin.as_str()]),
            detector: "thin_market".into(),
            threat_type: ThreatType::ThinMarketManipulation,
            severity: sev,
            asset: Some(ctx.coin.clone()),
            title: if thin {
                format!(
                    "{} mark {}{}% in {mins} min on a thin market",
                    ctx.coin,
                    if mv.is_sign_negative() { "" } else { "+" },
                    mv.round_dp(1),
                )
            } else {
                // Beyond the any-market threshold: a shock whatever the depth, not a thin-book
                // squeeze; the title says what it is.
                format!(
                    "{} mark {}{}% in {mins} min: an extreme move on a liquid market",
                    ctx.coin,
                    if mv.is_sign_negative() { "" } else { "+" },
                    mv.round_dp(1),
                )
            },
            indicators: [
                Some("price_move".to_owned()),
                thin.then(|| "thin_market".into()),
                at_cap.then(|| "at_oi_cap".into()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            evidence: Evidence::new()
                .with("move_pct", mv)
                .with("from_px", p0)
                .with("to_px", ctx.mark_px)
                .with("window_ms", ctx.time.millis_since(t0))
                .with("day_volume_usd", ctx.day_ntl_vlm.round_dp(2))
                .with("open_interest_usd", ctx.open_interest_usd().round_dp(2))
                .with("thin", thin)
                .with("at_oi_cap", at_cap),
            time: ctx.time,
        });
    }

    fn on_oi_cap(&mut self, coins: &[Coin], t: Timestamp, state: &MarketState, sink: &mut Sink) {
        for c in coins {
            let ctx = state.ctx(c);
            let thin = ctx.is_some_and(|x| self.is_thin(x));
            let moving = self
                .marks
                .get(c)
                .and_then(|q| Some((q.front()?.1, q.back()?.1)))
                .and_then(|(a, b)| pct(b, a))
                .is_some_and(|m| m.abs() >= self.cfg.move_high_pct);
            let sev = if thin && moving {
                Severity::High
            } else {
                Severity::Medium
            };
            let mut ev = Evidence::new().with("thin", thin).with("moving", moving);
            if let Some(x) = ctx {
                ev.insert("open_interest", x.open_interest);
                ev.insert("open_interest_usd", x.open_interest_usd().round_dp(2));
            }
            sink.detections.push(Detection {
                protocol: Default::default(),
                direction: None,
                group: None,
                key: IncidentKey::new("oi_cap", &[c.as_str()]),
                detector: "thin_market".into(),
                threat_type: ThreatType::OpenInterestCap,
                severity: sev,
                asset: Some(c.clone()),
                title: format!(
                    "{c} is at its open-interest cap{}",
                    if moving { " while its price runs" } else { "" }
                ),
                indicators: vec!["perps_at_open_interest_cap".into()],
                evidence: ev,
                time: t,
            });
        }
    }

    fn walls_of(&self, side: Side, levels: &[BookLevel]) -> Vec<(Decimal, Decimal)> {
        if levels.len() < 3 {
            return Vec::new();
        }
        let mut notionals: Vec<Decimal> = levels.iter().map(|l| l.px * l.sz).collect();
        notionals.sort();
        let median = notionals[notionals.len() / 2];
        let _ = side;
        levels
            .iter()
            .map(|l| (l.px, l.px * l.sz))
            .filter(|(_, n)| {
                *n >= self.cfg.wall_min_usd
                    && median > Decimal::ZERO
                    && *n >= median * self.cfg.wall_multiple
            })
            .collect()
    }

    fn on_book(&mut self, b: &BookSnapshot, sink: &mut Sink) {
        let mut current: Vec<(Side, Decimal, Decimal)> = Vec::new();
        current.extend(
            self.walls_of(Side::Bid, &b.bids)
                .into_iter()
                .map(|(p, n)| (Side::Bid, p, n)),
        );
        current.extend(
            self.walls_of(Side::Ask, &b.asks)
                .into_iter()
                .map(|(p, n)| (Side::Ask, p, n)),
        );
        let pull_ms = i64::from(self.cfg.wall_pull_secs) * 1000;
        let known = self.walls.entry(b.coin.clone()).or_default();
        // Walls that vanished.
        let mut pulled = Vec::new();
        known.retain(|w| {
            let still = current.iter().any(|(s, p, _)| *s == w.side && *p == w.px);
            if !still && b.time.millis_since(w.since) <= pull_ms {
                pulled.push(w.clone());
            }
            still
        });
        // New walls.
        let one_sided = current.iter().all(|(s, _, _)| *s == Side::Bid)
            || current.iter().all(|(s, _, _)| *s == Side::Ask);
        for (s, p, n) in &current {
            if !known.iter().any(|w| w.side == *s && w.px == *p) {
                known.push(Wall {
                    side: *s,
                    px: *p,
                    notional: *n,
                    since: b.time,
                });
                if one_sided {
                    sink.detections.push(Detection {
                        protocol: Default::default(),
                        direction: None,
                        group: None,
                        key: IncidentKey::new("book_wall", &[b.coin.as_str()]),
                        detector: "thin_market".into(),
                        threat_type: ThreatType::BookWall,
                        severity: Severity::Medium,
                        asset: Some(b.coin.clone()),
                        title: format!(
                            "{}: one-sided {} wall of {} at {}",
                            b.coin,
                            if *s == Side::Bid { "bid" } else { "ask" },
                            usd(*n),
                            p
                        ),
                        indicators: vec!["wall_appeared".into()],
                        evidence: Evidence::new()
                            .with("px", *p)
                            .with("notional_usd", n.round_dp(2))
                            .with("side", if *s == Side::Bid { "bid" } else { "ask" }),
                        time: b.time,
                    });
                }
            }
        }
        for w in pulled {
            sink.detections.push(Detection {
                protocol: Default::default(),
                direction: None,
                group: None,
                key: IncidentKey::new("book_wall", &[b.coin.as_str()]),
                detector: "thin_market".into(),
                threat_type: ThreatType::BookWall,
                severity: Severity::High,
                asset: Some(b.coin.clone()),
                title: format!(
                    "{}: {} {} wall at {} pulled after {} s",
                    b.coin,
                    usd(w.notional),
                    if w.side == Side::Bid { "bid" } else { "ask" },
                    w.px,
                    b.time.millis_since(w.since) / 1000
                ),
                indicators: vec!["wall_pulled".into()],
                evidence: Evidence::new()
                    .with("px", w.px)
                    .with("notional_usd", w.notional.round_dp(2))
                    .with("lived_ms", b.time.millis_since(w.since)),
                time: b.time,
            });
        }
    }
}

impl Detector for ThinMarketDetector {
    fn name(&self) -> &'static str {
        "thin_market"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::AssetCtx(c) => self.on_ctx(c, state, sink),
            MarketEvent::OiCap(o) => self.on_oi_cap(&o.coins, o.time, state, sink),
            MarketEvent::Book(b) => self.on_book(b, sink),
            _ => {}
        }
    }
}
