//! Weighted median of reference prices, mirroring how Hyperliquid's validators build the oracle
//! (Binance 3, OKX 2, Bybit 2, Kraken 1, KuCoin 1, Gate 1, MEXC 1, Hyperliquid spot 1), and
//! per-venue deviations so a detector can name the venue that diverges. Pure functions.
//!
//! The median is the oracle *replica*: only the oracle's inputs count, with the oracle's
//! weights. Other venues (Coinbase, a USD venue the oracle does not read) are *independent*
//! references: they weigh nothing in the replica and are reported next to it, so kamiyo watches
//! the number that liquidates people and still sees when the oracle's venues all move away from
//! the rest of the market. Only when no oracle input is fresh does the median fall back to the
//! independent venues (equal weights), and says so.

use std::collections::{BTreeMap, HashMap};

use kamiyo_core_models::{
    Coin, Decimal, Price, ReferenceQuote, Timestamp, Venue, cmp_decimal, deviation_pct_4dp,
};

/// Oracle weights per venue. A venue without a weight is an independent reference (weight 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueWeights(pub BTreeMap<Venue, Decimal>);

impl VenueWeights {
    /// Hyperliquid's oracle weights. Coinbase is not among them: it is an independent USD
    /// reference.
    pub fn hyperliquid_oracle() -> Self {
        let mut m = BTreeMap::new();
        for (v, w) in [
            ("binance", 3),
            ("okx", 2),
            ("bybit", 2),
            ("kraken", 1),
            ("kucoin", 1),
            ("gate", 1),
            ("mexc", 1),
            ("hyperliquid_spot", 1),
        ] {
            if let Ok(v) = Venue::new(v) {
                m.insert(v, Decimal::from(w));
            }
        }
        Self(m)
    }

    /// Oracle weight of `venue` (0 for an independent reference).
    pub fn weight(&self, venue: &Venue) -> Decimal {
        self.0.get(venue).copied().unwrap_or(Decimal::ZERO)
    }

    /// True when `venue` is one of the oracle's inputs.
    pub fn is_oracle_input(&self, venue: &Venue) -> bool {
        self.weight(venue) > Decimal::ZERO
    }
}

impl Default for VenueWeights {
    fn default() -> Self {
        Self::hyperliquid_oracle()
    }
}

/// The weighted median of `(price, weight)` pairs: the price at which the cumulative weight
/// first reaches half the total; when it lands exactly on half, the mean of that price and the
/// next one. Non-positive weights are ignored. `None` for no positive weight.
pub fn weighted_median(points: &[(Price, Decimal)]) -> Option<Price> {
    // The common case is a handful of venues: sort on the stack, no allocation.
    let mut buf: [(Price, Decimal); 32] = [(Decimal::ZERO, Decimal::ZERO); 32];
    let mut heap: Vec<(Price, Decimal)>;
    let v: &mut [(Price, Decimal)] = if points.len() <= buf.len() {
        let mut n = 0;
        for p in points.iter().filter(|(_, w)| *w > Decimal::ZERO) {
            buf[n] = *p;
            n += 1;
        }
        &mut buf[..n]
    } else {
        heap = points
            .iter()
            .copied()
            .filter(|(_, w)| *w > Decimal::ZERO)
            .collect();
        &mut heap
    };
    match v.len() {
        0 => return None,
        1 => return Some(v[0].0),
        _ => {}
    }
    v.sort_unstable_by(|x, y| cmp_decimal(&x.0, &y.0));
    let total: Decimal = v.iter().map(|p| p.1).sum();
    // Compared as 2·acc against the total: no decimal division on the hot path.
    let mut acc = Decimal::ZERO;
    for (i, (p, w)) in v.iter().enumerate() {
        acc += *w;
        let twice = acc + acc;
        if twice > total {
            return Some(*p);
        }
        if twice == total {
            let next = v.get(i + 1).map_or(*p, |n| n.0);
            return Some((*p + next) / Decimal::TWO);
        }
    }
    v.last().map(|p| p.0)
}

/// The reference rule on `(price, oracle weight)` points: the weighted median of the oracle
/// inputs (positive weight); only when there is none, the equal-weight median of the
/// independent venues (weight 0).
pub fn replica_median(points: &[(Price, Decimal)]) -> Option<Price> {
    weighted_median(points).or_else(|| {
        let ind: Vec<(Price, Decimal)> = points
            .iter()
            .filter(|p| p.1.is_zero())
            .map(|p| (p.0, Decimal::ONE))
            .collect();
        weighted_median(&ind)
    })
}

