//! Drift v2 (Solana perpetuals) through its public Data API (`https://data.api.drift.trade`)
//! and DLOB server (`https://dlob.drift.trade`), polled: `GET /stats/markets` (oracle and mark
//! prices, long open interest in base units, the long side's funding rate, 24 h quote volume)
//! becomes asset contexts for every perpetual; the followed markets' `GET
//! /market/{symbol}/trades` become trades (their `fill` records; price is quote over base
//! filled) — a fill explained as `liquidation` also the liquidation fill the liquidation
//! detector reads; and their `GET /l2?marketName=…` books (prices in 1e6, sizes in 1e9; the
//! DLOB's own and the AMM's liquidity together) become book snapshots for the thin-market
//! detector and, with the latest context, its mid against the oracle. No numeric limit is published; ccxt spaces requests 250 ms apart,
//! and the default spends 30 per 10 s.

use std::time::Duration;

use kamiyo_core_models::{AssetCtx, BookSnapshot, Coin, Decimal, Side, Timestamp, Trade};
use serde::Deserialize;

use super::poll::{self, Ask, AskKind, DecodeError, Forced, Item, PollConfig, Venue};

const VENUE: &str = "Drift";

/// The defaults: the Data API and the DLOB server, BTC/ETH/SOL followed.
pub fn default_config() -> PollConfig {
    PollConfig {
        base_urls: vec![
            "https://data.api.drift.trade".into(),
            "https://dlob.drift.trade".into(),
        ],
        markets: vec!["BTC-PERP".into(), "ETH-PERP".into(), "SOL-PERP".into()],
        contexts_every: Duration::from_secs(5),
        trades_every: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        requests_per_10s: 30,
        resume_after: None,
    }
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(VENUE, what, detail)
}

fn dec(what: &'static str, s: &str) -> Result<Decimal, DecodeError> {
    poll::dec(VENUE, what, s)
}

/// The coin of a Drift perpetual (`BTC-PERP` → `BTC`).
pub fn coin_of(symbol: &str) -> Option<Coin> {
    Coin::new(symbol.strip_suffix("-PERP")?).ok()
}

#[derive(Deserialize)]
struct Stats {
    markets: Vec<StatMarket>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatMarket {
    symbol: String,
    market_type: String,
    status: String,
    oracle_price: String,
    mark_price: String,
    #[serde(default)]
    quote_volume: Option<String>,
    open_interest: Sides,
    funding_rate: Sides,
}

#[derive(Deserialize)]
struct Sides {
    long: String,
}

/// `GET /stats/markets` → one context per active perpetual, stamped `now`.
pub fn decode_stats(body: &str, now: Timestamp) -> Result<Vec<AssetCtx>, DecodeError> {
    let s: Stats = serde_json::from_str(body).map_err(|e| err("stats/markets", e))?;
    let mut out = Vec::new();
    for m in s.markets {
        let Some(coin) = coin_of(&m.symbol) else {
            continue;
        };
        if m.market_type != "perp" || m.status != "active" {
            continue;
        }
        out.push(AssetCtx {
            coin,
            time: now,
            oracle_px: dec("stats/markets", &m.oracle_price)?,
            mark_px: dec("stats/markets", &m.mark_price)?,
            mid_px: None,
            open_interest: dec("stats/markets", &m.open_interest.long)?.abs(),
            funding: dec("stats/markets", &m.funding_rate.long)?,
            day_ntl_vlm: m
                .quote_volume
                .as_deref()
                .map_or(Ok(Decimal::ZERO), |v| dec("stats/markets", v))?,
            prev_day_px: None,
            premium: None,
            impact_pxs: None,
        });
    }
    out.sort_by(|a, b| a.coin.cmp(&b.coin));
    Ok(out)
}

#[derive(Deserialize)]
struct Records {
    records: Vec<FillRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FillRecord {
    ts: i64,
    action: String,
    #[serde(default)]
    action_explanation: String,
    fill_record_id: Option<String>,
    tx_sig: String,
    base_asset_amount_filled: String,
    quote_asset_amount_filled: String,
    taker_order_direction: Option<String>,
    symbol: String,
}

/// `GET /market/{symbol}/trades` → (id, trade, forced), oldest first.
pub fn decode_trades(body: &str) -> Result<Vec<(String, Trade, Option<Forced>)>, DecodeError> {
    let r: Records = serde_json::from_str(body).map_err(|e| err("trades", e))?;
    let mut out = Vec::with_capacity(r.records.len());
    for f in r.records {
        if f.action != "fill" {
            continue;
        }
        let coin =
            coin_of(&f.symbol).ok_or_else(|| err("trades", format!("symbol {:?}", f.symbol)))?;
        let (base, quote) = (
            dec("trades", &f.base_asset_amount_filled)?,
            dec("trades", &f.quote_asset_amount_filled)?,
        );
        if base <= Decimal::ZERO {
            continue;
        }
        let side = match f.taker_order_direction.as_deref() {
            Some("long") => Side::Buy,
            Some("short") => Side::Sell,
            // A liquidation against the AMM names no taker: the liquidated side is unknown.
            _ if f.action_explanation == "liquidation" => Side::Sell,
            other => return Err(err("trades", format!("direction {other:?}"))),
        };
        let id = f.fill_record_id.clone().unwrap_or_else(|| f.tx_sig.clone());
        let forced = (f.action_explanation == "liquidation").then_some(Forced::Liquidation);
        out.push((
            id.clone(),
            Trade {
                coin,
                side,
                px: (quote / base).round_dp(8).normalize(),
                sz: base.normalize(),
                time: Timestamp(f.ts.saturating_mul(1_000)),
                tid: poll::tid(&id),
                users: None,
            },
            forced,
        ));
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct L2 {
    bids: Vec<poll::Level>,
    asks: Vec<poll::Level>,
    market_name: String,
    ts: i64,
}

/// `GET /l2?marketName=…` → the book (prices 1e6, sizes 1e9).
pub fn decode_l2(body: &str) -> Result<BookSnapshot, DecodeError> {
    let l: L2 = serde_json::from_str(body).map_err(|e| err("l2", e))?;
    let coin =
        coin_of(&l.market_name).ok_or_else(|| err("l2", format!("market {:?}", l.market_name)))?;
    poll::book(
        VENUE,
        "l2",
        coin,
        Timestamp(l.ts),
        (&l.bids, &l.asks),
        (6, 9),
    )
}

/// Drift v2 as a polled venue: the latest context per market (for the book's mid).
#[derive(Debug, Default)]
pub struct Drift {
    last: poll::Latest,
}

impl Venue for Drift {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn asks(&self, cfg: &PollConfig, contexts_due: bool) -> Vec<Ask> {
        let mut out = Vec::new();
        if contexts_due {
            out.push(Ask::new("/stats/markets", AskKind::Contexts));
            out.extend(cfg.markets.iter().map(|m| Ask {
                base: 1,
                path: format!("/l2?marketName={m}&depth=10"),
                kind: AskKind::Book(m.clone()),
            }));
        }
        out.extend(
            cfg.markets
                .iter()
                .map(|m| Ask::new(format!("/market/{m}/trades"), AskKind::Trades(m.clone()))),
        );
        out
    }

    fn decode(&mut self, ask: &Ask, body: &str, now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        Ok(match &ask.kind {
            AskKind::Trades(m) => poll::trade_items(m, decode_trades(body)?),
            AskKind::Book(_) => self.last.book(decode_l2(body)?, now),
            _ => self.last.contexts(decode_stats(body, now)?),
        })
    }
}
