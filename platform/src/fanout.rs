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

use kamiyo_core_models::{
    EventQuery, EvidenceValue, IncidentChange, IncidentStore, Order, Severity, StoredEvent,
};
use serde_json::json;

use crate::db::{ChannelRow, Db, DbError, OutboxRow, ThresholdRow, Today, utc_day};
use crate::tiers::TierMatrix;

/// The router's name for its position.
pub const ROUTER: &str = "tenant-router";

/// Steps that alert: openings, escalations and resolutions (updates do not page).
pub fn alerting(change: IncidentChange) -> bool {
    matches!(
        change,
        IncidentChange::Opened | IncidentChange::Escalated | IncidentChange::Resolved
    )
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

/// The message a channel gets for a step.
pub fn message(e: &StoredEvent) -> String {
    let ev = &e.event;
    json!({
        "incident_id": ev.incident_id,
        "protocol": ev.protocol,
        "change": ev.change.as_str(),
        "severity": ev.severity,
        "threat_type": ev.threat_type,
        "asset": ev.asset,
        "title": ev.title,
        "time": ev.time.to_rfc3339(),
        "seq": e.seq,
    })
    .to_string()
}

/// What one tenant gets for a step: a row per channel whose least severity the step reaches,
/// pending while the day's alerts stay within `cap`, else held back with that channel's
/// digest for the day (sent at the next UTC midnight, when the cap resets).
pub fn judge(
    e: &StoredEvent,
    thresholds: &[ThresholdRow],
    channels: &[ChannelRow],
    today: Today,
    cap: i64,
    now: i64,
) -> Vec<OutboxRow> {
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
        if used < cap {
            used += 1;
            out.push(row(
                "pending",
                format!("{}:{}", e.seq, ch.channel_id),
                message(e),
                now,
            ));
        } else {
            held += 1;
            out.push(row(
                "held",
                format!("{}:{}", e.seq, ch.channel_id),
                message(e),
                now,
            ));
            let digest = json!({
                "digest": day.to_string(),
                "held_back_today": held,
                "cap": cap,
                "latest": e.event.title,
                "detail": "alerts past the plan's daily cap are listed at GET /api/v1/alerts",
            });
            out.push(row(
                "digest",
                format!("digest:{day}:{}", ch.channel_id),
                digest.to_string(),
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

/// Routes the shared steps after the router's position, at most `batch` of them.
pub async fn route_once(
    db: &Db,
    facts: &dyn IncidentStore,
    tiers: &TierMatrix,
    now: i64,
    batch: u32,
) -> Result<Pass, DbError> {
    let from = db.router_cursor(ROUTER).await?;
    let steps = facts
        .events(&EventQuery {
            after_seq: Some(from),
            order: Order::Asc,
            limit: batch.clamp(1, 1000),
            ..EventQuery::default()
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let mut pass = Pass {
        steps: steps.len(),
        ..Pass::default()
    };
    for e in &steps {
        if alerting(e.event.change) {
            for (tenant, plan) in db.subscribers(e.event.protocol.as_str()).await? {
                let cap = plan.parse().map_or(0, |t| {
                    i64::try_from(tiers.config(t).limits.alerts_per_day).unwrap_or(i64::MAX)
                });
                let routed = db
                    .route_to_tenant(&tenant, e.seq, &e.event.detector, now, |th, ch, today| {
                        judge(e, th, ch, today, cap, now)
                    })
                    .await?;
                if let Some(r) = routed {
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
