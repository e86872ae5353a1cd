//! Storage boundary: narrow traits, one capability each (incidents, market history, ingest,
//! outbox, API keys, audit). `kamiyo-store` implements them for SQLite and PostgreSQL;
//! `testing` (feature `test-utils`) implements them in memory.

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::ids::{Address, Coin, ProtocolId, StableId};
use crate::ledger::LogEntry;
use crate::market::{LiquidationMethod, Side};
use crate::price::{Price, Venue};
use crate::security::{
    Incident, IncidentStatus, IncidentUpdate, SecurityEvent, Severity, ThreatType,
};
use crate::time::Timestamp;

/// Storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (connection, constraint, I/O). The text is for logs, not clients.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored row could not be converted back to a domain value.
    #[error("corrupt stored row in {table}: {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The request itself was invalid (bad cursor, limit out of range).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// A fenced writer's epoch was superseded by a newer writer's: nothing was written.
    #[error("writer {name} at epoch {epoch} was superseded; the batch was not written")]
    Fenced {
        /// The fence.
        name: String,
        /// The epoch this writer held.
        epoch: i64,
    },
}

/// Result alias for storage.
pub type StoreResult<T> = Result<T, StoreError>;

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Newest first (API listings).
    #[default]
    Desc,
    /// Oldest first (stream resumption).
    Asc,
}

/// Filters for security events. Pagination is by the store-assigned sequence number `seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this protocol.
    pub protocol: Option<ProtocolId>,
    /// Only this severity or higher.
    pub min_severity: Option<Severity>,
    /// Only this threat type.
    pub threat_type: Option<ThreatType>,
    /// Only this asset.
    pub asset: Option<Coin>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events with `seq` strictly below (desc paging) …
    pub before_seq: Option<i64>,
    /// … or strictly above (asc paging, stream resume).
    pub after_seq: Option<i64>,
    /// Order.
    pub order: Order,
    /// Maximum rows (1..=1000).
    pub limit: u32,
}

/// A stored security event with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Monotonic sequence number assigned at insert; the cursor of `/security/events` and `/ws`.
    pub seq: i64,
    /// The event.
    pub event: SecurityEvent,
}

/// Filters for incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentQuery {
    /// Only this protocol.
    pub protocol: Option<ProtocolId>,
    /// Only this status.
    pub status: Option<IncidentStatus>,
    /// Only this asset.
    pub asset: Option<Coin>,
    /// Only incidents last seen at or after this time.
    pub seen_since: Option<Timestamp>,
    /// Maximum rows.
    pub limit: u32,
}

/// Incidents and their lifecycle events.
#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Stores lifecycle steps atomically: appends each event (ignoring an event id already
    /// stored) and upserts its incident. Returns the stored events with their `seq`.
    async fn record_updates(&self, updates: &[IncidentUpdate]) -> StoreResult<Vec<StoredEvent>>;
    /// One incident by id.
    async fn incident(&self, id: &StableId) -> StoreResult<Option<Incident>>;
    /// Incidents, most recently seen first.
    async fn incidents(&self, query: &IncidentQuery) -> StoreResult<Vec<Incident>>;
    /// Security events.
    async fn events(&self, query: &EventQuery) -> StoreResult<Vec<StoredEvent>>;
    /// Events of one incident, oldest first.
    async fn incident_events(&self, id: &StableId) -> StoreResult<Vec<StoredEvent>>;
    /// The event log ([`crate::ledger`]): up to `limit` entries after `after_seq`, oldest
    /// first. Every stored event has its entry, written in the transaction that stores it.
    async fn event_log(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<LogEntry>>;
    /// The newest entry of the event log, if any.
    async fn event_log_head(&self) -> StoreResult<Option<LogEntry>>;
    /// The event-log entries of `events`, by `seq` (read over the range they span, so entries
    /// of events retention deleted in between do not crowd them out). An event stored before
    /// the log began has none.
    async fn event_log_of(
        &self,
        events: &[StoredEvent],
    ) -> StoreResult<std::collections::HashMap<i64, LogEntry>> {
        let wanted: std::collections::HashSet<i64> = events.iter().map(|e| e.seq).collect();
        let mut out = std::collections::HashMap::new();
        let (Some(&lo), Some(&hi)) = (wanted.iter().min(), wanted.iter().max()) else {
            return Ok(out);
        };
        let mut after = lo - 1;
        while after < hi {
            let page = self.event_log(after, 1000).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            out.extend(
                page.into_iter()
                    .filter(|e| wanted.contains(&e.seq))
                    .map(|e| (e.seq, e)),
            );
            after = last;
        }
        Ok(out)
    }
}

