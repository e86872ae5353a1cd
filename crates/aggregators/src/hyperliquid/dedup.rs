//! Deduplication of trades and fills across reconnects and REST backfills, by
//! `(time, coin, tid)` (plus the user for fills, since both sides of a trade share a tid).
//!
//! The window is bounded in entries and in time, so memory stays flat on a live feed; keys
//! older than the horizon are forgotten (a backfill never reaches further back than the gap it
//! fills, which is far shorter).

use std::collections::{HashSet, VecDeque};

use kamiyo_core_models::{Address, Coin, Fill, MarketEvent, Timestamp, Trade};

type Key = (i64, Coin, u64, Option<Address>);

/// A bounded set of recently seen trade and fill keys.
#[derive(Debug, Clone)]
pub struct DedupWindow {
    seen: HashSet<Key>,
    order: VecDeque<Key>,
    max_entries: usize,
    horizon_ms: i64,
    newest: i64,
}

impl DedupWindow {
    /// Keeps at most `max_entries` keys and forgets keys older than `horizon_ms` behind the
    /// newest one seen.
    pub fn new(max_entries: usize, horizon_ms: i64) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            max_entries: max_entries.max(1),
            horizon_ms,
            newest: i64::MIN,
        }
    }

    fn trade_key(t: &Trade) -> Key {
        (t.time.0, t.coin.clone(), t.tid, None)
    }

    fn fill_key(f: &Fill) -> Key {
        (
            f.time.0,
            f.coin.clone(),
            f.tid.unwrap_or(f.oid),
            Some(f.user),
        )
    }

    fn admit(&mut self, key: Key) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        self.newest = self.newest.max(key.0);
        self.seen.insert(key.clone());
        self.order.push_back(key);
        while self.order.len() > self.max_entries
            || self
                .order
                .front()
                .is_some_and(|k| k.0 < self.newest.saturating_sub(self.horizon_ms))
        {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// True (and remembered) when the event is new; false for a duplicate trade or fill.
    /// Other events always pass.
    pub fn admit_event(&mut self, e: &MarketEvent) -> bool {
        match e {
            MarketEvent::Trade(t) => self.admit(Self::trade_key(t)),
            MarketEvent::Fill(f) => self.admit(Self::fill_key(f)),
            _ => true,
        }
    }

    /// Newest event time seen.
    pub fn newest(&self) -> Option<Timestamp> {
        (self.newest != i64::MIN).then_some(Timestamp(self.newest))
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_core_models::Side;

    fn trade(time: i64, tid: u64) -> MarketEvent {
        MarketEvent::Trade(Trade {
            coin: Coin::new("ETH").unwrap(),
            side: Side::Buy,
            px: 1.into(),
            sz: 1.into(),
            time: Timestamp(time),
            tid,
            users: None,
        })
    }

    #[test]
    fn duplicates_are_dropped_and_memory_is_bounded() {
        let mut d = DedupWindow::new(100, 60_000);
        assert!(d.admit_event(&trade(1, 7)));
        assert!(!d.admit_event(&trade(1, 7)));
        assert!(d.admit_event(&trade(1, 8)), "same time, other tid");
        assert!(d.admit_event(&trade(2, 7)), "same tid, other time");
        for i in 0..1000 {
            d.admit_event(&trade(10 + i, 1_000 + i as u64));
        }
        assert!(d.len() <= 100);
        // Far newer event expires old keys by time too.
        d.admit_event(&trade(10_000_000, 1));
        assert_eq!(d.len(), 1);
    }
}
