//! dYdX v4 through its public indexer (REST, `https://indexer.dydx.trade/v4`), polled: the
//! markets (`GET /perpetualMarkets`: oracle price, next funding rate, open interest, 24 h
//! volume) become asset contexts, the trades of the followed markets (`GET
//! /trades/perpetualMarket/{ticker}`) become trades — and the indexer's `LIQUIDATED` and
//! `DELEVERAGED` trades also become the liquidation and auto-deleveraging fills the
//! liquidation detector reads. dYdX v4 margins positions at the oracle price, so the context's
//! mark is its oracle price, and the followed markets' books (`GET
//! /orderbooks/perpetualMarket/{ticker}`) are read with the contexts: a book pushed away from
//! the oracle (dYdX v3's YFI squeeze of November 2023) shows as the context's mid against its
//! oracle, and the book itself feeds the thin-market wall rule.
//!
//! The indexer's published budget is 100 requests per 10 s per address; the default spends 50
//! of it. Polling, backoff, dedupe by the indexer's trade id and the `dydx.rest` feed are
//! [`super::poll`]'s. No WebSocket: no recorded `v4_trades`/`v4_markets` frame of the current
//! schema exists to test a decoder against (only 2023 documentation examples of an older
//! schema), so the socket waits for one.

use std::collections::HashMap;
use std::time::Duration;

use kamiyo_core_models::{AssetCtx, BookSnapshot, Coin, Decimal, Timestamp, Trade};
use serde::Deserialize;

use super::poll::{self, Ask, AskKind, DecodeError, Forced, Item, PollConfig, Venue};

const VENUE: &str = "dYdX";

/// The defaults: the public indexer, BTC/ETH/SOL trades, half the published budget.
pub fn default_config() -> PollConfig {
    PollConfig {
        base_urls: vec!["https://indexer.dydx.trade/v4".into()],
        markets: vec!["BTC-USD".into(), "ETH-USD".into(), "SOL-USD".into()],
        contexts_every: Duration::from_secs(5),
        trades_every: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        requests_per_10s: 50,
        resume_after: None,
    }
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(VENUE, what, detail)
}

/// The coin of a dYdX ticker (`BTC-USD` → `BTC`).
pub fn coin_of(ticker: &str) -> Option<Coin> {
    let base = ticker.strip_suffix("-USD")?;
    Coin::new(base).ok()
}

