//! Oracle deviation: `oraclePx` against the weighted median of the reference venues (the
//! oracle itself failing), and `markPx` (optionally `midPx`) against `oraclePx` (the book being
//! pushed, as in JELLY, XPL and POPCAT). A deviation fires only when it has held for the
//! configured duration; warn ≥ 0.5 % is high, critical ≥ 1 % is critical, per-asset overrides
//! apply. A reference that is stale or whose feed is down is left out of the median; with no
//! fresh reference the oracle check pauses (the feed detector reports why) instead of firing.

use std::collections::BTreeMap;

use kamiyo_core_models::{
    AssetCtx, Coin, Decimal, Detection, DeviationKind, DeviationSample, Direction, Evidence,
    IncidentKey, MarketEvent, Severity, ThreatType, Timestamp,
};

use super::{Detector, Level, Sink, Sustain, pct};
use crate::config::OracleConfig;
use crate::state::MarketState;

/// Samples are stored at most once per this interval per (coin, kind), plus on every change of
/// level.
const SAMPLE_EVERY_MS: i64 = 60_000;

#[derive(Debug, Default)]
struct Track {
    sustain: Sustain,
    last_sample: Option<Timestamp>,
    last_level: Option<Level>,
}

/// The oracle detector.
#[derive(Debug)]
pub struct OracleDetector {
    cfg: OracleConfig,
    tracks: BTreeMap<(Coin, DeviationKind), Track>,
}

impl OracleDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: OracleConfig) -> Self {
        Self {
            cfg,
            tracks: BTreeMap::new(),
        }
    }

    /// Updates the sustain state of one comparison; builds evidence (costly) only when firing.
    fn evaluate(
        &mut self,
        ctx: &AssetCtx,
        kind: DeviationKind,
        value: Decimal,
        reference: Decimal,
        sink: &mut Sink,
        details: impl FnOnce(&Self) -> (Evidence, Vec<String>),
    ) {
        let t = ctx.time;
        let Some(dev) = pct(value, reference) else {
            return;
        };
        let th = self.cfg.for_coin(&ctx.coin);
        let (warn, crit, sustain_ms) = (
            th.warn_pct,
            th.critical_pct,
            i64::from(th.sustain_secs) * 1000,
        );
        let track = self.tracks.entry((ctx.coin.clone(), kind)).or_default();
        let (level, held) = track.sustain.update(dev, t, warn, crit, sustain_ms);
        let level_changed = track.last_level != Some(level);
        if level_changed
            || track
                .last_sample
                .is_none_or(|s| t.millis_since(s) >= SAMPLE_EVERY_MS)
        {
            track.last_sample = Some(t);
            sink.observations.deviations.push(DeviationSample {
                protocol: kamiyo_core_models::ProtocolId::default(),
                coin: ctx.coin.clone(),
                time: t,
                kind,
                venue: None,
                value,
                reference,
                deviation_pct: dev,
            });
        }
        track.last_level = Some(level);
        let severity = match level {
            Level::None => return,
            Level::Warn => Severity::High,
            Level::Critical => Severity::Critical,
        };
        let (evidence, venue_names) = details(self);
        let (detector, threat, what, against) = match kind {
            DeviationKind::OracleVsReference => (
                "oracle_deviation",
                ThreatType::OracleDeviation,
                "oracle",
                "the reference median",
            ),
            DeviationKind::MarkVsOracle => (
                "mark_deviation",
                ThreatType::MarkManipulation,
                "mark",
                "the oracle",
            ),
            DeviationKind::MidVsOracle => (
                "mid_deviation",
                ThreatType::MarkManipulation,
                "mid",
                "the oracle",
            ),
        };
        let dir = if dev.is_sign_negative() {
            "below"
        } else {
            "above"
        };
        let threshold = if level == Level::Critical { crit } else { warn };
        let mut indicators = vec![
            format!("sustained_{}s", held / 1000),
            format!("threshold_{threshold}pct"),
        ];
        indicators.extend(venue_names.iter().map(|v| format!("venue:{v}")));
        let evidence = evidence
            .with("deviation_pct", dev)
            .with("value", value)
            .with("reference", reference)
            .with("sustained_ms", held)
            .with("warn_pct", warn)
            .with("critical_pct", crit);
        let venues = if venue_names.is_empty() {
            String::new()
        } else {
            format!(" (diverging: {})", venue_names.join(", "))
        };
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction: Some(Direction::of(dev)),
            group: None,
            key: IncidentKey::new(detector, &[ctx.coin.as_str()]),
            detector: detector.into(),
            threat_type: threat,
            severity,
            asset: Some(ctx.coin.clone()),
            title: format!(
                "{} {what} {}% {dir} {against} for {} s{venues}",
                ctx.coin,
                dev.abs().normalize(),
                held / 1000
            ),
            indicators,
            evidence,
            time: t,
        });
    }
}

