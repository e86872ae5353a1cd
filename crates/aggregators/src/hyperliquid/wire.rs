//! Hyperliquid's wire formats (`POST /info` bodies and WebSocket frames) and their conversion
//! into normalized [`MarketEvent`]s.
//!
//! Rules, learned from three years of responses (2023 and 2026 shapes both parse):
//! unknown fields are ignored (never `deny_unknown_fields`), new optional fields default,
//! decimals arrive as strings, ids sometimes as strings. Every decoder returns a typed
//! [`DecodeError`] — never a panic — for any input.
//!
//! The same structs serialize back into the wire format; the loopback simulator uses that, so
//! the client is tested against exactly the shapes it decodes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use kamiyo_core_models::{
    Address, AssetCtx, BookLevel, BookSnapshot, Coin, Decimal, Fill, FillDir, LedgerEvent,
    LedgerKind, LiquidationInfo, LiquidationMethod, MarketEvent, Mids, Position, PositionSnapshot,
    SeriesPoint, Side, SourceError, Timestamp, Trade, VaultSnapshot,
};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::num::{dec, int_lenient, opt_dec, opt_u64_lenient, u64_lenient, wire_decimal};

/// A body or frame that does not match the documented format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not decode {what}: {detail}")]
pub struct DecodeError {
    /// Which response or channel.
    pub what: &'static str,
    /// The decoder's message (position included).
    pub detail: String,
}

impl DecodeError {
    fn new(what: &'static str, e: impl fmt::Display) -> Self {
        let mut detail = e.to_string();
        detail.truncate(300);
        Self { what, detail }
    }

    /// As a source error of `venue`.
    pub fn into_source(self, venue: &str) -> SourceError {
        SourceError::Decode {
            venue: venue.to_owned(),
            what: self.what.to_owned(),
            detail: self.detail,
        }
    }
}

/// Result alias for decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

fn from_json<'a, T: Deserialize<'a>>(what: &'static str, s: &'a str) -> DecodeResult<T> {
    serde_json::from_str(s).map_err(|e| DecodeError::new(what, e))
}

// ---------------------------------------------------------------------------------------------
// Small (de)serializers for domain types in wire form.

fn ser_dec<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&wire_decimal(d))
}

fn ser_opt_dec<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&wire_decimal(d)),
        None => s.serialize_none(),
    }
}

fn ser_ts<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(t.0)
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    int_lenient(d).map(Timestamp)
}

fn de_side<'de, D: Deserializer<'de>>(d: D) -> Result<Side, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Side;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"B\" or \"A\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Side, E> {
            match v {
                "B" | "b" | "buy" | "BUY" | "Buy" => Ok(Side::Buy),
                "A" | "a" | "sell" | "SELL" | "Sell" | "S" => Ok(Side::Sell),
                other => Err(E::custom(format_args!(
                    "unknown side {:?}",
                    other.chars().take(10).collect::<String>()
                ))),
            }
        }
    }
    d.deserialize_str(V)
}

fn ser_side<S: Serializer>(side: &Side, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match side {
        Side::Buy => "B",
        Side::Sell => "A",
    })
}

fn de_dir<'de, D: Deserializer<'de>>(d: D) -> Result<FillDir, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = FillDir;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a fill direction")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<FillDir, E> {
            Ok(FillDir::from_wire(v))
        }
    }
    d.deserialize_str(V)
}

fn ser_dir<S: Serializer>(dir: &FillDir, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dir.as_str())
}

/// A JSON object `{coin: decimal}` decoded into a vector, keeping wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MidMap(pub Vec<(Coin, Decimal)>);

impl<'de> Deserialize<'de> for MidMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MidMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of coin → price")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<MidMap, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(16).min(4096));
                while let Some(k) = m.next_key::<Coin>()? {
                    let px = m.next_value::<DecWrap>()?.0;
                    v.push((k, px));
                }
                Ok(MidMap(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for MidMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_str(), &wire_decimal(v))?;
        }
        m.end()
    }
}

struct DecWrap(Decimal);
impl<'de> Deserialize<'de> for DecWrap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        dec(d).map(DecWrap)
    }
}

// ---------------------------------------------------------------------------------------------
// Trades, mids, asset contexts, books.

/// A trade (`trades` channel, `recentTrades` request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTrade {
    /// Market.
    pub coin: Coin,
    /// `"B"` or `"A"`.
    #[serde(deserialize_with = "de_side", serialize_with = "ser_side")]
    pub side: Side,
    /// Price.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub px: Decimal,
    /// Size.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub sz: Decimal,
    /// Transaction hash (not decoded: nothing downstream needs it, and skipping it saves an
    /// allocation per trade on the hottest path).
    #[serde(default, skip_deserializing)]
    pub hash: String,
    /// Block time (ms).
    #[serde(deserialize_with = "de_ts", serialize_with = "ser_ts")]
    pub time: Timestamp,
    /// Trade id.
    #[serde(deserialize_with = "u64_lenient", default)]
    pub tid: u64,
    /// Buyer and seller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<[Address; 2]>,
}

impl WireTrade {
    /// Normalizes.
    pub fn into_trade(self) -> Trade {
        Trade {
            coin: self.coin,
            side: self.side,
            px: self.px,
            sz: self.sz,
            time: self.time,
            tid: self.tid,
            users: self.users,
        }
    }

