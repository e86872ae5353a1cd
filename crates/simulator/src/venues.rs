//! The reference venues' public ticker APIs, in each venue's real wire format (the shapes of the
//! recorded responses in `crates/aggregators/tests/fixtures/cex`), answered from the scenario's
//! reference quotes. Every venue is served under `/<venue>/…` (`/okx/api/v5/market/tickers`),
//! so one simulator stands in for all of them; Binance and Coinbase also answer without the
//! prefix. Pure: the caller supplies the quotes and the scenario time.

use kamiyo_aggregators::sources::{binance, bybit, coinbase, gate, kraken, kucoin, mexc, okx};
use kamiyo_core_models::{Coin, Decimal, ReferenceQuote};
use serde_json::{Value, json};

use kamiyo_aggregators::sources::SymbolMap;

/// The venues served.
pub const VENUES: [&str; 8] = [
    "binance", "okx", "bybit", "kraken", "kucoin", "gate", "mexc", "coinbase",
];

/// Splits `/okx/api/v5/…` into (`okx`, `/api/v5/…`); `None` for other paths.
pub fn split_prefix(path: &str) -> Option<(&'static str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (head, _) = rest.split_once('/')?;
    let venue = VENUES.iter().find(|v| **v == head)?;
    Some((venue, &path[head.len() + 1..]))
}

fn symbols(venue: &str) -> SymbolMap {
    match venue {
        "binance" => binance::default_symbols(),
        "okx" => okx::default_symbols(),
        "bybit" => bybit::default_symbols(),
        "kraken" => kraken::default_symbols(),
        "kucoin" => kucoin::default_symbols(),
        "gate" => gate::default_symbols(),
        "mexc" => mexc::default_symbols(),
        _ => coinbase::default_symbols(),
    }
}

fn s(d: Decimal) -> String {
    d.round_dp(8).normalize().to_string()
}

/// Best bid and ask around a quote (half a basis point each side), and the price.
fn top(q: &ReferenceQuote) -> (String, String, String) {
    let half = q.price * Decimal::new(5, 5);
    (
        s(q.bid.unwrap_or(q.price - half)),
        s(q.ask.unwrap_or(q.price + half)),
        s(q.price),
    )
}

/// An answer: HTTP status and JSON body.
pub type Answer = (u16, String);

