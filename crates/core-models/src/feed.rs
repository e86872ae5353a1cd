//! Feed freshness: every source is LIVE, STALE or DOWN, and a stale reference never produces
//! a deviation alert — it produces a feed-health event instead.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Freshness of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeedState {
    /// Data arrived within the staleness window.
    Live,
    /// Connected (or polling) but no data within the staleness window.
    Stale,
    /// Disconnected or failing.
    Down,
}

impl FeedState {
    /// Upper-case name as shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "LIVE",
            Self::Stale => "STALE",
            Self::Down => "DOWN",
        }
    }
}

impl fmt::Display for FeedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A feed's state, as reported when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// Feed name: `hyperliquid.ws`, `hyperliquid.rest`, `binance`, `coinbase` …
    pub feed: String,
    /// The new state.
    pub state: FeedState,
    /// When the state changed.
    pub changed_at: Timestamp,
    /// Time of the last data received, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data_at: Option<Timestamp>,
    /// Why (error text, "no data for 75 s" …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Tracks one feed's freshness from data arrivals and errors; pure, driven by the caller's
/// clock, so it behaves the same live and in replay.
#[derive(Debug, Clone)]
pub struct FreshnessTracker {
    feed: String,
    stale_after_ms: i64,
    down_after_ms: i64,
    state: FeedState,
    last_data_at: Option<Timestamp>,
    failing: bool,
    /// Whether a status was ever emitted (a feed that fails before any data must still be
    /// reported once, although it starts DOWN).
    announced: bool,
    /// When the current state began.
    changed_at: Timestamp,
    /// The last data time reported by [`FreshnessTracker::refresh`].
    refreshed: Option<Timestamp>,
}

impl FreshnessTracker {
    /// A tracker that turns STALE after `stale_after_ms` without data and DOWN after
    /// `down_after_ms` without data (or on a reported failure). Starts DOWN until data arrives.
    pub fn new(feed: impl Into<String>, stale_after_ms: i64, down_after_ms: i64) -> Self {
        Self {
            feed: feed.into(),
            stale_after_ms,
            down_after_ms: down_after_ms.max(stale_after_ms),
            state: FeedState::Down,
            last_data_at: None,
            failing: false,
            announced: false,
            changed_at: Timestamp(0),
            refreshed: None,
        }
    }

    /// The current status of a LIVE feed whose last data time moved since the previous call
    /// (or since it turned LIVE): lets readers of the feed board see data times advance
    /// between state changes. `None` otherwise.
    pub fn refresh(&mut self) -> Option<FeedStatus> {
        if self.state != FeedState::Live || self.last_data_at == self.refreshed {
            return None;
        }
        self.refreshed = self.last_data_at;
        Some(FeedStatus {
            feed: self.feed.clone(),
            state: self.state,
            changed_at: self.changed_at,
            last_data_at: self.last_data_at,
            detail: String::new(),
        })
    }

    /// Current state.
    pub fn state(&self) -> FeedState {
        self.state
    }

    /// Feed name.
    pub fn feed(&self) -> &str {
        &self.feed
    }

    /// Time of the last data.
    pub fn last_data_at(&self) -> Option<Timestamp> {
        self.last_data_at
    }

    /// Data arrived at `now`. Returns a status if the state changed.
    pub fn on_data(&mut self, now: Timestamp) -> Option<FeedStatus> {
        self.last_data_at = Some(self.last_data_at.map_or(now, |t| t.max(now)));
        self.failing = false;
        self.transition(FeedState::Live, now, String::new())
    }

    /// The source failed (disconnect, HTTP error). Returns a status if the state changed.
    pub fn on_failure(&mut self, now: Timestamp, detail: &str) -> Option<FeedStatus> {
        self.failing = true;
        self.transition(FeedState::Down, now, detail.to_owned())
    }

    /// Re-evaluates staleness at `now`. Returns a status if the state changed.
    pub fn tick(&mut self, now: Timestamp) -> Option<FeedStatus> {
        let last = self.last_data_at?;
        let age = now.millis_since(last);
        let next = if self.failing || age >= self.down_after_ms {
            FeedState::Down
        } else if age >= self.stale_after_ms {
            FeedState::Stale
        } else {
            FeedState::Live
        };
        self.transition(next, now, format!("no data for {} s", age / 1000))
    }

    fn transition(
        &mut self,
        next: FeedState,
        now: Timestamp,
        detail: String,
    ) -> Option<FeedStatus> {
        // The first status is always reported, even when it is the initial DOWN (a feed that
        // fails before any data must say why).
        if next == self.state && self.announced {
            return None;
        }
        self.state = next;
        self.announced = true;
        self.changed_at = now;
        self.refreshed = self.last_data_at;
        Some(FeedStatus {
            feed: self.feed.clone(),
            state: next,
            changed_at: now,
            last_data_at: self.last_data_at,
            detail: if next == FeedState::Live {
                String::new()
            } else {
                detail
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_feed_refreshes_its_data_time_between_changes() {
        let mut t = FreshnessTracker::new("hyperliquid.ws", 30_000, 120_000);
        assert!(t.refresh().is_none(), "not live");
        let live = t.on_data(Timestamp(1_000)).unwrap();
        assert!(t.refresh().is_none(), "nothing new since it turned live");
        t.on_data(Timestamp(5_000));
        let r = t.refresh().unwrap();
        assert_eq!(r.last_data_at, Some(Timestamp(5_000)));
        assert_eq!(
            r.changed_at, live.changed_at,
            "still the time it turned live"
        );
        assert!(t.refresh().is_none(), "once per new data time");
        assert_eq!(t.tick(Timestamp(40_000)).unwrap().state, FeedState::Stale);
        assert!(t.refresh().is_none(), "only live feeds");
    }

    #[test]
    fn a_feed_failing_before_any_data_is_reported_once() {
        let mut t = FreshnessTracker::new("hyperliquid.rest", 30_000, 120_000);
        let s = t.on_failure(Timestamp(5), "dns error").unwrap();
        assert_eq!((s.state, s.detail.as_str()), (FeedState::Down, "dns error"));
        assert!(t.on_failure(Timestamp(9), "dns error").is_none(), "once");
        assert_eq!(t.on_data(Timestamp(10)).unwrap().state, FeedState::Live);
    }

    #[test]
    fn live_stale_down_transitions() {
        let mut t = FreshnessTracker::new("binance", 60_000, 300_000);
        assert_eq!(t.state(), FeedState::Down);
        assert_eq!(t.on_data(Timestamp(0)).unwrap().state, FeedState::Live);
        assert!(t.on_data(Timestamp(1_000)).is_none(), "no change, no event");
        assert!(
            t.tick(Timestamp(60_000)).is_none(),
            "59 s old is still live"
        );
        assert_eq!(t.tick(Timestamp(61_000)).unwrap().state, FeedState::Stale);
        assert_eq!(t.tick(Timestamp(301_000)).unwrap().state, FeedState::Down);
        assert_eq!(
            t.on_data(Timestamp(302_000)).unwrap().state,
            FeedState::Live
        );
        let s = t
            .on_failure(Timestamp(303_000), "connection reset")
            .unwrap();
        assert_eq!(
            (s.state, s.detail.as_str()),
            (FeedState::Down, "connection reset")
        );
        assert!(
            t.tick(Timestamp(303_500)).is_none(),
            "stays down while failing"
        );
    }
}