/// A point of a vault's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultPoint {
    /// Vault.
    pub vault: Address,
    /// Time.
    pub time: Timestamp,
    /// Account value.
    pub account_value: Decimal,
    /// Cumulative PnL.
    pub pnl: Decimal,
    /// The protocol the fact belongs to (Hyperliquid when absent).
    #[serde(default)]
    pub protocol: ProtocolId,
}

/// Which prices a deviation sample compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    /// Oracle against the reference-venue median (or one venue).
    OracleVsReference,
    /// Mark against oracle.
    MarkVsOracle,
    /// Mid against oracle.
    MidVsOracle,
}

impl DeviationKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OracleVsReference => "oracle_vs_reference",
            Self::MarkVsOracle => "mark_vs_oracle",
            Self::MidVsOracle => "mid_vs_oracle",
        }
    }
}

/// One deviation measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationSample {
    /// Market.
    pub coin: Coin,
    /// Time.
    pub time: Timestamp,
    /// What is compared.
    pub kind: DeviationKind,
    /// The venue, for per-venue comparisons; `None` for the weighted median.
    pub venue: Option<Venue>,
    /// The price under test.
    pub value: Price,
    /// The reference it is compared to.
    pub reference: Price,
    /// Signed deviation in percent.
    pub deviation_pct: Decimal,
    /// The protocol the fact belongs to (Hyperliquid when absent).
    #[serde(default)]
    pub protocol: ProtocolId,
}

/// A liquidation or ADL fill, as kept for the liquidation timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidationRecord {
    /// Time.
    pub time: Timestamp,
    /// Market.
    pub coin: Coin,
    /// The account whose fill this is (liquidator vault, counterparty or the liquidated user).
    pub user: Address,
    /// The liquidated account.
    pub liquidated_user: Option<Address>,
    /// Side of `user`'s fill.
    pub side: Side,
    /// Price.
    pub px: Price,
    /// Size.
    pub sz: Decimal,
    /// Notional in USD.
    pub notional: Decimal,
    /// Market, backstop …
    pub method: Option<LiquidationMethod>,
    /// True for auto-deleveraging fills.
    pub is_adl: bool,
    /// Trade id (or order id for old fills); with time and coin, the dedup key.
    pub tid: u64,
    /// The protocol the fact belongs to (Hyperliquid when absent).
    #[serde(default)]
    pub protocol: ProtocolId,
}

impl LiquidationRecord {
    /// True when `other` is the same fill (the stores' dedup key: protocol, time, market,
    /// trade id and account), whatever else differs.
    pub fn same_fill(&self, other: &Self) -> bool {
        self.time == other.time
            && self.tid == other.tid
            && self.user == other.user
            && self.coin == other.coin
            && self.protocol == other.protocol
    }
}

/// A user's position at a time, as kept for whale and HLP exposure history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRecord {
    /// Account.
    pub user: Address,
    /// Time.
    pub time: Timestamp,
    /// Market.
    pub coin: Coin,
    /// Signed size.
    pub szi: Decimal,
    /// Notional.
    pub position_value: Decimal,
    /// Liquidation price.
    pub liquidation_px: Option<Price>,
    /// Account value of the user at that time.
    pub account_value: Decimal,
    /// The protocol the fact belongs to (Hyperliquid when absent).
    #[serde(default)]
    pub protocol: ProtocolId,
}

/// One closed bar of a market as the engine built it from the event stream: what the anomaly
/// model is trained on (`ml train --from-store`) and scores live, so a deployment accumulates
/// the history of the inputs no public candle file has (open interest, the outside-exchange
/// reference, liquidations, HLP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketBar {
    /// Market.
    pub coin: Coin,
    /// Bar length in milliseconds.
    pub interval_ms: i64,
    /// Open time.
    pub time: Timestamp,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Traded volume in base units.
    pub volume: Decimal,
    /// Hourly funding rate in force.
    pub funding: Decimal,
    /// Outside-exchange reference price at the close, when known.
    pub ref_px: Option<Decimal>,
    /// Open interest at the close (base units), when known.
    pub open_interest: Option<Decimal>,
    /// Notional of the liquidation fills in the bar (USD), when a fill feed is present.
    pub liq_notional: Option<Decimal>,
    /// HLP's cumulative PnL at the close (USD), when known.
    pub hlp_pnl: Option<Decimal>,
    /// HLP's account value at the close (USD), when known.
    pub hlp_equity: Option<Decimal>,
    /// The protocol the fact belongs to (Hyperliquid when absent).
    #[serde(default)]
    pub protocol: ProtocolId,
}

