//! Binance USDⓈ-M futures over its public market WebSocket (`wss://fstream.binance.com/ws`):
//! `<symbol>@markPrice@1s` (mark price, index price, funding rate) becomes asset contexts whose
//! oracle is Binance's index price (its own spot-venue composite, the counterpart of a DEX's
//! oracle), and `<symbol>@forceOrder` (liquidation orders) becomes the liquidation fills the
//! liquidation detector reads. Binance pushes at most one liquidation per symbol per second
//! (the latest), so counts understate a cascade while sizes still show it; the stream carries
//! no open interest. The deepest perpetual venue's liquidations are the market-wide signal
//! other venues' cascades are compared with.
//!
//! Limits: 10 incoming messages per second per connection, 1,024 streams per connection; the
//! server pings every 3 minutes (answered automatically). No recorded frame exists: the decoder
//! is tested against Binance's documented examples (`testdata/protocols/binance/`).

use std::time::Duration;

use kamiyo_core_models::{AssetCtx, Coin, Decimal, MarketEvent, Timestamp, Trade};
use serde::Deserialize;

use super::poll::{self, DecodeError, Forced, Item};
use super::socket::{Socket, SocketConfig};

const VENUE: &str = "Binance";

/// The defaults: the public futures socket, BTC/ETH/SOL.
pub fn default_config() -> SocketConfig {
    SocketConfig {
        ws_url: "wss://fstream.binance.com/ws".into(),
        rest_url: "https://fapi.binance.com".into(),
        markets: vec!["BTCUSDT".into(), "ETHUSDT".into(), "SOLUSDT".into()],
        connect_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        resume_after: None,
    }
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(VENUE, what, detail)
}

fn dec(what: &'static str, s: &str) -> Result<Decimal, DecodeError> {
    Ok(poll::dec(VENUE, what, s)?.normalize())
}

/// The coin of a USDⓈ-M symbol (`BTCUSDT` → `BTC`).
pub fn coin_of(symbol: &str) -> Option<Coin> {
    let base = symbol
        .strip_suffix("USDT")
        .or_else(|| symbol.strip_suffix("USDC"))?;
    Coin::new(base).ok()
}

#[derive(Deserialize)]
struct MarkPrice {
    #[serde(rename = "E")]
    event_time: i64,
    s: String,
    p: String,
    i: String,
    r: String,
}

#[derive(Deserialize)]
struct ForceOrder {
    o: ForceOrderBody,
}

#[derive(Deserialize)]
struct ForceOrderBody {
    s: String,
    #[serde(rename = "S")]
    side: String,
    q: String,
    ap: String,
    #[serde(rename = "z", default)]
    filled: Option<String>,
    #[serde(rename = "T")]
    trade_time: i64,
}

/// Decodes one frame (raw or combined-stream `{"stream", "data"}`; subscription acks → none).
pub fn decode_frame(text: &str) -> Result<Vec<Item>, DecodeError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| err("frame", e))?;
    let data = v.get("data").unwrap_or(&v);
    if data.get("result").is_some() && data.get("id").is_some() {
        return Ok(Vec::new());
    }
    match data.get("e").and_then(serde_json::Value::as_str) {
        Some("markPriceUpdate") => {
            let m: MarkPrice =
                serde_json::from_value(data.clone()).map_err(|e| err("markPriceUpdate", e))?;
            let coin =
                coin_of(&m.s).ok_or_else(|| err("markPriceUpdate", format!("symbol {:?}", m.s)))?;
            Ok(vec![Item::Event(MarketEvent::AssetCtx(AssetCtx {
                coin,
                time: Timestamp(m.event_time),
                oracle_px: dec("markPriceUpdate", &m.i)?,
                mark_px: dec("markPriceUpdate", &m.p)?,
                mid_px: None,
                open_interest: Decimal::ZERO,
                funding: dec("markPriceUpdate", &m.r)?,
                day_ntl_vlm: Decimal::ZERO,
                prev_day_px: None,
                premium: None,
                impact_pxs: None,
            }))])
        }
        Some("forceOrder") => {
            let f: ForceOrder =
                serde_json::from_value(data.clone()).map_err(|e| err("forceOrder", e))?;
            let o = f.o;
            let coin =
                coin_of(&o.s).ok_or_else(|| err("forceOrder", format!("symbol {:?}", o.s)))?;
            let side = poll::side(VENUE, "forceOrder", &o.side)?;
            let sz = dec("forceOrder", o.filled.as_deref().unwrap_or(&o.q))?;
            if sz <= Decimal::ZERO {
                return Ok(Vec::new());
            }
            // No trade id: the symbol, time and size name a liquidation order.
            let id = format!("{}:{}:{}:{}", o.s, o.trade_time, o.side, sz);
            let trade = Trade {
                coin,
                side,
                px: dec("forceOrder", &o.ap)?,
                sz,
                time: Timestamp(o.trade_time),
                tid: poll::tid(&id),
                users: None,
            };
            Ok(vec![poll::trade_item(
                &o.s,
                id,
                trade,
                Some(Forced::Liquidation),
            )])
        }
        Some(other) => Err(err("frame", format!("event {other:?}"))),
        None => Err(err("frame", "no event type")),
    }
}

/// Binance USDⓈ-M futures as a socket venue.
#[derive(Debug, Default)]
pub struct Binance;

impl Socket for Binance {
    fn name(&self) -> &'static str {
        "binance"
    }

    fn subscribe(&self, markets: &[String]) -> Vec<String> {
        let params: Vec<String> = markets
            .iter()
            .flat_map(|m| {
                let m = m.to_ascii_lowercase();
                [format!("{m}@markPrice@1s"), format!("{m}@forceOrder")]
            })
            .collect();
        // One message per 200 streams keeps well under the per-message and per-second limits.
        params
            .chunks(200)
            .enumerate()
            .map(|(i, chunk)| {
                serde_json::json!({"method": "SUBSCRIBE", "params": chunk, "id": i + 1}).to_string()
            })
            .collect()
    }

    fn decode(&mut self, text: &str, _now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        decode_frame(text)
    }
}
