//! Gate spot: `GET /api/v4/spot/tickers?currency_pair=BTC_USDT` per pair (`highest_bid`,
//! `lowest_ask`, `last`; no snapshot time). Published limit: 200 requests per 10 s per endpoint
//! per IP (since 2024-01-22); a poll of every monitored pair costs one request each.

use kamiyo_core_models::{Decimal, SourceError};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error};
use crate::hyperliquid::num::opt_dec;

/// Default pairs: the monitored perps that trade on Gate spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS, "_", "USDT")
}

/// One entry of `spot/tickers` (also the `result` of a `spot.tickers` WebSocket update).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ticker {
    /// Pair (`BTC_USDT`).
    pub currency_pair: String,
    /// Last trade price.
    #[serde(deserialize_with = "opt_dec", default)]
    pub last: Option<Decimal>,
    /// Best ask.
    #[serde(deserialize_with = "opt_dec", default)]
    pub lowest_ask: Option<Decimal>,
    /// Best bid.
    #[serde(deserialize_with = "opt_dec", default)]
    pub highest_bid: Option<Decimal>,
}

/// Decodes a `spot/tickers` body (an array).
pub fn decode_tickers(body: &str) -> Result<Vec<Ticker>, SourceError> {
    serde_json::from_str(body).map_err(|e| decode_error("gate", "spot/tickers", e))
}

/// Gate's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gate;

impl TickerApi for Gate {
    fn venue(&self) -> &'static str {
        "gate"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(200, 10_000)
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::each(symbols, "/api/v4/spot/tickers", "currency_pair", 1)
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_tickers(body)?
            .into_iter()
            .map(|t| Top {
                symbol: t.currency_pair,
                bid: t.highest_bid,
                ask: t.lowest_ask,
                last: t.last,
                time: None,
            })
            .collect())
    }
}

/// Gate's public WebSocket (`wss://api.gateio.ws/ws/v4/`), channel `spot.tickers`: one
/// subscribe with every pair; `spot.ping` every 20 s; updates carry the REST ticker object.
impl super::stream::TickerStream for Gate {
    fn subscribe(&self, symbols: &[String], now: kamiyo_core_models::Timestamp) -> Vec<String> {
        vec![
            serde_json::json!({"time": now.0 / 1000, "channel": "spot.tickers", "event": "subscribe", "payload": symbols})
                .to_string(),
        ]
    }

    fn ping(&self, now: kamiyo_core_models::Timestamp) -> Option<String> {
        Some(serde_json::json!({"time": now.0 / 1000, "channel": "spot.ping"}).to_string())
    }

    fn ping_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(20)
    }

    fn decode_frame(&self, text: &str) -> Result<Vec<Top>, SourceError> {
        decode_ws(text)
    }
}

#[derive(Deserialize)]
struct WsFrame {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    result: Option<serde_json::Value>,
}

/// Decodes one `spot.tickers` frame: the ticker of an `update`, none for acks and pongs, an
/// error when Gate reports one.
pub fn decode_ws(text: &str) -> Result<Vec<Top>, SourceError> {
    let f: WsFrame =
        serde_json::from_str(text).map_err(|e| decode_error("gate", "ws spot.tickers", e))?;
    if let Some(e) = f.error.filter(|e| !e.is_null()) {
        return Err(super::stream::venue_error("gate", e));
    }
    if f.channel != "spot.tickers" || f.event != "update" {
        return Ok(Vec::new());
    }
    let t: Ticker = serde_json::from_value(f.result.unwrap_or_default())
        .map_err(|e| decode_error("gate", "ws spot.tickers", e))?;
    Ok(vec![Top {
        symbol: t.currency_pair,
        bid: t.highest_bid,
        ask: t.lowest_ask,
        last: t.last,
        time: None,
    }])
}