/// The reference price of one coin at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencePrice {
    /// The weighted median: the oracle replica, or (`replica` false) the independent venues'
    /// median when no oracle input is fresh.
    pub price: Price,
    /// Quotes that took part (fresh ones).
    pub used: Vec<ReferenceQuote>,
    /// Fresh quotes of independent venues (not oracle inputs), reported next to the replica.
    pub independent: Vec<ReferenceQuote>,
    /// Venues left out because their quote was older than the staleness limit.
    pub stale: Vec<Venue>,
    /// True when `price` is the oracle replica.
    pub replica: bool,
}

impl ReferencePrice {
    /// Builds the price from fresh quotes: the replica over the oracle inputs in `fresh`, else
    /// the equal-weight median of the independent ones. `None` when nothing is fresh.
    pub fn from_fresh(
        fresh: Vec<ReferenceQuote>,
        stale: Vec<Venue>,
        weights: &VenueWeights,
    ) -> Option<Self> {
        let (used, independent): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|q| weights.is_oracle_input(&q.venue));
        let replica: Vec<(Price, Decimal)> = used
            .iter()
            .map(|q| (q.price, weights.weight(&q.venue)))
            .collect();
        if let Some(price) = weighted_median(&replica) {
            return Some(Self {
                price,
                used,
                independent,
                stale,
                replica: true,
            });
        }
        let pts: Vec<(Price, Decimal)> = independent
            .iter()
            .map(|q| (q.price, Decimal::ONE))
            .collect();
        weighted_median(&pts).map(|price| Self {
            price,
            used: independent,
            independent: Vec::new(),
            stale,
            replica: false,
        })
    }
}

/// Latest quote per (coin, venue), and the median over the fresh ones.
#[derive(Debug, Clone, Default)]
pub struct ReferenceBook {
    latest: HashMap<Coin, Vec<ReferenceQuote>>,
    weights: VenueWeights,
}

impl ReferenceBook {
    /// An empty book with `weights`.
    pub fn new(weights: VenueWeights) -> Self {
        Self {
            latest: HashMap::new(),
            weights,
        }
    }

    /// Records a quote (an older quote than the one held is ignored).
    pub fn update(&mut self, q: &ReferenceQuote) {
        let v = self.latest.entry(q.coin.clone()).or_default();
        match v.iter_mut().find(|x| x.venue == q.venue) {
            Some(old) if old.time > q.time => {}
            Some(old) => *old = q.clone(),
            None => {
                v.push(q.clone());
                v.sort_by(|a, b| a.venue.cmp(&b.venue));
            }
        }
    }

    /// The newest quote time of `coin` among quotes at most `max_age_ms` old at `now`.
    fn newest(
        &self,
        coin: &Coin,
        now: Timestamp,
        max_age_ms: i64,
        skip: &impl Fn(&Venue) -> bool,
    ) -> Option<Timestamp> {
        self.latest
            .get(coin)?
            .iter()
            .filter(|q| now.millis_since(q.time) <= max_age_ms && !skip(&q.venue))
            .map(|q| q.time)
            .max()
    }

    /// The median for `coin` at `now`, using quotes at most `max_age_ms` old and at most
    /// `max_skew_ms` older than the newest of them: prices of about the same moment, so a venue
    /// quoting once per candle is compared at its own closes, never by its age. Quotes left out
    /// are named in `stale`.
    /// `skip` leaves out venues (feeds known to be down), also named in `stale`.
    pub fn reference(
        &self,
        coin: &Coin,
        now: Timestamp,
        max_age_ms: i64,
        max_skew_ms: i64,
        skip: impl Fn(&Venue) -> bool,
    ) -> Option<ReferencePrice> {
        let newest = self.newest(coin, now, max_age_ms, &skip);
        let mut fresh = Vec::new();
        let mut stale = Vec::new();
        for q in self.latest.get(coin).into_iter().flatten() {
            let current = now.millis_since(q.time) <= max_age_ms
                && !skip(&q.venue)
                && newest.is_some_and(|n| n.millis_since(q.time) <= max_skew_ms);
            if current {
                fresh.push(q.clone());
            } else {
                stale.push(q.venue.clone());
            }
        }
        ReferencePrice::from_fresh(fresh, stale, &self.weights)
    }

