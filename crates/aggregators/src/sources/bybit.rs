//! Bybit spot: `GET /v5/market/tickers?category=spot` answers every spot ticker in one request
//! (`bid1Price`, `ask1Price`, `lastPrice`; the envelope's `time` is the response time).
//! Published limit: 600 requests per 5 s per IP across api.bybit.com; past it Bybit answers 403
//! "access too frequent" and asks clients to stay away for at least 10 minutes, which the
//! client honours.

use std::time::Duration;

use kamiyo_core_models::{Decimal, SourceError, Timestamp};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error, opt_millis};
use crate::hyperliquid::num::opt_dec;

/// Default symbols: the monitored perps that trade on Bybit spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS, "", "USDT")
}

/// One entry of `result.list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker {
    /// Symbol (`BTCUSDT`).
    pub symbol: String,
    /// Best bid.
    #[serde(rename = "bid1Price", deserialize_with = "opt_dec", default)]
    pub bid: Option<Decimal>,
    /// Best ask.
    #[serde(rename = "ask1Price", deserialize_with = "opt_dec", default)]
    pub ask: Option<Decimal>,
    /// Last trade price.
    #[serde(deserialize_with = "opt_dec", default)]
    pub last_price: Option<Decimal>,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    list: Vec<Ticker>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    ret_code: serde_json::Value,
    #[serde(default)]
    ret_msg: String,
    result: Option<List>,
    #[serde(deserialize_with = "opt_millis", default)]
    time: Option<Timestamp>,
}

/// Decodes a `market/tickers` body; a non-zero `retCode` is an error carrying Bybit's message.
/// Returns the tickers and the response time.
pub fn decode_tickers(body: &str) -> Result<(Vec<Ticker>, Option<Timestamp>), SourceError> {
    let e: Envelope =
        serde_json::from_str(body).map_err(|e| decode_error("bybit", "market/tickers", e))?;
    let ok = match &e.ret_code {
        serde_json::Value::String(s) => s == "0",
        serde_json::Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    };
    if !ok {
        return Err(decode_error(
            "bybit",
            "market/tickers",
            format_args!("retCode {} {}", e.ret_code, e.ret_msg),
        ));
    }
    Ok((e.result.map(|r| r.list).unwrap_or_default(), e.time))
}

/// Bybit's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bybit;

impl TickerApi for Bybit {
    fn venue(&self) -> &'static str {
        "bybit"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(600, 5_000)
    }

    fn requests(&self, _symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::batch("/v5/market/tickers", vec![("category", "spot".into())], 1)
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        let (list, time) = decode_tickers(body)?;
        Ok(list
            .into_iter()
            .map(|t| Top {
                symbol: t.symbol,
                bid: t.bid,
                ask: t.ask,
                last: t.last_price,
                time,
            })
            .collect())
    }

    fn ban(&self, status: u16) -> Option<Duration> {
        (status == 403).then_some(Duration::from_secs(600))
    }
}

/// Bybit's public spot WebSocket (`wss://stream.bybit.com/v5/public/spot`), topic
/// `tickers.{symbol}`: at most 10 topics per subscribe request; `{"op":"ping"}` every 20 s.
/// The spot ticker push has no best bid or ask, only `lastPrice`, which is what the quote uses
/// (the envelope's `ts` is its time).
impl super::stream::TickerStream for Bybit {
    fn subscribe(&self, symbols: &[String], _now: Timestamp) -> Vec<String> {
        symbols
            .chunks(10)
            .map(|c| {
                let args: Vec<String> = c.iter().map(|s| format!("tickers.{s}")).collect();
                serde_json::json!({"op": "subscribe", "args": args}).to_string()
            })
            .collect()
    }

    fn ping(&self, _now: Timestamp) -> Option<String> {
        Some(r#"{"op":"ping"}"#.into())
    }

    fn ping_interval(&self) -> Duration {
        Duration::from_secs(20)
    }

    fn decode_frame(&self, text: &str) -> Result<Vec<Top>, SourceError> {
        decode_ws(text)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WsTicker {
    symbol: String,
    #[serde(deserialize_with = "opt_dec", default)]
    last_price: Option<Decimal>,
}

#[derive(Deserialize)]
struct WsFrame {
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    ret_msg: Option<String>,
    #[serde(deserialize_with = "opt_millis", default)]
    ts: Option<Timestamp>,
    #[serde(default)]
    data: Option<WsTicker>,
}

/// Decodes one spot WebSocket frame: a ticker for a `tickers.*` push, none for acks and pongs,
/// an error for a refused request.
pub fn decode_ws(text: &str) -> Result<Vec<Top>, SourceError> {
    let f: WsFrame =
        serde_json::from_str(text).map_err(|e| decode_error("bybit", "ws tickers", e))?;
    if f.success == Some(false) {
        return Err(super::stream::venue_error(
            "bybit",
            f.ret_msg.unwrap_or_default(),
        ));
    }
    match (f.topic, f.data) {
        (Some(topic), Some(t)) if topic.starts_with("tickers.") => Ok(vec![Top {
            symbol: t.symbol,
            bid: None,
            ask: None,
            last: t.last_price,
            time: f.ts,
        }]),
        _ => Ok(Vec::new()),
    }
}
