//! Per-tenant alerting: one shared incident step fans out to every tenant following its
//! protocol, judged against that tenant's thresholds and channels, into that tenant's durable
//! outbox — exactly once per tenant, whatever stops the router (each tenant's position moves in
//! the transaction that writes its rows; the router's own position only after every tenant
//! has the step). Past the plan's alerts per day, alerts are recorded as held back and one
//! digest per channel and day stands for them.
//!
//! Thresholds: a tenant's override `(detector, name, value)` applies to steps of that
//! detector. `name = min_severity` asks for a severity rank of at least `value` (info 0 …
//! critical 4); any other name is an evidence figure the step must reach in absolute value
//! (`deviation_pct ≥ 2.5`). An evidence figure the step does not carry does not hold it back.

use std::sync::Arc;

use futures_util::StreamExt as _;

use kamiyo_alerts::{ChannelConfig, ChannelKind};
use kamiyo_core_models::ledger::LogEntry;
use kamiyo_core_models::{
    Alert, EventQuery, EvidenceValue, Incident, IncidentChange, IncidentStore, IncidentUpdate,
    Notifier, NotifyError, Order, Severity, StableId, StoredEvent,
};
use serde_json::json;

use crate::db::{Claimed, Db, DbError, OutboxRow, Outcome, TenantView, ThresholdRow, utc_day};
use crate::tiers::TierMatrix;

/// Tenant transactions one step runs at once.
pub const FANOUT_CONCURRENCY: usize = 16;

/// The router's name for its position.
pub const ROUTER: &str = "tenant-router";

/// Steps that alert: openings, escalations and resolutions (updates do not page).
pub fn alerting(change: IncidentChange) -> bool {
    matches!(
        change,
        IncidentChange::Opened | IncidentChange::Escalated | IncidentChange::Resolved
    )
}

/// Whether a tenant on `plan` receives steps of `detector`: the ensemble's only with advanced
/// ML (Pro, Enterprise), everything else with any plan.
pub fn receives(detector: &str, plan: &str, tiers: &TierMatrix) -> bool {
    detector != crate::ensemble::DETECTOR
        || plan
            .parse()
            .is_ok_and(|t| tiers.is_feature_enabled(t, crate::tiers::Feature::AdvancedMl))
}

/// A severity's rank, info 0 … critical 4.
pub fn rank(s: Severity) -> i64 {
    crate::tenancy::SEVERITIES
        .iter()
        .position(|x| *x == s.as_str())
        .map_or(0, |p| p as i64)
}

