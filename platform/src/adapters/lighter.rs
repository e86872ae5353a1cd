//! Lighter (zk-rollup perpetuals) over its public WebSocket (`wss://mainnet.zklighter.elliot.ai/stream`),
//! with its REST API (`https://mainnet.zklighter.elliot.ai/api/v1`) read before each connection
//! for the market ids (`GET /orderBookDetails`). `market_stats/all` becomes asset contexts —
//! index price as the oracle, mark and mid prices, open interest (quoted in USD; divided by the
//! mark into contracts), funding, 24 h quote volume — and the followed markets' `trade/{id}`
//! channels become trades, their `liquidation_trades` also the liquidation fills the liquidation
//! detector reads. A frame is sent every minute (Lighter drops clients silent for two).
//!
//! Limits: 60 weighted REST requests a minute for standard accounts (one per connection here).
//! Recorded material: the REST answers are real captures (2026-05-05); the one `market_stats`
//! frame is of unclear origin (live-looking values) and the `trade` frame is derived from the
//! documentation — no verified live WebSocket frame exists (see testdata/protocols/lighter).

use std::collections::HashMap;
use std::time::Duration;

use kamiyo_core_models::{AssetCtx, Coin, Decimal, MarketEvent, Side, Timestamp, Trade};
use serde::Deserialize;

use super::poll::{self, DecodeError, Forced, Item};
use super::socket::SocketConfig;

const VENUE: &str = "Lighter";

/// The defaults: mainnet, ETH/BTC/SOL trades.
pub fn default_config() -> SocketConfig {
    SocketConfig {
        ws_url: "wss://mainnet.zklighter.elliot.ai/stream".into(),
        rest_url: "https://mainnet.zklighter.elliot.ai/api/v1".into(),
        markets: vec!["ETH".into(), "BTC".into(), "SOL".into()],
        connect_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        resume_after: None,
    }
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(VENUE, what, detail)
}

fn dec(what: &'static str, v: &serde_json::Value) -> Result<Decimal, DecodeError> {
    Ok(poll::dec_json(VENUE, what, v)?.normalize())
}

#[derive(Deserialize)]
struct Details {
    order_book_details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    symbol: String,
    market_id: u32,
    #[serde(default)]
    market_type: Option<String>,
}

#[derive(Deserialize)]
struct WireTrade {
    trade_id: u64,
    market_id: u32,
    size: String,
    price: String,
    timestamp: i64,
    is_maker_ask: bool,
}

/// Lighter as a socket venue: the market ids it has read.
#[derive(Debug, Default)]
pub struct Lighter {
    /// Market id → coin.
    coins: HashMap<u32, Coin>,
}

impl Lighter {
    /// `GET /orderBookDetails`: the perpetual markets' ids.
    pub fn read_details(&mut self, body: &str) -> Result<usize, DecodeError> {
        let d: Details = serde_json::from_str(body).map_err(|e| err("orderBookDetails", e))?;
        self.coins = d
            .order_book_details
            .into_iter()
            .filter(|d| d.market_type.as_deref().is_none_or(|t| t == "perp"))
            .filter_map(|d| Some((d.market_id, Coin::new(&d.symbol).ok()?)))
            .collect();
        Ok(self.coins.len())
    }

    fn id_of(&self, symbol: &str) -> Option<u32> {
        self.coins
            .iter()
            .find(|(_, c)| c.as_str() == symbol)
            .map(|(id, _)| *id)
    }

