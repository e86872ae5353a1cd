//! Row types, separate from the domain types and converted with `From`/`TryFrom`: decimals are
//! stored as exact text, JSON as text, times as milliseconds. A row that does not convert back
//! is a `StoreError::Corrupt` naming the table.

use diesel::prelude::*;
use kamiyo_core_models::{
    Address, Alert, ApiKeyRecord, AuditEntry, Coin, Decimal, DeviationKind, DeviationSample,
    Evidence, Incident, IncidentAction, IncidentChange, IncidentKey, IncidentStatus,
    LiquidationMethod, LiquidationRecord, MarketBar, OutboxEntry, OutboxStatus, PositionRecord,
    ProtocolId, SecurityEvent, Severity, Side, Silence, SilenceMatchers, StableId, StoreError,
    ThreatType, Timestamp, VaultPoint, Venue,
};

use crate::schema::*;

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn dec(table: &'static str, s: &str) -> Result<Decimal, StoreError> {
    s.parse()
        .map_err(|e| corrupt(table, format!("decimal {s:?}: {e}")))
}

/// Rank of a severity, for indexed filtering.
pub fn severity_rank(s: Severity) -> i32 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

fn change_of(s: &str) -> Option<IncidentChange> {
    match s {
        "opened" => Some(IncidentChange::Opened),
        "escalated" => Some(IncidentChange::Escalated),
        "updated" => Some(IncidentChange::Updated),
        "resolved" => Some(IncidentChange::Resolved),
        _ => None,
    }
}

/// `security_events`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = security_events)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SecurityEventRow {
    /// Sequence number.
    pub seq: i64,
    /// Event id.
    pub id: String,
    /// Incident id.
    pub incident_id: String,
    /// Incident key.
    pub incident_key: String,
    /// Change.
    pub change: String,
    /// Detector.
    pub detector: String,
    /// Threat type.
    pub threat_type: String,
    /// Severity.
    pub severity: String,
    /// Severity rank (0..=4).
    pub severity_rank: i32,
    /// Asset.
    pub asset: Option<String>,
    /// Title.
    pub title: String,
    /// Indicators (JSON array).
    pub indicators: String,
    /// Evidence (JSON object).
    pub evidence: String,
    /// Time.
    pub time_ms: i64,
    /// Protocol.
    pub protocol: String,
}

impl SecurityEventRow {
    /// The row of `e` with sequence number `seq`.
    pub fn new(seq: i64, e: &SecurityEvent) -> Self {
        Self {
            seq,
            id: e.id.to_string(),
            incident_id: e.incident_id.to_string(),
            incident_key: e.incident_key.to_string(),
            change: e.change.as_str().into(),
            detector: e.detector.clone(),
            threat_type: e.threat_type.as_str().into(),
            severity: e.severity.as_str().into(),
            severity_rank: severity_rank(e.severity),
            asset: e.asset.as_ref().map(ToString::to_string),
            title: e.title.clone(),
            indicators: serde_json::to_string(&e.indicators).unwrap_or_else(|_| "[]".into()),
            evidence: serde_json::to_string(&e.evidence).unwrap_or_else(|_| "{}".into()),
            time_ms: e.time.0,
            protocol: e.protocol.to_string(),
        }
    }
}

impl TryFrom<SecurityEventRow> for kamiyo_core_models::StoredEvent {
    type Error = StoreError;
    fn try_from(r: SecurityEventRow) -> Result<Self, StoreError> {
        const T: &str = "security_events";
        Ok(Self {
            seq: r.seq,
            event: SecurityEvent {
                protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
                id: StableId::parse(&r.id).map_err(|e| corrupt(T, e))?,
                incident_id: StableId::parse(&r.incident_id).map_err(|e| corrupt(T, e))?,
                incident_key: IncidentKey::parse(&r.incident_key).map_err(|e| corrupt(T, e))?,
                change: change_of(&r.change)
                    .ok_or_else(|| corrupt(T, format!("change {:?}", r.change)))?,
                detector: r.detector,
                threat_type: ThreatType::from_stored(&r.threat_type).map_err(|e| corrupt(T, e))?,
                severity: r.severity.parse::<Severity>().map_err(|e| corrupt(T, e))?,
                asset: r
                    .asset
                    .map(|a| Coin::new(&a))
                    .transpose()
                    .map_err(|e| corrupt(T, e))?,
                title: r.title,
                indicators: serde_json::from_str(&r.indicators).map_err(|e| corrupt(T, e))?,
                evidence: serde_json::from_str::<Evidence>(&r.evidence)
                    .map_err(|e| corrupt(T, e))?,
                time: Timestamp(r.time_ms),
            },
        })
    }
}

