//! MEXC spot: `GET /api/v3/ticker/bookTicker?symbol=BTCUSDT` per symbol (best bid and ask; no
//! snapshot time). Published limit: 500 per 10 s per endpoint per IP, weight 1; repeated
//! violations get the IP banned, so a 429's `Retry-After` is always honoured. MEXC's WebSocket
//! pushes protobuf only; no recorded frame exists, so kamiyo polls REST.

use kamiyo_core_models::{Decimal, SourceError};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error};
use crate::hyperliquid::num::opt_dec;

/// Default symbols: the monitored perps that trade on MEXC spot against USDT.
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

/// `ticker/bookTicker` (also the bid/ask fields of `ticker/24hr`).
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

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<BookTicker>),
    One(BookTicker),
}

/// Decodes `ticker/bookTicker` or `ticker/24hr` (an object for one symbol, an array for all).
pub fn decode_book_ticker(body: &str) -> Result<Vec<BookTicker>, SourceError> {
    match serde_json::from_str::<OneOrMany>(body) {
        Ok(OneOrMany::Many(v)) => Ok(v),
        Ok(OneOrMany::One(t)) => Ok(vec![t]),
        Err(e) => Err(decode_error("mexc", "ticker/bookTicker", e)),
    }
}

/// MEXC's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mexc;

impl TickerApi for Mexc {
    fn venue(&self) -> &'static str {
        "mexc"
    }

    fn limit(&self) -> RateLimit {
        RateLimit {
            capacity: 500,
            window_ms: 10_000,
        }
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        symbols
            .iter()
            .map(|s| TickerRequest {
                path: "/api/v3/ticker/bookTicker".into(),
                query: vec![("symbol", (*s).to_owned())],
                weight: 1,
                symbol: Some((*s).to_owned()),
            })
            .collect()
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_book_ticker(body)?
            .into_iter()
            .map(|t| Top {
                symbol: t.symbol,
                bid: t.bid_price,
                ask: t.ask_price,
                last: t.last_price,
                time: None,
            })
            .collect())
    }
}
