//! Binance spot: `GET /api/v3/ticker/bookTicker?symbols=[…]` (one request for every coin, weight
//! 4 per symbol batch) gives best bid and ask; the quote is their mid. USDT is taken at par with
//! USD, as Hyperliquid's oracle does for USDT pairs.

use std::time::Duration;

use kamiyo_core_models::{Decimal, SourceError};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, TickerSource, Top, decode_error};
use crate::hyperliquid::num::{dec, opt_dec};

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
        Err(e) => Err(decode_error("binance", what, e)),
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

/// Binance spot's public ticker API. Published limit: 6,000 request weight per minute per IP;
/// `bookTicker` with a symbol list weighs 4. A 418 means the IP is banned after ignoring 429s:
/// the client stays away for two minutes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binance;

impl TickerApi for Binance {
    fn venue(&self) -> &'static str {
        "binance"
    }

    fn limit(&self) -> RateLimit {
        RateLimit {
            capacity: 6_000,
            window_ms: 60_000,
        }
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        vec![TickerRequest {
            path: "/api/v3/ticker/bookTicker".into(),
            query: vec![(
                "symbols",
                serde_json::to_string(symbols).unwrap_or_default(),
            )],
            weight: 4,
            symbol: None,
        }]
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_book_ticker(body)?
            .into_iter()
            .map(|t| Top {
                symbol: t.symbol,
                bid: t.bid_price,
                ask: t.ask_price,
                last: None,
                time: None,
            })
            .collect())
    }

    fn ban(&self, status: u16) -> Option<Duration> {
        (status == 418).then_some(Duration::from_secs(120))
    }
}

/// Binance spot as a reference venue.
pub type BinanceSource = TickerSource<Binance>;