    /// Just the median and how many quotes made it, without copying the quotes (the hot path);
    /// `skip` leaves out venues (feeds known to be down). Same rules as
    /// [`ReferenceBook::reference`]: the replica, else the independent venues.
    pub fn median(
        &self,
        coin: &Coin,
        now: Timestamp,
        max_age_ms: i64,
        max_skew_ms: i64,
        skip: impl Fn(&Venue) -> bool,
    ) -> Option<(Price, usize)> {
        let newest = self.newest(coin, now, max_age_ms, &skip)?;
        let mut pts: [(Price, Decimal); 16] = [(Decimal::ZERO, Decimal::ZERO); 16];
        let mut ind: [(Price, Decimal); 16] = [(Decimal::ZERO, Decimal::ZERO); 16];
        let (mut n, mut m) = (0, 0);
        for q in self.latest.get(coin).into_iter().flatten() {
            if now.millis_since(q.time) > max_age_ms
                || newest.millis_since(q.time) > max_skew_ms
                || skip(&q.venue)
            {
                continue;
            }
            let w = self.weights.weight(&q.venue);
            if w > Decimal::ZERO && n < pts.len() {
                pts[n] = (q.price, w);
                n += 1;
            } else if w.is_zero() && m < ind.len() {
                ind[m] = (q.price, Decimal::ONE);
                m += 1;
            }
        }
        weighted_median(&pts[..n])
            .map(|p| (p, n))
            .or_else(|| weighted_median(&ind[..m]).map(|p| (p, m)))
    }

    /// The weight of `venue` in this book's median.
    pub fn weight(&self, venue: &Venue) -> Decimal {
        self.weights.weight(venue)
    }

    /// The book's weights.
    pub fn weights(&self) -> &VenueWeights {
        &self.weights
    }

    /// Every venue quoting `coin`, with its latest quote.
    pub fn quotes(&self, coin: &Coin) -> Vec<&ReferenceQuote> {
        self.latest
            .get(coin)
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    }
}

