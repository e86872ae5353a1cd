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
    SymbolMap::from_pairs(&[
        ("BTC", "BTC-USDT"),
        ("ETH", "ETH-USDT"),
        ("SOL", "SOL-USDT"),
        ("ARB", "ARB-USDT"),
        ("OP", "OP-USDT"),
        ("AVAX", "AVAX-USDT"),
        ("POL", "POL-USDT"),
        ("DOGE", "DOGE-USDT"),
        ("XRP", "XRP-USDT"),
        ("LINK", "LINK-USDT"),
        ("SUI", "SUI-USDT"),
        ("HYPE", "HYPE-USDT"),
    ])
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
        RateLimit {
            capacity: 2_000,
            window_ms: 30_000,
        }
    }

    fn requests(&self, _symbols: &[&str]) -> Vec<TickerRequest> {
        vec![TickerRequest {
            path: "/api/v1/market/allTickers".into(),
            query: Vec::new(),
            weight: 15,
            symbol: None,
        }]
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
