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

/// The venues with a WebSocket ticker channel served at `/<venue>/ws`.
pub const WS_VENUES: [&str; 6] = ["okx", "bybit", "kraken", "kucoin", "gate", "mexc"];

/// A frame a venue's socket sends: JSON text, or binary (MEXC's protobuf pushes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// A venue's WebSocket symbol for each of its REST symbols' coins.
fn ws_symbols(venue: &str) -> Vec<(String, Coin)> {
    symbols(venue)
        .0
        .into_iter()
        .map(|(c, s)| {
            let ws = if venue == "kraken" {
                kraken::ws_symbol(&s)
            } else {
                s
            };
            (ws, c)
        })
        .collect()
}

/// The coin of a venue WebSocket symbol.
pub fn ws_coin(venue: &str, ws_symbol: &str) -> Option<Coin> {
    ws_symbols(venue)
        .into_iter()
        .find(|(s, _)| s == ws_symbol)
        .map(|(_, c)| c)
}

/// KuCoin's `POST /api/v1/bullet-public`, handing out this simulator's socket.
pub fn bullet(host: &str) -> Answer {
    (
        200,
        json!({"code": "200000", "data": {"token": "simulator-token", "instanceServers": [{"endpoint": format!("ws://{host}/kucoin/ws"), "encrypt": false, "protocol": "websocket", "pingInterval": 18000, "pingTimeout": 10000}]}}).to_string(),
    )
}

/// The first frame a venue sends on connect, if any.
pub fn ws_welcome(venue: &str) -> Option<String> {
    (venue == "kucoin").then(|| json!({"id": "sim", "type": "welcome"}).to_string())
}