/// Everything one ingest step writes, committed in one transaction together with the ingest
/// cursor, so a restart resumes exactly where the last commit ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestBatch {
    /// Vault history points.
    pub vault_points: Vec<VaultPoint>,
    /// Deviation samples.
    pub deviations: Vec<DeviationSample>,
    /// Liquidation and ADL fills.
    pub liquidations: Vec<LiquidationRecord>,
    /// Position snapshots.
    pub positions: Vec<PositionRecord>,
    /// Closed market bars.
    pub bars: Vec<MarketBar>,
    /// Incident lifecycle steps.
    pub updates: Vec<IncidentUpdate>,
    /// Alert outbox entries (an id already present is left unchanged).
    pub outbox: Vec<OutboxEntry>,
    /// Operator actions (an id already present is left unchanged).
    pub actions: Vec<crate::operator::IncidentAction>,
    /// New cursor positions (`source` → position), written last in the same transaction.
    pub cursors: Vec<(String, String)>,
}

impl IngestBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.vault_points.is_empty()
            && self.deviations.is_empty()
            && self.liquidations.is_empty()
            && self.positions.is_empty()
            && self.bars.is_empty()
            && self.updates.is_empty()
            && self.outbox.is_empty()
            && self.actions.is_empty()
            && self.cursors.is_empty()
    }
}

