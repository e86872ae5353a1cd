//! KuCoin spot: `GET /api/v1/market/allTickers` answers every spot ticker in one request
//! (`buy` = best bid, `sell` = best ask; `data.time` is the snapshot time — KuCoin refreshes it
//! every 2 s). Published limit: the public resource pool of 2,000 weight per 30 s; this
//! endpoint weighs 15. Errors come as a `code` other than `"200000"`.

use kamiyo_core_models::{Decimal, SourceError, Timestamp};
use serde::Deserialize;

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error, opt_millis};
use crate::hyperliquid::num::opt_dec;

/// Default symbols: the monitored perps that trade on KuCoin spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS, "-", "USDT")
}

/// One entry of `data.ticker` (and the body of `market/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ticker {
    /// Symbol (`BTC-USDT`).
    pub symbol: String,
    /// Best bid.
    #[serde(deserialize_with = "opt_dec", default)]
    pub buy: Option<Decimal>,
    /// Best ask.
    #[serde(deserialize_with = "opt_dec", default)]
    pub sell: Option<Decimal>,
    /// Last trade price.
    #[serde(deserialize_with = "opt_dec", default)]
    pub last: Option<Decimal>,
}

#[derive(Deserialize)]
struct All {
    #[serde(deserialize_with = "opt_millis", default)]
    time: Option<Timestamp>,
    #[serde(default)]
    ticker: Vec<Ticker>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    code: serde_json::Value,
    #[serde(default)]
    msg: String,
    data: Option<T>,
}

fn envelope<T: for<'de> Deserialize<'de>>(what: &str, body: &str) -> Result<T, SourceError> {
    let e: Envelope<T> = serde_json::from_str(body).map_err(|e| decode_error("kucoin", what, e))?;
    let ok = match &e.code {
        serde_json::Value::String(s) => s == "200000",
        serde_json::Value::Number(n) => n.as_i64() == Some(200_000),
        _ => false,
    };
    match (ok, e.data) {
        (true, Some(d)) => Ok(d),
        (true, None) => Err(decode_error("kucoin", what, "no data")),
        (false, _) => Err(decode_error(
            "kucoin",
            what,
            format_args!("code {} {}", e.code, e.msg),
        )),
    }
}

/// Decodes `market/allTickers`: the tickers and the snapshot time.
pub fn decode_all_tickers(body: &str) -> Result<(Vec<Ticker>, Option<Timestamp>), SourceError> {
    let a: All = envelope("market/allTickers", body)?;
    Ok((a.ticker, a.time))
}

/// Decodes `market/stats` (one symbol).
pub fn decode_stats(body: &str) -> Result<Ticker, SourceError> {
    envelope("market/stats", body)
}

/// KuCoin's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kucoin;

impl TickerApi for Kucoin {
    fn venue(&self) -> &'static str {
        "kucoin"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(2_000, 30_000)
    }

    fn requests(&self, _symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::batch("/api/v1/market/allTickers", Vec::new(), 15)
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        let (list, time) = decode_all_tickers(body)?;
        Ok(list
            .into_iter()
            .map(|t| Top {
                symbol: t.symbol,
                bid: t.buy,
                ask: t.sell,
                last: t.last,
                time,
            })
            .collect())
    }
}

/// KuCoin's public WebSocket: the URL and token come from `POST /api/v1/bullet-public`; topic
/// `/market/ticker:{symbols}` (up to 100 per topic; pushes at most every 100 ms) with
/// `bestBid`, `bestAsk`, `price` and `time`; `{"type":"ping"}` every 18 s (the bullet's
/// documented ping interval).
impl super::stream::TickerStream for Kucoin {
    fn subscribe(&self, symbols: &[String], now: Timestamp) -> Vec<String> {
        symbols
            .chunks(100)
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({"id": format!("{}{i}", now.0), "type": "subscribe", "topic": format!("/market/ticker:{}", c.join(",")), "privateChannel": false, "response": true})
                    .to_string()
            })
            .collect()
    }

    fn ping(&self, now: Timestamp) -> Option<String> {
        Some(serde_json::json!({"id": now.0.to_string(), "type": "ping"}).to_string())
    }

    fn ping_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(18)
    }

    fn decode_frame(&self, text: &str) -> Result<Vec<Top>, SourceError> {
        decode_ws(text)
    }

    fn bootstrap_path(&self) -> Option<&'static str> {
        Some("/api/v1/bullet-public")
    }

    fn endpoint(&self, body: &str) -> Result<String, SourceError> {
        decode_bullet(body)
    }
}

#[derive(Deserialize)]
struct Bullet {
    token: String,
    #[serde(rename = "instanceServers")]
    instance_servers: Vec<InstanceServer>,
}

#[derive(Deserialize)]
struct InstanceServer {
    endpoint: String,
}

/// Decodes `bullet-public` into the socket URL (`{endpoint}?token=…`).
pub fn decode_bullet(body: &str) -> Result<String, SourceError> {
    let b: Bullet = envelope("bullet-public", body)?;
    let server = b
        .instance_servers
        .first()
        .ok_or_else(|| decode_error("kucoin", "bullet-public", "no instance server"))?;
    if !(server.endpoint.starts_with("wss://") || server.endpoint.starts_with("ws://")) {
        return Err(decode_error(
            "kucoin",
            "bullet-public",
            format_args!("endpoint {:?} is not a WebSocket URL", server.endpoint),
        ));
    }
    let sep = if server.endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    Ok(format!("{}{sep}token={}", server.endpoint, b.token))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WsTicker {
    #[serde(deserialize_with = "opt_dec", default)]
    best_bid: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", default)]
    best_ask: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", default)]
    price: Option<Decimal>,
    #[serde(deserialize_with = "opt_millis", default, alias = "Time")]
    time: Option<Timestamp>,
}

#[derive(Deserialize)]
struct WsFrame {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// Decodes one frame: the ticker of a `/market/ticker:*` message (its symbol from the topic),
/// none for welcome, ack and pong, an error for an `error` frame.
pub fn decode_ws(text: &str) -> Result<Vec<Top>, SourceError> {
    let f: WsFrame =
        serde_json::from_str(text).map_err(|e| decode_error("kucoin", "ws market/ticker", e))?;
    match f.kind.as_str() {
        "error" => Err(super::stream::venue_error(
            "kucoin",
            f.data.unwrap_or_default(),
        )),
        "message" => {
            let Some(symbol) = f
                .topic
                .as_deref()
                .and_then(|t| t.strip_prefix("/market/ticker:"))
            else {
                return Ok(Vec::new());
            };
            let t: WsTicker = serde_json::from_value(f.data.unwrap_or_default())
                .map_err(|e| decode_error("kucoin", "ws market/ticker", e))?;
            Ok(vec![Top {
                symbol: symbol.to_owned(),
                bid: t.best_bid,
                ask: t.best_ask,
                last: t.price,
                time: t.time,
            }])
        }
        _ => Ok(Vec::new()),
    }
}
