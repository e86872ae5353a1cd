//! Whale discovery. Hyperliquid has no "all positions" endpoint, so the largest traders are
//! found from the public trade stream's `users` field (plus pinned addresses such as the HLP
//! children), ranked by recent traded notional, and the top few are polled for their
//! `clearinghouseState` within the REST budget. Pure bookkeeping; the polling lives in `live`.

use std::collections::{BTreeSet, HashMap, VecDeque};

use kamiyo_core_models::{Address, Decimal, Timestamp, Trade};

/// Width of the buckets the window is kept in.
const BUCKET_MS: i64 = 60_000;

/// Ranks addresses by traded notional over a sliding window.
///
/// The window is kept as one bucket per minute holding each address's notional in that
/// minute, so memory follows the number of addresses trading, not the number of trades (at
/// 100 trades/s over an hour a per-trade log held 720,000 entries, about 35 MB). A bucket
/// leaves the window once all of its minute is older than the window.
#[derive(Debug, Clone)]
pub struct WhaleTracker {
    window_ms: i64,
    max_candidates: usize,
    buckets: VecDeque<(i64, HashMap<Address, Decimal>)>,
    totals: HashMap<Address, Decimal>,
    pinned: BTreeSet<Address>,
}

impl WhaleTracker {
    /// A tracker over `window_ms` that remembers at most `max_candidates` addresses.
    pub fn new(window_ms: i64, max_candidates: usize) -> Self {
        Self {
            window_ms,
            max_candidates: max_candidates.max(1),
            buckets: VecDeque::new(),
            totals: HashMap::new(),
            pinned: BTreeSet::new(),
        }
    }

    /// Always watch `addr` (HLP children, a user's own watch list).
    pub fn pin(&mut self, addr: Address) {
        self.pinned.insert(addr);
    }

    /// The bucket of `minute`, created in order if missing (trades arrive nearly in order).
    fn bucket(&mut self, minute: i64) -> &mut HashMap<Address, Decimal> {
        let at = self.buckets.iter().rposition(|(m, _)| *m <= minute);
        let index = match at {
            Some(i) if self.buckets[i].0 == minute => i,
            Some(i) => {
                self.buckets.insert(i + 1, (minute, HashMap::new()));
                i + 1
            }
            None => {
                self.buckets.push_front((minute, HashMap::new()));
                0
            }
        };
        &mut self.buckets[index].1
    }

    /// Counts a trade for both counterparties.
    pub fn observe(&mut self, t: &Trade) {
        let Some(users) = t.users else { return };
        let n = t.notional().abs();
        let minute = t.time.0.div_euclid(BUCKET_MS);
        let bucket = self.bucket(minute);
        for u in users {
            *bucket.entry(u).or_default() += n;
        }
        for u in users {
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
            for (_, b) in &mut self.buckets {
                b.retain(|a, _| keep.contains(a));
            }
        }
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some((minute, _)) = self.buckets.front() {
            let newest_in_bucket = (minute + 1) * BUCKET_MS - 1;
            if now.0 - newest_in_bucket <= self.window_ms {
                break;
            }
            let Some((_, gone)) = self.buckets.pop_front() else {
                break;
            };
            for (a, n) in gone {
                if let Some(total) = self.totals.get_mut(&a) {
                    *total -= n;
                    if *total <= Decimal::ZERO {
                        self.totals.remove(&a);
                    }
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
    fn memory_follows_addresses_not_trades() {
        // 500 addresses trading 100 times a second for an hour: one bucket per minute, each
        // with at most the 500 addresses, however many trades.
        let mut w = WhaleTracker::new(3_600_000, 256);
        for i in 0..360_000i64 {
            let b = (i % 250) as u8;
            w.observe(&trade(i * 10, b, b.wrapping_add(1), 2000, 1));
        }
        assert!(w.buckets.len() <= 61, "{}", w.buckets.len());
        assert!(w.buckets.iter().all(|(_, b)| b.len() <= 256));
        // Out-of-order trades land in their own minute, and the totals agree with the buckets.
        w.observe(&trade(3_599_000 - 120_000, 7, 8, 1, 1));
        let from_buckets: Decimal = w.buckets.iter().flat_map(|(_, b)| b.values()).sum();
        let totals: Decimal = w.totals.values().sum();
        assert_eq!(from_buckets, totals);
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
