//! Detectors: one module per risk. A detector is a deterministic state machine fed with events
//! and ticks in event time; it never reads a clock, never does I/O and never sends an alert.
//! It pushes [`Detection`]s (and, for storage, observations) into the engine's buffers.

pub mod anomaly;
pub mod bars;
pub mod feed;
pub mod forecast;
pub mod hlp;
pub mod liquidation;
pub mod oracle;
pub mod thin_market;
pub mod venues;
pub mod whale;

use kamiyo_core_models::{
    Decimal, Detection, DeviationSample, LiquidationRecord, MarketBar, MarketEvent, PositionRecord,
    ProtocolId, Timestamp, VaultPoint, cmp_decimal,
};

use crate::state::MarketState;

/// What detectors record for storage besides detections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Deviation samples (throttled by the oracle detector).
    pub deviations: Vec<DeviationSample>,
    /// Liquidation and ADL fills.
    pub liquidations: Vec<LiquidationRecord>,
    /// HLP vault history.
    pub vault_points: Vec<VaultPoint>,
    /// Positions of watched accounts.
    pub positions: Vec<PositionRecord>,
    /// Closed market bars.
    pub bars: Vec<MarketBar>,
}

impl Observations {
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.deviations.is_empty()
            && self.liquidations.is_empty()
            && self.vault_points.is_empty()
            && self.positions.is_empty()
            && self.bars.is_empty()
    }

    /// Appends `other`'s records to these.
    pub fn append(&mut self, other: Self) {
        let Self {
            deviations,
            liquidations,
            vault_points,
            positions,
            bars,
        } = other;
        self.deviations.extend(deviations);
        self.liquidations.extend(liquidations);
        self.vault_points.extend(vault_points);
        self.positions.extend(positions);
        self.bars.extend(bars);
    }

    /// Names `protocol` on every record (detectors leave the default; the engine stamps its
    /// own protocol on what they wrote).
    pub fn stamp(&mut self, protocol: &ProtocolId) {
        let Self {
            deviations,
            liquidations,
            vault_points,
            positions,
            bars,
        } = self;
        deviations
            .iter_mut()
            .for_each(|r| r.protocol.clone_from(protocol));
        liquidations
            .iter_mut()
            .for_each(|r| r.protocol.clone_from(protocol));
        vault_points
            .iter_mut()
            .for_each(|r| r.protocol.clone_from(protocol));
        positions
            .iter_mut()
            .for_each(|r| r.protocol.clone_from(protocol));
        bars.iter_mut()
            .for_each(|r| r.protocol.clone_from(protocol));
    }

    /// Moves everything out, leaving this empty.
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// Output buffers a detector writes to.
#[derive(Debug, Default)]
pub struct Sink {
    /// Detections.
    pub detections: Vec<Detection>,
    /// Observations for storage.
    pub observations: Observations,
}

/// A detector. Implement this to add your own; the built-in ones are in this module.
pub trait Detector: Send {
    /// Name, used in incident keys and metrics (`oracle_deviation`, `hlp_vault` …).
    fn name(&self) -> &'static str;

    /// Observes one event. The market state already includes it.
    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink);

    /// Re-evaluates time-based conditions at event time `now` (called at least once per second
    /// of event time while events flow, and by the live runner's timer).
    fn on_tick(&mut self, _now: Timestamp, _state: &MarketState, _sink: &mut Sink) {}

    /// The detector as `Any`, for callers that read a specific detector's summary through the
    /// engine (the HLP summary); `None` by default.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// `(a − b) / b × 100`, rounded to 4 decimals; `None` when `b` is not positive.
pub fn pct(a: Decimal, b: Decimal) -> Option<Decimal> {
    kamiyo_core_models::deviation_pct_4dp(a, b)
}

/// Tracks how long a signed deviation has stayed beyond two thresholds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sustain {
    warn_since: Option<Timestamp>,
    crit_since: Option<Timestamp>,
    sign: i8,
}

/// The level a sustained deviation has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Below the warning threshold, or not yet sustained.
    None,
    /// Beyond the warning threshold for the sustain duration.
    Warn,
    /// Beyond the critical threshold for the sustain duration.
    Critical,
}

impl Sustain {
    /// Feeds a deviation (percent) at `t`; returns the sustained level and for how long the
    /// warning condition has held (ms). A change of sign restarts the clock.
    pub fn update(
        &mut self,
        dev: Decimal,
        t: Timestamp,
        warn: Decimal,
        crit: Decimal,
        sustain_ms: i64,
    ) -> (Level, i64) {
        let a = dev.abs();
        let sign = if dev.is_sign_negative() { -1 } else { 1 };
        // Deviations carry 4 decimals, thresholds usually fewer: compare without rescaling.
        let below_warn = cmp_decimal(&a, &warn).is_lt();
        if below_warn || (self.sign != 0 && sign != self.sign) {
            *self = Self::default();
            if below_warn {
                return (Level::None, 0);
            }
        }
        self.sign = sign;
        let ws = *self.warn_since.get_or_insert(t);
        if cmp_decimal(&a, &crit).is_ge() {
            self.crit_since.get_or_insert(t);
        } else {
            self.crit_since = None;
        }
        let held = t.millis_since(ws);
        let level = match self.crit_since {
            Some(cs) if t.millis_since(cs) >= sustain_ms => Level::Critical,
            _ if held >= sustain_ms => Level::Warn,
            _ => Level::None,
        };
        (level, held)
    }

    /// Forgets the state (data became unusable).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn sustain_requires_the_full_duration_at_each_level() {
        let mut s = Sustain::default();
        let (w, c, sus) = (d("0.5"), d("1"), 60_000);
        assert_eq!(
            s.update(d("0.49"), Timestamp(0), w, c, sus).0,
            Level::None,
            "below threshold"
        );
        assert_eq!(
            s.update(d("0.5"), Timestamp(1_000), w, c, sus).0,
            Level::None,
            "at threshold, not yet sustained"
        );
        assert_eq!(
            s.update(d("0.6"), Timestamp(60_999), w, c, sus).0,
            Level::None
        );
        assert_eq!(
            s.update(d("0.6"), Timestamp(61_000), w, c, sus),
            (Level::Warn, 60_000)
        );
        assert_eq!(
            s.update(d("1.2"), Timestamp(62_000), w, c, sus).0,
            Level::Warn,
            "critical must be sustained too"
        );
        assert_eq!(
            s.update(d("1.2"), Timestamp(122_000), w, c, sus).0,
            Level::Critical
        );
        assert_eq!(
            s.update(d("0.3"), Timestamp(123_000), w, c, sus).0,
            Level::None,
            "drops reset"
        );
        assert_eq!(
            s.update(d("0.7"), Timestamp(124_000), w, c, sus).0,
            Level::None,
            "the clock restarted"
        );
        // A sign flip restarts the clock as well.
        assert_eq!(
            s.update(d("-0.7"), Timestamp(200_000), w, c, sus).0,
            Level::None
        );
        assert_eq!(
            s.update(d("-0.7"), Timestamp(260_000), w, c, sus).0,
            Level::Warn
        );
    }
}
