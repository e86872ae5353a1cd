//! Kraken spot: `GET /0/public/Ticker?pair=XBTUSDT,ETHUSDT,…` answers every pair in one request
//! (`a` = [ask, whole-lot volume, lot volume], `b` = bid, `c` = [last, volume]). Errors come as
//! HTTP 200 with a non-empty `error` array. Kraken publishes no number for public endpoints,
//! only that one call per second stays within the limits: the budget is 1 request per second.
//! Pairs are USDT pairs, whose result keys equal the requested names (Kraken's legacy USD pairs
//! answer under other keys, such as `XXBTZUSD`).

use std::collections::BTreeMap;

use kamiyo_core_models::{Decimal, SourceError};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error};
use crate::hyperliquid::num::parse_decimal;

/// Default pairs (USDT pairs known to be listed).
pub fn default_symbols() -> SymbolMap {
    SymbolMap::from_pairs(&[
        ("BTC", "XBTUSDT"),
        ("ETH", "ETHUSDT"),
        ("SOL", "SOLUSDT"),
        ("XRP", "XRPUSDT"),
        ("LINK", "LINKUSDT"),
    ])
}

/// One pair of `result`: only the fields used (Kraken sends more).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ticker {
    /// `[price, whole lot volume, lot volume]`.
    #[serde(default)]
    pub a: Vec<serde_json::Value>,
    /// `[price, whole lot volume, lot volume]`.
    #[serde(default)]
    pub b: Vec<serde_json::Value>,
    /// `[price, lot volume]`.
    #[serde(default)]
    pub c: Vec<serde_json::Value>,
}

fn first(v: &[serde_json::Value]) -> Option<Decimal> {
    match v.first()? {
        serde_json::Value::String(s) => parse_decimal(s),
        serde_json::Value::Number(n) => parse_decimal(&n.to_string()),
        _ => None,
    }
}

impl Ticker {
    /// Best bid, best ask, last.
    pub fn top(&self) -> (Option<Decimal>, Option<Decimal>, Option<Decimal>) {
        (first(&self.b), first(&self.a), first(&self.c))
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    result: BTreeMap<String, Ticker>,
}

/// Decodes a `public/Ticker` body; a non-empty `error` array is an error carrying it.
pub fn decode_ticker(body: &str) -> Result<BTreeMap<String, Ticker>, SourceError> {
    let e: Envelope =
        serde_json::from_str(body).map_err(|e| decode_error("kraken", "public/Ticker", e))?;
    if !e.error.is_empty() {
        return Err(decode_error("kraken", "public/Ticker", e.error.join("; ")));
    }
    Ok(e.result)
}

/// Kraken's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kraken;

impl TickerApi for Kraken {
    fn venue(&self) -> &'static str {
        "kraken"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(1, 1_000)
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::batch("/0/public/Ticker", vec![("pair", symbols.join(","))], 1)
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_ticker(body)?
            .into_iter()
            .map(|(symbol, t)| {
                let (bid, ask, last) = t.top();
                Top {
                    symbol,
                    bid,
                    ask,
                    last,
                    time: None,
                }
            })
            .collect())
    }
}

/// Kraken's WebSocket v2 (`wss://ws.kraken.com/v2`), channel `ticker`: symbols are written
/// `BTC/USDT` (REST's `XBTUSDT`); `{"method":"ping"}` every 20 s; snapshots and updates carry
/// `bid`, `ask` and `last` as JSON numbers.
impl super::stream::TickerStream for Kraken {
    fn subscribe(&self, symbols: &[String], _now: kamiyo_core_models::Timestamp) -> Vec<String> {
        vec![
            serde_json::json!({"method": "subscribe", "params": {"channel": "ticker", "symbol": symbols}})
                .to_string(),
        ]
    }

    fn ping(&self, _now: kamiyo_core_models::Timestamp) -> Option<String> {
        Some(r#"{"method":"ping"}"#.into())
    }

    fn ping_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(20)
    }

    fn decode_frame(&self, text: &str) -> Result<Vec<Top>, SourceError> {
        decode_ws(text)
    }

    fn ws_symbol(&self, rest: &str) -> String {
        ws_symbol(rest)
    }
}

/// `XBTUSDT` → `BTC/USDT` (Kraken's WebSocket v2 names; XBT is BTC, XDG is DOGE).
pub fn ws_symbol(rest: &str) -> String {
    let (base, quote) = ["USDT", "USDC", "USD", "EUR"]
        .iter()
        .find_map(|q| rest.strip_suffix(q).map(|b| (b, *q)))
        .unwrap_or((rest, ""));
    let base = match base {
        "XBT" => "BTC",
        "XDG" => "DOGE",
        b => b,
    };
    if quote.is_empty() {
        base.to_owned()
    } else {
        format!("{base}/{quote}")
    }
}

#[derive(Deserialize)]
struct WsTicker {
    symbol: String,
    #[serde(deserialize_with = "crate::hyperliquid::num::opt_dec", default)]
    bid: Option<Decimal>,
    #[serde(deserialize_with = "crate::hyperliquid::num::opt_dec", default)]
    ask: Option<Decimal>,
    #[serde(deserialize_with = "crate::hyperliquid::num::opt_dec", default)]
    last: Option<Decimal>,
}

#[derive(Deserialize)]
struct WsFrame {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// Decodes one v2 frame: tickers of a `ticker` snapshot or update (with WebSocket symbols),
/// none for status, heartbeat and acks, an error for a refused request.
pub fn decode_ws(text: &str) -> Result<Vec<Top>, SourceError> {
    let f: WsFrame =
        serde_json::from_str(text).map_err(|e| decode_error("kraken", "ws ticker", e))?;
    if f.success == Some(false) {
        return Err(super::stream::venue_error(
            "kraken",
            f.error.unwrap_or_default(),
        ));
    }
    if f.channel.as_deref() != Some("ticker") {
        return Ok(Vec::new());
    }
    let list: Vec<WsTicker> = serde_json::from_value(f.data.unwrap_or_default())
        .map_err(|e| decode_error("kraken", "ws ticker", e))?;
    Ok(list
        .into_iter()
        .map(|t| Top {
            symbol: t.symbol,
            bid: t.bid,
            ask: t.ask,
            last: t.last,
            time: None,
        })
        .collect())
}