    /// Wire form of a normalized trade (the hash is derived from the trade id).
    pub fn from_trade(t: &Trade) -> Self {
        Self {
            coin: t.coin.clone(),
            side: t.side,
            px: t.px,
            sz: t.sz,
            hash: format!("0x{:064x}", t.tid),
            time: t.time,
            tid: t.tid,
            users: t.users,
        }
    }
}

/// `PerpAssetCtx` (`metaAndAssetCtxs[1][i]`, `activeAssetCtx.ctx`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAssetCtx {
    /// Hourly funding rate.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub funding: Decimal,
    /// Open interest, base units.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub open_interest: Decimal,
    /// Price 24 h ago.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub prev_day_px: Option<Decimal>,
    /// 24 h notional volume.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub day_ntl_vlm: Decimal,
    /// Premium.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub premium: Option<Decimal>,
    /// Oracle price.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub oracle_px: Decimal,
    /// Mark price.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub mark_px: Decimal,
    /// Book mid.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub mid_px: Option<Decimal>,
    /// Impact prices.
    #[serde(default)]
    pub impact_pxs: Option<[DecStr; 2]>,
    /// 24 h base volume (absent before 2024).
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub day_base_vlm: Option<Decimal>,
}

/// A decimal in string form (for arrays of decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecStr(pub Decimal);

impl<'de> Deserialize<'de> for DecStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        dec(d).map(DecStr)
    }
}

impl Serialize for DecStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&wire_decimal(&self.0))
    }
}

impl WireAssetCtx {
    /// Normalizes for `coin` observed at `time`.
    pub fn into_ctx(self, coin: Coin, time: Timestamp) -> AssetCtx {
        AssetCtx {
            coin,
            time,
            oracle_px: self.oracle_px,
            mark_px: self.mark_px,
            mid_px: self.mid_px,
            open_interest: self.open_interest,
            funding: self.funding,
            day_ntl_vlm: self.day_ntl_vlm,
            prev_day_px: self.prev_day_px,
            premium: self.premium,
            impact_pxs: self.impact_pxs.map(|[a, b]| [a.0, b.0]),
        }
    }

    /// Wire form of a normalized context.
    pub fn from_ctx(c: &AssetCtx) -> Self {
        Self {
            funding: c.funding,
            open_interest: c.open_interest,
            prev_day_px: c.prev_day_px,
            day_ntl_vlm: c.day_ntl_vlm,
            premium: c.premium,
            oracle_px: c.oracle_px,
            mark_px: c.mark_px,
            mid_px: c.mid_px,
            impact_pxs: c.impact_pxs.map(|[a, b]| [DecStr(a), DecStr(b)]),
            day_base_vlm: Some(if c.mark_px.is_zero() {
                Decimal::ZERO
            } else {
                (c.day_ntl_vlm / c.mark_px).round_dp(4)
            }),
        }
    }
}

/// A book level `{px, sz, n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLevel {
    /// Price.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub px: Decimal,
    /// Size.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub sz: Decimal,
    /// Orders.
    #[serde(default)]
    pub n: u32,
}

impl WireCandle {
    /// Normalizes as observed at `now`.
    pub fn into_candle(self, now: Timestamp) -> kamiyo_core_models::Candle {
        kamiyo_core_models::Candle {
            time: now,
            coin: self.coin,
            interval: self.interval.as_str().into(),
            open_time: self.open_time,
            close_time: self.close_time,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            trades: self.trades,
        }
    }
}

/// `l2Book` (request and channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBook {
    /// Market.
    pub coin: Coin,
    /// Time.
    #[serde(deserialize_with = "de_ts", serialize_with = "ser_ts")]
    pub time: Timestamp,
    /// `[bids, asks]`.
    pub levels: [Vec<WireLevel>; 2],
}

impl WireBook {
    /// Normalizes.
    pub fn into_book(self) -> BookSnapshot {
        let [bids, asks] = self.levels;
        let conv = |v: Vec<WireLevel>| {
            v.into_iter()
                .map(|l| BookLevel {
                    px: l.px,
                    sz: l.sz,
                    n: l.n,
                })
                .collect()
        };
        BookSnapshot {
            coin: self.coin,
            time: self.time,
            bids: conv(bids),
            asks: conv(asks),
        }
    }

