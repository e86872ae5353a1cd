//! MEXC spot: `GET /api/v3/ticker/bookTicker?symbol=BTCUSDT` per symbol (best bid and ask; no
//! snapshot time). Published limit: 500 per 10 s per endpoint per IP, weight 1; repeated
//! violations get the IP banned, so a 429's `Retry-After` is always honoured. Its WebSocket
//! pushes binary protobuf (MEXC's published `.proto` files); kamiyo reads the best bid/ask
//! channel with a small protobuf reader of its own, REST filling in (see [`decode_push`]).

use kamiyo_core_models::{Decimal, SourceError};

use super::SymbolMap;
use super::ticker::{RateLimit, TickerApi, TickerRequest, Top, decode_error, one_or_many};
use crate::hyperliquid::num::parse_decimal;

/// Default symbols: the monitored perps that trade on MEXC spot against USDT.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::quoted(&super::DEFAULT_COINS, "", "USDT")
}

pub use super::ticker::BookTicker;

/// Decodes `ticker/bookTicker` or `ticker/24hr` (an object for one symbol, an array for all).
pub fn decode_book_ticker(body: &str) -> Result<Vec<BookTicker>, SourceError> {
    one_or_many("mexc", "ticker/bookTicker", body)
}

/// MEXC's public ticker API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mexc;

impl TickerApi for Mexc {
    fn venue(&self) -> &'static str {
        "mexc"
    }

    fn limit(&self) -> RateLimit {
        RateLimit::new(500, 10_000)
    }

    fn requests(&self, symbols: &[&str]) -> Vec<TickerRequest> {
        TickerRequest::each(symbols, "/api/v3/ticker/bookTicker", "symbol", 1)
    }

    fn decode(&self, body: &str, _asked: Option<&str>) -> Result<Vec<Top>, SourceError> {
        Ok(decode_book_ticker(body)?
            .into_iter()
            .map(Top::from)
            .collect())
    }
}

/// MEXC's public WebSocket (`wss://wbs-api.mexc.com/ws`), channel
/// `spot@public.aggre.bookTicker.v3.api.pb@100ms@<SYMBOL>` (best bid and ask, at most every
/// 100 ms): subscribed with `{"method":"SUBSCRIPTION","params":[…]}` (at most
/// [`MAX_SUBSCRIPTIONS`] per connection — REST answers for the rest), kept alive with
/// `{"method":"PING"}` (MEXC closes a connection that carried no data for a minute). Acks and
/// pongs are JSON text (`{"id":0,"code":0,"msg":…}`); pushes are binary protobuf
/// (`PushDataV3ApiWrapper`, decoded by [`decode_push`]).
impl super::stream::TickerStream for Mexc {
    fn subscribe(&self, symbols: &[String], _now: kamiyo_core_models::Timestamp) -> Vec<String> {
        if symbols.is_empty() {
            return Vec::new();
        }
        let params: Vec<String> = symbols
            .iter()
            .take(MAX_SUBSCRIPTIONS)
            .map(|s| format!("{BOOK_TICKER_CHANNEL}@{s}"))
            .collect();
        vec![serde_json::json!({"method": "SUBSCRIPTION", "params": params}).to_string()]
    }

    fn ping(&self, _now: kamiyo_core_models::Timestamp) -> Option<String> {
        Some(r#"{"method":"PING"}"#.to_owned())
    }

    fn ping_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(20)
    }

    fn decode_frame(&self, text: &str) -> Result<Vec<Top>, SourceError> {
        decode_ws_text(text)
    }

    fn decode_binary(&self, bytes: &[u8]) -> Result<Vec<Top>, SourceError> {
        decode_push(bytes)
    }
}

/// Most subscriptions MEXC accepts on one connection.
pub const MAX_SUBSCRIPTIONS: usize = 30;

/// The best bid/ask channel kamiyo subscribes (the symbol follows after `@`).
pub const BOOK_TICKER_CHANNEL: &str = "spot@public.aggre.bookTicker.v3.api.pb@100ms";

#[derive(serde::Deserialize)]
struct Reply {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
}

/// Decodes one JSON text frame of MEXC's socket: acks and pongs give nothing; a non-zero code
/// or a refused subscription (`Not Subscribed successfully! … Reason: Blocked!`) is an error.
pub fn decode_ws_text(text: &str) -> Result<Vec<Top>, SourceError> {
    let r: Reply = serde_json::from_str(text).map_err(|e| decode_error("mexc", "ws reply", e))?;
    if r.code != 0 || r.msg.starts_with("Not Subscribed") {
        return Err(super::stream::venue_error(
            "mexc",
            format_args!("code {}: {}", r.code, r.msg),
        ));
    }
    Ok(Vec::new())
}

/// Wrapper fields (`PushDataV3ApiWrapper.proto`).
mod field {
    pub(super) const CHANNEL: u64 = 1;
    pub(super) const SYMBOL: u64 = 3;
    pub(super) const CREATE_TIME: u64 = 5;
    pub(super) const SEND_TIME: u64 = 6;
    pub(super) const BOOK_TICKER: u64 = 305;
    pub(super) const BOOK_TICKER_BATCH: u64 = 311;
    pub(super) const AGGRE_BOOK_TICKER: u64 = 315;
}

