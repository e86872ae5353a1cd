//! What every polled venue shares: a [`Venue`] says which requests one round makes and decodes
//! their answers (pure, no I/O); [`stream`] runs it — a token bucket under the venue's published
//! request budget, backoff (1 s doubling to 60 s) while any request fails, a `<venue>.rest`
//! feed going down and back live, trades deduplicated by the venue's own ids (the last 2,000
//! per market, so the first poll's backfill and overlapping pages emit each trade once), and
//! malformed answers logged and skipped, never fatal.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use kamiyo_core_models::{
    Address, Coin, Decimal, EventStream, FeedState, FeedStatus, Fill, FillDir, LiquidationInfo,
    LiquidationMethod, MarketEvent, Side, Timestamp, Trade,
};
use tokio_util::sync::CancellationToken;

/// How a poller runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    /// The venue's REST bases (most have one; Drift has its Data API and its DLOB server).
    pub base_urls: Vec<String>,
    /// Venue market symbols whose trades (and books, where polled) are followed; every
    /// market's context is polled.
    pub markets: Vec<String>,
    /// Between two polls of the contexts.
    pub contexts_every: Duration,
    /// Between two rounds of trades.
    pub trades_every: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Requests per 10 s the poller may spend (under the venue's published limit).
    pub requests_per_10s: u32,
    /// Trades before this time were committed by a previous leader: they are remembered as
    /// seen, not emitted again (set from the protocol's trade cursor at each lead).
    pub resume_after: Option<Timestamp>,
}

/// One request of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// Index into [`PollConfig::base_urls`].
    pub base: usize,
    /// Path and query after the base.
    pub path: String,
    /// What the answer holds.
    pub kind: AskKind,
}

/// What an answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskKind {
    /// Every market's context.
    Contexts,
    /// One market's recent trades.
    Trades(String),
    /// One market's book.
    Book(String),
    /// Reference data the venue needs before the rest decodes (token decimals, market ids).
    Reference(&'static str),
}

impl Ask {
    /// A request to the first base.
    pub fn new(path: impl Into<String>, kind: AskKind) -> Self {
        Self {
            base: 0,
            path: path.into(),
            kind,
        }
    }
}

/// What an answer decodes to.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "items live for one decode; boxing each event would cost an allocation per event"
)]
pub enum Item {
    /// Emitted as is (contexts, books).
    Event(MarketEvent),
    /// Emitted the first time its `id` is seen in `market` (trades, liquidations).
    Once {
        /// The dedupe scope.
        market: String,
        /// The venue's id.
        id: String,
        /// The events the id stands for (a trade, and a liquidation fill when it was one).
        events: Vec<MarketEvent>,
    },
}

/// A body that is not what the venue documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{venue} {what}: {detail}")]
pub struct DecodeError {
    /// Which venue.
    pub venue: &'static str,
    /// Which endpoint.
    pub what: &'static str,
    /// Why.
    pub detail: String,
}

impl DecodeError {
    /// An error of `venue`'s `what`.
    pub fn new(venue: &'static str, what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self {
            venue,
            what,
            detail: detail.to_string(),
        }
    }
}

/// A polled venue: which requests, and how their answers read. Implementations do no I/O.
pub trait Venue: Send + 'static {
    /// Its name in feed names and logs (`gmx` → feed `gmx.rest`).
    fn name(&self) -> &'static str;
    /// The requests of one round; `contexts_due` when the contexts should be polled.
    fn asks(&self, cfg: &PollConfig, contexts_due: bool) -> Vec<Ask>;
    /// Decodes the answer to `ask`; `now` stamps what carries no time of its own.
    fn decode(&mut self, ask: &Ask, body: &str, now: Timestamp) -> Result<Vec<Item>, DecodeError>;
}

/// A decimal from a venue's text (plain or scientific).
pub fn dec(venue: &'static str, what: &'static str, s: &str) -> Result<Decimal, DecodeError> {
    s.trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(s.trim()))
        .map_err(|e| DecodeError::new(venue, what, format!("{s:?}: {e}")))
}

/// A decimal from a JSON number or string.
pub fn dec_json(
    venue: &'static str,
    what: &'static str,
    v: &serde_json::Value,
) -> Result<Decimal, DecodeError> {
    match v {
        serde_json::Value::String(s) => dec(venue, what, s),
        serde_json::Value::Number(n) => dec(venue, what, &n.to_string()),
        other => Err(DecodeError::new(
            venue,
            what,
            format!("not a number: {other}"),
        )),
    }
}