/// `incidents`.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = incidents)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct IncidentRow {
    /// Id.
    pub id: String,
    /// Key.
    pub incident_key: String,
    /// Detector.
    pub detector: String,
    /// Threat type.
    pub threat_type: String,
    /// Severity.
    pub severity: String,
    /// Peak severity.
    pub peak_severity: String,
    /// Asset.
    pub asset: Option<String>,
    /// Status.
    pub status: String,
    /// Title.
    pub title: String,
    /// Indicators (JSON).
    pub indicators: String,
    /// Evidence (JSON).
    pub evidence: String,
    /// First seen.
    pub first_seen_ms: i64,
    /// Last seen.
    pub last_seen_ms: i64,
    /// Resolved at.
    pub resolved_at_ms: Option<i64>,
    /// Detections folded in.
    pub detections: i64,
    /// Protocol.
    pub protocol: String,
}

impl From<&Incident> for IncidentRow {
    fn from(i: &Incident) -> Self {
        Self {
            id: i.id.to_string(),
            incident_key: i.key.to_string(),
            detector: i.detector.clone(),
            threat_type: i.threat_type.as_str().into(),
            severity: i.severity.as_str().into(),
            peak_severity: i.peak_severity.as_str().into(),
            asset: i.asset.as_ref().map(ToString::to_string),
            status: i.status.as_str().into(),
            title: i.title.clone(),
            indicators: serde_json::to_string(&i.indicators).unwrap_or_else(|_| "[]".into()),
            evidence: serde_json::to_string(&i.evidence).unwrap_or_else(|_| "{}".into()),
            first_seen_ms: i.first_seen.0,
            last_seen_ms: i.last_seen.0,
            resolved_at_ms: i.resolved_at.map(|t| t.0),
            detections: i64::try_from(i.detections).unwrap_or(i64::MAX),
            protocol: i.protocol.to_string(),
        }
    }
}

impl TryFrom<IncidentRow> for Incident {
    type Error = StoreError;
    fn try_from(r: IncidentRow) -> Result<Self, StoreError> {
        const T: &str = "incidents";
        Ok(Self {
            protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
            id: StableId::parse(&r.id).map_err(|e| corrupt(T, e))?,
            key: IncidentKey::parse(&r.incident_key).map_err(|e| corrupt(T, e))?,
            detector: r.detector,
            threat_type: ThreatType::from_stored(&r.threat_type).map_err(|e| corrupt(T, e))?,
            severity: r.severity.parse().map_err(|e| corrupt(T, e))?,
            peak_severity: r.peak_severity.parse().map_err(|e| corrupt(T, e))?,
            asset: r
                .asset
                .map(|a| Coin::new(&a))
                .transpose()
                .map_err(|e| corrupt(T, e))?,
            status: r
                .status
                .parse::<IncidentStatus>()
                .map_err(|e| corrupt(T, e))?,
            title: r.title,
            indicators: serde_json::from_str(&r.indicators).map_err(|e| corrupt(T, e))?,
            evidence: serde_json::from_str(&r.evidence).map_err(|e| corrupt(T, e))?,
            first_seen: Timestamp(r.first_seen_ms),
            last_seen: Timestamp(r.last_seen_ms),
            resolved_at: r.resolved_at_ms.map(Timestamp),
            detections: u64::try_from(r.detections).unwrap_or(0),
        })
    }
}