/// Decodes one binary push (`PushDataV3ApiWrapper`): the best bid and ask of an aggregated
/// book ticker (field 315), a book ticker (305) or a book-ticker batch (311), timed by the
/// push's `sendTime` (else `createTime`); any other body gives nothing. Malformed protobuf is
/// a decode error, never a panic.
pub fn decode_push(bytes: &[u8]) -> Result<Vec<Top>, SourceError> {
    let bad = |e: &str| decode_error("mexc", "ws protobuf push", e);
    let mut symbol = None;
    let mut time = None;
    let mut create = None;
    let mut books: Vec<[Option<Decimal>; 2]> = Vec::new();
    let mut r = pb::Reader(bytes);
    while let Some((f, v)) = r.field().map_err(bad)? {
        match (f, v) {
            (field::SYMBOL, pb::Value::Bytes(b)) => {
                symbol = Some(std::str::from_utf8(b).map_err(|_| bad("symbol is not UTF-8"))?);
            }
            (field::CHANNEL, pb::Value::Bytes(b)) => {
                // Older pushes may carry the symbol only at the end of the channel.
                if symbol.is_none()
                    && let Ok(c) = std::str::from_utf8(b)
                {
                    symbol = c.rsplit('@').next().filter(|s| !s.is_empty());
                }
            }
            (field::SEND_TIME, pb::Value::Varint(t)) => time = Some(t),
            (field::CREATE_TIME, pb::Value::Varint(t)) => create = Some(t),
            (field::AGGRE_BOOK_TICKER | field::BOOK_TICKER, pb::Value::Bytes(b)) => {
                books.push(book_ticker(b).map_err(bad)?);
            }
            (field::BOOK_TICKER_BATCH, pb::Value::Bytes(b)) => {
                let mut items = pb::Reader(b);
                while let Some((f, v)) = items.field().map_err(bad)? {
                    if let (1, pb::Value::Bytes(item)) = (f, v) {
                        books.push(book_ticker(item).map_err(bad)?);
                    }
                }
            }
            _ => {}
        }
    }
    if books.is_empty() {
        return Ok(Vec::new());
    }
    let symbol = symbol.ok_or_else(|| bad("a book ticker without a symbol"))?;
    let time = time
        .or(create)
        .and_then(|t| i64::try_from(t).ok())
        .map(kamiyo_core_models::Timestamp);
    Ok(books
        .into_iter()
        .map(|[bid, ask]| Top {
            symbol: symbol.to_owned(),
            bid,
            ask,
            last: None,
            time,
        })
        .collect())
}

/// `bidPrice` (1) and `askPrice` (3) of a `PublicBookTickerV3Api` or
/// `PublicAggreBookTickerV3Api` (same numbering for the fields read here).
fn book_ticker(b: &[u8]) -> Result<[Option<Decimal>; 2], &'static str> {
    let mut out = [None, None];
    let mut r = pb::Reader(b);
    while let Some((f, v)) = r.field()? {
        let slot = match f {
            1 => 0,
            3 => 1,
            _ => continue,
        };
        let pb::Value::Bytes(s) = v else {
            return Err("a price that is not a string");
        };
        let s = std::str::from_utf8(s).map_err(|_| "a price that is not UTF-8")?;
        out[slot] = Some(parse_decimal(s).ok_or("a price that is not a decimal")?);
    }
    Ok(out)
}

/// Encodes a book-ticker push as MEXC sends it (`PushDataV3ApiWrapper` with an aggregated book
/// ticker): what the loopback simulator serves. Quantities are sent as given.
pub fn encode_push(symbol: &str, bid: (&str, &str), ask: (&str, &str), send_time: i64) -> Vec<u8> {
    let mut ticker = Vec::new();
    pb::put_str(&mut ticker, 1, bid.0);
    pb::put_str(&mut ticker, 2, bid.1);
    pb::put_str(&mut ticker, 3, ask.0);
    pb::put_str(&mut ticker, 4, ask.1);
    // In field-number order, as protobuf's reference encoder writes them.
    let mut out = Vec::new();
    pb::put_str(
        &mut out,
        field::CHANNEL,
        &format!("{BOOK_TICKER_CHANNEL}@{symbol}"),
    );
    pb::put_str(&mut out, field::SYMBOL, symbol);
    pb::put_varint_field(&mut out, field::SEND_TIME, send_time.max(0).unsigned_abs());
    pb::put_bytes(&mut out, field::AGGRE_BOOK_TICKER, &ticker);
    out
}

/// The few protobuf wire rules MEXC's pushes need (varints, length-delimited fields; fixed
/// 32/64-bit fields skipped). Every read is bounds-checked.
mod pb {
    pub(super) enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed,
    }

    pub(super) struct Reader<'a>(pub &'a [u8]);

    impl<'a> Reader<'a> {
        fn varint(&mut self) -> Result<u64, &'static str> {
            let mut v = 0u64;
            for (i, &b) in self.0.iter().enumerate().take(10) {
                v |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    self.0 = &self.0[i + 1..];
                    return Ok(v);
                }
            }
            Err("a truncated or over-long varint")
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
            if n > self.0.len() {
                return Err("a field longer than the message");
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }

        /// The next field (number, value), or `None` at the end.
        pub(super) fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, &'static str> {
            if self.0.is_empty() {
                return Ok(None);
            }
            let key = self.varint()?;
            let number = key >> 3;
            if number == 0 {
                return Err("field number 0");
            }
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed
                }
                2 => {
                    let n =
                        usize::try_from(self.varint()?).map_err(|_| "a length beyond memory")?;
                    Value::Bytes(self.take(n)?)
                }
                5 => {
                    self.take(4)?;
                    Value::Fixed
                }
                _ => return Err("an unsupported wire type"),
            };
            Ok(Some((number, value)))
        }
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub(super) fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
        put_varint(out, field << 3);
        put_varint(out, v);
    }

    pub(super) fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        put_varint(out, (field << 3) | 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    pub(super) fn put_str(out: &mut Vec<u8>, field: u64, s: &str) {
        put_bytes(out, field, s.as_bytes());
    }
}