/// A `BUY`/`SELL` side (any case).
pub fn side(venue: &'static str, what: &'static str, s: &str) -> Result<Side, DecodeError> {
    if s.eq_ignore_ascii_case("BUY") {
        Ok(Side::Buy)
    } else if s.eq_ignore_ascii_case("SELL") {
        Ok(Side::Sell)
    } else {
        Err(DecodeError::new(venue, what, format!("side {s:?}")))
    }
}

/// One book level as the venues write it: price and size as text.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Level {
    /// Price.
    pub price: String,
    /// Size.
    pub size: String,
}

/// A book from `bids` and `asks`, each level's price and size read as decimals with their
/// point moved left by `scale` places (`(6, 9)` for Drift's 1e6 prices and 1e9 sizes).
pub fn book(
    venue: &'static str,
    what: &'static str,
    coin: Coin,
    time: Timestamp,
    (bids, asks): (&[Level], &[Level]),
    (px_scale, sz_scale): (u32, u32),
) -> Result<kamiyo_core_models::BookSnapshot, DecodeError> {
    let scaled = |s: &str, scale: u32| -> Result<Decimal, DecodeError> {
        let mut d = dec(venue, what, s)?;
        d.set_scale(d.scale() + scale)
            .map_err(|e| DecodeError::new(venue, what, format!("{s:?}: {e}")))?;
        Ok(d.normalize())
    };
    let side = |levels: &[Level]| -> Result<Vec<kamiyo_core_models::BookLevel>, DecodeError> {
        levels
            .iter()
            .map(|l| {
                Ok(kamiyo_core_models::BookLevel {
                    px: scaled(&l.price, px_scale)?,
                    sz: scaled(&l.size, sz_scale)?,
                    n: 1,
                })
            })
            .collect()
    };
    Ok(kamiyo_core_models::BookSnapshot {
        coin,
        time,
        bids: side(bids)?,
        asks: side(asks)?,
    })
}

/// A stable trade id for a venue's id text: FNV-1a folded to 50 bits, so it fits the store's
/// signed 64-bit column as the open core's trade ids do.
pub fn tid(id: &str) -> u64 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h ^ (h >> 50)) & ((1 << 50) - 1)
}

/// How a public trade was a forced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// A liquidation.
    Liquidation,
    /// An auto-deleveraging (a profitable position closed against a bankrupt one).
    Deleveraging,
}

/// The fill the liquidation detector reads for a venue's public forced trade: the account is
/// not named on public feeds (the zero address stands for "unknown"), `side` is the taker's.
pub fn forced_fill(t: &Trade, how: Forced) -> Fill {
    Fill {
        user: Address::from_bytes([0; 20]),
        coin: t.coin.clone(),
        px: t.px,
        sz: t.sz,
        side: t.side,
        time: t.time,
        dir: match how {
            Forced::Liquidation => FillDir::Liquidated(
                match t.side {
                    Side::Buy => "Liquidated Short",
                    Side::Sell => "Liquidated Long",
                }
                .into(),
            ),
            Forced::Deleveraging => FillDir::AutoDeleveraging,
        },
        closed_pnl: Decimal::ZERO,
        start_position: None,
        tid: Some(t.tid),
        oid: 0,
        fee: Decimal::ZERO,
        hash: None,
        liquidation: (how == Forced::Liquidation).then_some(LiquidationInfo {
            liquidated_user: None,
            mark_px: t.px,
            method: LiquidationMethod::Market,
        }),
    }
}

/// The latest context per market of a venue, so a book read later can carry its mid.
#[derive(Debug, Default)]
pub struct Latest(HashMap<Coin, kamiyo_core_models::AssetCtx>);

impl Latest {
    /// Remembers `ctxs` and returns them as items.
    pub fn contexts(&mut self, ctxs: Vec<kamiyo_core_models::AssetCtx>) -> Vec<Item> {
        ctxs.into_iter()
            .map(|c| {
                self.0.insert(c.coin.clone(), c.clone());
                Item::Event(MarketEvent::AssetCtx(c))
            })
            .collect()
    }

    /// The book, and the latest context of its market with the book's middle as its mid
    /// price, stamped `now`: on venues that mark at the oracle, the book is where a push shows
    /// (the oracle detector's mid-versus-oracle rule reads it).
    pub fn book(&self, book: kamiyo_core_models::BookSnapshot, now: Timestamp) -> Vec<Item> {
        let mid = self.with_mid(&book, now);
        std::iter::once(MarketEvent::Book(book))
            .chain(mid.map(MarketEvent::AssetCtx))
            .map(Item::Event)
            .collect()
    }

