//! Oracle deviation: `oraclePx` against the weighted median of the reference venues (the
//! oracle itself failing), and `markPx` (optionally `midPx`) against `oraclePx` (the book being
//! pushed, as in JELLY, XPL and POPCAT). A deviation fires only when it has held for the
//! configured duration; warn ≥ 0.5 % is high, critical ≥ 1 % is critical, per-asset overrides
//! apply. A reference that is stale or whose feed is down is left out of the median; with no
//! fresh reference the oracle check pauses (the feed detector reports why) instead of firing.

use std::collections::BTreeMap;

use kamiyo_core_models::{
    AssetCtx, Coin, Decimal, Detection, DeviationKind, DeviationSample, Evidence, IncidentKey,
    MarketEvent, Severity, ThreatType, Timestamp,
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

    #[expect(
        clippy::too_many_arguments,
        reason = "one evaluation with all its inputs, called from two places"
    )]
    fn evaluate(
        &mut self,
        ctx: &AssetCtx,
        kind: DeviationKind,
        value: Decimal,
        reference: Decimal,
        evidence: Evidence,
        venue_names: &[String],
        sink: &mut Sink,
        t: Timestamp,
    ) {
        let Some(dev) = pct(value, reference) else {
            return;
        };
        let th = self.cfg.for_coin(&ctx.coin).clone();
        let track = self.tracks.entry((ctx.coin.clone(), kind)).or_default();
        let (level, held) = track.sustain.update(
            dev,
            t,
            th.warn_pct,
            th.critical_pct,
            i64::from(th.sustain_secs) * 1000,
        );
        let level_changed = track.last_level != Some(level);
        if level_changed
            || track
                .last_sample
                .is_none_or(|s| t.millis_since(s) >= SAMPLE_EVERY_MS)
        {
            track.last_sample = Some(t);
            sink.observations.deviations.push(DeviationSample {
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
        let mut indicators = vec![
            format!("sustained_{}s", held / 1000),
            format!(
                "threshold_{}pct",
                if level == Level::Critical {
                    th.critical_pct
                } else {
                    th.warn_pct
                }
            ),
        ];
        indicators.extend(venue_names.iter().map(|v| format!("venue:{v}")));
        let evidence = evidence
            .with("deviation_pct", dev)
            .with("value", value)
            .with("reference", reference)
            .with("sustained_ms", held)
            .with("warn_pct", th.warn_pct)
            .with("critical_pct", th.critical_pct);
        let venues = if venue_names.is_empty() {
            String::new()
        } else {
            format!(" (diverging: {})", venue_names.join(", "))
        };
        sink.detections.push(Detection {
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
        let t = ctx.time;
        match state.reference(&ctx.coin) {
            Some(r) if !r.used.is_empty() => {
                let mut ev = Evidence::new().with("reference_venues", r.used.len());
                let th = self.cfg.for_coin(&ctx.coin).warn_pct;
                let mut diverging = Vec::new();
                for q in &r.used {
                    if let Some(dv) = pct(ctx.oracle_px, q.price) {
                        ev.insert(&format!("oracle_vs_{}_pct", q.venue), dv);
                        if dv.abs() >= th {
                            diverging.push(q.venue.to_string());
                        }
                    }
                }
                if !r.stale.is_empty() {
                    ev.insert(
                        "stale_venues",
                        r.stale
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                }
                self.evaluate(
                    ctx,
                    DeviationKind::OracleVsReference,
                    ctx.oracle_px,
                    r.price,
                    ev,
                    &diverging,
                    sink,
                    t,
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
        let ev = Evidence::new()
            .with("oracle_px", ctx.oracle_px)
            .with("mark_px", ctx.mark_px);
        self.evaluate(
            ctx,
            DeviationKind::MarkVsOracle,
            ctx.mark_px,
            ctx.oracle_px,
            ev,
            &[],
            sink,
            t,
        );
        if self.cfg.check_mid
            && let Some(mid) = ctx.mid_px
        {
            let ev = Evidence::new()
                .with("oracle_px", ctx.oracle_px)
                .with("mid_px", mid);
            self.evaluate(
                ctx,
                DeviationKind::MidVsOracle,
                mid,
                ctx.oracle_px,
                ev,
                &[],
                sink,
                t,
            );
        }
    }
}
