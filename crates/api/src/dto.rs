//! Response types: the HTTP contract, separate from the domain types they are built from.
//! Times are RFC 3339 strings with milliseconds; prices and amounts are decimal strings (exact).

use kamiyo_core_models::{
    DeviationSample, FeedStatus, Incident, LiquidationRecord, SecurityEvent, StoredEvent,
    Timestamp, VaultPoint,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` while the process serves requests.
    pub status: String,
    /// Server version.
    pub version: String,
}

/// One dependency's readiness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckResponse {
    /// What is checked: `database`, or a feed name.
    pub name: String,
    /// True when usable.
    pub ok: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// `GET /ready`: 200 when the database answers and no feed is down, 503 otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Each check.
    pub checks: Vec<CheckResponse>,
}

/// A security event: one step of an incident's lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventResponse {
    /// Sequence number: the cursor of `/security/events` and `last_event_id` of `/ws`.
    pub seq: i64,
    /// Stable event id.
    pub id: String,
    /// Incident id.
    pub incident_id: String,
    /// Incident key (`threat:subject`, prefixed `<protocol>/` outside Hyperliquid), stable
    /// across the incident's life.
    pub incident_key: String,
    /// Protocol the event is about (`hyperliquid` …).
    pub protocol: String,
    /// `opened`, `escalated`, `updated` or `resolved`.
    pub change: String,
    /// Detector that produced it.
    pub detector: String,
    /// Threat type (snake_case).
    pub threat_type: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// Market, when the threat concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// One-line summary.
    pub title: String,
    /// Indicators.
    pub indicators: Vec<String>,
    /// The numbers that made the detector fire, by name.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// Event time.
    pub time: String,
}

impl EventResponse {
    /// From a stored event.
    pub fn new(seq: i64, e: &SecurityEvent) -> Self {
        Self {
            seq,
            id: e.id.to_string(),
            incident_id: e.incident_id.to_string(),
            incident_key: e.incident_key.to_string(),
            protocol: e.protocol.to_string(),
            change: e.change.as_str().to_owned(),
            detector: e.detector.clone(),
            threat_type: e.threat_type.as_str().to_owned(),
            severity: e.severity.as_str().to_owned(),
            asset: e.asset.as_ref().map(ToString::to_string),
            title: e.title.clone(),
            indicators: e.indicators.clone(),
            evidence: serde_json::to_value(&e.evidence).unwrap_or_default(),
            time: time(e.time),
        }
    }
}

impl From<&StoredEvent> for EventResponse {
    fn from(s: &StoredEvent) -> Self {
        Self::new(s.seq, &s.event)
    }
}

/// `GET /security/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    /// Events, newest first.
    pub events: Vec<EventResponse>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An incident: one threat, followed from opening to resolution.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncidentResponse {
    /// Incident id.
    pub id: String,
    /// Incident key.
    pub key: String,
    /// Protocol the incident is about (`hyperliquid` …).
    pub protocol: String,
    /// Detector.
    pub detector: String,
    /// Threat type.
    pub threat_type: String,
    /// Current severity.
    pub severity: String,
    /// Highest severity reached.
    pub peak_severity: String,
    /// Market.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// `open` or `resolved`.
    pub status: String,
    /// Summary.
    pub title: String,
    /// Indicators.
    pub indicators: Vec<String>,
    /// Latest evidence.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    /// First detection.
    pub first_seen: String,
    /// Latest detection.
    pub last_seen: String,
    /// Resolution time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Detections folded into the incident.
    pub detections: u64,
    /// Who acknowledged it (open incidents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
}

impl IncidentResponse {
    /// Marks it acknowledged by `a` (an open incident's latest acknowledgement).
    pub fn acknowledge(&mut self, a: &kamiyo_core_models::IncidentAction) {
        self.acknowledged_by = Some(a.actor.clone());
        self.acknowledged_at = Some(a.time.to_rfc3339());
    }
}

impl From<&Incident> for IncidentResponse {
    fn from(i: &Incident) -> Self {
        Self {
            id: i.id.to_string(),
            key: i.key.to_string(),
            protocol: i.protocol.to_string(),
            detector: i.detector.clone(),
            threat_type: i.threat_type.as_str().to_owned(),
            severity: i.severity.as_str().to_owned(),
            peak_severity: i.peak_severity.as_str().to_owned(),
            asset: i.asset.as_ref().map(ToString::to_string),
            status: i.status.as_str().to_owned(),
            title: i.title.clone(),
            indicators: i.indicators.clone(),
            evidence: serde_json::to_value(&i.evidence).unwrap_or_default(),
            first_seen: time(i.first_seen),
            last_seen: time(i.last_seen),
            resolved_at: i.resolved_at.map(time),
            detections: i.detections,
            acknowledged_by: None,
            acknowledged_at: None,
        }
    }
}

/// `GET /security/incidents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncidentsPage {
    /// Incidents, most recently seen first.
    pub incidents: Vec<IncidentResponse>,
}

