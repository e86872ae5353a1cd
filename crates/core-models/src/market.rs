//! Normalized market events: what every source (live Hyperliquid, reference venues, replays)
//! produces and what every detector consumes, plus the [`MarketDataStream`] trait.
//!
//! Field meanings follow Hyperliquid's API (see `docs/SCENARIOS.md` for the serialized form);
//! all quantities are decimals.

use std::fmt;
use std::pin::Pin;

use futures_core::Stream;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

use crate::feed::FeedStatus;
use crate::ids::{Address, Coin};
use crate::price::{Price, ReferenceQuote};
use crate::time::Timestamp;

/// Aggressor side of a trade, or the side of a fill (`"B"` = buy, `"A"` = sell on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Bid side / buyer.
    Buy,
    /// Ask side / seller.
    Sell,
}

impl Side {
    /// +1 for buy, −1 for sell.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
}

/// A public trade (the `trades` WebSocket channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Market.
    pub coin: Coin,
    /// Aggressor side.
    pub side: Side,
    /// Price.
    pub px: Price,
    /// Size in base units.
    pub sz: Decimal,
    /// Block time.
    pub time: Timestamp,
    /// Trade id (a hash of both order ids; unique together with time and coin).
    pub tid: u64,
    /// Buyer and seller, when the venue reports them (Hyperliquid does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<[Address; 2]>,
}

impl Trade {
    /// `px × sz` in USD.
    pub fn notional(&self) -> Decimal {
        self.px * self.sz
    }
}

/// A snapshot of mid prices (the `allMids` channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mids {
    /// Receipt or block time.
    pub time: Timestamp,
    /// Mid per coin.
    pub mids: Vec<(Coin, Price)>,
}

/// Per-asset context (`metaAndAssetCtxs`, `activeAssetCtx`): oracle, mark, mid, open interest,
/// funding and 24h volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetCtx {
    /// Market.
    pub coin: Coin,
    /// Observation time.
    pub time: Timestamp,
    /// Validators' weighted median of CEX spot prices.
    pub oracle_px: Price,
    /// Mark price (drives margining and liquidations).
    pub mark_px: Price,
    /// Book mid; absent when the book is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid_px: Option<Price>,
    /// Open interest in base units.
    pub open_interest: Decimal,
    /// Current hourly funding rate.
    pub funding: Decimal,
    /// 24h notional volume in USD.
    pub day_ntl_vlm: Decimal,
    /// Price 24h ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_day_px: Option<Price>,
    /// Premium of mark over oracle, as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premium: Option<Decimal>,
    /// Impact bid/ask prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_pxs: Option<[Price; 2]>,
}

impl AssetCtx {
    /// Open interest in USD at the mark price.
    pub fn open_interest_usd(&self) -> Decimal {
        self.open_interest * self.mark_px
    }
}

/// How a liquidation was executed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LiquidationMethod {
    /// Market orders sent to the book.
    Market,
    /// The Liquidator vault took the position over.
    Backstop,
    /// A method this version does not know yet (kept verbatim).
    Other(SmolStr),
}

impl LiquidationMethod {
    /// Wire text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Market => "market",
            Self::Backstop => "backstop",
            Self::Other(s) => s,
        }
    }

    /// From wire text.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "market" => Self::Market,
            "backstop" => Self::Backstop,
            other => Self::Other(SmolStr::new(other)),
        }
    }
}

impl Serialize for LiquidationMethod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LiquidationMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_wire(&s))
    }
}

/// The `liquidation` object a fill carries when it was part of a liquidation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationInfo {
    /// The account being liquidated (absent on some fills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidated_user: Option<Address>,
    /// Mark price at liquidation.
    pub mark_px: Price,
    /// Market or backstop.
    pub method: LiquidationMethod,
}

