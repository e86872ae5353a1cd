//! Binance spot: `GET /api/v3/ticker/bookTicker?symbols=[…]` (one request for every coin, weight
//! 4 per symbol batch) gives best bid and ask; the quote is their mid. USDT is taken at par with
//! USD, as Hyperliquid's oracle does for USDT pairs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kamiyo_core_models::{Clock, Coin, Decimal, PriceSource, ReferenceQuote, SourceError, Venue};
use serde::Deserialize;

use super::{SymbolMap, mid_or_last};
use crate::hyperliquid::num::{dec, opt_dec};
use crate::hyperliquid::rest::{http_client, send_text};

/// Default symbols: the monitored perps that trade on Binance spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::from_pairs(&[
        ("BTC", "BTCUSDT"),
        ("ETH", "ETHUSDT"),
        ("SOL", "SOLUSDT"),
        ("ARB", "ARBUSDT"),
        ("OP", "OPUSDT"),
        ("AVAX", "AVAXUSDT"),
        ("POL", "POLUSDT"),
        ("DOGE", "DOGEUSDT"),
        ("XRP", "XRPUSDT"),
        ("LINK", "LINKUSDT"),
        ("SUI", "SUIUSDT"),
        ("HYPE", "HYPEUSDT"),
    ])
}

/// One entry of `ticker/bookTicker`.
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
}

/// One entry of `ticker/price`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceTicker {
    /// Symbol.
    pub symbol: String,
    /// Last price.
    #[serde(deserialize_with = "dec")]
    pub price: Decimal,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

fn one_or_many<T: for<'de> Deserialize<'de>>(
    what: &str,
    body: &str,
) -> Result<Vec<T>, SourceError> {
    match serde_json::from_str::<OneOrMany<T>>(body) {
        Ok(OneOrMany::Many(v)) => Ok(v),
        Ok(OneOrMany::One(t)) => Ok(vec![t]),
        Err(e) => Err(SourceError::Decode {
            venue: "binance".into(),
            what: what.into(),
            detail: e.to_string().chars().take(300).collect(),
        }),
    }
}

/// Decodes `ticker/bookTicker` (an object for one symbol, an array for several).
pub fn decode_book_ticker(body: &str) -> Result<Vec<BookTicker>, SourceError> {
    one_or_many("ticker/bookTicker", body)
}

/// Decodes `ticker/price`.
pub fn decode_price_ticker(body: &str) -> Result<Vec<PriceTicker>, SourceError> {
    one_or_many("ticker/price", body)
}

/// Binance spot as a reference venue.
#[derive(Debug, Clone)]
pub struct BinanceSource {
    venue: Venue,
    http: reqwest::Client,
    base_url: String,
    symbols: SymbolMap,
    clock: Arc<dyn Clock>,
}

impl BinanceSource {
    /// A source against `base_url` (`https://api.binance.com` or a loopback simulator).
    pub fn new(
        base_url: &str,
        symbols: SymbolMap,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            venue: Venue::new("binance").map_err(|e| SourceError::Transport {
                venue: "binance".into(),
                detail: e.to_string(),
            })?,
            http: http_client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            symbols,
            clock,
        })
    }
}

#[async_trait]
impl PriceSource for BinanceSource {
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
        let list = serde_json::to_string(&wanted).unwrap_or_default();
        let req = self
            .http
            .get(format!("{}/api/v3/ticker/bookTicker", self.base_url))
            .query(&[("symbols", list)]);
        let body = send_text("binance", req).await?;
        let now = self.clock.now();
        Ok(decode_book_ticker(&body)?
            .into_iter()
            .filter_map(|t| {
                let coin = self.symbols.coin(&t.symbol)?.clone();
                let price = mid_or_last(t.bid_price, t.ask_price, None)?;
                Some(ReferenceQuote {
                    venue: self.venue.clone(),
                    coin,
                    price,
                    bid: t.bid_price,
                    ask: t.ask_price,
                    time: now,
                })
            })
            .collect())
    }
}