/// One point of a vault's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VaultPointResponse {
    /// Time.
    pub time: String,
    /// Account value (USD).
    pub account_value: String,
    /// Cumulative PnL (USD).
    pub pnl: String,
}

impl From<&VaultPoint> for VaultPointResponse {
    fn from(p: &VaultPoint) -> Self {
        Self {
            time: time(p.time),
            account_value: p.account_value.normalize().to_string(),
            pnl: p.pnl.normalize().to_string(),
        }
    }
}

/// `GET /security/hlp-vault`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HlpVaultResponse {
    /// Vault address.
    pub vault: String,
    /// Window.
    pub hours: u32,
    /// Latest account value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_value: Option<String>,
    /// PnL change over the window (deposits and withdrawals excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pnl_change: Option<String>,
    /// Current drawdown of cumulative PnL from its peak in the window, in percent of the
    /// account value at the peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drawdown_pct: Option<String>,
    /// Points, oldest first (at most 2,000; evenly thinned when the window holds more).
    pub points: Vec<VaultPointResponse>,
}

/// One deviation measurement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviationResponse {
    /// Market.
    pub asset: String,
    /// Protocol (`hyperliquid` …).
    pub protocol: String,
    /// Time.
    pub time: String,
    /// `oracle_vs_reference`, `mark_vs_oracle` or `mid_vs_oracle`.
    pub kind: String,
    /// Venue of a per-venue comparison; absent for the weighted median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue: Option<String>,
    /// The price under test.
    pub value: String,
    /// The reference.
    pub reference: String,
    /// Signed deviation, percent.
    pub deviation_pct: String,
}

impl From<&DeviationSample> for DeviationResponse {
    fn from(d: &DeviationSample) -> Self {
        Self {
            asset: d.coin.to_string(),
            protocol: d.protocol.to_string(),
            time: time(d.time),
            kind: d.kind.as_str().to_owned(),
            venue: d.venue.as_ref().map(|v| v.as_str().to_owned()),
            value: d.value.normalize().to_string(),
            reference: d.reference.normalize().to_string(),
            deviation_pct: d.deviation_pct.normalize().to_string(),
        }
    }
}

/// `GET /security/oracle-deviations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OracleDeviationsResponse {
    /// Window.
    pub hours: u32,
    /// The latest sample per asset and kind, largest absolute deviation first.
    pub latest: Vec<DeviationResponse>,
    /// Samples in the window, oldest first (one asset when `asset` is given).
    pub samples: Vec<DeviationResponse>,
}

/// A liquidation or auto-deleveraging fill.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiquidationResponse {
    /// Time.
    pub time: String,
    /// Market.
    pub asset: String,
    /// Protocol (`hyperliquid` …).
    pub protocol: String,
    /// The account of the fill.
    pub user: String,
    /// The liquidated account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidated_user: Option<String>,
    /// `buy` or `sell` (side of `user`).
    pub side: String,
    /// Price.
    pub px: String,
    /// Size.
    pub sz: String,
    /// Notional (USD).
    pub notional: String,
    /// `market`, `backstop` or another method name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Auto-deleveraging fill.
    pub is_adl: bool,
    /// Trade id.
    pub tid: u64,
}

impl From<&LiquidationRecord> for LiquidationResponse {
    fn from(l: &LiquidationRecord) -> Self {
        Self {
            time: time(l.time),
            asset: l.coin.to_string(),
            protocol: l.protocol.to_string(),
            user: l.user.to_string(),
            liquidated_user: l.liquidated_user.map(|u| u.to_string()),
            side: match l.side {
                kamiyo_core_models::Side::Buy => "buy",
                kamiyo_core_models::Side::Sell => "sell",
            }
            .to_owned(),
            px: l.px.normalize().to_string(),
            sz: l.sz.normalize().to_string(),
            notional: l.notional.normalize().to_string(),
            method: l.method.as_ref().map(|m| m.as_str().to_owned()),
            is_adl: l.is_adl,
            tid: l.tid,
        }
    }
}

/// `GET /security/liquidations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiquidationsResponse {
    /// Window.
    pub hours: u32,
    /// Liquidations returned.
    pub count: usize,
    /// Their total notional (USD).
    pub total_notional: String,
    /// Of which auto-deleveraging fills.
    pub adl_count: usize,
    /// Newest first.
    pub liquidations: Vec<LiquidationResponse>,
}

