//! An exchange-time clock: the latest time the exchange reported (fill, trade and position
//! timestamps, `clearinghouseState.time`), extrapolated by wall time between reports. Against
//! the real exchange it tracks wall time; against the loopback simulator replaying the past at
//! N× speed it tracks the scenario's time, so receipt stamps, freshness and incident
//! lifecycles stay on one time base.

use std::sync::Mutex;
use std::time::Instant;

use kamiyo_core_models::{Clock, Timestamp};

/// See the module documentation.
#[derive(Debug)]
pub struct ExchangeClock {
    state: Mutex<(i64, Instant)>,
    speed: f64,
    max_extrapolation_ms: f64,
}

impl ExchangeClock {
    /// A clock starting at `start`, extrapolating at `speed` exchange-ms per wall-ms, at most
    /// `max_extrapolation_ms` of wall time past the last report.
    pub fn new(start: Timestamp, speed: f64, max_extrapolation_ms: f64) -> Self {
        Self {
            state: Mutex::new((start.0, Instant::now())),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            max_extrapolation_ms,
        }
    }

    /// Records a time the exchange reported; the clock jumps forward to it, never back.
    pub fn observe(&self, t: Timestamp) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.0 > Self::extrapolate(*s, self.speed, self.max_extrapolation_ms) {
            *s = (t.0, Instant::now());
        }
    }

    fn extrapolate((base, at): (i64, Instant), speed: f64, max_ms: f64) -> i64 {
        let wall_ms = (at.elapsed().as_secs_f64() * 1000.0).min(max_ms);
        base + (wall_ms * speed) as i64
    }
}

impl Clock for ExchangeClock {
    fn now(&self) -> Timestamp {
        let s = *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Timestamp(Self::extrapolate(s, self.speed, self.max_extrapolation_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_forward_never_back() {
        let c = ExchangeClock::new(Timestamp(1_000), 1.0, 2_000.0);
        assert!(c.now() >= Timestamp(1_000));
        c.observe(Timestamp(50_000));
        assert!(c.now() >= Timestamp(50_000));
        c.observe(Timestamp(10_000));
        assert!(
            c.now() >= Timestamp(50_000),
            "an older report does not rewind"
        );
    }
}