impl Detector for OracleDetector {
    fn name(&self) -> &'static str {
        "oracle"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        let MarketEvent::AssetCtx(ctx) = event else {
            return;
        };
        if state.ctx(&ctx.coin).is_some_and(|c| c.time > ctx.time) {
            return; // An out-of-order update: the newer context was already evaluated.
        }
        match state.reference_median(&ctx.coin) {
            Some((median, n)) if n > 0 => {
                self.evaluate(
                    ctx,
                    DeviationKind::OracleVsReference,
                    ctx.oracle_px,
                    median,
                    sink,
                    |me| {
                        let mut ev = Evidence::new().with("reference_venues", n);
                        let mut diverging = Vec::new();
                        if let Some(r) = state.reference(&ctx.coin) {
                            let th = me.cfg.for_coin(&ctx.coin).warn_pct;
                            for q in &r.used {
                                if let Some(dv) = pct(ctx.oracle_px, q.price) {
                                    ev.insert(&format!("oracle_vs_{}_pct", q.venue), dv);
                                    if dv.abs() >= th {
                                        diverging.push(q.venue.to_string());
                                    }
                                }
                            }
                            // Independent venues (not oracle inputs) are reported beside the
                            // replica, never mixed into it.
                            for q in &r.independent {
                                if let Some(dv) = pct(ctx.oracle_px, q.price) {
                                    ev.insert(&format!("oracle_vs_{}_pct", q.venue), dv);
                                }
                            }
                            if !r.independent.is_empty() {
                                let ind: Vec<String> =
                                    r.independent.iter().map(|q| q.venue.to_string()).collect();
                                ev.insert("independent_venues", ind.join(","));
                            }
                            ev.insert(
                                "reference",
                                if r.replica {
                                    "oracle replica"
                                } else {
                                    "independent venues only (no oracle input fresh)"
                                },
                            );
                            if !r.stale.is_empty() {
                                let stale: Vec<String> =
                                    r.stale.iter().map(ToString::to_string).collect();
                                ev.insert("stale_venues", stale.join(","));
                            }
                        }
                        (ev, diverging)
                    },
                );
            }
            _ => {
                // No fresh reference: pause (never alert on stale data).
                if let Some(tr) = self
                    .tracks
                    .get_mut(&(ctx.coin.clone(), DeviationKind::OracleVsReference))
                {
                    tr.sustain.reset();
                }
            }
        }
        self.evaluate(
            ctx,
            DeviationKind::MarkVsOracle,
            ctx.mark_px,
            ctx.oracle_px,
            sink,
            |_| {
                (
                    Evidence::new()
                        .with("oracle_px", ctx.oracle_px)
                        .with("mark_px", ctx.mark_px),
                    Vec::new(),
                )
            },
        );
        if self.cfg.check_mid
            && let Some(mid) = ctx.mid_px
        {
            self.evaluate(
                ctx,
                DeviationKind::MidVsOracle,
                mid,
                ctx.oracle_px,
                sink,
                |_| {
                    (
                        Evidence::new()
                            .with("oracle_px", ctx.oracle_px)
                            .with("mid_px", mid),
                        Vec::new(),
                    )
                },
            );
        }
    }
}