    /// Wire form.
    pub fn from_book(b: &BookSnapshot) -> Self {
        let conv = |v: &[BookLevel]| {
            v.iter()
                .map(|l| WireLevel {
                    px: l.px,
                    sz: l.sz,
                    n: l.n,
                })
                .collect()
        };
        Self {
            coin: b.coin.clone(),
            time: b.time,
            levels: [conv(&b.bids), conv(&b.asks)],
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireBbo {
    coin: Coin,
    #[serde(deserialize_with = "de_ts")]
    time: Timestamp,
    bbo: [Option<WireLevel>; 2],
}

// ---------------------------------------------------------------------------------------------
// Fills.

/// The `liquidation` object of a fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireLiquidation {
    /// The liquidated account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidated_user: Option<Address>,
    /// Mark price.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub mark_px: Decimal,
    /// `market` or `backstop`.
    pub method: LiquidationMethod,
}

/// A fill (`userFills`, `userFillsByTime`, the `userFills` and `user` channels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFill {
    /// Market.
    pub coin: Coin,
    /// Price.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub px: Decimal,
    /// Size.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub sz: Decimal,
    /// `"B"` / `"A"`.
    #[serde(deserialize_with = "de_side", serialize_with = "ser_side")]
    pub side: Side,
    /// Time.
    #[serde(deserialize_with = "de_ts", serialize_with = "ser_ts")]
    pub time: Timestamp,
    /// Position before the fill.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub start_position: Option<Decimal>,
    /// Direction.
    #[serde(deserialize_with = "de_dir", serialize_with = "ser_dir")]
    pub dir: FillDir,
    /// Realised PnL.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub closed_pnl: Option<Decimal>,
    /// Hash.
    #[serde(default)]
    pub hash: Option<String>,
    /// Order id.
    #[serde(deserialize_with = "u64_lenient", default)]
    pub oid: u64,
    /// Taker.
    #[serde(default)]
    pub crossed: bool,
    /// Fee.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub fee: Option<Decimal>,
    /// Trade id (absent in 2023).
    #[serde(
        deserialize_with = "opt_u64_lenient",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tid: Option<u64>,
    /// Fee token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_token: Option<String>,
    /// Liquidation details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidation: Option<WireLiquidation>,
}

impl WireFill {
    /// Normalizes as a fill of `user`.
    pub fn into_fill(self, user: Address) -> Fill {
        Fill {
            user,
            coin: self.coin,
            px: self.px,
            sz: self.sz,
            side: self.side,
            time: self.time,
            dir: self.dir,
            closed_pnl: self.closed_pnl.unwrap_or_default(),
            start_position: self.start_position,
            tid: self.tid,
            oid: self.oid,
            fee: self.fee.unwrap_or_default(),
            hash: self.hash,
            liquidation: self.liquidation.map(|l| LiquidationInfo {
                liquidated_user: l.liquidated_user,
                mark_px: l.mark_px,
                method: l.method,
            }),
        }
    }