/// `market_bars`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = market_bars)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct MarketBarRow {
    /// Coin.
    pub coin: String,
    /// Bar length, ms.
    pub interval_ms: i64,
    /// Open time.
    pub time_ms: i64,
    /// Open.
    pub open: String,
    /// High.
    pub high: String,
    /// Low.
    pub low: String,
    /// Close.
    pub close: String,
    /// Volume.
    pub volume: String,
    /// Funding.
    pub funding: String,
    /// Reference price.
    pub ref_px: Option<String>,
    /// Open interest.
    pub open_interest: Option<String>,
    /// Liquidation notional.
    pub liq_notional: Option<String>,
    /// HLP cumulative PnL.
    pub hlp_pnl: Option<String>,
    /// HLP account value.
    pub hlp_equity: Option<String>,
    /// Protocol.
    pub protocol: String,
}

impl From<&MarketBar> for MarketBarRow {
    fn from(b: &MarketBar) -> Self {
        let opt = |d: &Option<Decimal>| d.as_ref().map(ToString::to_string);
        Self {
            coin: b.coin.to_string(),
            interval_ms: b.interval_ms,
            time_ms: b.time.0,
            open: b.open.to_string(),
            high: b.high.to_string(),
            low: b.low.to_string(),
            close: b.close.to_string(),
            volume: b.volume.to_string(),
            funding: b.funding.to_string(),
            ref_px: opt(&b.ref_px),
            open_interest: opt(&b.open_interest),
            liq_notional: opt(&b.liq_notional),
            hlp_pnl: opt(&b.hlp_pnl),
            hlp_equity: opt(&b.hlp_equity),
            protocol: b.protocol.to_string(),
        }
    }
}

impl TryFrom<MarketBarRow> for MarketBar {
    type Error = StoreError;
    fn try_from(r: MarketBarRow) -> Result<Self, StoreError> {
        const T: &str = "market_bars";
        let opt = |s: &Option<String>| s.as_deref().map(|s| dec(T, s)).transpose();
        Ok(Self {
            coin: Coin::new(&r.coin).map_err(|e| corrupt(T, e))?,
            interval_ms: r.interval_ms,
            time: Timestamp(r.time_ms),
            open: dec(T, &r.open)?,
            high: dec(T, &r.high)?,
            low: dec(T, &r.low)?,
            close: dec(T, &r.close)?,
            volume: dec(T, &r.volume)?,
            funding: dec(T, &r.funding)?,
            ref_px: opt(&r.ref_px)?,
            open_interest: opt(&r.open_interest)?,
            liq_notional: opt(&r.liq_notional)?,
            hlp_pnl: opt(&r.hlp_pnl)?,
            hlp_equity: opt(&r.hlp_equity)?,
            protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
        })
    }
}

/// `vault_points`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = vault_points)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct VaultPointRow {
    /// Vault.
    pub vault: String,
    /// Time.
    pub time_ms: i64,
    /// Account value.
    pub account_value: String,
    /// Cumulative PnL.
    pub pnl: String,
    /// Protocol.
    pub protocol: String,
}

impl From<&VaultPoint> for VaultPointRow {
    fn from(p: &VaultPoint) -> Self {
        Self {
            vault: p.vault.to_string(),
            time_ms: p.time.0,
            account_value: p.account_value.to_string(),
            pnl: p.pnl.to_string(),
            protocol: p.protocol.to_string(),
        }
    }
}

impl TryFrom<VaultPointRow> for VaultPoint {
    type Error = StoreError;
    fn try_from(r: VaultPointRow) -> Result<Self, StoreError> {
        const T: &str = "vault_points";
        Ok(Self {
            vault: Address::parse(&r.vault).map_err(|e| corrupt(T, e))?,
            time: Timestamp(r.time_ms),
            account_value: dec(T, &r.account_value)?,
            pnl: dec(T, &r.pnl)?,
            protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
        })
    }
}

/// `deviation_samples`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = deviation_samples)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct DeviationRow {
    /// Coin.
    pub coin: String,
    /// Kind.
    pub kind: String,
    /// Time.
    pub time_ms: i64,
    /// Venue.
    pub venue: Option<String>,
    /// Value.
    pub value: String,
    /// Reference.
    pub reference: String,
    /// Deviation, percent.
    pub deviation_pct: String,
    /// Protocol.
    pub protocol: String,
}