fn figure(v: &EvidenceValue) -> Option<f64> {
    match v {
        EvidenceValue::Int(i) => Some(*i as f64),
        EvidenceValue::Decimal(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// True when the tenant's thresholds let the step through.
pub fn passes(e: &StoredEvent, thresholds: &[ThresholdRow]) -> bool {
    thresholds
        .iter()
        .filter(|t| t.detector == e.event.detector)
        .all(|t| {
            if t.name == "min_severity" {
                return rank(e.event.severity) as f64 >= t.value;
            }
            e.event
                .evidence
                .get(&t.name)
                .and_then(figure)
                .is_none_or(|v| v.abs() >= t.value)
        })
}

/// The alert a channel gets for a step (the open core's message formats render it), titled
/// `title` when given (a digest), carrying the step's event-log entry when given.
pub fn alert_json(
    e: &StoredEvent,
    incident: &Incident,
    channel: &str,
    title: Option<String>,
    brand: Option<&str>,
    log: Option<&LogEntry>,
) -> String {
    let mut event = e.event.clone();
    let mut incident = incident.clone();
    if let Some(t) = title {
        event.title.clone_from(&t);
        incident.title = t;
    }
    let alert = Alert {
        idempotency_key: StableId::derive("talert", &[&e.seq.to_string(), channel]),
        update: IncidentUpdate { event, incident },
        dashboard_url: None,
        is_test: false,
        related: Vec::new(),
        brand: brand.map(str::to_owned),
        log: log.cloned(),
    };
    serde_json::to_string(&alert).unwrap_or_default()
}

/// What one tenant gets for a step: a row per channel whose least severity the step reaches,
/// pending while the day's alerts stay within `cap`, else held back with that channel's
/// digest for the day (sent at the next UTC midnight, when the cap resets).
pub fn judge(
    e: &StoredEvent,
    log: Option<&LogEntry>,
    incident: &Incident,
    tenant: &TenantView<'_>,
    cap: i64,
    now: i64,
) -> Vec<OutboxRow> {
    let TenantView {
        thresholds,
        channels,
        today,
        brand,
    } = *tenant;
    if !alerting(e.event.change) || !passes(e, thresholds) {
        return Vec::new();
    }
    let sev = rank(e.event.severity);
    let mut used = today.alerts;
    let mut held = today.alerts_held;
    let midnight = now + i64::try_from(crate::web::secs_to_midnight(now)).unwrap_or(0) * 1000;
    let day = utc_day(now);
    let mut out = Vec::new();
    for ch in channels {
        let least = crate::tenancy::SEVERITIES
            .iter()
            .position(|s| *s == ch.min_severity)
            .map_or(0, |p| p as i64);
        if sev < least {
            continue;
        }
        let row = |status, id: String, payload: String, at| OutboxRow {
            outbox_id: id,
            incident_id: e.event.incident_id.to_string(),
            channel_id: ch.channel_id.clone(),
            severity: e.event.severity.as_str().to_owned(),
            payload,
            status,
            next_attempt_ms: at,
        };
        let status = if used < cap {
            used += 1;
            "pending"
        } else {
            held += 1;
            "held"
        };
        out.push(row(
            status,
            format!("{}:{}", e.seq, ch.channel_id),
            alert_json(e, incident, &ch.channel_id, None, brand, log),
            now,
        ));
        if status == "held" {
            let digest = format!(
                "{held} alerts held back on {day} (the plan sends {cap} a day; all are listed at GET /api/v1/alerts) — latest: {}",
                e.event.title
            );
            out.push(row(
                "digest",
                format!("digest:{day}:{}", ch.channel_id),
                // The digest is retitled: it is not the logged step, so it carries no entry.
                alert_json(
                    e,
                    incident,
                    &format!("digest:{day}"),
                    Some(digest),
                    brand,
                    None,
                ),
                midnight,
            ));
        }
    }
    out
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// Shared steps read.
    pub steps: usize,
    /// Tenant deliveries of those steps (a tenant that had a step already is not counted).
    pub routed: usize,
    /// Alerts enqueued to send.
    pub sent: i64,
    /// Alerts held back.
    pub held: i64,
}

/// The shared steps after the position `name` (the router's, the correlator's), at most
/// `batch` (≤ 1,000), oldest first.
async fn steps_after(
    db: &Db,
    facts: &dyn IncidentStore,
    name: &str,
    batch: u32,
) -> Result<Vec<StoredEvent>, DbError> {
    let from = db.router_cursor(name).await?;
    facts
        .events(&EventQuery {
            after_seq: Some(from),
            order: Order::Asc,
            limit: batch.clamp(1, 1000),
            ..EventQuery::default()
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Routes the shared steps after the router's position, at most `batch` of them.
pub async fn route_once(
    db: &Db,
    facts: &dyn IncidentStore,
    tiers: &TierMatrix,
    now: i64,
    batch: u32,
) -> Result<Pass, DbError> {
    let steps = steps_after(db, facts, ROUTER, batch).await?;
    // The steps' event-log entries, carried by their alerts (none for a step stored before
    // the log began).
    let log = &facts
        .event_log_of(&steps)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let mut pass = Pass {
        steps: steps.len(),
        ..Pass::default()
    };
    for e in &steps {
        crate::metrics::record_detection(
            e.event.protocol.as_str(),
            e.event.severity.as_str(),
            e.event.change.as_str(),
        );
        let incident = if alerting(e.event.change) {
            facts
                .incident(&e.event.incident_id)
                .await
                .map_err(|err| DbError::Unavailable(err.to_string()))?
        } else {
            None
        };
        if let Some(incident) = &incident {
            // Tenants are independent: their transactions run side by side (the pool bounds
            // them); each is exact on its own, and the router's position waits for all.
            let subscribers: Vec<_> = db
                .subscribers(e.event.protocol.as_str())
                .await?
                .into_iter()
                .filter(|(_, plan)| receives(&e.event.detector, plan, tiers))
                .collect();
            let results: Vec<Result<Option<crate::db::Routed>, DbError>> =
                futures_util::stream::iter(subscribers)
                    .map(|(tenant, plan)| async move {
                        let tier = plan.parse().ok();
                        let cap = tier.map_or(0, |t| {
                            i64::try_from(tiers.config(t).limits.alerts_per_day).unwrap_or(i64::MAX)
                        });
                        // Alerts carry the tenant's brand on plans with white label.
                        let branded = tier.is_some_and(|t| {
                            tiers.is_feature_enabled(t, crate::tiers::Feature::WhiteLabel)
                        });
                        db.route_to_tenant(
                            &tenant,
                            e.seq,
                            &e.event.detector,
                            e.event.incident_id.as_str(),
                            now,
                            |view| {
                                let view = TenantView {
                                    brand: view.brand.filter(|_| branded),
                                    ..*view
                                };
                                judge(e, log.get(&e.seq), incident, &view, cap, now)
                            },
                        )
                        .await
                    })
                    .buffer_unordered(FANOUT_CONCURRENCY)
                    .collect()
                    .await;
            for r in results {
                if let Some(r) = r? {
                    pass.routed += 1;
                    pass.sent += r.sent;
                    pass.held += r.held;
                }
            }
        }
        db.set_router_cursor(ROUTER, e.seq).await?;
    }
    Ok(pass)
}

/// Publishes the shared steps after the hub's position to this replica's live subscribers
/// (`/ws`: each sees its own protocols), at most 500 per call; returns how many.
pub async fn tail_once(facts: &dyn IncidentStore, hub: &kamiyo_api::Hub) -> Result<usize, DbError> {
    let page = facts
        .events(&EventQuery {
            after_seq: Some(hub.last_seq()),
            order: Order::Asc,
            limit: 500,
            ..EventQuery::default()
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    hub.publish_events(&page);
    Ok(page.len())
}

/// The newest shared step's position (0 when there is none): where a replica's live stream
/// starts.
pub async fn newest_seq(facts: &dyn IncidentStore) -> Result<i64, DbError> {
    let page = facts
        .events(&EventQuery {
            order: Order::Desc,
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    Ok(page.first().map_or(0, |e| e.seq))
}

/// How long a claimed row is held by one worker before another may take it.
pub const LEASE_MS: i64 = 60_000;
/// Attempts before a row that keeps failing is given up.
pub const MAX_ATTEMPTS: i32 = 8;

/// When a row that failed its `attempts`-th time is tried again: 30 s doubling, at most an
/// hour.
pub fn retry_at(now: i64, attempts: i32) -> i64 {
    let exp = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    now + (30_000i64 << exp).min(3_600_000)
}

/// The channel a tenant configured, as the open core's notifier (email through the platform's
/// relay, to the channel's address).
fn notifier(c: &Claimed) -> Result<Arc<dyn Notifier>, String> {
    let kind: ChannelKind =
        serde_json::from_value(json!(c.kind)).map_err(|_| format!("unknown kind {}", c.kind))?;
    let mut cfg = ChannelConfig::new(kind);
    let secret = kamiyo_alerts::Secret::new(c.secret.clone().unwrap_or_default());
    match kind {
        ChannelKind::Pagerduty | ChannelKind::Opsgenie => {
            cfg.api_url = c.url.clone();
            cfg.api_key = secret;
        }
        _ => {
            cfg.url = kamiyo_alerts::Secret::new(c.url.clone());
            cfg.secret = secret;
        }
    }
    cfg.build(&c.name).map_err(|e| e.to_string())
}

/// One delivery attempt of a claimed row.
async fn attempt(
    c: &Claimed,
    mailer: Option<&kamiyo_alerts::channels::Smtp>,
) -> Result<(), NotifyError> {
    let alert: Alert = serde_json::from_str(&c.payload)
        .map_err(|e| NotifyError::Permanent(format!("unreadable alert: {e}")))?;
    if c.kind == "email" {
        let Some(m) = mailer else {
            return Err(NotifyError::Permanent("no mail relay is configured".into()));
        };
        let to = c.url.strip_prefix("mailto:").unwrap_or(&c.url);
        let msg = kamiyo_alerts::Message::of(&alert);
        return m
            .send_text(to, &alert.update.event.title, &msg.plain_text())
            .await
            .map(|_| ());
    }
    let n = notifier(c).map_err(NotifyError::Permanent)?;
    n.notify(&alert).await.map(|_| ())
}

/// Sends a clearly marked test message to one of the tenant's channels now (not through the
/// outbox: the person who asked sees the outcome), under the tenant's brand when given.
pub async fn send_test(
    db: &Db,
    mailer: Option<&kamiyo_alerts::channels::Smtp>,
    tenant: &crate::tenancy::TenantId,
    channel_id: &str,
    brand: Option<&str>,
    now: i64,
) -> Result<Option<()>, NotifyError> {
    let ts = kamiyo_core_models::Timestamp::from_millis(now);
    let mut alert = kamiyo_alerts::test_alert(channel_id, ts, None);
    alert.brand = brand.map(str::to_owned);
    let payload =
        serde_json::to_string(&alert).map_err(|e| NotifyError::Permanent(e.to_string()))?;
    let Some(c) = db
        .channel_with(tenant, channel_id, &payload)
        .await
        .map_err(|e| NotifyError::Transient(e.to_string()))?
    else {
        return Ok(None);
    };
    attempt(&c, mailer).await.map(Some)
}

/// What one delivery pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivered {
    /// Rows the channels took.
    pub delivered: usize,
    /// Rows due again later.
    pub retried: usize,
    /// Rows given up.
    pub failed: usize,
}

/// Claims and sends the tenants' due rows as `worker` (the instance its heartbeat names; rows
/// claimed by a worker that stopped beating are taken over), at most `limit` per tenant per
/// pass. `now` is the pass's start; each row's outcome is stamped with its own time.
pub async fn deliver_once(
    db: &Db,
    mailer: Option<&kamiyo_alerts::channels::Smtp>,
    worker: &str,
    now: i64,
    limit: i64,
) -> Result<Delivered, DbError> {
    let mut out = Delivered::default();
    let started = std::time::Instant::now();
    // Now as the pass goes on (claims and outcomes are stamped when they happen).
    let at = || now + i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
    let alive_since = now - crate::status::ALIVE_MS;
    for t in db.due_tenants(now, 200, alive_since).await? {
        let claim = crate::db::Claim {
            worker,
            now: at(),
            lease_ms: LEASE_MS,
            alive_since,
        };
        for c in db.claim_due(&t, &claim, limit).await? {
            let result = attempt(&c, mailer).await;
            // Retries are timed from the pass; deliveries are stamped when they happened.
            let done_at = at();
            let outcome = match result {
                Ok(()) => {
                    out.delivered += 1;
                    // Digests wait for midnight by design: only alerts sent at once count.
                    let waited = (c.status == "pending").then(|| {
                        std::time::Duration::from_millis(
                            u64::try_from(done_at - c.created_at).unwrap_or(0),
                        )
                    });
                    crate::metrics::record_delivery("delivered", waited);
                    Outcome::Delivered
                }
                Err(NotifyError::RateLimited { retry_after_ms }) if c.attempts < MAX_ATTEMPTS => {
                    out.retried += 1;
                    crate::metrics::record_delivery("retry", None);
                    Outcome::Retry {
                        at: now
                            + i64::try_from(retry_after_ms)
                                .unwrap_or(i64::MAX / 2)
                                .max(1000),
                        error: "rate limited by the destination".into(),
                    }
                }
                Err(NotifyError::Transient(e)) if c.attempts < MAX_ATTEMPTS => {
                    out.retried += 1;
                    crate::metrics::record_delivery("retry", None);
                    Outcome::Retry {
                        at: retry_at(now, c.attempts),
                        error: e.chars().take(500).collect(),
                    }
                }
                Err(e) => {
                    out.failed += 1;
                    crate::metrics::record_delivery("failed", None);
                    Outcome::Failed(e.to_string().chars().take(500).collect())
                }
            };
            db.finish_delivery(&t, &c.outbox_id, outcome, done_at)
                .await?;
        }
    }
    Ok(out)
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The correlator's name for its position.
pub const CORRELATOR: &str = "correlator";

/// The threat type of a correlated incident's alert (declared with the platform's own).
pub const CORRELATED_THREAT: &str = "cross_protocol_attack";

/// What one correlation pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CorrelatePass {
    /// Shared steps read.
    pub steps: usize,
    /// Correlated incidents opened.
    pub opened: usize,
    /// Alerts enqueued to send (one per tenant channel and correlated incident).
    pub sent: i64,
}

/// The stored row of a correlated incident.
pub fn correlated_row(
    c: &crate::correlator::Correlated,
    opened_at: i64,
) -> crate::db::CorrelatedRow {
    crate::db::CorrelatedRow {
        correlated_id: c.id.clone(),
        pattern: c.pattern.as_str().to_owned(),
        entity: c.entity.clone(),
        protocols: c.protocols.iter().cloned().collect(),
        members: c.members.iter().map(ToString::to_string).collect(),
        stages: serde_json::to_string(&c.stages).unwrap_or_else(|_| "{}".into()),
        severity: c.severity.as_str().to_owned(),
        score: c.score,
        first_seen: c.first_seen.0,
        last_seen: c.last_seen.0,
        opened_at,
    }
}

/// The alert a channel gets for a correlated incident: the open core's alert format, an
/// incident of the `correlator` detector whose evidence names the pattern, the entity, the
/// protocols, the members and each attack stage's evidence.
pub fn correlated_alert(
    c: &crate::correlator::Correlated,
    channel: &str,
    brand: Option<&str>,
) -> String {
    use kamiyo_core_models::{Evidence, IncidentKey, IncidentStatus, ProtocolId, ThreatType};
    let protocols: Vec<&str> = c.protocols.iter().map(String::as_str).collect();
    let stages: Vec<String> = c
        .stages
        .iter()
        .map(|(s, ev)| format!("{}: {}", s.as_str(), ev.join("; ")))
        .collect();
    let mut evidence = Evidence::new()
        .with("pattern", c.pattern.as_str())
        .with("entity", c.entity.as_str())
        .with("protocols", protocols.join(","))
        .with(
            "members",
            c.members
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .with("score", format!("{:.2}", c.score));
    for (i, s) in stages.iter().enumerate() {
        evidence.insert(&format!("stage_{i}"), s.as_str());
    }
    let key = IncidentKey::new("correlated", &[c.pattern.as_str(), &c.entity]);
    let incident = Incident {
        id: StableId::derive("inc", &[&c.id]),
        key: key.clone(),
        protocol: protocols
            .first()
            .and_then(|p| ProtocolId::parse(p).ok())
            .unwrap_or_default(),
        detector: "correlator".into(),
        threat_type: ThreatType::custom(CORRELATED_THREAT).unwrap_or(ThreatType::MarketCascade),
        severity: c.severity,
        peak_severity: c.severity,
        asset: c
            .entity
            .strip_prefix("asset:")
            .and_then(|a| kamiyo_core_models::Coin::new(a).ok()),
        status: IncidentStatus::Open,
        title: format!(
            "{} on {} across {} (score {:.2}, {} stages)",
            c.pattern.as_str(),
            c.entity,
            protocols.join(" + "),
            c.score,
            c.stages.len()
        ),
        indicators: vec![c.pattern.as_str().to_owned()],
        evidence,
        first_seen: c.first_seen,
        last_seen: c.last_seen,
        resolved_at: None,
        detections: c.members.len() as u64,
    };
    let event = kamiyo_core_models::SecurityEvent::from_incident(
        &incident,
        IncidentChange::Opened,
        c.last_seen,
    );
    let alert = Alert {
        idempotency_key: StableId::derive("calert", &[&c.id, channel]),
        update: IncidentUpdate { event, incident },
        dashboard_url: None,
        is_test: false,
        related: Vec::new(),
        brand: brand.map(str::to_owned),
        log: None,
    };
    serde_json::to_string(&alert).unwrap_or_default()
}

/// Reads the shared steps up to the correlator's position (at most `lookback` of them, the
/// hour of context the correlator keeps) into `cor` without alerting: after a restart or a
/// takeover, so a correlation under way is still seen (what it opens again is already stored
/// and alerted: its id is the same, its outbox rows exist).
pub async fn warm_correlator(
    db: &Db,
    facts: &dyn IncidentStore,
    cor: &mut crate::correlator::Correlator,
    lookback: u32,
) -> Result<usize, DbError> {
    let upto = db.router_cursor(CORRELATOR).await?;
    let from = (upto - i64::from(lookback)).max(0);
    let steps = facts
        .events(&EventQuery {
            after_seq: Some(from),
            order: Order::Asc,
            limit: lookback.clamp(1, 10_000),
            ..EventQuery::default()
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let mut n = 0;
    for e in steps.iter().filter(|e| e.seq <= upto) {
        let _ = cor.observe(crate::correlator::Member::from_event(&e.event));
        n += 1;
    }
    Ok(n)
}

/// Correlates the shared steps after the correlator's position, at most `batch`: every
/// correlated incident opened is stored and alerted once to each tenant whose plan has
/// cross-protocol correlation and who follows one of its protocols (one row per channel whose
/// least severity it reaches, keyed by the correlated id, so a replayed pass adds nothing);
/// one that grew is stored again (members, stages, score), not alerted.
pub async fn correlate_once(
    db: &Db,
    facts: &dyn IncidentStore,
    tiers: &TierMatrix,
    cor: &mut crate::correlator::Correlator,
    now: i64,
    batch: u32,
) -> Result<CorrelatePass, DbError> {
    use crate::correlator::Change;
    let steps = steps_after(db, facts, CORRELATOR, batch).await?;
    let mut pass = CorrelatePass {
        steps: steps.len(),
        ..CorrelatePass::default()
    };
    for e in &steps {
        for ch in cor.observe(crate::correlator::Member::from_event(&e.event)) {
            match ch {
                Change::Opened(c) => {
                    db.upsert_correlated(&correlated_row(&c, e.event.time.0))
                        .await?;
                    pass.opened += 1;
                    let mut tenants: std::collections::BTreeMap<
                        String,
                        (crate::tenancy::TenantId, String),
                    > = std::collections::BTreeMap::new();
                    for p in &c.protocols {
                        for (t, plan) in db.subscribers(p).await? {
                            tenants.insert(t.as_str().to_owned(), (t, plan));
                        }
                    }
                    for (_, (tenant, plan)) in tenants {
                        let Ok(tier) = plan.parse() else { continue };
                        if !tiers.is_feature_enabled(
                            tier,
                            crate::tiers::Feature::CrossProtocolCorrelation,
                        ) {
                            continue;
                        }
                        let cap = i64::try_from(tiers.config(tier).limits.alerts_per_day)
                            .unwrap_or(i64::MAX);
                        let sev = rank(c.severity);
                        let branded =
                            tiers.is_feature_enabled(tier, crate::tiers::Feature::WhiteLabel);
                        pass.sent += db
                            .alert_once(&tenant, now, |view| {
                                let brand = view.brand.filter(|_| branded);
                                let mut used = view.today.alerts;
                                view.channels
                                    .iter()
                                    .filter(|ch| {
                                        crate::tenancy::SEVERITIES
                                            .iter()
                                            .position(|s| *s == ch.min_severity)
                                            .map_or(0, |p| p as i64)
                                            <= sev
                                    })
                                    .map(|ch| {
                                        let status = if used < cap {
                                            used += 1;
                                            "pending"
                                        } else {
                                            "held"
                                        };
                                        OutboxRow {
                                            outbox_id: format!("{}:{}", c.id, ch.channel_id),
                                            incident_id: c.id.clone(),
                                            channel_id: ch.channel_id.clone(),
                                            severity: c.severity.as_str().to_owned(),
                                            payload: correlated_alert(&c, &ch.channel_id, brand),
                                            status,
                                            next_attempt_ms: now,
                                        }
                                    })
                                    .collect()
                            })
                            .await?;
                    }
                }
                Change::Grew { id, .. } => {
                    if let Some(c) = cor.open().find(|x| x.id == id) {
                        db.upsert_correlated(&correlated_row(c, c.last_seen.0))
                            .await?;
                    }
                }
            }
        }
        db.set_router_cursor(CORRELATOR, e.seq).await?;
    }
    Ok(pass)
}

/// Runs the correlator until `stop`: warmed with the steps before its position, then a pass
/// every 250 ms (a failing pass is logged and retried; the position moves only past what was
/// stored and alerted).
pub async fn correlate(
    db: &Db,
    facts: &kamiyo_store::Store,
    tiers: &TierMatrix,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut cor = crate::correlator::Correlator::default();
    let warmed = warm_correlator(db, facts, &mut cor, 5_000).await?;
    tracing::info!(steps = warmed, "correlator warmed");
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match correlate_once(db, facts, tiers, &mut cor, now_ms(), 500).await {
            Ok(p) if p.opened > 0 => tracing::info!(
                steps = p.steps,
                opened = p.opened,
                sent = p.sent,
                "correlated incidents opened"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "correlation pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_steps_reach_plans_with_advanced_ml_only() {
        let tiers = TierMatrix::default_matrix().unwrap_or_else(|e| panic!("{e}"));
        let d = crate::ensemble::DETECTOR;
        assert!(!receives(d, "cloud_basic", &tiers));
        assert!(!receives(d, "open_source", &tiers));
        assert!(!receives(d, "not-a-plan", &tiers));
        assert!(receives(d, "cloud_pro", &tiers));
        assert!(receives(d, "cloud_enterprise", &tiers));
        assert!(receives("liquidations", "cloud_basic", &tiers));
    }
}