    /// Wire form of a normalized fill.
    pub fn from_fill(f: &Fill) -> Self {
        Self {
            coin: f.coin.clone(),
            px: f.px,
            sz: f.sz,
            side: f.side,
            time: f.time,
            start_position: f.start_position,
            dir: f.dir.clone(),
            closed_pnl: Some(f.closed_pnl),
            hash: f.hash.clone(),
            oid: f.oid,
            crossed: true,
            fee: Some(f.fee),
            tid: f.tid,
            fee_token: Some("USDC".into()),
            liquidation: f.liquidation.as_ref().map(|l| WireLiquidation {
                liquidated_user: l.liquidated_user,
                mark_px: l.mark_px,
                method: l.method.clone(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST responses.

/// One asset of `meta.universe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireAssetMeta {
    /// Name.
    pub name: Coin,
    /// Size decimals.
    #[serde(default)]
    pub sz_decimals: u32,
    /// Max leverage (absent in 2023).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_leverage: Option<u32>,
    /// Delisted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_delisted: bool,
    /// Isolated only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_isolated: bool,
}

/// `meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMeta {
    /// Perp universe; index `i` matches `assetCtxs[i]`.
    pub universe: Vec<WireAssetMeta>,
}

impl WireMeta {
    /// Coin names in universe order.
    pub fn coins(&self) -> Vec<Coin> {
        self.universe.iter().map(|a| a.name.clone()).collect()
    }
}

/// Decodes `meta`.
pub fn decode_meta(body: &str) -> DecodeResult<WireMeta> {
    from_json("meta", body)
}

/// Decodes `metaAndAssetCtxs` into the universe and one context per listed asset.
pub fn decode_meta_and_asset_ctxs(
    body: &str,
    time: Timestamp,
) -> DecodeResult<(WireMeta, Vec<AssetCtx>)> {
    let (meta, ctxs): (WireMeta, Vec<WireAssetCtx>) = from_json("metaAndAssetCtxs", body)?;
    if ctxs.len() > meta.universe.len() {
        return Err(DecodeError::new(
            "metaAndAssetCtxs",
            format_args!("{} contexts for {} assets", ctxs.len(), meta.universe.len()),
        ));
    }
    let out = meta
        .universe
        .iter()
        .zip(ctxs)
        .map(|(a, c)| c.into_ctx(a.name.clone(), time))
        .collect();
    Ok((meta, out))
}

/// Decodes `allMids`.
pub fn decode_all_mids(body: &str, time: Timestamp) -> DecodeResult<Mids> {
    let m: MidMap = from_json("allMids", body)?;
    Ok(Mids { time, mids: m.0 })
}

/// Decodes `l2Book` (which may be `null` for an unknown coin).
pub fn decode_l2_book(body: &str) -> DecodeResult<Option<BookSnapshot>> {
    let b: Option<WireBook> = from_json("l2Book", body)?;
    Ok(b.map(WireBook::into_book))
}

/// Decodes `userFills` / `userFillsByTime` for `user`.
pub fn decode_user_fills(body: &str, user: Address) -> DecodeResult<Vec<Fill>> {
    let v: Vec<WireFill> = from_json("userFills", body)?;
    Ok(v.into_iter().map(|f| f.into_fill(user)).collect())
}

/// Decodes `recentTrades`.
pub fn decode_recent_trades(body: &str) -> DecodeResult<Vec<Trade>> {
    let v: Vec<WireTrade> = from_json("recentTrades", body)?;
    Ok(v.into_iter().map(WireTrade::into_trade).collect())
}

/// Decodes `perpsAtOpenInterestCap`.
pub fn decode_oi_cap(body: &str) -> DecodeResult<Vec<Coin>> {
    from_json("perpsAtOpenInterestCap", body)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMarginSummary {
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    account_value: Decimal,
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    total_ntl_pos: Decimal,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    total_raw_usd: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    total_margin_used: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireLeverage {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    value: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePosition {
    coin: Coin,
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    szi: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leverage: Option<WireLeverage>,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    entry_px: Option<Decimal>,
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    position_value: Decimal,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    unrealized_pnl: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    liquidation_px: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    margin_used: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireAssetPosition {
    position: WirePosition,
}

/// `clearinghouseState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireClearinghouseState {
    margin_summary: WireMarginSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cross_margin_summary: Option<WireMarginSummary>,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    cross_maintenance_margin_used: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    withdrawable: Option<Decimal>,
    asset_positions: Vec<WireAssetPosition>,
    #[serde(deserialize_with = "opt_ts", serialize_with = "ser_opt_ts", default)]
    time: Option<Timestamp>,
}

fn opt_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Option::<i64>::deserialize(d).map(|o| o.map(Timestamp))
}

fn ser_opt_ts<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_i64(t.0),
        None => s.serialize_none(),
    }
}

impl WireClearinghouseState {
    /// Normalizes as the state of `user`, using the response time or `fallback_time`.
    pub fn into_snapshot(self, user: Address, fallback_time: Timestamp) -> PositionSnapshot {
        PositionSnapshot {
            user,
            time: self.time.unwrap_or(fallback_time),
            account_value: self.margin_summary.account_value,
            total_ntl_pos: self.margin_summary.total_ntl_pos,
            maintenance_margin: self.cross_maintenance_margin_used.unwrap_or_default(),
            withdrawable: self.withdrawable.unwrap_or_default(),
            positions: self
                .asset_positions
                .into_iter()
                .map(|a| {
                    let p = a.position;
                    Position {
                        coin: p.coin,
                        szi: p.szi,
                        entry_px: p.entry_px,
                        position_value: p.position_value,
                        unrealized_pnl: p.unrealized_pnl.unwrap_or_default(),
                        liquidation_px: p.liquidation_px,
                        margin_used: p.margin_used.unwrap_or_default(),
                        leverage: p.leverage.map(|l| l.value),
                    }
                })
                .collect(),
        }
    }

    /// Wire form of a normalized snapshot.
    pub fn from_snapshot(s: &PositionSnapshot) -> Self {
        let summary = WireMarginSummary {
            account_value: s.account_value,
            total_ntl_pos: s.total_ntl_pos,
            total_raw_usd: None,
            total_margin_used: Some(s.positions.iter().map(|p| p.margin_used).sum()),
        };
        Self {
            margin_summary: summary.clone(),
            cross_margin_summary: Some(summary),
            cross_maintenance_margin_used: Some(s.maintenance_margin),
            withdrawable: Some(s.withdrawable),
            asset_positions: s
                .positions
                .iter()
                .map(|p| WireAssetPosition {
                    position: WirePosition {
                        coin: p.coin.clone(),
                        szi: p.szi,
                        leverage: p.leverage.map(|value| WireLeverage {
                            kind: "cross".into(),
                            value,
                        }),
                        entry_px: p.entry_px,
                        position_value: p.position_value,
                        unrealized_pnl: Some(p.unrealized_pnl),
                        liquidation_px: p.liquidation_px,
                        margin_used: Some(p.margin_used),
                    },
                })
                .collect(),
            time: Some(s.time),
        }
    }
}

/// Decodes `clearinghouseState` for `user`.
pub fn decode_clearinghouse_state(
    body: &str,
    user: Address,
    time: Timestamp,
) -> DecodeResult<PositionSnapshot> {
    let s: WireClearinghouseState = from_json("clearinghouseState", body)?;
    Ok(s.into_snapshot(user, time))
}

/// A `[ms, "value"]` series point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WirePoint(pub Timestamp, pub Decimal);

impl<'de> Deserialize<'de> for WirePoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, v): (i64, DecStr) = Deserialize::deserialize(d)?;
        Ok(WirePoint(Timestamp(t), v.0))
    }
}

impl Serialize for WirePoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0.0, DecStr(self.1)).serialize(s)
    }
}

/// One period of a vault's or user's `portfolio`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePortfolioPeriod {
    /// Account value over the period.
    #[serde(default)]
    pub account_value_history: Vec<WirePoint>,
    /// Cumulative PnL since the period start.
    #[serde(default)]
    pub pnl_history: Vec<WirePoint>,
    /// Volume.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub vlm: Option<Decimal>,
}

/// `portfolio` (and `vaultDetails.portfolio`): `[[period, P], …]`.
pub type WirePortfolio = Vec<(String, WirePortfolioPeriod)>;