impl From<&DeviationSample> for DeviationRow {
    fn from(d: &DeviationSample) -> Self {
        Self {
            coin: d.coin.to_string(),
            kind: d.kind.as_str().into(),
            time_ms: d.time.0,
            venue: d.venue.as_ref().map(ToString::to_string),
            value: d.value.to_string(),
            reference: d.reference.to_string(),
            deviation_pct: d.deviation_pct.to_string(),
            protocol: d.protocol.to_string(),
        }
    }
}

impl TryFrom<DeviationRow> for DeviationSample {
    type Error = StoreError;
    fn try_from(r: DeviationRow) -> Result<Self, StoreError> {
        const T: &str = "deviation_samples";
        let kind = match r.kind.as_str() {
            "oracle_vs_reference" => DeviationKind::OracleVsReference,
            "mark_vs_oracle" => DeviationKind::MarkVsOracle,
            "mid_vs_oracle" => DeviationKind::MidVsOracle,
            k => return Err(corrupt(T, format!("kind {k:?}"))),
        };
        Ok(Self {
            coin: Coin::new(&r.coin).map_err(|e| corrupt(T, e))?,
            time: Timestamp(r.time_ms),
            kind,
            venue: r
                .venue
                .map(|v| Venue::new(&v))
                .transpose()
                .map_err(|e| corrupt(T, e))?,
            value: dec(T, &r.value)?,
            reference: dec(T, &r.reference)?,
            deviation_pct: dec(T, &r.deviation_pct)?,
            protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
        })
    }
}

/// `liquidations`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = liquidations)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct LiquidationRow {
    /// Time.
    pub time_ms: i64,
    /// Coin.
    pub coin: String,
    /// Trade id.
    pub tid: i64,
    /// Fill owner.
    pub user_addr: String,
    /// Liquidated account.
    pub liquidated_user: Option<String>,
    /// Side.
    pub side: String,
    /// Price.
    pub px: String,
    /// Size.
    pub sz: String,
    /// Notional.
    pub notional: String,
    /// Method.
    pub method: Option<String>,
    /// ADL.
    pub is_adl: bool,
    /// Protocol.
    pub protocol: String,
}

impl From<&LiquidationRecord> for LiquidationRow {
    fn from(l: &LiquidationRecord) -> Self {
        Self {
            time_ms: l.time.0,
            coin: l.coin.to_string(),
            // Trade ids are 50-bit hashes; they fit i64.
            tid: i64::try_from(l.tid).unwrap_or(i64::MAX),
            user_addr: l.user.to_string(),
            liquidated_user: l.liquidated_user.map(|a| a.to_string()),
            side: match l.side {
                Side::Buy => "buy".into(),
                Side::Sell => "sell".into(),
            },
            px: l.px.to_string(),
            sz: l.sz.to_string(),
            notional: l.notional.to_string(),
            method: l.method.as_ref().map(|m| m.as_str().to_owned()),
            is_adl: l.is_adl,
            protocol: l.protocol.to_string(),
        }
    }
}

impl TryFrom<LiquidationRow> for LiquidationRecord {
    type Error = StoreError;
    fn try_from(r: LiquidationRow) -> Result<Self, StoreError> {
        const T: &str = "liquidations";
        Ok(Self {
            time: Timestamp(r.time_ms),
            coin: Coin::new(&r.coin).map_err(|e| corrupt(T, e))?,
            user: Address::parse(&r.user_addr).map_err(|e| corrupt(T, e))?,
            liquidated_user: r
                .liquidated_user
                .map(|a| Address::parse(&a))
                .transpose()
                .map_err(|e| corrupt(T, e))?,
            side: if r.side == "buy" {
                Side::Buy
            } else {
                Side::Sell
            },
            px: dec(T, &r.px)?,
            sz: dec(T, &r.sz)?,
            notional: dec(T, &r.notional)?,
            method: r.method.map(|m| LiquidationMethod::from_wire(&m)),
            is_adl: r.is_adl,
            tid: u64::try_from(r.tid).unwrap_or(0),
            protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
        })
    }
}