/// One feed's freshness.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedResponse {
    /// Feed name.
    pub feed: String,
    /// `LIVE`, `STALE` or `DOWN`.
    pub state: String,
    /// When the state last changed.
    pub changed_at: String,
    /// Last data received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data_at: Option<String>,
    /// Why (error text, silence).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl From<&FeedStatus> for FeedResponse {
    fn from(f: &FeedStatus) -> Self {
        Self {
            feed: f.feed.clone(),
            state: f.state.as_str().to_owned(),
            changed_at: time(f.changed_at),
            last_data_at: f.last_data_at.map(time),
            detail: f.detail.clone(),
        }
    }
}

/// `GET /feeds`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedsResponse {
    /// Every feed seen, by name.
    pub feeds: Vec<FeedResponse>,
    /// How many are live.
    pub live: usize,
    /// … stale.
    pub stale: usize,
    /// … down.
    pub down: usize,
}

/// The overall risk shown on the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RiskResponse {
    /// 0–100, the highest of: the open market incidents (critical 85, high 65, medium 40,
    /// low 20, info 5, plus 5 per further one); incidents resolved in the last 24 hours (60 %
    /// of their peak, fading over the day); the HLP vault's 24-hour loss (by share of the
    /// account value and size). Feed health does not raise it.
    pub score: u32,
    /// `low` (< 25), `medium` (< 50), `high` (< 80), `critical`; `unknown` while every feed is
    /// down.
    pub level: String,
    /// What contributed.
    pub reasons: Vec<String>,
}

/// HLP summary on the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HlpSummary {
    /// Latest account value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_value: Option<String>,
    /// PnL change over 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pnl_24h: Option<String>,
    /// Current drawdown from the 24 h PnL peak, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drawdown_pct: Option<String>,
}

/// Liquidations over 24 h on the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiquidationSummary {
    /// Count (at most 1,000 counted).
    pub count: usize,
    /// Total notional.
    pub total_notional: String,
    /// ADL fills.
    pub adl_count: usize,
}

/// `GET /security/dashboard`: everything the dashboard's first paint needs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DashboardResponse {
    /// Server time of the snapshot (the monitor's clock: exchange or replay time when so
    /// configured).
    pub generated_at: String,
    /// Overall risk.
    pub risk: RiskResponse,
    /// Open incidents, most recently seen first (at most 50).
    pub open_incidents: Vec<IncidentResponse>,
    /// Latest events (at most 20), newest first.
    pub recent_events: Vec<EventResponse>,
    /// HLP vault.
    pub hlp: HlpSummary,
    /// Latest oracle deviation per asset, largest first (at most 10).
    pub oracle: Vec<DeviationResponse>,
    /// Liquidations in the last 24 h.
    pub liquidations_24h: LiquidationSummary,
    /// Feed freshness.
    pub feeds: Vec<FeedResponse>,
    /// The highest event sequence number: connect to `/ws?last_event_id=` this to follow on.
    pub last_event_id: i64,
}

/// One exploit-class incident for `/exploits`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExploitResponse {
    /// Incident id.
    pub id: String,
    /// Always `hyperliquid` in the open-source monitor.
    pub protocol: String,
    /// Threat type.
    pub category: String,
    /// Peak severity.
    pub severity: String,
    /// Market.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Summary.
    pub title: String,
    /// USD amount at stake, when the evidence carries one (loss, notional, exposure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_usd: Option<String>,
    /// `open` or `resolved`.
    pub status: String,
    /// First detection.
    pub first_seen: String,
    /// Latest detection.
    pub last_seen: String,
}

/// `GET /exploits`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExploitsResponse {
    /// Window.
    pub hours: u32,
    /// How many.
    pub count: usize,
    /// Incidents of severity high or critical seen in the window, newest first.
    pub exploits: Vec<ExploitResponse>,
    /// The historical exploit database (DeFiLlama's and DeFiHackLabs' lists, merged), filtered
    /// and paged by the query; absent when the host keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<ExploitDbPage>,
}

/// A page of the exploit database.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExploitDbPage {
    /// Matches in all.
    pub total: u64,
    /// Rows skipped.
    pub offset: u32,
    /// Page size.
    pub limit: u32,
    /// The page, newest first.
    pub items: Vec<ExploitRecord>,
}

