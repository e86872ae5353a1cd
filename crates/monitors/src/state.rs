//! The market state every detector reads: latest asset contexts, reference quotes, feed states,
//! markets at their open-interest cap, and which addresses are HLP vaults. The engine updates it
//! before calling the detectors, so they see a consistent picture.

use std::collections::{BTreeMap, BTreeSet};

use kamiyo_aggregators::aggregate::{ReferenceBook, ReferencePrice, VenueWeights};
use kamiyo_core_models::{Address, AssetCtx, Coin, Decimal, FeedState, MarketEvent, Timestamp};

use crate::config::MonitorsConfig;

/// Shared, read-only view for detectors.
#[derive(Debug, Clone)]
pub struct MarketState {
    /// Latest event time seen (monotonic).
    pub now: Timestamp,
    ctx: BTreeMap<Coin, AssetCtx>,
    refs: ReferenceBook,
    /// Feed states by name.
    pub feeds: BTreeMap<String, FeedState>,
    /// Markets at their open-interest cap.
    pub oi_cap: BTreeSet<Coin>,
    /// The HLP parent vault.
    pub hlp_vault: Address,
    /// HLP child vaults.
    pub hlp_children: BTreeSet<Address>,
    /// Liquidator vaults.
    pub liquidators: BTreeSet<Address>,
    reference_max_age_ms: i64,
    reference_max_skew_ms: i64,
}

impl MarketState {
    /// Empty state for `config`.
    pub fn new(config: &MonitorsConfig) -> Self {
        Self {
            now: Timestamp(i64::MIN),
            ctx: BTreeMap::new(),
            refs: ReferenceBook::new(VenueWeights::default()),
            feeds: BTreeMap::new(),
            oi_cap: BTreeSet::new(),
            hlp_vault: config.hlp.vault,
            hlp_children: config.hlp.children.iter().copied().collect(),
            liquidators: config.hlp.liquidators.iter().copied().collect(),
            reference_max_age_ms: i64::from(config.oracle.reference_max_age_secs) * 1000,
            reference_max_skew_ms: i64::from(config.venues.max_skew_secs) * 1000,
        }
    }

    /// Sets how old a reference quote may be (replays use coarser ticks than live feeds).
    pub fn set_reference_max_age_ms(&mut self, ms: i64) {
        self.reference_max_age_ms = ms;
    }

    /// Applies an event. Returns false for an asset context older than the one held (a late,
    /// out-of-order update detectors should not act on).
    pub fn apply(&mut self, e: &MarketEvent) -> bool {
        if e.time() > self.now {
            self.now = e.time();
        }
        match e {
            MarketEvent::AssetCtx(c) => match self.ctx.get_mut(&c.coin) {
                // One lookup; the held context is overwritten in place.
                Some(old) if old.time > c.time => return false,
                Some(old) => old.clone_from(c),
                None => {
                    self.ctx.insert(c.coin.clone(), c.clone());
                }
            },
            MarketEvent::Reference(q) => self.refs.update(q),
            MarketEvent::Feed(s) => {
                self.feeds.insert(s.feed.clone(), s.state);
            }
            MarketEvent::OiCap(o) => self.oi_cap = o.coins.iter().cloned().collect(),
            _ => {}
        }
        true
    }

    /// Marks a child vault as discovered at run time.
    pub fn add_hlp_child(&mut self, a: Address, liquidator: bool) {
        self.hlp_children.insert(a);
        if liquidator {
            self.liquidators.insert(a);
        }
    }

    /// Latest context of `coin`.
    pub fn ctx(&self, coin: &Coin) -> Option<&AssetCtx> {
        self.ctx.get(coin)
    }

    /// Every latest context.
    pub fn contexts(&self) -> impl Iterator<Item = &AssetCtx> {
        self.ctx.values()
    }

    /// Mark price of `coin`.
    pub fn mark(&self, coin: &Coin) -> Option<Decimal> {
        self.ctx.get(coin).map(|c| c.mark_px)
    }

    /// Open interest of `coin` in USD.
    pub fn oi_usd(&self, coin: &Coin) -> Option<Decimal> {
        self.ctx.get(coin).map(AssetCtx::open_interest_usd)
    }

    /// The reference median of `coin` from fresh quotes of feeds that are not down (the oracle
    /// replica, with the independent venues beside it).
    pub fn reference(&self, coin: &Coin) -> Option<ReferencePrice> {
        self.refs.reference(
            coin,
            self.now,
            self.reference_max_age_ms,
            self.reference_max_skew_ms,
            |v| self.feed_down(v),
        )
    }

    fn feed_down(&self, v: &kamiyo_core_models::Venue) -> bool {
        self.feeds
            .get(v.as_str())
            .is_some_and(|s| *s != FeedState::Live)
    }

    /// Just the reference median of `coin` and the number of venues in it (no copies; the
    /// detectors' hot path). Same rules as [`MarketState::reference`].
    pub fn reference_median(&self, coin: &Coin) -> Option<(Decimal, usize)> {
        self.refs.median(
            coin,
            self.now,
            self.reference_max_age_ms,
            self.reference_max_skew_ms,
            |v| self.feed_down(v),
        )
    }

    /// The fresh quotes of `coin` from feeds that are not down, each with its oracle weight (the
    /// candidates of [`MarketState::reference_median`] before the skew rule, without copies).
    pub fn reference_quotes(
        &self,
        coin: &Coin,
    ) -> impl Iterator<Item = (&kamiyo_core_models::ReferenceQuote, Decimal)> + '_ {
        self.refs.quotes(coin).into_iter().filter_map(move |q| {
            let fresh = self.now.millis_since(q.time) <= self.reference_max_age_ms;
            let down = self
                .feeds
                .get(q.venue.as_str())
                .is_some_and(|s| *s != FeedState::Live);
            (fresh && !down).then(|| (q, self.refs.weight(&q.venue)))
        })
    }

    /// True when `addr` is an HLP vault (parent or child).
    pub fn is_hlp(&self, addr: &Address) -> bool {
        *addr == self.hlp_vault || self.hlp_children.contains(addr)
    }
}