/// The `dir` of a fill. Unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FillDir {
    /// `Open Long`
    OpenLong,
    /// `Close Long`
    CloseLong,
    /// `Open Short`
    OpenShort,
    /// `Close Short`
    CloseShort,
    /// `Long > Short`
    LongToShort,
    /// `Short > Long`
    ShortToLong,
    /// `Buy` (spot)
    Buy,
    /// `Sell` (spot)
    Sell,
    /// `Liquidated Cross Long`, `Liquidated Isolated Short` … (the liquidator's side).
    Liquidated(SmolStr),
    /// `Auto-Deleveraging`
    AutoDeleveraging,
    /// Anything else.
    Other(SmolStr),
}

impl FillDir {
    /// From wire text.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "Open Long" => Self::OpenLong,
            "Close Long" => Self::CloseLong,
            "Open Short" => Self::OpenShort,
            "Close Short" => Self::CloseShort,
            "Long > Short" => Self::LongToShort,
            "Short > Long" => Self::ShortToLong,
            "Buy" => Self::Buy,
            "Sell" => Self::Sell,
            "Auto-Deleveraging" => Self::AutoDeleveraging,
            s if s.starts_with("Liquidated") => Self::Liquidated(SmolStr::new(s)),
            s => Self::Other(SmolStr::new(s)),
        }
    }

    /// Wire text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::OpenLong => "Open Long",
            Self::CloseLong => "Close Long",
            Self::OpenShort => "Open Short",
            Self::CloseShort => "Close Short",
            Self::LongToShort => "Long > Short",
            Self::ShortToLong => "Short > Long",
            Self::Buy => "Buy",
            Self::Sell => "Sell",
            Self::AutoDeleveraging => "Auto-Deleveraging",
            Self::Liquidated(s) | Self::Other(s) => s,
        }
    }
}

impl fmt::Display for FillDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FillDir {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FillDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_wire(&s))
    }
}

/// One fill of a user (the `userFills` request and channel), including liquidation and ADL fills.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// Whose fill this is.
    pub user: Address,
    /// Market.
    pub coin: Coin,
    /// Price.
    pub px: Price,
    /// Size in base units (positive).
    pub sz: Decimal,
    /// Side of this user.
    pub side: Side,
    /// Block time.
    pub time: Timestamp,
    /// Direction text.
    pub dir: FillDir,
    /// Realised PnL of this fill.
    #[serde(default)]
    pub closed_pnl: Decimal,
    /// Position before the fill (signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_position: Option<Decimal>,
    /// Trade id; absent in 2023-era responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u64>,
    /// Order id.
    #[serde(default)]
    pub oid: u64,
    /// Fee paid.
    #[serde(default)]
    pub fee: Decimal,
    /// Transaction hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Set when the fill belongs to a liquidation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidation: Option<LiquidationInfo>,
}

impl Fill {
    /// `px × sz` in USD.
    pub fn notional(&self) -> Decimal {
        self.px * self.sz
    }

    /// True for auto-deleveraging fills.
    pub fn is_adl(&self) -> bool {
        self.dir == FillDir::AutoDeleveraging
    }

    /// True for fills that belong to a liquidation (market or backstop) but not ADL.
    pub fn is_liquidation(&self) -> bool {
        !self.is_adl() && (self.liquidation.is_some() || matches!(self.dir, FillDir::Liquidated(_)))
    }

    /// The deduplication key `(time, coin, tid)` (falls back to the order id for old fills).
    pub fn dedup_key(&self) -> (Timestamp, Coin, u64, Address) {
        (
            self.time,
            self.coin.clone(),
            self.tid.unwrap_or(self.oid),
            self.user,
        )
    }
}

/// A point of a vault's cumulative PnL or account-value series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Time of the point.
    pub time: Timestamp,
    /// Value in USD.
    pub value: Decimal,
}

/// A vault's state (`vaultDetails`): account value and PnL history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultSnapshot {
    /// Vault address.
    pub vault: Address,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Observation time.
    pub time: Timestamp,
    /// Current account value (includes deposits; do not read losses from it).
    pub account_value: Decimal,
    /// Cumulative PnL series (deposits and withdrawals excluded), most recent last.
    #[serde(default)]
    pub pnl_history: Vec<SeriesPoint>,
    /// Account-value series, most recent last.
    #[serde(default)]
    pub account_value_history: Vec<SeriesPoint>,
}