/// One historical exploit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExploitRecord {
    /// Stable id (`exp_…`).
    pub id: String,
    /// Day (`YYYY-MM-DD`, UTC).
    pub date: String,
    /// Protocol attacked.
    pub protocol: String,
    /// Chain, where recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// `oracle_manipulation`, `flash_loan`, `reentrancy`, `access_control`, `key_compromise`,
    /// `bridge`, `logic_flaw`, `rugpull`, `frontend` or `other`.
    pub category: String,
    /// The sources' description of the technique.
    pub technique: String,
    /// Loss in whole US dollars, where a source states it in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_usd: Option<i64>,
    /// The loss as a source words it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_text: Option<String>,
    /// Which lists record it.
    pub sources: Vec<String>,
    /// Write-ups and proofs of concept.
    pub links: Vec<String>,
}

impl From<&kamiyo_core_models::Exploit> for ExploitRecord {
    fn from(e: &kamiyo_core_models::Exploit) -> Self {
        Self {
            id: e.id.clone(),
            date: e.date.to_rfc3339().chars().take(10).collect(),
            protocol: e.protocol.clone(),
            chain: e.chain.clone(),
            category: e.category.as_str().into(),
            technique: e.technique.clone(),
            loss_usd: e.loss_usd,
            loss_text: e.loss_text.clone(),
            sources: e.sources.clone(),
            links: e.links.clone(),
        }
    }
}

/// One alert in the delivery log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryResponse {
    /// Idempotency key (`alr_…`), also sent to the receiver.
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// `pending`, `delivered`, `failed` or `suppressed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Enqueued at.
    pub created_at: String,
    /// Delivered at.
    pub delivered_at: Option<String>,
    /// Enqueue-to-delivery time in milliseconds.
    pub latency_ms: Option<i64>,
    /// Next attempt (pending entries).
    pub next_attempt_at: Option<String>,
    /// Last error, or the reason it was suppressed.
    pub last_error: Option<String>,
    /// Incident id.
    pub incident_id: String,
    /// Incident key.
    pub incident_key: String,
    /// Protocol of the incident (`hyperliquid` …).
    pub protocol: String,
    /// Lifecycle step (`opened` …).
    pub change: String,
    /// Severity of the step.
    pub severity: String,
    /// Title.
    pub title: String,
    /// A test message (`alerts test`).
    pub test: bool,
}

impl From<&kamiyo_core_models::OutboxEntry> for DeliveryResponse {
    fn from(e: &kamiyo_core_models::OutboxEntry) -> Self {
        let ev = &e.alert.update.event;
        Self {
            id: e.id.to_string(),
            channel: e.channel.clone(),
            status: e.status.as_str().to_owned(),
            attempts: e.attempts,
            created_at: e.created_at.to_rfc3339(),
            delivered_at: e.delivered_at.map(|t| t.to_rfc3339()),
            latency_ms: e.delivered_at.map(|t| t.0 - e.created_at.0),
            next_attempt_at: (e.status == kamiyo_core_models::OutboxStatus::Pending)
                .then(|| e.next_attempt_at.to_rfc3339()),
            last_error: e.last_error.clone(),
            incident_id: ev.incident_id.to_string(),
            incident_key: ev.incident_key.to_string(),
            protocol: ev.protocol.to_string(),
            change: ev.change.as_str().to_owned(),
            severity: ev.severity.as_str().to_owned(),
            title: ev.title.clone(),
            test: e.alert.is_test,
        }
    }
}

/// Per-channel figures over the returned entries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelSummary {
    /// Channel name.
    pub channel: String,
    /// Delivered.
    pub delivered: usize,
    /// Waiting for an attempt.
    pub pending: usize,
    /// Given up.
    pub failed: usize,
    /// Suppressed by the cooldown.
    pub suppressed: usize,
    /// Mean attempts per delivered alert.
    pub mean_attempts: Option<f64>,
    /// Median enqueue-to-delivery latency (ms).
    pub latency_p50_ms: Option<i64>,
    /// 99th percentile enqueue-to-delivery latency (ms).
    pub latency_p99_ms: Option<i64>,
}

/// `GET /alerts/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveriesResponse {
    /// Per channel, over `deliveries`.
    pub channels: Vec<ChannelSummary>,
    /// Newest first.
    pub deliveries: Vec<DeliveryResponse>,
}

/// One entry of the event log: the hash chain over every stored event (see
/// `kamiyo_core_models::ledger` for how to recompute `digest` and `chain`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogEntryResponse {
    /// The event's `seq` (its `/security/events` entry).
    pub seq: i64,
    /// When the monitor stored the event (Unix milliseconds, wall clock): the time that
    /// counts for lead time, and one of the chained fields.
    pub logged_ms: i64,
    /// The same time, RFC 3339.
    pub logged_at: String,
    /// SHA-256 (hex) of the event's canonical form: its `/security/events` object with keys
    /// sorted and no whitespace.
    pub digest: String,
    /// SHA-256 (hex) of `"{previous chain}:{seq}:{logged_ms}:{digest}"`; the previous chain of
    /// the first entry is 64 zeros.
    pub chain: String,
}

