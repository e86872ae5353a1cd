//! Whale discovery. Hyperliquid has no "all positions" endpoint, so the largest traders are
//! found from the public trade stream's `users` field (plus pinned addresses such as the HLP
//! children), ranked by recent traded notional, and the top few are polled for their
//! `clearinghouseState` within the REST budget. Pure bookkeeping; the polling lives in `live`.

use std::collections::{BTreeSet, HashMap, VecDeque};

use kamiyo_core_models::{Address, Decimal, Timestamp, Trade};

/// Ranks addresses by traded notional over a sliding window.
#[derive(Debug, Clone)]
pub struct WhaleTracker {
    window_ms: i64,
    max_candidates: usize,
    trades: VecDeque<(i64, Address, Decimal)>,
    totals: HashMap<Address, Decimal>,
    pinned: BTreeSet<Address>,
}

impl WhaleTracker {
    /// A tracker over `window_ms` that remembers at most `max_candidates` addresses.
    pub fn new(window_ms: i64, max_candidates: usize) -> Self {
        Self {
            window_ms,
            max_candidates: max_candidates.max(1),
            trades: VecDeque::new(),
            totals: HashMap::new(),
            pinned: BTreeSet::new(),
        }
    }

    /// Always watch `addr` (HLP children, a user's own watch list).
    pub fn pin(&mut self, addr: Address) {
        self.pinned.insert(addr);
    }

    /// Counts a trade for both counterparties.
    pub fn observe(&mut self, t: &Trade) {
        let Some(users) = t.users else { return };
        let n = t.notional().abs();
        for u in users {
            self.trades.push_back((t.time.0, u, n));
            *self.totals.entry(u).or_default() += n;
        }
        self.expire(t.time);
        if self.totals.len() > self.max_candidates * 4 {
            // Keep memory flat: drop the smallest half of unpinned candidates.
            let mut v: Vec<(Address, Decimal)> =
                self.totals.iter().map(|(a, d)| (*a, *d)).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let keep: BTreeSet<Address> = v
                .iter()
                .take(self.max_candidates * 2)
                .map(|(a, _)| *a)
                .collect();
            self.totals.retain(|a, _| keep.contains(a));
            self.trades.retain(|(_, a, _)| keep.contains(a));
        }
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(t, a, n)) = self.trades.front() {
            if now.0 - t <= self.window_ms {
                break;
            }
            self.trades.pop_front();
            if let Some(total) = self.totals.get_mut(&a) {
                *total -= n;
                if *total <= Decimal::ZERO {
                    self.totals.remove(&a);
                }
            }
        }
    }

    /// The `n` addresses to poll: pinned ones first, then the largest recent traders.
    pub fn top(&self, n: usize) -> Vec<Address> {
        let mut out: Vec<Address> = self.pinned.iter().copied().take(n).collect();
        let mut v: Vec<(Address, Decimal)> = self
            .totals
            .iter()
            .filter(|(a, _)| !self.pinned.contains(a))
            .map(|(a, d)| (*a, *d))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.extend(
            v.into_iter()
                .map(|(a, _)| a)
                .take(n.saturating_sub(out.len())),
        );
        out
    }

    /// Recent traded notional of `addr`.
    pub fn notional(&self, addr: &Address) -> Decimal {
        self.totals.get(addr).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_core_models::{Coin, Side};

    fn trade(t: i64, buyer: u8, seller: u8, px: i64, sz: i64) -> Trade {
        Trade {
            coin: Coin::new("ETH").unwrap(),
            side: Side::Buy,
            px: px.into(),
            sz: sz.into(),
            time: Timestamp(t),
            tid: t as u64,
            users: Some([
                Address::from_bytes([buyer; 20]),
                Address::from_bytes([seller; 20]),
            ]),
        }
    }

    #[test]
    fn ranks_by_recent_notional_and_keeps_pins_first() {
        let mut w = WhaleTracker::new(3_600_000, 10);
        w.pin(Address::from_bytes([9; 20]));
        w.observe(&trade(0, 1, 2, 2000, 100));
        w.observe(&trade(1, 3, 2, 2000, 10));
        w.observe(&trade(2, 1, 4, 2000, 100));
        let top = w.top(3);
        assert_eq!(top[0], Address::from_bytes([9; 20]));
        assert_eq!(top[1], Address::from_bytes([1; 20]), "400k traded");
        assert_eq!(top[2], Address::from_bytes([2; 20]), "220k traded");
        // After the window, old trades no longer count.
        w.observe(&trade(4_000_000, 5, 6, 1, 1));
        assert_eq!(w.notional(&Address::from_bytes([1; 20])), Decimal::ZERO);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut w = WhaleTracker::new(i64::MAX / 2, 5);
        for i in 0..1000u32 {
            let b = (i % 250) as u8;
            w.observe(&trade(
                i64::from(i),
                b,
                b.wrapping_add(1),
                1,
                i64::from(i) + 1,
            ));
        }
        assert!(w.totals.len() <= 20);
    }
}