/// A client's message to `venue`'s socket: the replies, and the WebSocket symbols it subscribed.
pub fn ws_reply(venue: &str, msg: &str, now_ms: i64) -> (Vec<String>, Vec<String>) {
    if venue == "okx" && msg.trim() == "ping" {
        return (vec!["pong".into()], Vec::new());
    }
    let Ok(v) = serde_json::from_str::<Value>(msg) else {
        let err = match venue {
            "mexc" => {
                json!({"id": 0, "code": 0, "msg": format!("Not Subscribed successfully! [{msg}].  Reason： Blocked! ")})
            }
            "okx" => {
                json!({"event": "error", "code": "60012", "msg": format!("Invalid request: {msg}")})
            }
            "bybit" => json!({"success": false, "ret_msg": "error:invalid request", "op": ""}),
            "kraken" => json!({"error": "Malformed request", "success": false}),
            "kucoin" => json!({"id": "", "type": "error", "code": 400, "data": "invalid request"}),
            _ => {
                json!({"time": now_ms / 1000, "channel": "", "event": "", "error": {"code": 2, "message": "invalid request"}, "result": null})
            }
        };
        return (vec![err.to_string()], Vec::new());
    };
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    match venue {
        "okx" => match v["op"].as_str() {
            Some("subscribe") => {
                let mut subs = Vec::new();
                let mut out = Vec::new();
                for a in v["args"].as_array().into_iter().flatten() {
                    if let Some(id) = a["instId"].as_str() {
                        subs.push(id.to_owned());
                        out.push(json!({"event": "subscribe", "arg": a, "connId": "sim"}).to_string());
                    }
                }
                (out, subs)
            }
            _ => (
                vec![json!({"event": "error", "code": "60012", "msg": "Invalid request", "connId": "sim"}).to_string()],
                Vec::new(),
            ),
        },
        "bybit" => match v["op"].as_str() {
            Some("ping") => (
                vec![json!({"success": true, "ret_msg": "pong", "conn_id": "sim", "op": "ping"}).to_string()],
                Vec::new(),
            ),
            Some("subscribe") => {
                let subs: Vec<String> = strs(&v["args"])
                    .into_iter()
                    .filter_map(|t| t.strip_prefix("tickers.").map(str::to_owned))
                    .collect();
                (
                    vec![json!({"success": true, "ret_msg": "", "conn_id": "sim", "op": "subscribe"}).to_string()],
                    subs,
                )
            }
            _ => (
                vec![json!({"success": false, "ret_msg": "error:handler not found", "conn_id": "sim", "op": v["op"]}).to_string()],
                Vec::new(),
            ),
        },
        "kraken" => match v["method"].as_str() {
            Some("ping") => (
                vec![json!({"method": "pong", "time_in": "", "time_out": ""}).to_string()],
                Vec::new(),
            ),
            Some("subscribe") => {
                let subs = strs(&v["params"]["symbol"]);
                let acks = subs
                    .iter()
                    .map(|s| json!({"method": "subscribe", "result": {"channel": "ticker", "symbol": s}, "success": true}).to_string())
                    .collect();
                (acks, subs)
            }
            _ => (
                vec![json!({"error": "Method not found", "success": false}).to_string()],
                Vec::new(),
            ),
        },
        "mexc" => match v["method"].as_str() {
            Some("PING") => (
                vec![json!({"id": 0, "code": 0, "msg": "PONG"}).to_string()],
                Vec::new(),
            ),
            Some("SUBSCRIPTION") => {
                let mut subs = Vec::new();
                let mut out = Vec::new();
                for p in strs(&v["params"]) {
                    match p
                        .strip_prefix(mexc::BOOK_TICKER_CHANNEL)
                        .and_then(|r| r.strip_prefix('@'))
                    {
                        Some(sym) if subs.len() < mexc::MAX_SUBSCRIPTIONS => {
                            subs.push(sym.to_owned());
                            out.push(json!({"id": 0, "code": 0, "msg": p}).to_string());
                        }
                        _ => out.push(json!({"id": 0, "code": 0, "msg": format!("Not Subscribed successfully! [{p}].  Reason： Blocked! ")}).to_string()),
                    }
                }
                (out, subs)
            }
            _ => (
                vec![json!({"id": 0, "code": 0, "msg": "Not Subscribed successfully! [].  Reason： Blocked! "}).to_string()],
                Vec::new(),
            ),
        },
        "kucoin" => match v["type"].as_str() {
            Some("ping") => (
                vec![json!({"id": v["id"], "type": "pong"}).to_string()],
                Vec::new(),
            ),
            Some("subscribe") => {
                let subs: Vec<String> = v["topic"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("/market/ticker:"))
                    .map(|l| l.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                (vec![json!({"id": v["id"], "type": "ack"}).to_string()], subs)
            }
            _ => (
                vec![json!({"id": v["id"], "type": "error", "code": 404, "data": "topic not found"}).to_string()],
                Vec::new(),
            ),
        },
        _ => match (v["channel"].as_str(), v["event"].as_str()) {
            (Some("spot.ping"), _) => (
                vec![json!({"time": now_ms / 1000, "channel": "spot.pong", "event": "", "error": null, "result": null}).to_string()],
                Vec::new(),
            ),
            (Some("spot.tickers"), Some("subscribe")) => (
                vec![json!({"time": now_ms / 1000, "channel": "spot.tickers", "event": "subscribe", "error": null, "result": {"status": "success"}}).to_string()],
                strs(&v["payload"]),
            ),
            _ => (
                vec![json!({"time": now_ms / 1000, "channel": v["channel"], "event": v["event"], "error": {"code": 2, "message": "unknown channel"}, "result": null}).to_string()],
                Vec::new(),
            ),
        },
    }
}

/// A ticker push of `venue` for `ws_symbol` at quote `q`.
pub fn ws_push(venue: &str, ws_symbol: &str, q: &ReferenceQuote, now_ms: i64) -> Push {
    let (b, a, l) = top(q);
    if venue == "mexc" {
        return Push::Binary(mexc::encode_push(ws_symbol, (&b, "1"), (&a, "1"), now_ms));
    }
    Push::Text(match venue {
        "okx" => json!({"arg": {"channel": "tickers", "instId": ws_symbol}, "data": [{"instType": "SPOT", "instId": ws_symbol, "last": l, "lastSz": "0.01", "askPx": a, "askSz": "1", "bidPx": b, "bidSz": "1", "open24h": l, "high24h": l, "low24h": l, "sodUtc0": l, "sodUtc8": l, "volCcy24h": "0", "vol24h": "0", "ts": now_ms.to_string()}]}),
        "bybit" => json!({"topic": format!("tickers.{ws_symbol}"), "ts": now_ms, "type": "snapshot", "cs": now_ms, "data": {"symbol": ws_symbol, "lastPrice": l, "highPrice24h": l, "lowPrice24h": l, "prevPrice24h": l, "volume24h": "0", "turnover24h": "0", "price24hPcnt": "0", "usdIndexPrice": l}}),
        "kraken" => {
            let n = |x: &str| x.parse::<f64>().unwrap_or(0.0);
            json!({"channel": "ticker", "type": "update", "data": [{"symbol": ws_symbol, "bid": n(&b), "bid_qty": 1.0, "ask": n(&a), "ask_qty": 1.0, "last": n(&l), "volume": 0.0, "vwap": n(&l), "low": n(&l), "high": n(&l), "change": 0.0, "change_pct": 0.0}]})
        }
        "kucoin" => json!({"type": "message", "topic": format!("/market/ticker:{ws_symbol}"), "subject": "trade.ticker", "data": {"sequence": now_ms.to_string(), "price": l, "size": "0.01", "bestAsk": a, "bestAskSize": "1", "bestBid": b, "bestBidSize": "1", "time": now_ms}}),
        _ => json!({"time": now_ms / 1000, "time_ms": now_ms, "channel": "spot.tickers", "event": "update", "result": {"currency_pair": ws_symbol, "last": l, "lowest_ask": a, "highest_bid": b, "change_percentage": "0", "base_volume": "0", "quote_volume": "0", "high_24h": l, "low_24h": l}}),
    }
    .to_string())
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