/// One open position of a user (`clearinghouseState.assetPositions[].position`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Market.
    pub coin: Coin,
    /// Signed size in base units (negative = short).
    pub szi: Decimal,
    /// Average entry price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_px: Option<Price>,
    /// Notional value in USD.
    pub position_value: Decimal,
    /// Unrealised PnL.
    #[serde(default)]
    pub unrealized_pnl: Decimal,
    /// Liquidation price, if the position can be liquidated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidation_px: Option<Price>,
    /// Margin allocated.
    #[serde(default)]
    pub margin_used: Decimal,
    /// Current leverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<Decimal>,
}

/// A user's margin state (`clearinghouseState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionSnapshot {
    /// Account (user, vault or sub-account).
    pub user: Address,
    /// Observation time.
    pub time: Timestamp,
    /// Account value.
    pub account_value: Decimal,
    /// Total notional of positions.
    #[serde(default)]
    pub total_ntl_pos: Decimal,
    /// Cross maintenance margin used.
    #[serde(default)]
    pub maintenance_margin: Decimal,
    /// Withdrawable USD.
    #[serde(default)]
    pub withdrawable: Decimal,
    /// Open positions.
    #[serde(default)]
    pub positions: Vec<Position>,
}

/// Kind of a non-funding ledger update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LedgerKind {
    /// Bridge deposit.
    Deposit,
    /// Bridge withdrawal.
    Withdraw,
    /// Deposit into a vault.
    VaultDeposit {
        /// The vault.
        vault: Option<Address>,
    },
    /// Withdrawal from a vault.
    VaultWithdraw {
        /// The vault.
        vault: Option<Address>,
    },
    /// Transfer between accounts.
    Transfer,
    /// The account was liquidated (`userEvents` liquidation or a `liquidation` ledger delta).
    Liquidation {
        /// Notional of the liquidated positions.
        #[serde(default)]
        liquidated_ntl_pos: Decimal,
        /// Account value at liquidation.
        #[serde(default)]
        account_value: Decimal,
    },
    /// Anything else (kept for the audit trail).
    Other {
        /// The wire `type`.
        name: String,
    },
}

/// A ledger update of a user: deposits, withdrawals, transfers, liquidations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvent {
    /// Account.
    pub user: Address,
    /// Time.
    pub time: Timestamp,
    /// What happened.
    pub kind: LedgerKind,
    /// USD amount (positive).
    #[serde(default)]
    pub usdc: Decimal,
    /// Transaction hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// A price level of an order book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookLevel {
    /// Price.
    pub px: Price,
    /// Total size at the level.
    pub sz: Decimal,
    /// Number of orders.
    #[serde(default)]
    pub n: u32,
}

/// An order-book snapshot (`l2Book`), best levels first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookSnapshot {
    /// Market.
    pub coin: Coin,
    /// Time.
    pub time: Timestamp,
    /// Bids, best (highest) first.
    pub bids: Vec<BookLevel>,
    /// Asks, best (lowest) first.
    pub asks: Vec<BookLevel>,
}

/// The markets currently at their open-interest cap (`perpsAtOpenInterestCap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OiCapSnapshot {
    /// Time.
    pub time: Timestamp,
    /// Coins at cap.
    pub coins: Vec<Coin>,
}

/// One interval of the venue's own candles (Hyperliquid's `candle` channel), as observed at
/// `time`: the open candle is sent again as it moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// When it was observed.
    pub time: Timestamp,
    /// Market.
    pub coin: Coin,
    /// The venue's interval name (`1m`, `15m`, `1h`, `1d`, …).
    pub interval: SmolStr,
    /// Start of the interval.
    pub open_time: Timestamp,
    /// End of the interval (its last millisecond).
    pub close_time: Timestamp,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close (the last price while the interval is open).
    pub close: Decimal,
    /// Base volume.
    pub volume: Decimal,
    /// Trades.
    pub trades: u64,
}

