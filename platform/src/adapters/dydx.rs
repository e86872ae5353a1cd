//! dYdX v4 through its public indexer (REST, `https://indexer.dydx.trade/v4`), polled: the
//! markets (`GET /perpetualMarkets`: oracle price, next funding rate, open interest, 24 h
//! volume) become asset contexts, the trades of the followed markets (`GET
//! /trades/perpetualMarket/{ticker}`) become trades. dYdX v4 margins positions at the oracle
//! price, so the context's mark is its oracle price.
//!
//! The indexer's published budget is 100 requests per 10 s per address; the poller spends at
//! most [`DydxConfig::requests_per_10s`] of it (a token bucket). A failing endpoint is retried
//! with backoff (1 s doubling to 60 s) and reported as a `dydx.rest` feed going down and back.
//! Trades are deduplicated by the indexer's trade id (the last 2,000 per market), so overlapping
//! polls — including the first, which backfills the newest page — emit each trade once, oldest
//! first. Malformed answers are logged and skipped, never fatal. No WebSocket: no recorded
//! `v4_trades`/`v4_markets` frame of the current schema exists to test a decoder against (only
//! 2023 documentation examples of an older schema), so the socket waits for one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use kamiyo_core_models::{
    AssetCtx, Coin, Decimal, EventStream, FeedState, FeedStatus, MarketEvent, Side, Timestamp,
    Trade,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// How the poller runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DydxConfig {
    /// The indexer's base, up to and including `/v4`.
    pub base_url: String,
    /// Tickers whose trades are followed (`BTC-USD`, …); every market's context is polled.
    pub trade_markets: Vec<String>,
    /// Between two polls of the markets.
    pub markets_every: Duration,
    /// Between two polls of each followed market's trades.
    pub trades_every: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Requests per 10 s the poller may spend (the indexer publishes 100 per address).
    pub requests_per_10s: u32,
}

impl Default for DydxConfig {
    fn default() -> Self {
        Self {
            base_url: "https://indexer.dydx.trade/v4".into(),
            trade_markets: vec!["BTC-USD".into(), "ETH-USD".into(), "SOL-USD".into()],
            markets_every: Duration::from_secs(5),
            trades_every: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            requests_per_10s: 50,
        }
    }
}

/// A body that is not what the indexer documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dYdX {what}: {detail}")]
pub struct DecodeError {
    /// Which endpoint.
    pub what: &'static str,
    /// Why.
    pub detail: String,
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError {
        what,
        detail: detail.to_string(),
    }
}

/// The coin of a dYdX ticker (`BTC-USD` → `BTC`).
pub fn coin_of(ticker: &str) -> Option<Coin> {
    let base = ticker.strip_suffix("-USD")?;
    Coin::new(base).ok()
}

#[derive(Deserialize)]
struct Markets {
    markets: HashMap<String, Market>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Market {
    ticker: String,
    status: String,
    oracle_price: Option<String>,
    next_funding_rate: String,
    open_interest: String,
    #[serde(rename = "volume24H")]
    volume24h: Option<String>,
}

fn dec(what: &'static str, s: &str) -> Result<Decimal, DecodeError> {
    s.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(s))
        .map_err(|e| err(what, format!("{s:?}: {e}")))
}

/// `GET /perpetualMarkets` → one context per active market with an oracle price, stamped `now`.
pub fn decode_markets(body: &str, now: Timestamp) -> Result<Vec<AssetCtx>, DecodeError> {
    let m: Markets = serde_json::from_str(body).map_err(|e| err("perpetualMarkets", e))?;
    let mut out = Vec::new();
    for mk in m.markets.into_values() {
        let (Some(coin), Some(oracle)) = (coin_of(&mk.ticker), mk.oracle_price.as_deref()) else {
            continue;
        };
        if mk.status != "ACTIVE" {
            continue;
        }
        let oracle = dec("perpetualMarkets", oracle)?;
        let oi = dec("perpetualMarkets", &mk.open_interest)?;
        let volume = mk
            .volume24h
            .map_or(Ok(Decimal::ZERO), |v| dec("perpetualMarkets", &v))?;
        out.push(AssetCtx {
            coin,
            time: now,
            oracle_px: oracle,
            // dYdX v4 marks positions at the oracle price.
            mark_px: oracle,
            mid_px: None,
            open_interest: oi,
            funding: dec("perpetualMarkets", &mk.next_funding_rate)?,
            day_ntl_vlm: volume,
            prev_day_px: None,
            premium: None,
            impact_pxs: None,
        });
    }
    out.sort_by(|a, b| a.coin.cmp(&b.coin));
    Ok(out)
}

