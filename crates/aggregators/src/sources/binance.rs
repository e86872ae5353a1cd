//! Binance spot: `GET /api/v3/ticker/bookTicker?symbols=[…]` (one request for every coin, weight
//! 4 per symbol batch) gives best bid and ask; the quote is their mid. USDT is taken at par with
//! USD, as Hyperliquid's oracle does for USDT pairs.

use std::time::Duration;

use kamiyo_core_models::{Decimal, SourceError};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, TickerSource, Top, one_or_many};
use crate::hyperliquid::num::dec;

/// Default symbols: the monitored perps that trade on Binance spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS, "", "USDT")
}

pub use super::ticker::BookTicker;

/// One entry of `ticker/price`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PriceTicker {
    /// Symbol.
    pub symbol: String,
    /// Last price.
    #[serde(deserialize_with = "dec")]
    pub price: Decimal,
}

/// Decodes `ticker/bookTicker` (an object for one symbol, an array for several).
pub fn decode_book_ticker(body: &str) -> Result<Vec<BookTicker>, SourceError> {
    one_or_many("binance", "ticker/bookTicker", body)
}

/// Decodes `ticker/price`.
pub fn decode_price_ticker(body: &str) -> Result<Vec<PriceTicker>, SourceError> {
    one_or_many("binance", "ticker/price", body)
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
        RateLimit::new(6_000, 60_000)
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::batch(
            "/api/v3/ticker/bookTicker",
            vec![(
                "symbols",
                serde_json::to_string(symbols).unwrap_or_default(),
            )],
            4,
        )
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_book_ticker(body)?
            .into_iter()
            .map(Top::from)
            .collect())
    }

    fn ban(&self, status: u16) -> Option<Duration> {
        (status == 418).then_some(Duration::from_secs(120))
    }
}

/// Binance spot as a reference venue.
pub type BinanceSource = TickerSource<Binance>;
