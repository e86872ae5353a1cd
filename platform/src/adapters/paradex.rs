//! Paradex (Starknet perpetuals) through its public REST API (`https://api.prod.paradex.trade/v1`),
//! polled: `GET /markets/summary?market=ALL` (oracle and mark prices, open interest in base
//! units, funding rate, 24 h volume) becomes asset contexts for every perpetual, and the
//! followed markets' `GET /trades?market=…` become trades — a `LIQUIDATION` trade also the
//! liquidation fill the liquidation detector reads. Paradex publishes 1,500 public requests a
//! minute per IP; the default spends 100 per 10 s. The WebSocket (`wss://ws.api.prod.paradex.trade/v1`)
//! is not used: no recorded frame of it exists to test a decoder against.

use std::time::Duration;

use kamiyo_core_models::{AssetCtx, Coin, Decimal, MarketEvent, Timestamp, Trade};
use serde::Deserialize;

use super::poll::{self, Ask, AskKind, DecodeError, Forced, Item, PollConfig, Venue};

const VENUE: &str = "Paradex";

/// The defaults: production, BTC/ETH/SOL trades.
pub fn default_config() -> PollConfig {
    PollConfig {
        base_urls: vec!["https://api.prod.paradex.trade/v1".into()],
        markets: vec![
            "BTC-USD-PERP".into(),
            "ETH-USD-PERP".into(),
            "SOL-USD-PERP".into(),
        ],
        contexts_every: Duration::from_secs(3),
        trades_every: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        requests_per_10s: 100,
        resume_after: None,
    }
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(VENUE, what, detail)
}

/// The coin of a Paradex perpetual (`BTC-USD-PERP` → `BTC`); options and others → none.
pub fn coin_of(symbol: &str) -> Option<Coin> {
    Coin::new(symbol.strip_suffix("-USD-PERP")?).ok()
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
}

#[derive(Deserialize)]
struct Summary {
    symbol: String,
    oracle_price: Option<String>,
    mark_price: Option<String>,
    #[serde(default)]
    open_interest: Option<String>,
    #[serde(default)]
    funding_rate: Option<String>,
    #[serde(default)]
    volume_24h: Option<String>,
    #[serde(default)]
    bid: Option<String>,
    #[serde(default)]
    ask: Option<String>,
    created_at: i64,
}

fn dec(what: &'static str, s: &str) -> Result<Decimal, DecodeError> {
    poll::dec(VENUE, what, s)
}

fn opt(what: &'static str, s: Option<&str>) -> Result<Decimal, DecodeError> {
    s.filter(|s| !s.is_empty())
        .map_or(Ok(Decimal::ZERO), |s| dec(what, s))
}

/// `GET /markets/summary?market=ALL` → one context per perpetual with oracle and mark prices.
pub fn decode_summary(body: &str) -> Result<Vec<AssetCtx>, DecodeError> {
    let p: Page<Summary> = serde_json::from_str(body).map_err(|e| err("markets/summary", e))?;
    let mut out = Vec::new();
    for s in p.results {
        let (Some(coin), Some(oracle), Some(mark)) = (
            coin_of(&s.symbol),
            s.oracle_price.as_deref(),
            s.mark_price.as_deref(),
        ) else {
            continue;
        };
        let (bid, ask) = (
            opt("markets/summary", s.bid.as_deref())?,
            opt("markets/summary", s.ask.as_deref())?,
        );
        out.push(AssetCtx {
            coin,
            time: Timestamp(s.created_at),
            oracle_px: dec("markets/summary", oracle)?,
            mark_px: dec("markets/summary", mark)?,
            mid_px: (bid > Decimal::ZERO && ask >= bid)
                .then(|| ((bid + ask) / Decimal::TWO).normalize()),
            open_interest: opt("markets/summary", s.open_interest.as_deref())?,
            funding: opt("markets/summary", s.funding_rate.as_deref())?,
            day_ntl_vlm: opt("markets/summary", s.volume_24h.as_deref())?,
            prev_day_px: None,
            premium: None,
            impact_pxs: None,
        });
    }
    out.sort_by(|a, b| a.coin.cmp(&b.coin));
    Ok(out)
}

#[derive(Deserialize)]
struct WireTrade {
    id: String,
    market: String,
    side: String,
    size: String,
    price: String,
    created_at: i64,
    #[serde(default)]
    trade_type: Option<String>,
}

/// `GET /trades?market=…` → (id, trade, forced), oldest first.
pub fn decode_trades(body: &str) -> Result<Vec<(String, Trade, Option<Forced>)>, DecodeError> {
    let p: Page<WireTrade> = serde_json::from_str(body).map_err(|e| err("trades", e))?;
    let mut out = Vec::with_capacity(p.results.len());
    for w in p.results {
        let coin =
            coin_of(&w.market).ok_or_else(|| err("trades", format!("market {:?}", w.market)))?;
        let side = poll::side(VENUE, "trades", &w.side)?;
        let forced =
            (w.trade_type.as_deref() == Some("LIQUIDATION")).then_some(Forced::Liquidation);
        out.push((
            w.id.clone(),
            Trade {
                coin,
                side,
                px: dec("trades", &w.price)?,
                sz: dec("trades", &w.size)?,
                time: Timestamp(w.created_at),
                tid: poll::tid(&w.id),
                users: None,
            },
            forced,
        ));
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Paradex as a polled venue.
#[derive(Debug, Default)]
pub struct Paradex;

impl Venue for Paradex {
    fn name(&self) -> &'static str {
        "paradex"
    }

    fn asks(&self, cfg: &PollConfig, contexts_due: bool) -> Vec<Ask> {
        let mut out = Vec::new();
        if contexts_due {
            out.push(Ask::new("/markets/summary?market=ALL", AskKind::Contexts));
        }
        out.extend(cfg.markets.iter().map(|m| {
            Ask::new(
                format!("/trades?market={m}&page_size=100"),
                AskKind::Trades(m.clone()),
            )
        }));
        out
    }

    fn decode(&mut self, ask: &Ask, body: &str, _now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        Ok(match &ask.kind {
            AskKind::Trades(m) => poll::trade_items(m, decode_trades(body)?),
            _ => decode_summary(body)?
                .into_iter()
                .map(|c| Item::Event(MarketEvent::AssetCtx(c)))
                .collect(),
        })
    }
}
