//! Pure aggregation: weighted median of reference venues, per-venue deviations, and the board
//! of feed freshness states. Time and prices are arguments; nothing here does I/O.

pub mod median;

use std::collections::BTreeMap;

use kamiyo_core_models::{FeedState, FeedStatus, FreshnessTracker, Timestamp};

pub use median::{
    ReferenceBook, ReferencePrice, VenueWeights, replica_median, venue_deviations, weighted_median,
};

/// Staleness settings of one feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    /// STALE after this long without data.
    pub stale_after_ms: i64,
    /// DOWN after this long without data.
    pub down_after_ms: i64,
}

impl Default for Staleness {
    fn default() -> Self {
        Self {
            stale_after_ms: 30_000,
            down_after_ms: 120_000,
        }
    }
}

/// Freshness of every feed, keyed by name; changes are returned as [`FeedStatus`] events.
#[derive(Debug, Clone, Default)]
pub struct FeedBoard {
    feeds: BTreeMap<String, FreshnessTracker>,
}

impl FeedBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a feed (starts DOWN until data arrives).
    pub fn register(&mut self, feed: &str, s: Staleness) {
        self.feeds
            .entry(feed.to_owned())
            .or_insert_with(|| FreshnessTracker::new(feed, s.stale_after_ms, s.down_after_ms));
    }

    /// Data arrived on `feed`.
    pub fn on_data(&mut self, feed: &str, now: Timestamp) -> Option<FeedStatus> {
        self.feeds.get_mut(feed)?.on_data(now)
    }

    /// `feed` failed.
    pub fn on_failure(&mut self, feed: &str, now: Timestamp, detail: &str) -> Option<FeedStatus> {
        self.feeds.get_mut(feed)?.on_failure(now, detail)
    }

    /// LIVE feeds whose last data time advanced since the previous call, with their current
    /// status (not a state change: readers see data times move).
    pub fn refresh(&mut self) -> Vec<FeedStatus> {
        self.feeds
            .values_mut()
            .filter_map(FreshnessTracker::refresh)
            .collect()
    }

    /// Re-evaluates every feed at `now`.
    pub fn tick(&mut self, now: Timestamp) -> Vec<FeedStatus> {
        self.feeds
            .values_mut()
            .filter_map(|t| t.tick(now))
            .collect()
    }

    /// The state of `feed`.
    pub fn state(&self, feed: &str) -> Option<FeedState> {
        self.feeds.get(feed).map(FreshnessTracker::state)
    }

    /// Every feed with its state and last data time.
    pub fn snapshot(&self) -> Vec<(String, FeedState, Option<Timestamp>)> {
        self.feeds
            .iter()
            .map(|(k, t)| (k.clone(), t.state(), t.last_data_at()))
            .collect()
    }
}