/// `positions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = positions)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PositionRow {
    /// Account.
    pub user_addr: String,
    /// Coin.
    pub coin: String,
    /// Time.
    pub time_ms: i64,
    /// Signed size.
    pub szi: String,
    /// Notional.
    pub position_value: String,
    /// Liquidation price.
    pub liquidation_px: Option<String>,
    /// Account value.
    pub account_value: String,
    /// Protocol.
    pub protocol: String,
}

impl From<&PositionRecord> for PositionRow {
    fn from(p: &PositionRecord) -> Self {
        Self {
            user_addr: p.user.to_string(),
            coin: p.coin.to_string(),
            time_ms: p.time.0,
            szi: p.szi.to_string(),
            position_value: p.position_value.to_string(),
            liquidation_px: p.liquidation_px.map(|x| x.to_string()),
            account_value: p.account_value.to_string(),
            protocol: p.protocol.to_string(),
        }
    }
}

impl TryFrom<PositionRow> for PositionRecord {
    type Error = StoreError;
    fn try_from(r: PositionRow) -> Result<Self, StoreError> {
        const T: &str = "positions";
        Ok(Self {
            user: Address::parse(&r.user_addr).map_err(|e| corrupt(T, e))?,
            time: Timestamp(r.time_ms),
            coin: Coin::new(&r.coin).map_err(|e| corrupt(T, e))?,
            szi: dec(T, &r.szi)?,
            position_value: dec(T, &r.position_value)?,
            liquidation_px: r.liquidation_px.map(|x| dec(T, &x)).transpose()?,
            account_value: dec(T, &r.account_value)?,
            protocol: ProtocolId::parse(&r.protocol).map_err(|e| corrupt(T, e))?,
        })
    }
}

/// `alert_outbox`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = alert_outbox)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct OutboxRow {
    /// Idempotency key.
    pub id: String,
    /// Channel.
    pub channel: String,
    /// The alert (JSON).
    pub payload: String,
    /// Status.
    pub status: String,
    /// Attempts.
    pub attempts: i32,
    /// Next attempt.
    pub next_attempt_ms: i64,
    /// Created.
    pub created_ms: i64,
    /// Delivered.
    pub delivered_ms: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// The incident alerted on.
    pub incident_id: Option<String>,
    /// The consumer that enqueued it.
    pub consumer: String,
    /// Protocol of the alert's incident.
    pub protocol: String,
}

impl From<&OutboxEntry> for OutboxRow {
    fn from(e: &OutboxEntry) -> Self {
        Self {
            id: e.id.to_string(),
            channel: e.channel.clone(),
            payload: serde_json::to_string(&e.alert).unwrap_or_else(|_| "{}".into()),
            status: e.status.as_str().into(),
            attempts: i32::try_from(e.attempts).unwrap_or(i32::MAX),
            next_attempt_ms: e.next_attempt_at.0,
            created_ms: e.created_at.0,
            delivered_ms: e.delivered_at.map(|t| t.0),
            last_error: e.last_error.clone(),
            incident_id: Some(e.alert.update.incident.id.to_string()),
            consumer: e.consumer.clone(),
            protocol: e.alert.update.event.protocol.to_string(),
        }
    }
}

impl TryFrom<OutboxRow> for OutboxEntry {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        const T: &str = "alert_outbox";
        let status = OutboxStatus::parse(&r.status)
            .ok_or_else(|| corrupt(T, format!("status {:?}", r.status)))?;
        Ok(Self {
            id: StableId::parse(&r.id).map_err(|e| corrupt(T, e))?,
            channel: r.channel,
            alert: serde_json::from_str::<Alert>(&r.payload).map_err(|e| corrupt(T, e))?,
            status,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            next_attempt_at: Timestamp(r.next_attempt_ms),
            created_at: Timestamp(r.created_ms),
            delivered_at: r.delivered_ms.map(Timestamp),
            last_error: r.last_error,
            consumer: r.consumer,
        })
    }
}

/// `api_keys`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ApiKeyRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Prefix.
    pub prefix: String,
    /// Hash.
    pub hash: String,
    /// Created.
    pub created_ms: i64,
    /// Revoked.
    pub revoked_ms: Option<i64>,
    /// Scope (`read`, `write`).
    pub scope: String,
}