#[derive(Deserialize)]
struct Trades {
    trades: Vec<WireTrade>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTrade {
    id: String,
    side: String,
    size: String,
    price: String,
    created_at: String,
}

/// A stable 64-bit id for a dYdX trade id (hex of block height, transaction and event
/// indices): FNV-1a of its text.
fn tid(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `GET /trades/perpetualMarket/{ticker}` → (indexer id, trade), oldest first.
pub fn decode_trades(body: &str, ticker: &str) -> Result<Vec<(String, Trade)>, DecodeError> {
    let coin = coin_of(ticker).ok_or_else(|| err("trades", format!("ticker {ticker:?}")))?;
    let t: Trades = serde_json::from_str(body).map_err(|e| err("trades", e))?;
    let mut out = Vec::with_capacity(t.trades.len());
    for w in t.trades {
        let side = match w.side.as_str() {
            "BUY" => Side::Buy,
            "SELL" => Side::Sell,
            other => return Err(err("trades", format!("side {other:?}"))),
        };
        let time = chrono::DateTime::parse_from_rfc3339(&w.created_at)
            .map_err(|e| err("trades", format!("createdAt {:?}: {e}", w.created_at)))?
            .timestamp_millis();
        out.push((
            w.id.clone(),
            Trade {
                coin: coin.clone(),
                side,
                px: dec("trades", &w.price)?,
                sz: dec("trades", &w.size)?,
                time: Timestamp(time),
                tid: tid(&w.id),
                users: None,
            },
        ));
    }
    // The indexer answers newest first.
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Trade ids already emitted for one market (bounded).
#[derive(Debug, Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    const MAX: usize = 2_000;

    /// True the first time `id` is offered.
    fn first(&mut self, id: &str) -> bool {
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
struct Budget {
    tokens: f64,
    cap: f64,
    per_sec: f64,
    at: tokio::time::Instant,
}

impl Budget {
    fn new(per_10s: u32) -> Self {
        let cap = f64::from(per_10s.max(1));
        Self {
            tokens: cap,
            cap,
            per_sec: cap / 10.0,
            at: tokio::time::Instant::now(),
        }
    }

    async fn take(&mut self) {
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

/// The poller's state.
struct Poller {
    cfg: DydxConfig,
    http: reqwest::Client,
    budget: Budget,
    seen: HashMap<String, Seen>,
    failures: u32,
    feed: FeedState,
    clock: std::sync::Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Poller {
    async fn get(&mut self, path: &str) -> Result<String, String> {
        self.budget.take().await;
        let r = self
            .http
            .get(format!("{}{path}", self.cfg.base_url.trim_end_matches('/')))
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

    fn status(&mut self, state: FeedState, detail: String, out: &mut Vec<MarketEvent>) {
        if self.feed != state {
            self.feed = state;
            let now = Timestamp((self.clock)());
            out.push(MarketEvent::Feed(FeedStatus {
                feed: "dydx.rest".into(),
                state,
                changed_at: now,
                last_data_at: (state == FeedState::Live).then_some(now),
                detail,
            }));
        }
    }

    /// One round: the markets when due, each followed market's trades. The events and how long
    /// to wait before the next round.
    async fn round(&mut self, markets_due: bool) -> (Vec<MarketEvent>, Duration) {
        let mut out = Vec::new();
        let mut failed = None;
        if markets_due {
            match self.get("/perpetualMarkets").await {
                Ok(body) => match decode_markets(&body, Timestamp((self.clock)())) {
                    Ok(ctxs) => out.extend(ctxs.into_iter().map(MarketEvent::AssetCtx)),
                    Err(e) => tracing::warn!(error = %e, "dYdX markets answer skipped"),
                },
                Err(e) => failed = Some(e),
            }
        }
        for ticker in self.cfg.trade_markets.clone() {
            match self.get(&format!("/trades/perpetualMarket/{ticker}")).await {
                Ok(body) => match decode_trades(&body, &ticker) {
                    Ok(trades) => {
                        let seen = self.seen.entry(ticker.clone()).or_default();
                        out.extend(
                            trades
                                .into_iter()
                                .filter(|(id, _)| seen.first(id))
                                .map(|(_, t)| MarketEvent::Trade(t)),
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "dYdX trades answer skipped"),
                },
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => {
                self.failures += 1;
                let wait =
                    Duration::from_secs(1 << self.failures.min(6)).min(Duration::from_secs(60));
                tracing::warn!(error = %e, retry_in = ?wait, "dYdX indexer request failed");
                self.status(FeedState::Down, e, &mut out);
                (out, wait)
            }
            None => {
                self.failures = 0;
                self.status(FeedState::Live, String::new(), &mut out);
                (out, self.cfg.trades_every)
            }
        }
    }
}

/// The dYdX market-data stream: polls until `shutdown`; `clock` stamps contexts and feed
/// changes (epoch ms).
pub fn stream(
    cfg: DydxConfig,
    http: reqwest::Client,
    clock: std::sync::Arc<dyn Fn() -> i64 + Send + Sync>,
    shutdown: CancellationToken,
) -> EventStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<MarketEvent>(4096);
    tokio::spawn(async move {
        let budget = Budget::new(cfg.requests_per_10s);
        let markets_every = cfg.markets_every;
        let mut p = Poller {
            cfg,
            http,
            budget,
            seen: HashMap::new(),
            failures: 0,
            feed: FeedState::Stale,
            clock,
        };
        let mut last_markets: Option<tokio::time::Instant> = None;
        loop {
            let due = last_markets.is_none_or(|t| t.elapsed() >= markets_every);
            if due {
                last_markets = Some(tokio::time::Instant::now());
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
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (e, rx))
    }))
}