    /// The latest context of `book`'s market with the book's middle as its mid, stamped `now`.
    pub fn with_mid(
        &self,
        book: &kamiyo_core_models::BookSnapshot,
        now: Timestamp,
    ) -> Option<kamiyo_core_models::AssetCtx> {
        let (bid, ask) = (book.bids.first()?.px, book.asks.first()?.px);
        if bid <= Decimal::ZERO || ask < bid {
            return None;
        }
        let mut c = self.0.get(&book.coin)?.clone();
        c.mid_px = Some(((bid + ask) / Decimal::TWO).normalize());
        c.time = now.max(c.time);
        Some(c)
    }
}

/// A market's decoded trades as items (each emitted once).
pub fn trade_items(market: &str, trades: Vec<(String, Trade, Option<Forced>)>) -> Vec<Item> {
    trades
        .into_iter()
        .map(|(id, t, forced)| trade_item(market, id, t, forced))
        .collect()
}

/// The events of one venue trade: the trade, and its forced fill when it was one.
pub fn trade_item(market: &str, id: String, t: Trade, forced: Option<Forced>) -> Item {
    let mut events = Vec::with_capacity(2);
    if let Some(how) = forced {
        events.push(MarketEvent::Fill(forced_fill(&t, how)));
    }
    events.push(MarketEvent::Trade(t));
    Item::Once {
        market: market.to_owned(),
        id,
        events,
    }
}

/// The events of `items` to emit: every plain event, and each deduplicated item's events the
/// first time its id is seen and only when not before `resume_after`.
pub(crate) fn admit(
    seen: &mut HashMap<String, Seen>,
    resume_after: Option<Timestamp>,
    items: Vec<Item>,
    out: &mut Vec<MarketEvent>,
) {
    for item in items {
        match item {
            Item::Event(e) => out.push(e),
            Item::Once { market, id, events } => {
                if fresh(seen, resume_after, market, &id, &events) {
                    out.extend(events);
                }
            }
        }
    }
}

/// Whether a deduplicated item is new: first seen, and not before `resume_after`.
pub(crate) fn fresh(
    seen: &mut HashMap<String, Seen>,
    resume_after: Option<Timestamp>,
    market: String,
    id: &str,
    events: &[MarketEvent],
) -> bool {
    let first = seen.entry(market).or_default().first(id);
    let before = resume_after.is_some_and(|r| events.iter().any(|e| e.time() < r));
    first && !before
}

/// Ids already emitted for one market (bounded).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    const MAX: usize = 2_000;

    /// True the first time `id` is offered.
    pub(crate) fn first(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        if self.order.len() > Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// A token bucket of `per_10s` requests.
#[derive(Debug)]
pub struct Budget {
    tokens: f64,
    cap: f64,
    per_sec: f64,
    at: tokio::time::Instant,
}

impl Budget {
    /// A full bucket of `per_10s`, refilled evenly over ten seconds.
    pub fn new(per_10s: u32) -> Self {
        let cap = f64::from(per_10s.max(1));
        Self {
            tokens: cap,
            cap,
            per_sec: cap / 10.0,
            at: tokio::time::Instant::now(),
        }
    }

    /// Waits for a token and spends it.
    pub async fn take(&mut self) {
        loop {
            let now = tokio::time::Instant::now();
            self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec)
                .min(self.cap);
            self.at = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)).await;
        }
    }
}

/// The delay after `failures` consecutive failed rounds: 2 s doubling, at most 60 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60))
}

/// A feed's state as the adapters report it, emitted on change only.
#[derive(Debug)]
pub struct FeedReporter {
    feed: String,
    state: FeedState,
}

impl FeedReporter {
    /// Reporting `feed` (`gmx.rest`), stale until the first outcome.
    pub fn new(feed: String) -> Self {
        Self {
            feed,
            state: FeedState::Stale,
        }
    }

    /// The event for a change to `state` (none when unchanged).
    pub fn set(&mut self, state: FeedState, detail: String, now: Timestamp) -> Option<MarketEvent> {
        (self.state != state).then(|| {
            self.state = state;
            MarketEvent::Feed(FeedStatus {
                feed: self.feed.clone(),
                state,
                changed_at: now,
                last_data_at: (state == FeedState::Live).then_some(now),
                detail,
            })
        })
    }
}

/// The clock the adapters stamp with (epoch ms).
pub type MsClock = Arc<dyn Fn() -> i64 + Send + Sync>;

struct Poller<V: Venue> {
    venue: V,
    cfg: PollConfig,
    http: reqwest::Client,
    budget: Budget,
    seen: HashMap<String, Seen>,
    failures: u32,
    feed: FeedReporter,
    clock: MsClock,
}