impl From<&ApiKeyRecord> for ApiKeyRow {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            hash: k.hash.clone(),
            created_ms: k.created_at.0,
            revoked_ms: k.revoked_at.map(|t| t.0),
            scope: k.scope.as_str().into(),
        }
    }
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: StableId::parse(&r.id).map_err(|e| corrupt("api_keys", e))?,
            name: r.name,
            prefix: r.prefix,
            hash: r.hash,
            created_at: Timestamp(r.created_ms),
            revoked_at: r.revoked_ms.map(Timestamp),
            scope: r.scope.parse().map_err(|e| corrupt("api_keys", e))?,
        })
    }
}

/// `audit_log`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct AuditRow {
    /// Id.
    pub id: String,
    /// Time.
    pub time_ms: i64,
    /// Actor.
    pub actor: String,
    /// Action.
    pub action: String,
    /// Detail.
    pub detail: String,
}

impl From<&AuditEntry> for AuditRow {
    fn from(a: &AuditEntry) -> Self {
        Self {
            id: StableId::derive(
                "aud",
                &[&a.time.0.to_string(), &a.actor, &a.action, &a.detail],
            )
            .to_string(),
            time_ms: a.time.0,
            actor: a.actor.clone(),
            action: a.action.clone(),
            detail: a.detail.clone(),
        }
    }
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            time: Timestamp(r.time_ms),
            actor: r.actor,
            action: r.action,
            detail: r.detail,
        }
    }
}

/// `event_log`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = event_log)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct LogRow {
    /// The event's sequence number.
    pub seq: i64,
    /// Commit time (ms).
    pub logged_ms: i64,
    /// SHA-256 of the event's canonical form.
    pub digest: String,
    /// The link to the previous entry.
    pub chain: String,
}

impl From<LogRow> for kamiyo_core_models::ledger::LogEntry {
    fn from(r: LogRow) -> Self {
        Self {
            seq: r.seq,
            logged_ms: r.logged_ms,
            digest: r.digest,
            chain: r.chain,
        }
    }
}

impl From<kamiyo_core_models::ledger::LogEntry> for LogRow {
    fn from(e: kamiyo_core_models::ledger::LogEntry) -> Self {
        Self {
            seq: e.seq,
            logged_ms: e.logged_ms,
            digest: e.digest,
            chain: e.chain,
        }
    }
}

/// `ingest_cursors`.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = ingest_cursors)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct CursorRow {
    /// Source.
    pub source: String,
    /// Position.
    pub position: String,
    /// Updated.
    pub updated_ms: i64,
}

/// `incident_actions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = incident_actions)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ActionRow {
    /// Id.
    pub id: String,
    /// Incident.
    pub incident_id: String,
    /// Kind.
    pub kind: String,
    /// Actor.
    pub actor: String,
    /// Note.
    pub note: String,
    /// Time.
    pub time_ms: i64,
}

impl From<&IncidentAction> for ActionRow {
    fn from(a: &IncidentAction) -> Self {
        Self {
            id: a.id.to_string(),
            incident_id: a.incident_id.to_string(),
            kind: a.kind.as_str().into(),
            actor: a.actor.clone(),
            note: a.note.clone(),
            time_ms: a.time.0,
        }
    }
}

impl TryFrom<ActionRow> for IncidentAction {
    type Error = StoreError;
    fn try_from(r: ActionRow) -> Result<Self, StoreError> {
        const T: &str = "incident_actions";
        Ok(Self {
            id: StableId::parse(&r.id).map_err(|e| corrupt(T, e))?,
            incident_id: StableId::parse(&r.incident_id).map_err(|e| corrupt(T, e))?,
            kind: r.kind.parse().map_err(|e| corrupt(T, e))?,
            actor: r.actor,
            note: r.note,
            time: Timestamp(r.time_ms),
        })
    }
}