/// `relationship` of a vault.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WireRelationship {
    /// `normal`, `parent` or `child`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Children, for a parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<WireRelationshipData>,
}

/// `relationship.data`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRelationshipData {
    /// Child vaults.
    #[serde(default)]
    pub child_addresses: Vec<Address>,
}

/// `vaultDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireVaultDetails {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Address.
    pub vault_address: Address,
    /// Leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<Address>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Portfolio periods.
    #[serde(default)]
    pub portfolio: WirePortfolio,
    /// APR (a JSON number).
    #[serde(default)]
    pub apr: Option<f64>,
    /// Closed.
    #[serde(default)]
    pub is_closed: bool,
    /// Parent/child relationship.
    #[serde(default)]
    pub relationship: WireRelationship,
    /// Deposits allowed.
    #[serde(default)]
    pub allow_deposits: bool,
}

/// A vault as discovered: its snapshot and its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultDetails {
    /// The normalized snapshot.
    pub snapshot: VaultSnapshot,
    /// Child vault addresses (`relationship.data.childAddresses`).
    pub children: Vec<Address>,
    /// `parent`, `child` or `normal`.
    pub relationship: String,
}

/// Builds one cumulative PnL series from the portfolio periods: `allTime` for history, and the
/// finer `week` and `day` series rebased onto the all-time scale (each period's `pnlHistory`
/// starts at zero at the period start; all periods end at the same last point).
pub fn merge_portfolio(portfolio: &WirePortfolio) -> (Vec<SeriesPoint>, Vec<SeriesPoint>) {
    let get = |name: &str| portfolio.iter().find(|(p, _)| p == name).map(|(_, v)| v);
    let mut pnl: BTreeMap<i64, Decimal> = BTreeMap::new();
    let mut av: BTreeMap<i64, Decimal> = BTreeMap::new();
    let all = get("allTime");
    let all_last = all.and_then(|p| p.pnl_history.last()).map(|p| p.1);
    for period in ["allTime", "month", "week", "day"] {
        let Some(p) = get(period) else { continue };
        let offset = match (all_last, p.pnl_history.last()) {
            (Some(a), Some(l)) if period != "allTime" => a - l.1,
            _ => Decimal::ZERO,
        };
        for WirePoint(t, v) in &p.pnl_history {
            pnl.insert(t.0, *v + offset);
        }
        for WirePoint(t, v) in &p.account_value_history {
            av.insert(t.0, *v);
        }
    }
    let conv = |m: BTreeMap<i64, Decimal>| {
        m.into_iter()
            .map(|(t, v)| SeriesPoint {
                time: Timestamp(t),
                value: v,
            })
            .collect()
    };
    (conv(pnl), conv(av))
}

/// Decodes `vaultDetails` (`null` → `None`).
pub fn decode_vault_details(body: &str, time: Timestamp) -> DecodeResult<Option<VaultDetails>> {
    let v: Option<WireVaultDetails> = from_json("vaultDetails", body)?;
    Ok(v.map(|v| {
        let (pnl_history, account_value_history) = merge_portfolio(&v.portfolio);
        let account_value = account_value_history
            .last()
            .map(|p| p.value)
            .unwrap_or_default();
        VaultDetails {
            snapshot: VaultSnapshot {
                vault: v.vault_address,
                name: v.name,
                time,
                account_value,
                pnl_history,
                account_value_history,
            },
            children: v
                .relationship
                .data
                .map(|d| d.child_addresses)
                .unwrap_or_default(),
            relationship: v.relationship.kind,
        }
    }))
}

/// Decodes `portfolio` of `user` into a vault-style snapshot.
pub fn decode_portfolio(body: &str, user: Address, time: Timestamp) -> DecodeResult<VaultSnapshot> {
    let p: WirePortfolio = from_json("portfolio", body)?;
    let (pnl_history, account_value_history) = merge_portfolio(&p);
    let account_value = account_value_history
        .last()
        .map(|p| p.value)
        .unwrap_or_default();
    Ok(VaultSnapshot {
        vault: user,
        name: String::new(),
        time,
        account_value,
        pnl_history,
        account_value_history,
    })
}

/// A candle (`candleSnapshot`, `candle` channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCandle {
    /// Open time.
    #[serde(rename = "t", deserialize_with = "de_ts", serialize_with = "ser_ts")]
    pub open_time: Timestamp,
    /// Close time.
    #[serde(rename = "T", deserialize_with = "de_ts", serialize_with = "ser_ts")]
    pub close_time: Timestamp,
    /// Coin.
    #[serde(rename = "s")]
    pub coin: Coin,
    /// Interval (`1m` … `1M`).
    #[serde(rename = "i")]
    pub interval: String,
    /// Open.
    #[serde(rename = "o", deserialize_with = "dec", serialize_with = "ser_dec")]
    pub open: Decimal,
    /// Close.
    #[serde(rename = "c", deserialize_with = "dec", serialize_with = "ser_dec")]
    pub close: Decimal,
    /// High.
    #[serde(rename = "h", deserialize_with = "dec", serialize_with = "ser_dec")]
    pub high: Decimal,
    /// Low.
    #[serde(rename = "l", deserialize_with = "dec", serialize_with = "ser_dec")]
    pub low: Decimal,
    /// Base volume.
    #[serde(rename = "v", deserialize_with = "dec", serialize_with = "ser_dec")]
    pub volume: Decimal,
    /// Trades.
    #[serde(rename = "n", default)]
    pub trades: u64,
}