impl From<&kamiyo_core_models::ledger::LogEntry> for LogEntryResponse {
    fn from(e: &kamiyo_core_models::ledger::LogEntry) -> Self {
        Self {
            seq: e.seq,
            logged_ms: e.logged_ms,
            logged_at: time(Timestamp(e.logged_ms)),
            digest: e.digest.clone(),
            chain: e.chain.clone(),
        }
    }
}

/// `GET /security/log`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    /// Entries after `after`, oldest first.
    pub entries: Vec<LogEntryResponse>,
    /// The newest entry of the whole log (keep it: a head seen now fixes every entry before
    /// it); null while the log is empty.
    pub head: Option<LogEntryResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

/// The loaded anomaly model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    /// Model kind.
    pub model: String,
    /// What it was trained on.
    pub trained_on: String,
    /// First and last training bar.
    pub window: [String; 2],
    /// Training rows.
    pub rows: usize,
    /// Alert threshold on the score.
    pub threshold: f64,
    /// Training-score quantile of the threshold.
    pub threshold_quantile: f64,
    /// Feature names, in order.
    pub features: Vec<String>,
    /// Feature-set version.
    pub feature_version: u32,
    /// Bar length the model scores, seconds.
    pub bar_secs: i64,
    /// Hash of the training data.
    pub data_hash: String,
}

/// `GET /ml/anomalies`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnomaliesResponse {
    /// The model, or null when none is loaded (`kamiyo-hyperliquid ml train`).
    pub model: Option<ModelInfo>,
    /// Recent anomaly incident steps (score, threshold and drivers in `evidence`), newest first.
    pub anomalies: Vec<EventResponse>,
}

/// One forecast hour.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForecastPoint {
    /// Hour.
    pub time: String,
    /// Point forecast.
    pub mean: f64,
    /// Lower bound of the 95 % interval.
    pub lower: f64,
    /// Upper bound of the 95 % interval.
    pub upper: f64,
}

/// `GET /ml/forecast`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForecastResponse {
    /// Series forecast (`hlp_pnl`: the HLP vault's cumulative PnL, USD, hourly).
    pub series: String,
    /// Hours of history fitted.
    pub history_hours: usize,
    /// ARIMA order chosen by AIC.
    pub order: [usize; 3],
    /// Its AIC.
    pub aic: f64,
    /// Last observed hour and value.
    pub last_time: String,
    /// Last observed value.
    pub last_value: f64,
    /// The next 24 hours.
    pub points: Vec<ForecastPoint>,
    /// Forecast change over 24 h: mean and 95 % bounds (USD).
    pub change_24h: ForecastPoint,
}

/// One watched account's position.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionResponse {
    /// Account.
    pub user: String,
    /// True for the HLP vault itself.
    pub is_hlp: bool,
    /// Market.
    pub asset: String,
    /// Protocol (`hyperliquid` …).
    pub protocol: String,
    /// `long` or `short`.
    pub side: String,
    /// Size in coins (absolute).
    pub size: String,
    /// Notional (USD).
    pub notional: String,
    /// Liquidation price, when the exchange reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidation_px: Option<String>,
    /// The account's value (USD) when seen.
    pub account_value: String,
    /// Notional over account value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverage: Option<String>,
    /// When seen.
    pub time: String,
}

impl PositionResponse {
    /// The response for `p`.
    pub fn of(p: &kamiyo_core_models::PositionRecord, is_hlp: bool) -> Self {
        use kamiyo_core_models::Decimal;
        Self {
            user: p.user.to_string(),
            is_hlp,
            asset: p.coin.to_string(),
            protocol: p.protocol.to_string(),
            side: if p.szi.is_sign_negative() {
                "short"
            } else {
                "long"
            }
            .into(),
            size: p.szi.abs().normalize().to_string(),
            notional: p.position_value.abs().normalize().to_string(),
            liquidation_px: p.liquidation_px.map(|x| x.to_string()),
            account_value: p.account_value.normalize().to_string(),
            leverage: (p.account_value > Decimal::ZERO).then(|| {
                (p.position_value.abs() / p.account_value)
                    .round_dp(2)
                    .normalize()
                    .to_string()
            }),
            time: time(p.time),
        }
    }
}

/// `GET /security/positions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PositionsResponse {
    /// The window.
    pub hours: u32,
    /// Largest notional first.
    pub positions: Vec<PositionResponse>,
}
