//! One polling client for every reference venue's public ticker API. A venue is described by a
//! [`TickerApi`]: its published rate limit, the requests that fetch a set of symbols (one
//! batched request, or one per symbol) and a pure decoder from the response body to best
//! bid/ask. [`TickerSource`] does the rest the same way for every venue: the client-side
//! request budget (reserved before anything is sent, so kamiyo never exceeds the venue's
//! published limit), the cool-down a venue asks for (429 with `Retry-After`, or a venue's own
//! ban status), the symbol mapping and the quote time (the venue's own snapshot time when it
//! sends one, so a frozen ticker ages and drops out of the median).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use kamiyo_core_models::{
    Clock, Coin, Decimal, PriceSource, ReferenceQuote, SourceError, Timestamp, Venue,
};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::{SymbolMap, mid_or_last};
use crate::hyperliquid::budget::WeightBudget;
use crate::hyperliquid::num::opt_dec;
use crate::hyperliquid::rest::{http_client, send_text};

/// A venue's published public rate limit: `capacity` request weight per `window_ms`, per IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Weight allowed per window.
    pub capacity: u32,
    /// Window length, milliseconds.
    pub window_ms: i64,
}

/// One HTTP request of a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerRequest {
    /// Path under the base URL (`/api/v5/market/tickers`).
    pub path: String,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// The request's weight against the venue's limit.
    pub weight: u32,
    /// The symbol of a per-symbol request (`None` for a batched one).
    pub symbol: Option<String>,
}

/// Best bid, best ask and last price of one symbol, as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// Venue symbol.
    pub symbol: String,
    /// Best bid.
    pub bid: Option<Decimal>,
    /// Best ask.
    pub ask: Option<Decimal>,
    /// Last trade price.
    pub last: Option<Decimal>,
    /// The venue's snapshot time, when the response carries one (never a last-trade time).
    pub time: Option<Timestamp>,
}

impl Top {
    /// The quote of `coin` at `venue` this ticker gives at `now`: the mid (or the last price),
    /// timed by the venue's snapshot time when it sends one (never later than `now`).
    pub fn quote(&self, venue: &Venue, coin: &Coin, now: Timestamp) -> Option<ReferenceQuote> {
        Some(ReferenceQuote {
            venue: venue.clone(),
            coin: coin.clone(),
            price: mid_or_last(self.bid, self.ask, self.last)?,
            bid: self.bid,
            ask: self.ask,
            time: self.time.map_or(now, |v| v.min(now)),
        })
    }
}

impl RateLimit {
    /// `capacity` weight per `window_ms`.
    pub const fn new(capacity: u32, window_ms: i64) -> Self {
        Self {
            capacity,
            window_ms,
        }
    }
}

impl TickerRequest {
    /// One request for every symbol.
    pub fn batch(path: &str, query: Vec<(&'static str, String)>, weight: u32) -> Vec<Self> {
        vec![Self {
            path: path.to_owned(),
            query,
            weight,
            symbol: None,
        }]
    }

    /// One request per symbol, the symbol in query parameter `param`.
    pub fn each(symbols: &[&str], path: &str, param: &'static str, weight: u32) -> Vec<Self> {
        symbols
            .iter()
            .map(|s| Self {
                path: path.to_owned(),
                query: vec![(param, (*s).to_owned())],
                weight,
                symbol: Some((*s).to_owned()),
            })
            .collect()
    }
}

/// How one venue's public ticker API is called and read. Implementations are pure: no I/O.
pub trait TickerApi: Send + Sync + std::fmt::Debug + 'static {
    /// The venue's name (`okx`).
    fn venue(&self) -> &'static str;
    /// The published public limit the client keeps under.
    fn limit(&self) -> RateLimit;
    /// The requests that fetch `symbols` (never empty).
    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest>;
    /// Decodes one response body; `asked` is the symbol of a per-symbol request.
    fn decode(&self, body: &str, asked: Option<&str>) -> Result<Vec<Top>, SourceError>;
    /// A status the venue uses to ban a client, with how long to stay away (429 is handled for
    /// every venue from `Retry-After`).
    fn ban(&self, _status: u16) -> Option<Duration> {
        None
    }
    /// A status that means "this symbol is not listed" for a per-symbol request.
    fn not_listed(&self, status: u16) -> bool {
        status == 404
    }
}

/// `bookTicker` in Binance's shape, which MEXC's API mirrors (MEXC's `ticker/24hr` adds the
/// last price).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookTicker {
    /// Symbol.
    pub symbol: String,
    /// Best bid.
    #[serde(deserialize_with = "opt_dec", default)]
    pub bid_price: Option<Decimal>,
    /// Best ask.
    #[serde(deserialize_with = "opt_dec", default)]
    pub ask_price: Option<Decimal>,
    /// Last price (`ticker/24hr` only).
    #[serde(deserialize_with = "opt_dec", default)]
    pub last_price: Option<Decimal>,
}