/// Signed deviation of `subject` from each quote, in percent, largest magnitude first.
pub fn venue_deviations(subject: Price, quotes: &[ReferenceQuote]) -> Vec<(Venue, Decimal)> {
    let mut v: Vec<(Venue, Decimal)> = quotes
        .iter()
        .filter_map(|q| deviation_pct_4dp(subject, q.price).map(|d| (q.venue.clone(), d)))
        .collect();
    v.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(x: i64) -> Decimal {
        Decimal::from(x)
    }

    fn quote(coin: &Coin, venue: &str, px: i64, t: i64) -> ReferenceQuote {
        ReferenceQuote {
            venue: Venue::new(venue).unwrap(),
            coin: coin.clone(),
            price: d(px),
            bid: None,
            ask: None,
            time: Timestamp(t),
        }
    }

    #[test]
    fn hyperliquid_weights_make_binance_dominant() {
        // Binance 3 vs Coinbase 1: the median is Binance's price.
        assert_eq!(
            weighted_median(&[(d(100), d(3)), (d(110), d(1))]),
            Some(d(100))
        );
        // Equal weights, two venues: the mean.
        assert_eq!(
            weighted_median(&[(d(100), d(1)), (d(110), d(1))]),
            Some(d(105))
        );
        assert_eq!(weighted_median(&[(d(7), d(1))]), Some(d(7)));
        assert_eq!(weighted_median(&[]), None);
        assert_eq!(weighted_median(&[(d(7), d(0))]), None);
        // Seven venues with the oracle weights; one outlier cannot move it.
        let pts = [
            (d(100), d(3)),
            (d(101), d(2)),
            (d(99), d(2)),
            (d(100), d(1)),
            (d(100), d(1)),
            (d(100), d(1)),
            (d(500), d(1)),
        ];
        assert_eq!(weighted_median(&pts), Some(d(100)));
    }

    #[test]
    fn stale_quotes_are_left_out_and_named() {
        let eth = Coin::new("ETH").unwrap();
        let mut book = ReferenceBook::new(VenueWeights::default());
        let q = |venue: &str, px: i64, t: i64| quote(&eth, venue, px, t);
        book.update(&q("binance", 2000, 0));
        book.update(&q("coinbase", 2010, 50_000));
        let r = book
            .reference(&eth, Timestamp(60_000), 30_000, 60_000, |_| false)
            .unwrap();
        // No oracle input is fresh: the independent venue stands in, and says so.
        assert_eq!(r.price, d(2010));
        assert!(!r.replica);
        assert_eq!(r.stale, vec![Venue::new("binance").unwrap()]);
        assert_eq!(
            book.median(&eth, Timestamp(60_000), 30_000, 60_000, |_| false),
            Some((d(2010), 1))
        );
        assert!(
            book.reference(&eth, Timestamp(200_000), 30_000, 60_000, |_| false)
                .is_none()
        );
        // An older quote does not replace a newer one.
        book.update(&q("coinbase", 1, 10));
        assert_eq!(book.quotes(&eth)[1].price, d(2010));
    }

    #[test]
    fn independent_venues_never_move_the_replica() {
        let eth = Coin::new("ETH").unwrap();
        let mut book = ReferenceBook::new(VenueWeights::default());
        for (venue, px) in [("binance", 2000), ("okx", 2002), ("coinbase", 2500)] {
            book.update(&quote(&eth, venue, px, 0));
        }
        let r = book
            .reference(&eth, Timestamp(0), 30_000, 60_000, |_| false)
            .unwrap();
        assert!(r.replica);
        assert_eq!(r.price, d(2000));
        assert_eq!(r.used.len(), 2);
        assert_eq!(r.independent.len(), 1);
        assert_eq!(r.independent[0].venue.as_str(), "coinbase");
        assert_eq!(
            book.median(&eth, Timestamp(0), 30_000, 60_000, |_| false),
            Some((d(2000), 2))
        );
        assert!(!VenueWeights::default().is_oracle_input(&Venue::new("coinbase").unwrap()));
    }

    #[test]
    fn quotes_of_another_moment_are_left_out() {
        // A venue quoting per 15-minute candle is compared at its own closes, never by its
        // age: seven minutes after its close, Binance's newer quote stands alone.
        let eth = Coin::new("ETH").unwrap();
        let mut book = ReferenceBook::new(VenueWeights::default());
        let q = |venue: &str, px: i64, t: i64| quote(&eth, venue, px, t);
        book.update(&q("bybit", 2100, 0));
        book.update(&q("okx", 2100, 0));
        book.update(&q("binance", 2000, 420_000));
        let r = book
            .reference(&eth, Timestamp(420_000), 1_200_000, 60_000, |_| false)
            .unwrap();
        assert_eq!(r.price, d(2000));
        assert_eq!(r.stale.len(), 2);
        assert_eq!(
            book.median(&eth, Timestamp(420_000), 1_200_000, 60_000, |_| false),
            Some((d(2000), 1))
        );
        // At a common close, all count: Bybit 2 + OKX 2 outweigh Binance 3.
        book.update(&q("bybit", 2100, 900_000));
        book.update(&q("okx", 2100, 900_000));
        book.update(&q("binance", 2000, 900_000));
        assert_eq!(
            book.median(&eth, Timestamp(900_000), 1_200_000, 60_000, |_| false),
            Some((d(2100), 3))
        );
    }

    #[test]
    fn deviations_name_the_outlier_first() {
        let eth = Coin::new("ETH").unwrap();
        let q = |venue: &str, px: i64| ReferenceQuote {
            venue: Venue::new(venue).unwrap(),
            coin: eth.clone(),
            price: d(px),
            bid: None,
            ask: None,
            time: Timestamp(0),
        };
        let v = venue_deviations(d(2000), &[q("binance", 2000), q("coinbase", 1900)]);
        assert_eq!(v[0].0.as_str(), "coinbase");
        assert_eq!(v[0].1, "5.2632".parse::<Decimal>().unwrap());
    }

    proptest! {
        #[test]
        fn median_is_within_range_and_order_free(pts in proptest::collection::vec((1i64..1_000_000, 1i64..10), 1..12), seed in 0usize..100) {
            let pts: Vec<(Decimal, Decimal)> = pts.into_iter().map(|(p, w)| (Decimal::new(p, 2), d(w))).collect();
            let m = weighted_median(&pts).unwrap();
            let lo = pts.iter().map(|p| p.0).min().unwrap();
            let hi = pts.iter().map(|p| p.0).max().unwrap();
            prop_assert!(m >= lo && m <= hi);
            let mut shuffled = pts.clone();
            shuffled.rotate_left(seed % pts.len());
            shuffled.reverse();
            prop_assert_eq!(weighted_median(&shuffled), Some(m));
            // Scaling every weight changes nothing.
            let doubled: Vec<_> = pts.iter().map(|(p, w)| (*p, *w * d(2))).collect();
            prop_assert_eq!(weighted_median(&doubled), Some(m));
        }

        #[test]
        fn a_majority_weight_venue_decides(p in 1i64..1_000_000, others in proptest::collection::vec(1i64..1_000_000, 0..5)) {
            let mut pts = vec![(d(p), d(100))];
            pts.extend(others.iter().map(|o| (d(*o), d(1))));
            prop_assert_eq!(weighted_median(&pts), Some(d(p)));
        }
    }
}