/// Decodes `candleSnapshot`.
pub fn decode_candles(body: &str) -> DecodeResult<Vec<WireCandle>> {
    from_json("candleSnapshot", body)
}

/// A funding-history point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFunding {
    /// Coin.
    pub coin: Coin,
    /// Hourly rate.
    #[serde(deserialize_with = "dec", serialize_with = "ser_dec")]
    pub funding_rate: Decimal,
    /// Premium.
    #[serde(deserialize_with = "opt_dec", serialize_with = "ser_opt_dec", default)]
    pub premium: Option<Decimal>,
    /// Time.
    #[serde(deserialize_with = "de_ts", serialize_with = "ser_ts")]
    pub time: Timestamp,
}

/// Decodes `fundingHistory`.
pub fn decode_funding_history(body: &str) -> DecodeResult<Vec<WireFunding>> {
    from_json("fundingHistory", body)
}

#[derive(Debug, Deserialize)]
struct WireLedgerUpdate<'a> {
    #[serde(deserialize_with = "de_ts")]
    time: Timestamp,
    #[serde(default)]
    hash: Option<String>,
    #[serde(borrow)]
    delta: &'a RawValue,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDelta {
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "opt_dec", default)]
    usdc: Option<Decimal>,
    #[serde(deserialize_with = "opt_dec", default)]
    amount: Option<Decimal>,
    #[serde(default)]
    vault: Option<Address>,
    #[serde(deserialize_with = "opt_dec", default)]
    account_value: Option<Decimal>,
    #[serde(default)]
    liquidated_positions: Vec<serde_json::Value>,
    #[serde(deserialize_with = "opt_dec", default)]
    liquidated_ntl_pos: Option<Decimal>,
}

fn ledger_kind(d: &WireDelta) -> LedgerKind {
    match d.kind.as_str() {
        "deposit" => LedgerKind::Deposit,
        "withdraw" => LedgerKind::Withdraw,
        "vaultDeposit" => LedgerKind::VaultDeposit { vault: d.vault },
        "vaultWithdraw" | "vaultDistribution" => LedgerKind::VaultWithdraw { vault: d.vault },
        "internalTransfer"
        | "subAccountTransfer"
        | "spotTransfer"
        | "accountClassTransfer"
        | "send" => LedgerKind::Transfer,
        "liquidation" => LedgerKind::Liquidation {
            liquidated_ntl_pos: d.liquidated_ntl_pos.unwrap_or_default(),
            account_value: d.account_value.unwrap_or_default(),
        },
        other => LedgerKind::Other {
            name: other.chars().take(64).collect(),
        },
    }
}