#[derive(Deserialize)]
struct Markets {
    markets: HashMap<String, Market>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Market {
    ticker: String,
    status: String,
    oracle_price: Option<String>,
    next_funding_rate: String,
    open_interest: String,
    #[serde(rename = "volume24H")]
    volume24h: Option<String>,
}

fn dec(what: &'static str, s: &str) -> Result<Decimal, DecodeError> {
    poll::dec(VENUE, what, s)
}

/// `GET /perpetualMarkets` → one context per active market with an oracle price, stamped `now`.
pub fn decode_markets(body: &str, now: Timestamp) -> Result<Vec<AssetCtx>, DecodeError> {
    let m: Markets = serde_json::from_str(body).map_err(|e| err("perpetualMarkets", e))?;
    let mut out = Vec::new();
    for mk in m.markets.into_values() {
        let (Some(coin), Some(oracle)) = (coin_of(&mk.ticker), mk.oracle_price.as_deref()) else {
            continue;
        };
        if mk.status != "ACTIVE" {
            continue;
        }
        let oracle = dec("perpetualMarkets", oracle)?;
        let oi = dec("perpetualMarkets", &mk.open_interest)?;
        let volume = mk
            .volume24h
            .map_or(Ok(Decimal::ZERO), |v| dec("perpetualMarkets", &v))?;
        out.push(AssetCtx {
            coin,
            time: now,
            oracle_px: oracle,
            // dYdX v4 marks positions at the oracle price.
            mark_px: oracle,
            mid_px: None,
            open_interest: oi,
            funding: dec("perpetualMarkets", &mk.next_funding_rate)?,
            day_ntl_vlm: volume,
            prev_day_px: None,
            premium: None,
            impact_pxs: None,
        });
    }
    out.sort_by(|a, b| a.coin.cmp(&b.coin));
    Ok(out)
}

#[derive(Deserialize)]
struct Trades {
    trades: Vec<WireTrade>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireTrade {
    id: String,
    side: String,
    size: String,
    price: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    created_at: String,
}

/// One decoded indexer trade: its id, the trade, and how it was forced (`LIQUIDATED`,
/// `DELEVERAGED`), if it was.
pub type DydxTrade = (String, Trade, Option<Forced>);

/// `GET /trades/perpetualMarket/{ticker}` → trades, oldest first.
pub fn decode_trades(body: &str, ticker: &str) -> Result<Vec<DydxTrade>, DecodeError> {
    let coin = coin_of(ticker).ok_or_else(|| err("trades", format!("ticker {ticker:?}")))?;
    let t: Trades = serde_json::from_str(body).map_err(|e| err("trades", e))?;
    let mut out = Vec::with_capacity(t.trades.len());
    for w in t.trades {
        let side = poll::side(VENUE, "trades", &w.side)?;
        let time = chrono::DateTime::parse_from_rfc3339(&w.created_at)
            .map_err(|e| err("trades", format!("createdAt {:?}: {e}", w.created_at)))?
            .timestamp_millis();
        let forced = match w.kind.as_deref() {
            Some("LIQUIDATED") => Some(Forced::Liquidation),
            Some("DELEVERAGED") => Some(Forced::Deleveraging),
            _ => None,
        };
        out.push((
            w.id.clone(),
            Trade {
                coin: coin.clone(),
                side,
                px: dec("trades", &w.price)?,
                sz: dec("trades", &w.size)?,
                time: Timestamp(time),
                tid: poll::tid(&w.id),
                users: None,
            },
            forced,
        ));
    }
    // The indexer answers newest first.
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

#[derive(Deserialize)]
struct Book {
    bids: Vec<poll::Level>,
    asks: Vec<poll::Level>,
}

/// `GET /orderbooks/perpetualMarket/{ticker}` → the book, stamped `now`.
pub fn decode_book(body: &str, ticker: &str, now: Timestamp) -> Result<BookSnapshot, DecodeError> {
    let coin = coin_of(ticker).ok_or_else(|| err("orderbooks", format!("ticker {ticker:?}")))?;
    let b: Book = serde_json::from_str(body).map_err(|e| err("orderbooks", e))?;
    poll::book(VENUE, "orderbooks", coin, now, (&b.bids, &b.asks), (0, 0))
}

/// dYdX v4's indexer as a polled venue: the latest context per market (for the book's mid).
#[derive(Debug, Default)]
pub struct Dydx {
    last: poll::Latest,
}

impl Venue for Dydx {
    fn name(&self) -> &'static str {
        "dydx"
    }

    fn asks(&self, cfg: &PollConfig, contexts_due: bool) -> Vec<Ask> {
        let mut out = Vec::new();
        if contexts_due {
            out.push(Ask::new("/perpetualMarkets", AskKind::Contexts));
            out.extend(cfg.markets.iter().map(|m| {
                Ask::new(
                    format!("/orderbooks/perpetualMarket/{m}"),
                    AskKind::Book(m.clone()),
                )
            }));
        }
        out.extend(cfg.markets.iter().map(|m| {
            Ask::new(
                format!("/trades/perpetualMarket/{m}"),
                AskKind::Trades(m.clone()),
            )
        }));
        out
    }

    fn decode(&mut self, ask: &Ask, body: &str, now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        Ok(match &ask.kind {
            AskKind::Trades(m) => poll::trade_items(m, decode_trades(body, m)?),
            AskKind::Book(m) => self.last.book(decode_book(body, m, now)?, now),
            _ => self.last.contexts(decode_markets(body, now)?),
        })
    }
}