impl<V: Venue> Poller<V> {
    async fn get(&mut self, ask: &Ask) -> Result<String, String> {
        self.budget.take().await;
        let base = self
            .cfg
            .base_urls
            .get(ask.base)
            .ok_or_else(|| format!("no base URL #{}", ask.base))?;
        let path = &ask.path;
        let r = self
            .http
            .get(format!("{}{path}", base.trim_end_matches('/')))
            .timeout(self.cfg.timeout)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: HTTP {status}"));
        }
        Ok(body)
    }

    /// One round: its events and how long to wait before the next.
    async fn round(&mut self, contexts_due: bool) -> (Vec<MarketEvent>, Duration) {
        let mut out = Vec::new();
        let mut failed = None;
        for ask in self.venue.asks(&self.cfg, contexts_due) {
            let body = match self.get(&ask).await {
                Ok(b) => b,
                Err(e) => {
                    failed = Some(e);
                    continue;
                }
            };
            let now = Timestamp((self.clock)());
            match self.venue.decode(&ask, &body, now) {
                Ok(items) => admit(&mut self.seen, self.cfg.resume_after, items, &mut out),
                Err(e) => {
                    tracing::warn!(venue = self.venue.name(), error = %e, "answer skipped");
                }
            }
        }
        let now = Timestamp((self.clock)());
        match failed {
            Some(e) => {
                self.failures += 1;
                let wait = backoff(self.failures);
                tracing::warn!(venue = self.venue.name(), error = %e, retry_in = ?wait, "request failed");
                out.extend(self.feed.set(FeedState::Down, e, now));
                (out, wait)
            }
            None => {
                self.failures = 0;
                out.extend(self.feed.set(FeedState::Live, String::new(), now));
                (out, self.cfg.trades_every)
            }
        }
    }
}

/// The events of `venue` polled by `cfg` until `shutdown`; `clock` stamps what carries no time
/// of its own and the feed's changes.
pub fn stream<V: Venue>(
    venue: V,
    cfg: PollConfig,
    http: reqwest::Client,
    clock: MsClock,
    shutdown: CancellationToken,
) -> EventStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<MarketEvent>(4096);
    tokio::spawn(async move {
        let contexts_every = cfg.contexts_every;
        let feed = FeedReporter::new(format!("{}.rest", venue.name()));
        let mut p = Poller {
            budget: Budget::new(cfg.requests_per_10s),
            venue,
            cfg,
            http,
            seen: HashMap::new(),
            failures: 0,
            feed,
            clock,
        };
        let mut last_contexts: Option<tokio::time::Instant> = None;
        loop {
            let due = last_contexts.is_none_or(|t| t.elapsed() >= contexts_every);
            if due {
                last_contexts = Some(tokio::time::Instant::now());
            }
            let (events, wait) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = p.round(due) => r,
            };
            for e in events {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
    channel_stream(rx)
}

/// A receiver as an event stream.
pub fn channel_stream(rx: tokio::sync::mpsc::Receiver<MarketEvent>) -> EventStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (e, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(t: i64) -> Vec<MarketEvent> {
        vec![MarketEvent::Trade(Trade {
            coin: Coin::new("BTC").unwrap_or_else(|e| panic!("{e}")),
            side: Side::Buy,
            px: Decimal::ONE,
            sz: Decimal::ONE,
            time: Timestamp(t),
            tid: 1,
            users: None,
        })]
    }

    #[test]
    fn items_are_fresh_once_and_never_before_the_resume_point() {
        let mut seen = HashMap::new();
        let r = Some(Timestamp(1_000));
        assert!(
            !fresh(&mut seen, r, "m".into(), "a", &trade(999)),
            "committed before"
        );
        assert!(!fresh(&mut seen, r, "m".into(), "a", &trade(999)));
        assert!(
            fresh(&mut seen, r, "m".into(), "b", &trade(1_000)),
            "same ms: kept"
        );
        assert!(!fresh(&mut seen, r, "m".into(), "b", &trade(1_000)), "once");
        assert!(
            fresh(&mut seen, r, "other".into(), "b", &trade(2_000)),
            "per market"
        );
        assert!(fresh(&mut seen, None, "m".into(), "c", &trade(0)));
    }

    #[test]
    fn trade_ids_fit_fifty_bits() {
        for id in [
            "",
            "03f89a550000000200000002",
            "1718377985380201703994000001",
        ] {
            assert!(tid(id) < 1 << 50, "{id}");
        }
        assert_ne!(tid("a"), tid("b"));
    }
}