/// `silences`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = silences)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SilenceRow {
    /// Id.
    pub id: String,
    /// Detector matcher.
    pub detector: Option<String>,
    /// Asset matcher.
    pub asset: Option<String>,
    /// Severity matcher (at or below).
    pub severity: Option<String>,
    /// Protocol matcher.
    pub protocol: Option<String>,
    /// Start.
    pub starts_ms: i64,
    /// End.
    pub ends_ms: i64,
    /// Creator.
    pub created_by: String,
    /// Comment.
    pub comment: String,
    /// Created.
    pub created_ms: i64,
    /// Ended early.
    pub expired_ms: Option<i64>,
}

impl From<&Silence> for SilenceRow {
    fn from(s: &Silence) -> Self {
        Self {
            id: s.id.to_string(),
            detector: s.matchers.detector.clone(),
            asset: s.matchers.asset.as_ref().map(ToString::to_string),
            severity: s.matchers.severity.map(|x| x.as_str().to_owned()),
            protocol: s.matchers.protocol.clone(),
            starts_ms: s.starts_at.0,
            ends_ms: s.ends_at.0,
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
            created_ms: s.created_at.0,
            expired_ms: s.expired_at.map(|t| t.0),
        }
    }
}

impl TryFrom<SilenceRow> for Silence {
    type Error = StoreError;
    fn try_from(r: SilenceRow) -> Result<Self, StoreError> {
        const T: &str = "silences";
        Ok(Self {
            id: StableId::parse(&r.id).map_err(|e| corrupt(T, e))?,
            matchers: SilenceMatchers {
                detector: r.detector,
                asset: r
                    .asset
                    .map(|a| a.parse::<Coin>())
                    .transpose()
                    .map_err(|e| corrupt(T, e))?,
                severity: r
                    .severity
                    .map(|x| x.parse::<Severity>())
                    .transpose()
                    .map_err(|e| corrupt(T, e))?,
                protocol: r.protocol,
            },
            starts_at: Timestamp(r.starts_ms),
            ends_at: Timestamp(r.ends_ms),
            created_by: r.created_by,
            comment: r.comment,
            created_at: Timestamp(r.created_ms),
            expired_at: r.expired_ms.map(Timestamp),
        })
    }
}

/// `exploits`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = exploits)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ExploitRow {
    /// Stable id.
    pub id: String,
    /// Day (midnight UTC, ms).
    pub day_ms: i64,
    /// Protocol as named.
    pub protocol: String,
    /// Folded name.
    pub protocol_key: String,
    /// Chain.
    pub chain: Option<String>,
    /// Category.
    pub category: String,
    /// Technique.
    pub technique: String,
    /// Loss in whole USD.
    pub loss_usd: Option<i64>,
    /// Loss as worded.
    pub loss_text: Option<String>,
    /// Sources, comma-separated.
    pub sources: String,
    /// Links, one per line.
    pub links: String,
}

impl From<&kamiyo_core_models::Exploit> for ExploitRow {
    fn from(e: &kamiyo_core_models::Exploit) -> Self {
        Self {
            id: e.id.clone(),
            day_ms: e.date.0,
            protocol: e.protocol.clone(),
            protocol_key: kamiyo_core_models::Exploit::fold(&e.protocol),
            chain: e.chain.clone(),
            category: e.category.as_str().to_owned(),
            technique: e.technique.clone(),
            loss_usd: e.loss_usd,
            loss_text: e.loss_text.clone(),
            sources: e.sources.join(","),
            links: e.links.join("\n"),
        }
    }
}

impl TryFrom<ExploitRow> for kamiyo_core_models::Exploit {
    type Error = StoreError;
    fn try_from(r: ExploitRow) -> Result<Self, StoreError> {
        let split = |s: &str, sep: char| -> Vec<String> {
            s.split(sep)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Ok(Self {
            category: r
                .category
                .parse()
                .map_err(|e| corrupt("exploits", format!("category: {e}")))?,
            id: r.id,
            date: Timestamp(r.day_ms),
            protocol: r.protocol,
            chain: r.chain,
            technique: r.technique,
            loss_usd: r.loss_usd,
            loss_text: r.loss_text,
            sources: split(&r.sources, ','),
            links: split(&r.links, '\n'),
        })
    }
}