    fn stats(&self, s: &serde_json::Value, time: Timestamp) -> Result<AssetCtx, DecodeError> {
        let f = |k: &str| {
            s.get(k)
                .ok_or_else(|| err("market_stats", format!("no {k}")))
        };
        let coin = match s.get("symbol").and_then(serde_json::Value::as_str) {
            Some(sym) => Coin::new(sym).map_err(|e| err("market_stats", e))?,
            None => {
                let id = f("market_id")?
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| err("market_stats", "market_id"))?;
                self.coins
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err("market_stats", format!("unknown market {id}")))?
            }
        };
        let mark = dec("market_stats", f("mark_price")?)?;
        let oi_usd = dec("market_stats", f("open_interest")?)?;
        Ok(AssetCtx {
            coin,
            time,
            oracle_px: dec("market_stats", f("index_price")?)?,
            mark_px: mark,
            mid_px: s
                .get("mid_price")
                .map(|v| dec("market_stats", v))
                .transpose()?,
            open_interest: if mark > Decimal::ZERO {
                (oi_usd / mark).round_dp(6).normalize()
            } else {
                Decimal::ZERO
            },
            funding: dec("market_stats", f("funding_rate")?)?,
            day_ntl_vlm: s
                .get("daily_quote_token_volume")
                .map_or(Ok(Decimal::ZERO), |v| dec("market_stats", v))?,
            prev_day_px: None,
            premium: None,
            impact_pxs: None,
        })
    }

    fn trade(&self, w: WireTrade, forced: Option<Forced>) -> Result<Item, DecodeError> {
        let coin = self
            .coins
            .get(&w.market_id)
            .cloned()
            .ok_or_else(|| err("trade", format!("unknown market {}", w.market_id)))?;
        let id = w.trade_id.to_string();
        let t = Trade {
            coin,
            // The maker sold: the taker bought.
            side: if w.is_maker_ask {
                Side::Buy
            } else {
                Side::Sell
            },
            px: poll::dec(VENUE, "trade", &w.price)?,
            sz: poll::dec(VENUE, "trade", &w.size)?,
            time: Timestamp(w.timestamp),
            tid: w.trade_id,
            users: None,
        };
        Ok(poll::trade_item(&w.market_id.to_string(), id, t, forced))
    }

    /// Decodes one frame.
    pub fn decode_frame(&self, text: &str, now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| err("frame", e))?;
        let kind = v
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| err("frame", "no type"))?;
        let time = v
            .get("timestamp")
            .and_then(serde_json::Value::as_i64)
            .map_or(now, Timestamp);
        match kind {
            "subscribed/market_stats" | "update/market_stats" => {
                let s = v
                    .get("market_stats")
                    .ok_or_else(|| err("market_stats", "no market_stats"))?;
                let one = s.get("mark_price").is_some();
                let all: Vec<&serde_json::Value> = if one {
                    vec![s]
                } else {
                    s.as_object()
                        .ok_or_else(|| err("market_stats", "not an object"))?
                        .values()
                        .collect()
                };
                all.into_iter()
                    .map(|s| Ok(Item::Event(MarketEvent::AssetCtx(self.stats(s, time)?))))
                    .collect()
            }
            "subscribed/trade" | "update/trade" => {
                let list = |k: &str| -> Result<Vec<WireTrade>, DecodeError> {
                    v.get(k).map_or(Ok(Vec::new()), |x| {
                        serde_json::from_value(x.clone()).map_err(|e| err("trade", e))
                    })
                };
                // Liquidations first: a trade listed in both is kept as the forced one.
                let mut out = Vec::new();
                for w in list("liquidation_trades")? {
                    out.push(self.trade(w, Some(Forced::Liquidation))?);
                }
                for w in list("trades")? {
                    out.push(self.trade(w, None)?);
                }
                Ok(out)
            }
            "connected" | "pong" | "ping" => Ok(Vec::new()),
            t if t.starts_with("subscribed/") || t.starts_with("update/") => Ok(Vec::new()),
            other => Err(err("frame", format!("type {other:?}"))),
        }
    }
}

impl super::socket::Socket for Lighter {
    fn name(&self) -> &'static str {
        "lighter"
    }

    fn bootstrap(&self) -> Option<&'static str> {
        Some("/orderBookDetails")
    }

    fn bootstrapped(&mut self, body: &str) -> Result<(), DecodeError> {
        self.read_details(body).map(|_| ())
    }

    fn subscribe(&self, markets: &[String]) -> Vec<String> {
        let mut out = vec![
            serde_json::json!({"type": "subscribe", "channel": "market_stats/all"}).to_string(),
        ];
        for m in markets {
            match self.id_of(m) {
                Some(id) => out.push(
                    serde_json::json!({"type": "subscribe", "channel": format!("trade/{id}")})
                        .to_string(),
                ),
                None => {
                    tracing::warn!(market = %m, "Lighter lists no such perpetual; not followed")
                }
            }
        }
        out
    }

    fn ping(&self) -> Option<(Duration, String)> {
        Some((
            Duration::from_secs(60),
            serde_json::json!({"type": "ping"}).to_string(),
        ))
    }

    fn decode(&mut self, text: &str, now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        self.decode_frame(text, now)
    }
}