/// Everything a detector can observe. Serialized with an `event` tag:
/// `{"event":"trade","coin":"ETH",…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MarketEvent {
    /// A public trade.
    Trade(Trade),
    /// All mids.
    Mids(Mids),
    /// An asset context (oracle, mark, OI, funding).
    AssetCtx(AssetCtx),
    /// A user fill (liquidations, backstop, ADL).
    Fill(Fill),
    /// A vault snapshot.
    Vault(VaultSnapshot),
    /// A user's positions.
    Positions(PositionSnapshot),
    /// A ledger update (withdrawal, deposit, liquidation).
    Ledger(LedgerEvent),
    /// An order-book snapshot.
    Book(BookSnapshot),
    /// A reference-venue quote.
    Reference(ReferenceQuote),
    /// Markets at the open-interest cap.
    OiCap(OiCapSnapshot),
    /// A feed changed freshness state.
    Feed(FeedStatus),
    /// A venue candle.
    Candle(Candle),
}

impl MarketEvent {
    /// The event's own time (block or observation time).
    pub fn time(&self) -> Timestamp {
        match self {
            Self::Trade(e) => e.time,
            Self::Mids(e) => e.time,
            Self::AssetCtx(e) => e.time,
            Self::Fill(e) => e.time,
            Self::Vault(e) => e.time,
            Self::Positions(e) => e.time,
            Self::Ledger(e) => e.time,
            Self::Book(e) => e.time,
            Self::Reference(e) => e.time,
            Self::OiCap(e) => e.time,
            Self::Feed(e) => e.changed_at,
            Self::Candle(e) => e.time,
        }
    }

    /// The market this event is about, if it is about one market.
    pub fn coin(&self) -> Option<&Coin> {
        match self {
            Self::Trade(e) => Some(&e.coin),
            Self::AssetCtx(e) => Some(&e.coin),
            Self::Fill(e) => Some(&e.coin),
            Self::Book(e) => Some(&e.coin),
            Self::Reference(e) => Some(&e.coin),
            Self::Candle(e) => Some(&e.coin),
            _ => None,
        }
    }

    /// Short kind name, used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Trade(_) => "trade",
            Self::Mids(_) => "mids",
            Self::AssetCtx(_) => "asset_ctx",
            Self::Fill(_) => "fill",
            Self::Vault(_) => "vault",
            Self::Positions(_) => "positions",
            Self::Ledger(_) => "ledger",
            Self::Book(_) => "book",
            Self::Reference(_) => "reference",
            Self::OiCap(_) => "oi_cap",
            Self::Feed(_) => "feed",
            Self::Candle(_) => "candle",
        }
    }
}

/// A boxed stream of market events.
pub type EventStream = Pin<Box<dyn Stream<Item = MarketEvent> + Send>>;

/// A live or replayed source of market events. Sources reconnect and backfill by themselves and
/// report their health as [`MarketEvent::Feed`] items; the stream ends only when the source is
/// finished (a replay) or shut down.
pub trait MarketDataStream: Send {
    /// Feed name (`hyperliquid`, `binance` …).
    fn name(&self) -> &str;

    /// Starts the source and returns its events.
    fn into_stream(self: Box<Self>) -> EventStream;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_dir_roundtrips_and_classifies() {
        for s in [
            "Open Long",
            "Close Short",
            "Long > Short",
            "Auto-Deleveraging",
            "Liquidated Isolated Short",
            "Something New",
        ] {
            assert_eq!(FillDir::from_wire(s).as_str(), s);
        }
        assert_eq!(
            FillDir::from_wire("Auto-Deleveraging"),
            FillDir::AutoDeleveraging
        );
        assert!(matches!(
            FillDir::from_wire("Liquidated Cross Long"),
            FillDir::Liquidated(_)
        ));
    }

    #[test]
    fn market_event_serializes_with_event_tag() {
        let ev = MarketEvent::Trade(Trade {
            coin: Coin::new("ETH").unwrap(),
            side: Side::Buy,
            px: "1915.5".parse().unwrap(),
            sz: "2".parse().unwrap(),
            time: Timestamp(1),
            tid: 7,
            users: None,
        });
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(
            json,
            r#"{"event":"trade","coin":"ETH","side":"buy","px":"1915.5","sz":"2","time":1,"tid":7}"#
        );
        let back: MarketEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.kind(), "trade");
    }
}
