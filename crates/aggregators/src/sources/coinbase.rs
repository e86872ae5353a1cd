//! Coinbase Exchange: `GET /products/{BASE-USD}/ticker` per coin (concurrently) gives bid, ask
//! and last trade; the quote is the mid. Coinbase quotes in USD, so it is an independent check
//! of the USDT-based venues.

use kamiyo_core_models::{Decimal, SourceError};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, TickerSource, Top, decode_error};
use crate::hyperliquid::num::opt_dec;

/// Default products.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS[..11], "-", "USD")
}

/// `products/{id}/ticker`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ticker {
    /// Best ask.
    #[serde(deserialize_with = "opt_dec", default)]
    pub ask: Option<Decimal>,
    /// Best bid.
    #[serde(deserialize_with = "opt_dec", default)]
    pub bid: Option<Decimal>,
    /// Last trade price.
    #[serde(deserialize_with = "opt_dec", default)]
    pub price: Option<Decimal>,
    /// Last trade time (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
}

/// Decodes a ticker body.
pub fn decode_ticker(body: &str) -> Result<Ticker, SourceError> {
    serde_json::from_str(body).map_err(|e| decode_error("coinbase", "products/ticker", e))
}

/// Coinbase Exchange's public ticker API, one request per product. Published limit: 10
/// requests per second per IP for public endpoints. A product Coinbase does not list answers 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct Coinbase;

impl TickerApi for Coinbase {
    fn venue(&self) -> &'static str {
        "coinbase"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(10, 1_000)
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        symbols
            .iter()
            .map(|s| TickerRequest {
                path: format!("/products/{s}/ticker"),
                query: Vec::new(),
                weight: 1,
                symbol: Some((*s).to_owned()),
            })
            .collect()
    }

    fn decode(&self, body: &str, asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        // A ticker body does not name its product: it is the one asked for.
        let Some(symbol) = asked else {
            return Err(decode_error(
                "coinbase",
                "products/ticker",
                "a ticker body answers one product request",
            ));
        };
        let t = decode_ticker(body)?;
        Ok(vec![Top {
            symbol: symbol.to_owned(),
            bid: t.bid,
            ask: t.ask,
            last: t.price,
            time: None,
        }])
    }
}

/// Coinbase as a reference venue (an independent USD reference: not an oracle input).
pub type CoinbaseSource = TickerSource<Coinbase>;
