//! OKX spot: `GET /api/v5/market/tickers?instType=SPOT` answers every spot ticker in one
//! request (best bid `bidPx`, best ask `askPx`, `ts` the snapshot time). Published limit: 20
//! requests per 2 s per IP for the ticker endpoints.

use kamiyo_core_models::{Decimal, SourceError, Timestamp};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error, opt_millis};
use crate::hyperliquid::num::opt_dec;

/// Default instruments: the monitored perps that trade on OKX spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS[..11], "-", "USDT")
}

/// One ticker of `market/ticker(s)` (REST) or of the `tickers` WebSocket channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker {
    /// Instrument id (`BTC-USDT`).
    pub inst_id: String,
    /// Last trade price.
    #[serde(deserialize_with = "opt_dec", default)]
    pub last: Option<Decimal>,
    /// Best bid.
    #[serde(deserialize_with = "opt_dec", default)]
    pub bid_px: Option<Decimal>,
    /// Best ask.
    #[serde(deserialize_with = "opt_dec", default)]
    pub ask_px: Option<Decimal>,
    /// Snapshot time, epoch ms.
    #[serde(deserialize_with = "opt_millis", default)]
    pub ts: Option<Timestamp>,
}

impl From<Ticker> for Top {
    fn from(t: Ticker) -> Self {
        Top {
            symbol: t.inst_id,
            bid: t.bid_px,
            ask: t.ask_px,
            last: t.last,
            time: t.ts,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    code: serde_json::Value,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    data: Vec<Ticker>,
}

/// Decodes a `market/ticker` or `market/tickers` body (`{"code":"0","data":[…]}`); a non-zero
/// code is an error carrying OKX's message.
pub fn decode_tickers(body: &str) -> Result<Vec<Ticker>, SourceError> {
    let e: Envelope =
        serde_json::from_str(body).map_err(|e| decode_error("okx", "market/tickers", e))?;
    let ok = match &e.code {
        serde_json::Value::String(s) => s == "0",
        serde_json::Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    };
    if !ok {
        return Err(decode_error(
            "okx",
            "market/tickers",
            format_args!("code {} {}", e.code, e.msg),
        ));
    }
    Ok(e.data)
}

/// OKX's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Okx;

impl TickerApi for Okx {
    fn venue(&self) -> &'static str {
        "okx"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(20, 2_000)
    }

    fn requests(&self, _symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::batch(
            "/api/v5/market/tickers",
            vec![("instType", "SPOT".into())],
            1,
        )
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_tickers(body)?.into_iter().map(Top::from).collect())
    }
}

/// OKX's public WebSocket (`wss://ws.okx.com:8443/ws/v5/public`), channel `tickers`: one
/// subscribe message for every instrument; a text `ping` every 20 s (OKX drops a connection
/// silent for 30 s) answered by a text `pong`; pushes carry the same ticker objects as REST.
impl super::stream::TickerStream for Okx {
    fn subscribe(&self, symbols: &[String], _now: Timestamp) -> Vec<String> {
        let args: Vec<serde_json::Value> = symbols
            .iter()
            .map(|s| serde_json::json!({"channel": "tickers", "instId": s}))
            .collect();
        vec![serde_json::json!({"op": "subscribe", "args": args}).to_string()]
    }

    fn ping(&self, _now: Timestamp) -> Option<String> {
        Some("ping".into())
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
    event: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    data: Option<Vec<Ticker>>,
}

/// Decodes one `tickers` WebSocket frame: tickers for a push, none for `pong` and
/// subscription events, an error for an `error` event.
pub fn decode_ws(text: &str) -> Result<Vec<Top>, SourceError> {
    if text.trim() == "pong" {
        return Ok(Vec::new());
    }
    let f: WsFrame =
        serde_json::from_str(text).map_err(|e| decode_error("okx", "ws tickers", e))?;
    match f.event.as_deref() {
        Some("error") => Err(super::stream::venue_error(
            "okx",
            format_args!(
                "code {} {}",
                f.code.unwrap_or_default(),
                f.msg.unwrap_or_default()
            ),
        )),
        Some(_) => Ok(Vec::new()),
        None => Ok(f
            .data
            .unwrap_or_default()
            .into_iter()
            .map(Top::from)
            .collect()),
    }
}