/// Answers `path` (without the venue prefix) of `venue`. `param` reads a query parameter,
/// `quote` the scenario's latest quote of a coin on this venue, `now_ms` the scenario time.
pub fn answer(
    venue: &str,
    path: &str,
    param: &dyn Fn(&str) -> Option<String>,
    quote: &dyn Fn(&Coin) -> Option<ReferenceQuote>,
    now_ms: i64,
) -> Answer {
    let map = symbols(venue);
    let listed = |sym: &str| map.coin(sym).and_then(quote).map(|q| (sym.to_owned(), q));
    let all = || -> Vec<(String, ReferenceQuote)> {
        map.0
            .iter()
            .filter_map(|(c, sym)| quote(c).map(|q| (sym.clone(), q)))
            .collect()
    };
    let not_found = (404, json!({"error": "not found"}).to_string());
    match (venue, path) {
        ("okx", "/api/v5/market/tickers") => {
            if param("instType").as_deref() != Some("SPOT") {
                return (
                    200,
                    json!({"code": "51000", "msg": "Parameter instType error", "data": []})
                        .to_string(),
                );
            }
            let data: Vec<Value> = all()
                .iter()
                .map(|(sym, q)| {
                    let (b, a, l) = top(q);
                    json!({"instType": "SPOT", "instId": sym, "last": l, "lastSz": "0.01", "askPx": a, "askSz": "1", "bidPx": b, "bidSz": "1", "open24h": l, "high24h": l, "low24h": l, "volCcy24h": "0", "vol24h": "0", "ts": now_ms.to_string(), "sodUtc0": l, "sodUtc8": l})
                })
                .collect();
            (
                200,
                json!({"code": "0", "msg": "", "data": data}).to_string(),
            )
        }
        ("bybit", "/v5/market/tickers") => {
            if param("category").as_deref() != Some("spot") {
                return (
                    200,
                    json!({"retCode": 10001, "retMsg": "Illegal category", "result": {}, "retExtInfo": {}, "time": now_ms}).to_string(),
                );
            }
            let list: Vec<Value> = all()
                .iter()
                .map(|(sym, q)| {
                    let (b, a, l) = top(q);
                    json!({"symbol": sym, "bid1Price": b, "bid1Size": "1", "ask1Price": a, "ask1Size": "1", "lastPrice": l, "prevPrice24h": l, "price24hPcnt": "0", "highPrice24h": l, "lowPrice24h": l, "turnover24h": "0", "volume24h": "0"})
                })
                .collect();
            (
                200,
                json!({"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": list}, "retExtInfo": {}, "time": now_ms}).to_string(),
            )
        }
        ("kraken", "/0/public/Ticker") => {
            let pairs = param("pair").unwrap_or_default();
            let mut result = serde_json::Map::new();
            for p in pairs.split(',').filter(|p| !p.is_empty()) {
                if map.coin(p).is_none() {
                    return (
                        200,
                        json!({"error": ["EQuery:Unknown asset pair"]}).to_string(),
                    );
                }
                if let Some((sym, q)) = listed(p) {
                    let (b, a, l) = top(&q);
                    result.insert(
                        sym,
                        json!({"a": [a, "1", "1.000"], "b": [b, "1", "1.000"], "c": [l, "0.001"], "v": ["0", "0"], "p": [l, l], "t": [1, 1], "l": [l, l], "h": [l, l], "o": l}),
                    );
                }
            }
            (200, json!({"error": [], "result": result}).to_string())
        }
        ("kucoin", "/api/v1/market/allTickers") => {
            let ticker: Vec<Value> = all()
                .iter()
                .map(|(sym, q)| {
                    let (b, a, l) = top(q);
                    json!({"symbol": sym, "symbolName": sym, "buy": b, "bestBidSize": "1", "sell": a, "bestAskSize": "1", "changeRate": "0", "changePrice": "0", "high": l, "low": l, "vol": "0", "volValue": "0", "last": l, "averagePrice": l, "takerFeeRate": "0.001", "makerFeeRate": "0.001", "takerCoefficient": "1", "makerCoefficient": "1"})
                })
                .collect();
            (
                200,
                json!({"code": "200000", "data": {"time": now_ms, "ticker": ticker}}).to_string(),
            )
        }
        ("gate", "/api/v4/spot/tickers") => {
            let pair = param("currency_pair").unwrap_or_default();
            match listed(&pair) {
                Some((sym, q)) => {
                    let (b, a, l) = top(&q);
                    (
                        200,
                        json!([{"currency_pair": sym, "last": l, "lowest_ask": a, "highest_bid": b, "change_percentage": "0", "base_volume": "0", "quote_volume": "0", "high_24h": l, "low_24h": l}]).to_string(),
                    )
                }
                None => (
                    400,
                    json!({"label": "INVALID_CURRENCY_PAIR", "message": format!("Invalid currency pair: {pair}")}).to_string(),
                ),
            }
        }
        ("mexc", "/api/v3/ticker/bookTicker") => {
            let sym = param("symbol").unwrap_or_default();
            match listed(&sym) {
                Some((sym, q)) => {
                    let (b, a, _) = top(&q);
                    (
                        200,
                        json!({"symbol": sym, "bidPrice": b, "bidQty": "1", "askPrice": a, "askQty": "1"}).to_string(),
                    )
                }
                None => (
                    400,
                    json!({"code": -1121, "msg": "Invalid symbol."}).to_string(),
                ),
            }
        }
        ("binance", "/api/v3/ticker/bookTicker") => {
            let wanted: Vec<String> = if let Some(list) = param("symbols") {
                match serde_json::from_str(&list) {
                    Ok(v) => v,
                    Err(_) => {
                        return (
                            400,
                            json!({"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}).to_string(),
                        );
                    }
                }
            } else if let Some(s) = param("symbol") {
                vec![s]
            } else {
                map.0.values().cloned().collect()
            };
            let mut out = Vec::new();
            for sym in &wanted {
                if map.coin(sym).is_none() {
                    return (
                        400,
                        json!({"code": -1121, "msg": "Invalid symbol."}).to_string(),
                    );
                }
                if let Some((sym, q)) = listed(sym) {
                    let (b, a, _) = top(&q);
                    out.push(json!({"symbol": sym, "bidPrice": b, "bidQty": "1.00000000", "askPrice": a, "askQty": "1.00000000"}));
                }
            }
            (200, Value::Array(out).to_string())
        }
        ("coinbase", p) if p.starts_with("/products/") && p.ends_with("/ticker") => {
            let id = &p["/products/".len()..p.len() - "/ticker".len()];
            match listed(id) {
                Some((_, q)) => {
                    let (b, a, l) = top(&q);
                    (
                        200,
                        json!({"ask": a, "bid": b, "volume": "1000.0", "trade_id": q.time.0, "price": l, "size": "0.1", "time": q.time.to_rfc3339()}).to_string(),
                    )
                }
                None => (404, json!({"message": "NotFound"}).to_string()),
            }
        }
        _ => not_found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            split_prefix("/okx/api/v5/market/tickers"),
            Some(("okx", "/api/v5/market/tickers"))
        );
        assert_eq!(split_prefix("/info"), None);
        assert_eq!(split_prefix("/nosuch/x"), None);
    }
}