/// Market history written by the ingest pipeline and read by the API.
#[async_trait]
pub trait MarketStore: Send + Sync {
    /// Commits a batch atomically (duplicates by natural key are ignored). Returns the stored
    /// security events with their `seq`.
    async fn commit(&self, batch: &IngestBatch) -> StoreResult<Vec<StoredEvent>>;
    /// An ingest cursor.
    async fn cursor(&self, source: &str) -> StoreResult<Option<String>>;
    // Every read of market facts below takes `protocol`: `Some` keeps that protocol's rows,
    // `None` every protocol's.
    /// Vault history since `since`, oldest first.
    async fn vault_points(
        &self,
        protocol: Option<&ProtocolId>,
        vault: Option<Address>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<VaultPoint>>;
    /// Deviation samples since `since`, oldest first.
    async fn deviations(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DeviationSample>>;
    /// Liquidations since `since`, newest first.
    async fn liquidations(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<LiquidationRecord>>;
    /// Latest positions per (user, coin) since `since`.
    async fn positions(
        &self,
        protocol: Option<&ProtocolId>,
        user: Option<Address>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PositionRecord>>;
    /// Bars of `interval_ms` opening in `[since, until)`, by coin then time.
    async fn bars(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        interval_ms: i64,
        since: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MarketBar>>;
}

/// Delivery state of an outbox entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting for (another) attempt.
    Pending,
    /// Delivered.
    Delivered,
    /// Given up: permanent failure or attempts exhausted.
    Failed,
    /// Not sent by decision (cooldown of a flapping incident); the reason is in `last_error`.
    Suppressed,
}

impl OutboxStatus {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Delivered,
            Self::Failed,
            Self::Suppressed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One alert for one channel in the durable outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The alert's idempotency key (primary key).
    pub id: StableId,
    /// Channel name.
    pub channel: String,
    /// The alert.
    pub alert: Alert,
    /// State.
    pub status: OutboxStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Earliest next attempt.
    pub next_attempt_at: Timestamp,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
    /// Last error text.
    pub last_error: Option<String>,
    /// The consumer of the event sequence that enqueued it (its routing cursor's name, e.g.
    /// `alerts:routed`): only that consumer delivers it.
    pub consumer: String,
}

/// Filters for the delivery log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this status.
    pub status: Option<OutboxStatus>,
    /// Only entries created at or after this time.
    pub since: Option<Timestamp>,
    /// Only alerts of this incident.
    pub incident: Option<StableId>,
    /// Only alerts about this protocol's incidents.
    pub protocol: Option<ProtocolId>,
    /// Maximum rows.
    pub limit: u32,
}

/// The durable alert outbox and delivery log.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Enqueues entries; an id already present is left unchanged. Returns how many were new.
    async fn enqueue(&self, entries: &[OutboxEntry]) -> StoreResult<usize>;
    /// Pending entries of `consumer` whose next attempt is due at `now`, oldest first.
    async fn due(
        &self,
        consumer: &str,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>>;
    /// Records a successful attempt.
    async fn mark_delivered(&self, id: &StableId, attempts: u32, at: Timestamp) -> StoreResult<()>;
    /// Records a failed attempt to be retried at `next_attempt_at`.
    async fn mark_retry(
        &self,
        id: &StableId,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> StoreResult<()>;
    /// Records a final failure.
    async fn mark_failed(&self, id: &StableId, attempts: u32, error: &str) -> StoreResult<()>;
    /// The delivery log, newest first.
    async fn deliveries(&self, query: &DeliveryQuery) -> StoreResult<Vec<OutboxEntry>>;
    /// The routing cursor of `consumer` (the `seq` of the last security event it routed);
    /// `None` before its first start. A cursor that is not a number is `StoreError::Corrupt`.
    async fn routed_cursor(&self, consumer: &str) -> StoreResult<Option<i64>>;
    /// Enqueues `entries` (ids already present are left unchanged) and, when given, moves
    /// `consumer`'s routing cursor to `cursor` — in one transaction, so a crash never leaves
    /// routed events without their alerts or alerts without the cursor that says so.
    async fn commit_routed(
        &self,
        consumer: &str,
        entries: Vec<OutboxEntry>,
        cursor: Option<i64>,
    ) -> StoreResult<()>;
}

/// The one transaction of [`OutboxStore::commit_routed`] as an ingest batch: the entries and,
/// when given, the consumer's cursor (for implementations that commit through their
/// [`MarketStore::commit`]).
pub fn routed_batch(consumer: &str, entries: Vec<OutboxEntry>, cursor: Option<i64>) -> IngestBatch {
    IngestBatch {
        outbox: entries,
        cursors: cursor
            .map(|c| (consumer.to_owned(), c.to_string()))
            .into_iter()
            .collect(),
        ..IngestBatch::default()
    }
}

/// Reads a routing cursor's stored text (for [`OutboxStore::routed_cursor`] implementations).
pub fn routed_cursor_of(consumer: &str, stored: Option<String>) -> StoreResult<Option<i64>> {
    stored
        .map(|v| {
            v.parse::<i64>().map_err(|_| StoreError::Corrupt {
                table: "ingest_cursors",
                detail: format!(
                    "routing cursor {consumer} holds {v:?}, not an event sequence number"
                ),
            })
        })
        .transpose()
}

/// A stored API key (only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: StableId,
    /// Human label.
    pub name: String,
    /// First characters of the key, for lookup and display.
    pub prefix: String,
    /// Hex SHA-256 of the full key.
    pub hash: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// What the key may do.
    #[serde(default)]
    pub scope: crate::operator::KeyScope,
}

/// API keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key.
    async fn insert_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;
    /// All keys, newest first.
    async fn keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Keys whose prefix matches (usually one).
    async fn keys_by_prefix(&self, prefix: &str) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes a key by id or prefix. Returns false when none matched.
    async fn revoke_key(&self, id_or_prefix: &str, at: Timestamp) -> StoreResult<bool>;
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Time.
    pub time: Timestamp,
    /// Who (`cli`, key prefix …).
    pub actor: String,
    /// What (`api_key.create` …).
    pub action: String,
    /// Details.
    pub detail: String,
}

/// The exploit database.
#[async_trait]
pub trait ExploitStore: Send + Sync {
    /// Replaces the whole database with `all` in one transaction (an import or refresh is the
    /// complete merged list); how many rows it holds after.
    async fn replace_exploits(&self, all: &[crate::Exploit]) -> StoreResult<usize>;
    /// A page of the exploits matching `q`, newest first (then by id), and the total.
    async fn exploits(&self, q: &crate::ExploitQuery) -> StoreResult<crate::ExploitPage>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry.
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Latest entries, newest first.
    async fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>>;
}