/// Decodes `userNonFundingLedgerUpdates` of `user`.
pub fn decode_ledger_updates(body: &str, user: Address) -> DecodeResult<Vec<LedgerEvent>> {
    let v: Vec<WireLedgerUpdate<'_>> = from_json("userNonFundingLedgerUpdates", body)?;
    v.into_iter()
        .map(|u| {
            let d: WireDelta = from_json("userNonFundingLedgerUpdates.delta", u.delta.get())?;
            let _ = d.liquidated_positions.len();
            Ok(LedgerEvent {
                user,
                time: u.time,
                kind: ledger_kind(&d),
                usdc: d.usdc.or(d.amount).unwrap_or_default().abs(),
                hash: u.hash,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// WebSocket frames.

/// What one WebSocket text frame meant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsMessage {
    /// The plain-text `Websocket connection established.` greeting.
    Greeting,
    /// `{"channel":"pong"}`.
    Pong,
    /// A subscription was acknowledged (the echoed subscription object, verbatim).
    SubscriptionAck(serde_json::Value),
    /// The server reported an error.
    ServerError(String),
    /// Market data, normalized. `snapshot` is true for the first `userFills` message.
    Events {
        /// The events.
        events: Vec<MarketEvent>,
        /// Set on snapshot messages.
        snapshot: bool,
    },
    /// A channel this client does not consume (kept for logs and metrics).
    Unknown(String),
}

/// Context the frame decoder needs: which user a `user` (userEvents) channel belongs to, and
/// the main dex universe (for `allDexsAssetCtxs`, which identifies assets by index).
#[derive(Debug, Clone, Default)]
pub struct WsContext {
    /// Owner of the connection's `userEvents` subscription.
    pub user_events_owner: Option<Address>,
    /// Main-dex universe, by index.
    pub universe: Vec<Coin>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AllMidsData {
    mids: MidMap,
}

#[derive(Deserialize)]
struct ActiveCtxData {
    coin: Coin,
    ctx: WireAssetCtx,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserFillsData {
    user: Address,
    fills: Vec<WireFill>,
    #[serde(default)]
    is_snapshot: bool,
}

#[derive(Deserialize)]
struct UserLiquidation {
    liquidated_user: Address,
    #[serde(deserialize_with = "dec")]
    liquidated_ntl_pos: Decimal,
    #[serde(deserialize_with = "dec")]
    liquidated_account_value: Decimal,
}

#[derive(Deserialize)]
struct UserEventsData {
    #[serde(default)]
    fills: Option<Vec<WireFill>>,
    #[serde(default)]
    liquidation: Option<UserLiquidation>,
}

#[derive(Deserialize)]
struct ChStateData {
    user: Address,
    #[serde(rename = "clearinghouseState")]
    state: WireClearinghouseState,
}

#[derive(Deserialize)]
struct AllDexsCtxData {
    ctxs: Vec<(String, Vec<WireAssetCtx>)>,
}

#[derive(Deserialize)]
struct AckData {
    #[serde(default)]
    subscription: serde_json::Value,
}

fn data<'a>(env: &Envelope<'a>, what: &'static str) -> DecodeResult<&'a str> {
    env.data
        .map(RawValue::get)
        .ok_or_else(|| DecodeError::new(what, "frame has no data"))
}

/// The `trades` payload decoded straight into events (one pass, one allocation).
struct TradeEvents(Vec<MarketEvent>);

impl<'de> Deserialize<'de> for TradeEvents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TradeEvents;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of trades")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TradeEvents, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(4096));
                while let Some(t) = seq.next_element::<WireTrade>()? {
                    v.push(MarketEvent::Trade(t.into_trade()));
                }
                Ok(TradeEvents(v))
            }
        }
        d.deserialize_seq(V)
    }
}

const TRADES_PREFIX: &str = r#"{"channel":"trades","data":"#;

/// Decodes one WebSocket text frame received at `now`.
pub fn decode_ws_text(text: &str, now: Timestamp, ctx: &WsContext) -> DecodeResult<WsMessage> {
    // The hottest frames (`trades`, `allMids`, `l2Book`, `activeAssetCtx`, `userFills`, `candle`) go through
    // specialised scanners; anything they
    // do not handle falls through to the general decoder, which gives the same answer
    // (tested).
    use super::fast::{fast_book, fast_candle, fast_ctx, fast_fills, fast_mids, fast_trades};
    // Each checks its own prefix first, so a frame of another channel costs a comparison.
    // Early returns rather than a chain of `or_else`: each step of the chain moved the answer
    // through the stack, in pieces read back whole (a store-forwarding stall, 5 % of a
    // `trades` frame).
    let events = |events| {
        Ok(WsMessage::Events {
            events,
            snapshot: false,
        })
    };
    if let Some(e) = fast_trades(text) {
        return events(e);
    }
    if let Some(e) = fast_mids(text, now) {
        return events(e);
    }
    if let Some(e) = fast_book(text) {
        return events(e);
    }
    if let Some(e) = fast_ctx(text, now) {
        return events(e);
    }
    if let Some(e) = fast_candle(text, now) {
        return events(e);
    }
    if let Some((events, snapshot)) = fast_fills(text) {
        return Ok(WsMessage::Events { events, snapshot });
    }
    decode_ws_text_general(text, now, ctx)
}

/// The general frame decoder, without the `trades` fast path (exposed for the equivalence
/// tests and the benchmark baseline).
pub fn decode_ws_text_general(
    text: &str,
    now: Timestamp,
    ctx: &WsContext,
) -> DecodeResult<WsMessage> {
    // A trades frame in the server's field order: parse the payload directly instead of
    // scanning the frame twice.
    if let Some(data) = text
        .strip_prefix(TRADES_PREFIX)
        .and_then(|r| r.trim_end().strip_suffix('}'))
        && let Ok(TradeEvents(events)) = serde_json::from_str::<TradeEvents>(data)
    {
        return Ok(WsMessage::Events {
            events,
            snapshot: false,
        });
    }
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        if trimmed.starts_with("Websocket connection established") {
            return Ok(WsMessage::Greeting);
        }
        return Err(DecodeError::new(
            "ws frame",
            format_args!("not JSON: {:?}", text.chars().take(60).collect::<String>()),
        ));
    }
    let env: Envelope<'_> = from_json("ws frame", text)?;
    let one = |e: MarketEvent| WsMessage::Events {
        events: vec![e],
        snapshot: false,
    };
    Ok(match env.channel.as_ref() {
        "pong" => WsMessage::Pong,
        "subscriptionResponse" => {
            let a: AckData =
                from_json("subscriptionResponse", data(&env, "subscriptionResponse")?)?;
            WsMessage::SubscriptionAck(a.subscription)
        }
        "error" => {
            let d = data(&env, "error")?;
            let msg =
                serde_json::from_str::<String>(d).unwrap_or_else(|_| d.chars().take(300).collect());
            WsMessage::ServerError(msg)
        }
        "allMids" => {
            let m: AllMidsData = from_json("allMids", data(&env, "allMids")?)?;
            one(MarketEvent::Mids(Mids {
                time: now,
                mids: m.mids.0,
            }))
        }
        "trades" => {
            let v: Vec<WireTrade> = from_json("trades", data(&env, "trades")?)?;
            WsMessage::Events {
                events: v
                    .into_iter()
                    .map(|t| MarketEvent::Trade(t.into_trade()))
                    .collect(),
                snapshot: false,
            }
        }
        "activeAssetCtx" => {
            let c: ActiveCtxData = from_json("activeAssetCtx", data(&env, "activeAssetCtx")?)?;
            one(MarketEvent::AssetCtx(c.ctx.into_ctx(c.coin, now)))
        }
        "candle" => {
            let c: WireCandle = from_json("candle", data(&env, "candle")?)?;
            one(MarketEvent::Candle(c.into_candle(now)))
        }
        "l2Book" => {
            let b: WireBook = from_json("l2Book", data(&env, "l2Book")?)?;
            one(MarketEvent::Book(b.into_book()))
        }
        "bbo" => {
            let b: WireBbo = from_json("bbo", data(&env, "bbo")?)?;
            let [bid, ask] = b.bbo;
            let conv = |l: Option<WireLevel>| {
                l.map(|l| BookLevel {
                    px: l.px,
                    sz: l.sz,
                    n: l.n,
                })
                .into_iter()
                .collect()
            };
            one(MarketEvent::Book(BookSnapshot {
                coin: b.coin,
                time: b.time,
                bids: conv(bid),
                asks: conv(ask),
            }))
        }
        "userFills" => {
            let u: UserFillsData = from_json("userFills", data(&env, "userFills")?)?;
            let user = u.user;
            WsMessage::Events {
                events: u
                    .fills
                    .into_iter()
                    .map(|f| MarketEvent::Fill(f.into_fill(user)))
                    .collect(),
                snapshot: u.is_snapshot,
            }
        }
        "user" => {
            let u: UserEventsData = from_json("user", data(&env, "user")?)?;
            let mut events = Vec::new();
            if let Some(fills) = u.fills {
                let owner = ctx.user_events_owner.ok_or_else(|| {
                    DecodeError::new(
                        "user",
                        "userEvents fills arrived but no userEvents subscription is known",
                    )
                })?;
                events.extend(
                    fills
                        .into_iter()
                        .map(|f| MarketEvent::Fill(f.into_fill(owner))),
                );
            }
            if let Some(l) = u.liquidation {
                events.push(MarketEvent::Ledger(LedgerEvent {
                    user: l.liquidated_user,
                    time: now,
                    kind: LedgerKind::Liquidation {
                        liquidated_ntl_pos: l.liquidated_ntl_pos,
                        account_value: l.liquidated_account_value,
                    },
                    usdc: Decimal::ZERO,
                    hash: None,
                }));
            }
            WsMessage::Events {
                events,
                snapshot: false,
            }
        }
        "clearinghouseState" => {
            let c: ChStateData =
                from_json("clearinghouseState", data(&env, "clearinghouseState")?)?;
            one(MarketEvent::Positions(c.state.into_snapshot(c.user, now)))
        }
        "allDexsAssetCtxs" => {
            let d: AllDexsCtxData = from_json("allDexsAssetCtxs", data(&env, "allDexsAssetCtxs")?)?;
            let mut events = Vec::new();
            for (dex, ctxs) in d.ctxs {
                if !dex.is_empty() {
                    continue;
                }
                for (coin, c) in ctx.universe.iter().zip(ctxs) {
                    events.push(MarketEvent::AssetCtx(c.into_ctx(coin.clone(), now)));
                }
            }
            WsMessage::Events {
                events,
                snapshot: false,
            }
        }
        other => WsMessage::Unknown(other.chars().take(64).collect()),
    })
}

/// Encoding of normalized events into WebSocket frames (used by the loopback simulator).
pub mod encode {
    use super::*;
    use serde_json::json;

    fn frame(channel: &str, data: impl Serialize) -> String {
        json!({ "channel": channel, "data": data }).to_string()
    }

    /// `trades` frame.
    pub fn trades(trades: &[Trade]) -> String {
        frame(
            "trades",
            trades.iter().map(WireTrade::from_trade).collect::<Vec<_>>(),
        )
    }

    /// `allMids` frame.
    pub fn all_mids(mids: &Mids) -> String {
        frame("allMids", json!({ "mids": MidMap(mids.mids.clone()) }))
    }

    /// `activeAssetCtx` frame.
    pub fn active_asset_ctx(c: &AssetCtx) -> String {
        frame(
            "activeAssetCtx",
            json!({ "coin": c.coin, "ctx": WireAssetCtx::from_ctx(c) }),
        )
    }

    /// `l2Book` frame.
    pub fn l2_book(b: &BookSnapshot) -> String {
        frame("l2Book", WireBook::from_book(b))
    }

    /// `userFills` frame.
    pub fn user_fills(user: Address, fills: &[Fill], snapshot: bool) -> String {
        let wire: Vec<WireFill> = fills.iter().map(WireFill::from_fill).collect();
        frame(
            "userFills",
            json!({ "user": user, "fills": wire, "isSnapshot": snapshot }),
        )
    }

    /// `subscriptionResponse` frame echoing `subscription`.
    pub fn subscription_ack(subscription: &serde_json::Value) -> String {
        frame(
            "subscriptionResponse",
            json!({ "method": "subscribe", "subscription": subscription }),
        )
    }

    /// `pong` frame.
    pub fn pong() -> String {
        json!({ "channel": "pong" }).to_string()
    }

    /// `error` frame.
    pub fn error(msg: &str) -> String {
        frame("error", msg)
    }
}
