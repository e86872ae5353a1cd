//! MEXC spot: `GET /api/v3/ticker/bookTicker?symbol=BTCUSDT` per symbol (best bid and ask; no
//! snapshot time). Published limit: 500 per 10 s per endpoint per IP, weight 1; repeated
//! violations get the IP banned, so a 429's `Retry-After` is always honoured. MEXC's WebSocket
//! pushes protobuf only; no recorded frame exists, so kamiyo polls REST.

use kamiyo_core_models::SourceError;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, one_or_many};

/// Default symbols: the monitored perps that trade on MEXC spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS, "", "USDT")
}

pub use super::ticker::BookTicker;

/// Decodes `ticker/bookTicker` or `ticker/24hr` (an object for one symbol, an array for all).
pub fn decode_book_ticker(body: &str) -> Result<Vec<BookTicker>, SourceError> {
    one_or_many("mexc", "ticker/bookTicker", body)
}

/// MEXC's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mexc;

impl TickerApi for Mexc {
    fn venue(&self) -> &'static str {
        "mexc"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(500, 10_000)
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::each(symbols, "/api/v3/ticker/bookTicker", "symbol", 1)
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_book_ticker(body)?
            .into_iter()
            .map(Top::from)
            .collect())
    }
}