impl From<BookTicker> for Top {
    fn from(t: BookTicker) -> Self {
        Top {
            symbol: t.symbol,
            bid: t.bid_price,
            ask: t.ask_price,
            last: t.last_price,
            time: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

/// Decodes a body that is one object for one symbol or an array for several (Binance's and
/// MEXC's ticker endpoints).
pub fn one_or_many<T: for<'de> Deserialize<'de>>(
    venue: &str,
    what: &str,
    body: &str,
) -> Result<Vec<T>, SourceError> {
    match serde_json::from_str::<OneOrMany<T>>(body) {
        Ok(OneOrMany::Many(v)) => Ok(v),
        Ok(OneOrMany::One(t)) => Ok(vec![t]),
        Err(e) => Err(decode_error(venue, what, e)),
    }
}

/// A decode error of `venue`.
pub fn decode_error(venue: &str, what: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Decode {
        venue: venue.into(),
        what: what.into(),
        detail: e.to_string().chars().take(300).collect(),
    }
}

/// `#[serde(deserialize_with = "opt_millis", default)]`: epoch milliseconds as a JSON number or
/// a string of digits (recorders and venues use both); `null` or absent is `None`.
pub fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(|ms| Some(Timestamp(ms)))
            .ok_or_else(|| de::Error::custom("expected integer milliseconds")),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|ms| Some(Timestamp(ms)))
            .map_err(|_| de::Error::custom("expected integer milliseconds")),
        Some(_) => Err(de::Error::custom("expected integer milliseconds")),
    }
}

/// A reference venue polled through its public ticker API.
#[derive(Debug)]
pub struct TickerSource<A: TickerApi> {
    api: A,
    venue: Venue,
    http: reqwest::Client,
    base_url: String,
    symbols: SymbolMap,
    clock: Arc<dyn Clock>,
    budget: WeightBudget,
    cooldown_until: Mutex<Option<tokio::time::Instant>>,
}

impl<A: TickerApi> TickerSource<A> {
    /// A source for `api` against `base_url` (the venue's host or a loopback simulator).
    pub fn new(
        api: A,
        base_url: &str,
        symbols: SymbolMap,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let venue = Venue::new(api.venue()).map_err(|e| SourceError::Transport {
            venue: api.venue().into(),
            detail: e.to_string(),
        })?;
        let limit = api.limit();
        Ok(Self {
            venue,
            http: http_client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            symbols,
            clock,
            budget: WeightBudget::new(limit.capacity, limit.window_ms, timeout),
            cooldown_until: Mutex::new(None),
            api,
        })
    }

    /// The client-side budget (weight spent in the current window).
    pub fn budget(&self) -> &WeightBudget {
        &self.budget
    }

    fn cooldown(&self) -> std::sync::MutexGuard<'_, Option<tokio::time::Instant>> {
        self.cooldown_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cool_down(&self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        let mut c = self.cooldown();
        if c.is_none_or(|t| t < until) {
            *c = Some(until);
        }
    }

    async fn fetch(&self, req: TickerRequest) -> Result<Option<Vec<Top>>, SourceError> {
        let venue = self.api.venue();
        if let Err(wait_ms) = self.budget.acquire(req.weight).await {
            return Err(SourceError::RateLimited {
                venue: venue.into(),
                retry_after_ms: wait_ms,
            });
        }
        let url = format!("{}{}", self.base_url, req.path);
        let body = match send_text(venue, self.http.get(url).query(&req.query)).await {
            Ok(b) => b,
            Err(SourceError::RateLimited {
                venue,
                retry_after_ms,
            }) => {
                self.cool_down(Duration::from_millis(retry_after_ms));
                return Err(SourceError::RateLimited {
                    venue,
                    retry_after_ms,
                });
            }
            Err(SourceError::Status { status, .. }) if self.api.not_listed(status) => {
                return Ok(None);
            }
            Err(SourceError::Status { status, detail, .. }) => {
                if let Some(d) = self.api.ban(status) {
                    self.cool_down(d);
                }
                return Err(SourceError::Status {
                    venue: venue.into(),
                    status,
                    detail,
                });
            }
            Err(e) => return Err(e),
        };
        self.api.decode(&body, req.symbol.as_deref()).map(Some)
    }
}

#[async_trait]
impl<A: TickerApi> PriceSource for TickerSource<A> {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError> {
        let wanted: Vec<&str> = coins
            .iter()
            .filter_map(|c| self.symbols.symbol(c))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let cooling = *self.cooldown();
        if let Some(until) = cooling {
            let now = tokio::time::Instant::now();
            if until > now {
                return Err(SourceError::RateLimited {
                    venue: self.api.venue().into(),
                    retry_after_ms: u64::try_from((until - now).as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        let jobs: Vec<_> = self
            .api
            .requests(&wanted)
            .into_iter()
            .map(|r| self.fetch(r))
            .collect();
        let now = self.clock.now();
        let mut out = Vec::new();
        let mut first_err = None;
        for r in join_all(jobs).await {
            match r {
                Ok(tops) => {
                    for t in tops.into_iter().flatten() {
                        let Some(coin) = self.symbols.coin(&t.symbol) else {
                            continue; // A symbol we did not ask for (batched answers).
                        };
                        if !wanted.contains(&t.symbol.as_str()) {
                            continue;
                        }
                        out.extend(t.quote(&self.venue, coin, now));
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (out.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }
}
