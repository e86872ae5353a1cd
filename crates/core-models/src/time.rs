//! Time: millisecond timestamps (Hyperliquid's unit) and the injected [`Clock`].
//!
//! Detectors never read the wall clock. They receive a [`Clock`], which is the system clock in
//! production and a [`ManualClock`] driven by event time during replays and tests, so the same
//! inputs always give the same detections.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// One second in milliseconds.
    pub const SECOND: i64 = 1_000;
    /// One minute in milliseconds.
    pub const MINUTE: i64 = 60_000;
    /// One hour in milliseconds.
    pub const HOUR: i64 = 3_600_000;
    /// One day in milliseconds.
    pub const DAY: i64 = 86_400_000;

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// `self + ms` (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// `self - other` in milliseconds (saturating).
    pub const fn millis_since(self, other: Timestamp) -> i64 {
        self.0.saturating_sub(other.0)
    }

    /// RFC 3339 with millisecond precision, e.g. `2025-03-12T13:40:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => format!("{}ms", self.0),
        }
    }

    /// Parses RFC 3339 (`2025-03-12T13:40:00Z`) or a bare integer of milliseconds.
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(ms) = s.parse::<i64>() {
            return Some(Self(ms));
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|dt| Self(dt.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

/// A source of "now". Injected everywhere time matters.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }
}

/// A clock set by hand: by tests, and by replays, which advance it to each event's time.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(AtomicI64::new(t.0))
    }

    /// Sets the time. Moving backwards is allowed (out-of-order tests need it).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::Release);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::AcqRel);
    }

    /// Moves to `t` only if it is later than the current time, and returns the resulting time.
    pub fn advance_to(&self, t: Timestamp) -> Timestamp {
        Timestamp(self.0.fetch_max(t.0, Ordering::AcqRel).max(t.0))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_roundtrip() {
        let t = Timestamp(1_741_786_800_000);
        assert_eq!(t.to_rfc3339(), "2025-03-12T13:40:00.000Z");
        assert_eq!(Timestamp::parse("2025-03-12T13:40:00Z"), Some(t));
        assert_eq!(Timestamp::parse("1741786800000"), Some(t));
        assert_eq!(Timestamp::parse("yesterday"), None);
    }

    #[test]
    fn manual_clock_only_advances_with_advance_to() {
        let c = ManualClock::new(Timestamp(10));
        assert_eq!(c.advance_to(Timestamp(5)), Timestamp(10));
        assert_eq!(c.advance_to(Timestamp(20)), Timestamp(20));
        c.advance(5);
        assert_eq!(c.now(), Timestamp(25));
    }
}
