//! Availability as the platform measures it itself: every serving and ingesting process beats
//! a heartbeat into the database ([`BEAT`]); the alert workers probe each component once a
//! minute ([`probe_once`]: the API through its public address, the database, alert delivery,
//! each protocol's feeds) and record one result per component and minute, which gives the
//! public status page its current state and 90-day history ([`status`]) and each Enterprise
//! tenant its monthly SLA report ([`sla_report`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::db::{Backlog, Db, DbError, DeliveryLatency, HeartbeatRow, ProbeDay, ProbeRow};
use crate::tenancy::TenantId;

/// How often a process beats.
pub const BEAT: Duration = Duration::from_secs(2);
/// A process whose last beat is older than this (three beats missed) is gone (its delivery claims are taken over,
/// its feeds count as down).
pub const ALIVE_MS: i64 = 6_000;
/// Days of history on the status page.
pub const HISTORY_DAYS: i64 = 90;
/// Days of probes kept (a year and a month: last year's same-month SLA report still works).
pub const KEEP_DAYS: i64 = 400;
/// An alert due this long without being sent makes delivery degraded; [`BACKLOG_DOWN_MS`] down.
pub const BACKLOG_DEGRADED_MS: i64 = 60_000;
/// See [`BACKLOG_DEGRADED_MS`].
pub const BACKLOG_DOWN_MS: i64 = 300_000;
/// Longest an API probe may take before it counts as down.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
/// An API or database answer slower than this counts as degraded.
pub const SLOW_MS: i32 = 1000;

const DAY_MS: i64 = 86_400_000;

/// Beats `component`'s heartbeat for `instance` every [`BEAT`] with `detail()`
/// until `stop`, then removes it (a clean stop leaves no stale process on the status page).
pub async fn beat(
    db: crate::db::Db,
    component: String,
    instance: String,
    detail: impl Fn() -> serde_json::Value + Send,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Err(e) = db
            .heartbeat(&component, &instance, crate::fanout::now_ms(), &detail())
            .await
        {
            tracing::warn!(component, error = %e, "heartbeat failed");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(BEAT) => {}
        }
    }
    if let Err(e) = db.forget_heartbeat(&component, &instance).await {
        tracing::warn!(component, error = %e, "removing the heartbeat failed");
    }
}

/// What a component was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Working.
    Up,
    /// Working, with a part impaired (a reference venue stale, a slow answer, alerts late).
    Degraded,
    /// Not working.
    Down,
}

impl State {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "up" => Self::Up,
            "degraded" => Self::Degraded,
            _ => Self::Down,
        }
    }
}

/// One component's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `api`, `database`, `delivery` or `feeds:<protocol>`.
    pub component: String,
    /// What it was found in.
    pub state: State,
    /// How long the check took, when it measured an answer.
    pub latency_ms: Option<i32>,
    /// Why, in words.
    pub detail: String,
}

impl Check {
    fn new(component: impl Into<String>, state: State, detail: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            state,
            latency_ms: None,
            detail: detail.into(),
        }
    }
}

/// The component of `protocol`'s feeds.
pub fn feeds_component(protocol: &str) -> String {
    format!("feeds:{protocol}")
}

/// The heartbeat component of `protocol`'s ingest leader.
pub fn ingest_component(protocol: &str) -> String {
    format!("ingest:{protocol}")
}

/// A component's name on the status page.
pub fn display_name(component: &str) -> String {
    match component {
        "api" => "API".into(),
        "database" => "Database".into(),
        "delivery" => "Alert delivery".into(),
        c => match c.strip_prefix("feeds:") {
            Some(p) => format!("{p} feeds"),
            None => c.into(),
        },
    }
}

/// `protocol`'s feeds from its ingest leader's heartbeat at `now`: down when no leader has
/// beaten within [`ALIVE_MS`] or every feed is down; degraded while the leader starts (no feed
/// reported yet) or when a feed is stale or down; up when every feed is live.
pub fn feeds_check(protocol: &str, beats: &[HeartbeatRow], now: i64) -> Check {
    let component = feeds_component(protocol);
    let want = ingest_component(protocol);
    let Some(b) = beats
        .iter()
        .filter(|b| b.component == want && b.at >= now - ALIVE_MS)
        .max_by_key(|b| b.at)
    else {
        let last = beats
            .iter()
            .filter(|b| b.component == want)
            .map(|b| b.at)
            .max();
        let detail = match last {
            Some(at) => format!("no ingest leader has reported for {} s", (now - at) / 1000),
            None => "no ingest leader has reported".into(),
        };
        return Check::new(component, State::Down, detail);
    };
    let detail: Value = serde_json::from_str(&b.detail).unwrap_or(Value::Null);
    let feeds: Vec<(String, String)> = detail["feeds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    Some((
                        f["feed"].as_str()?.to_owned(),
                        f["state"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if feeds.is_empty() {
        return Check::new(
            component,
            State::Degraded,
            "ingest starting: no feed has reported yet",
        );
    }
    let impaired: Vec<String> = feeds
        .iter()
        .filter(|(_, s)| s != "LIVE")
        .map(|(f, s)| format!("{f} {s}"))
        .collect();
    let down = feeds.iter().filter(|(_, s)| s == "DOWN").count();
    let state = if down == feeds.len() {
        State::Down
    } else if impaired.is_empty() {
        State::Up
    } else {
        State::Degraded
    };
    let detail = if impaired.is_empty() {
        format!("{} feed(s) live", feeds.len())
    } else {
        impaired.join(", ")
    };
    Check::new(component, state, detail)
}

/// Alert delivery at `now`: down when no worker has beaten within [`ALIVE_MS`] or an alert has
/// been due for [`BACKLOG_DOWN_MS`]; degraded past [`BACKLOG_DEGRADED_MS`].
pub fn delivery_check(backlog: Backlog, beats: &[HeartbeatRow], now: i64) -> Check {
    let workers = beats
        .iter()
        .filter(|b| b.component == "workers" && b.at >= now - ALIVE_MS)
        .count();
    if workers == 0 {
        return Check::new("delivery", State::Down, "no alert worker has reported");
    }
    let waited = backlog.oldest_due_ms.map_or(0, |t| (now - t).max(0));
    let state = if waited >= BACKLOG_DOWN_MS {
        State::Down
    } else if waited >= BACKLOG_DEGRADED_MS {
        State::Degraded
    } else {
        State::Up
    };
    let detail = if backlog.due == 0 {
        format!("{workers} worker(s); nothing waiting")
    } else {
        format!(
            "{workers} worker(s); {} alert(s) due, the oldest for {} s",
            backlog.due,
            waited / 1000
        )
    };
    Check::new("delivery", state, detail)
}

fn timed(component: &str, ms: i32, ok: Result<(), String>) -> Check {
    let mut c = match ok {
        Ok(()) if ms > SLOW_MS => Check::new(component, State::Degraded, format!("slow: {ms} ms")),
        Ok(()) => Check::new(component, State::Up, format!("{ms} ms")),
        Err(e) => Check::new(component, State::Down, e),
    };
    c.latency_ms = Some(ms);
    c
}

fn elapsed_ms(t: Instant) -> i32 {
    i32::try_from(t.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// The API through `url` (its public address; `/health` is asked).
pub async fn api_check(http: &reqwest::Client, url: &str) -> Check {
    let t = Instant::now();
    let target = format!("{}/health", url.trim_end_matches('/'));
    let r = http.get(&target).timeout(API_TIMEOUT).send().await;
    let ok = match r {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("/health answered {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err(format!(
            "/health did not answer in {} s",
            API_TIMEOUT.as_secs()
        )),
        Err(_) => Err("/health could not be reached".into()),
    };
    timed("api", elapsed_ms(t), ok)
}

/// Everything but the API, from the database at `now`: the database itself (how long reading
/// the heartbeats took), delivery, and each protocol's feeds. The heartbeats read are returned
/// for the caller's view of the replicas.
pub async fn checks(db: &Db, protocols: &[String], now: i64) -> (Vec<Check>, Vec<HeartbeatRow>) {
    let t = Instant::now();
    let beats = db.heartbeats(now - DAY_MS).await;
    let backlog = db.delivery_backlog(now).await;
    let ms = elapsed_ms(t);
    let (beats, backlog) = match (beats, backlog) {
        (Ok(b), Ok(k)) => (b, k),
        (Err(e), _) | (_, Err(e)) => {
            let mut out = vec![timed("database", ms, Err(db_words(&e)))];
            out.push(Check::new(
                "delivery",
                State::Down,
                "the database does not answer",
            ));
            for p in protocols {
                out.push(Check::new(
                    feeds_component(p),
                    State::Down,
                    "the database does not answer",
                ));
            }
            return (out, Vec::new());
        }
    };
    let mut out = vec![
        timed("database", ms, Ok(())),
        delivery_check(backlog, &beats, now),
    ];
    out.extend(protocols.iter().map(|p| feeds_check(p, &beats, now)));
    (out, beats)
}

fn db_words(e: &DbError) -> String {
    match e {
        DbError::Unavailable(_) => "the database does not answer".into(),
        _ => "the database refused the probe".into(),
    }
}

/// One probe pass at `now`: every component checked (the API through `api_url` when given)
/// and recorded for `now`'s minute unless another replica probed that minute first; the
/// checks are returned. Probes older than [`KEEP_DAYS`] are pruned at each hour's first minute.
pub async fn probe_once(
    db: &Db,
    http: &reqwest::Client,
    api_url: Option<&str>,
    protocols: &[String],
    now: i64,
) -> Vec<Check> {
    let (mut all, _) = checks(db, protocols, now).await;
    if let Some(url) = api_url {
        all.insert(0, api_check(http, url).await);
    }
    let minute = now - now.rem_euclid(60_000);
    for c in &all {
        let row = ProbeRow {
            component: c.component.clone(),
            minute,
            state: c.state.as_str().into(),
            latency_ms: c.latency_ms,
            detail: c.detail.chars().take(300).collect(),
        };
        if let Err(e) = db.record_probe(&row).await {
            tracing::warn!(component = %c.component, error = %e, "recording a probe failed");
        }
    }
    // Old probes go once an hour (by whichever replica probes its first minute), not with
    // every probe.
    if minute % 3_600_000 == 0
        && let Err(e) = db
            .prune_availability(now - KEEP_DAYS * DAY_MS, now - DAY_MS)
            .await
    {
        tracing::warn!(error = %e, "pruning old probes failed");
    }
    all
}

/// The UTC day (epoch ms at 00:00) of `t`.
pub fn day_of(t: i64) -> i64 {
    t - t.rem_euclid(DAY_MS)
}

/// Minutes up over minutes probed, in per cent (`None` with nothing probed).
pub fn uptime_pct(probed: i64, down: i64) -> Option<f64> {
    (probed > 0).then(|| {
        #[allow(
            clippy::cast_precision_loss,
            reason = "minute counts stay far below 2^52"
        )]
        let pct = (probed - down) as f64 * 100.0 / probed as f64;
        (pct * 1000.0).round() / 1000.0
    })
}

/// The public status at `now`: each component's current state (the API's latest probe; the
/// rest checked from the database now), the overall state, the processes that beat, and each
/// component's last [`HISTORY_DAYS`] days of recorded probes with its uptime.
/// Protocols are named by `names` (id → display name) where it knows them.
pub async fn status(
    db: &Db,
    protocols: &[String],
    names: &BTreeMap<String, String>,
    now: i64,
) -> Value {
    let (mut current, beats) = checks(db, protocols, now).await;
    let latest = db.latest_probes().await.unwrap_or_default();
    let api = latest.iter().find(|p| p.component == "api");
    current.insert(
        0,
        match api {
            Some(p) => Check {
                component: "api".into(),
                state: State::parse(&p.state),
                latency_ms: p.latency_ms,
                detail: p.detail.clone(),
            },
            // This answer is the API answering; no probe has been recorded yet.
            None => Check::new("api", State::Up, "answering (no probe recorded yet)"),
        },
    );
    let today = day_of(now);
    let from = today - (HISTORY_DAYS - 1) * DAY_MS;
    let days = db
        .probe_days(from, today + DAY_MS)
        .await
        .unwrap_or_default();
    let mut by: BTreeMap<&str, Vec<ProbeDay>> = BTreeMap::new();
    for (c, d) in &days {
        by.entry(c.as_str()).or_default().push(*d);
    }
    let overall = current.iter().map(|c| c.state).max().unwrap_or(State::Up);
    let components: Vec<Value> = current
        .iter()
        .map(|c| {
            let rows = by.get(c.component.as_str()).cloned().unwrap_or_default();
            let probed: i64 = rows.iter().map(|d| i64::from(d.probed)).sum();
            let down: i64 = rows.iter().map(|d| i64::from(d.down)).sum();
            let history: Vec<Value> = (0..HISTORY_DAYS)
                .map(|i| {
                    let day = from + i * DAY_MS;
                    let d = rows.iter().find(|d| d.day == day);
                    json!({
                        "day": date(day),
                        "probed": d.map_or(0, |d| d.probed),
                        "down": d.map_or(0, |d| d.down),
                        "degraded": d.map_or(0, |d| d.degraded),
                        "uptime_pct": d.and_then(|d| uptime_pct(i64::from(d.probed), i64::from(d.down))),
                    })
                })
                .collect();
            json!({
                "id": c.component,
                "name": c
                    .component
                    .strip_prefix("feeds:")
                    .and_then(|p| names.get(p))
                    .map_or_else(|| display_name(&c.component), |n| format!("{n} feeds")),
                "state": c.state,
                "detail": c.detail,
                "latency_ms": c.latency_ms,
                "uptime_pct_90d": uptime_pct(probed, down),
                "minutes_probed_90d": probed,
                "days": history,
            })
        })
        .collect();
    let replicas: Vec<Value> = beats
        .iter()
        .filter(|b| b.at >= now - ALIVE_MS)
        .map(|b| json!({"component": b.component, "instance": b.instance, "since": date_time(b.started_at), "last_beat_ms_ago": now - b.at}))
        .collect();
    json!({
        "at": date_time(now),
        "overall": overall,
        "components": components,
        "processes": replicas,
        "probes": "each minute by the platform's own alert workers: the API through its public address, the database, alert delivery, each protocol's feeds",
    })
}

fn date(ms: i64) -> String {
    let t = kamiyo_core_models::Timestamp::from_millis(ms).to_string();
    t.get(..10).unwrap_or(&t).to_owned()
}

fn date_time(ms: i64) -> String {
    kamiyo_core_models::Timestamp::from_millis(ms).to_string()
}

/// The bounds `[from, to)` (epoch ms) of a month written `YYYY-MM`.
pub fn month_bounds(month: &str) -> Result<(i64, i64), String> {
    let bad = || format!("month {month:?}: write it YYYY-MM (e.g. 2026-11)");
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(2000..=9999).contains(&y) {
        return Err(bad());
    }
    let start = |y: i32, m: u32| {
        chrono::NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp_millis())
            .ok_or_else(bad)
    };
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Ok((start(y, m)?, start(ny, nm)?))
}

/// The SLA's targets (the Enterprise contract's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SlaTargets {
    /// API availability over the month, per cent.
    pub availability_pct: f64,
    /// Alert delivery (enqueue → accepted by the channel), 99th percentile, milliseconds.
    pub delivery_p99_ms: i64,
}

impl Default for SlaTargets {
    fn default() -> Self {
        Self {
            availability_pct: 99.9,
            delivery_p99_ms: 60_000,
        }
    }
}

/// One tenant's month against the SLA.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaRow {
    /// The tenant.
    pub tenant: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Minutes the API was probed in the month.
    pub api_minutes_probed: i64,
    /// Minutes it was found down.
    pub api_minutes_down: i64,
    /// Availability, per cent (none without probes).
    pub api_availability_pct: Option<f64>,
    /// The target.
    pub availability_target_pct: f64,
    /// The tenant's alerts delivered in the month, the failures, and their latency.
    pub delivery: DeliveryLatency,
    /// The target for the delivery p99 (ms).
    pub delivery_p99_target_ms: i64,
    /// Whether both targets were met (none while either is unmeasured).
    pub met: Option<bool>,
}

impl SlaRow {
    /// The CSV header of [`SlaRow::csv`].
    pub const CSV_HEADER: &'static str = "tenant,month,api_minutes_probed,api_minutes_down,api_availability_pct,availability_target_pct,alerts_delivered,alerts_failed,delivery_p50_ms,delivery_p99_ms,delivery_max_ms,delivery_p99_target_ms,met";

    /// The row as CSV (no field needs quoting: ids, numbers and words).
    pub fn csv(&self) -> String {
        let o = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.tenant,
            self.month,
            self.api_minutes_probed,
            self.api_minutes_down,
            self.api_availability_pct
                .map(|p| format!("{p:.3}"))
                .unwrap_or_default(),
            self.availability_target_pct,
            self.delivery.delivered,
            self.delivery.failed,
            o(self.delivery.p50_ms),
            o(self.delivery.p99_ms),
            o(self.delivery.max_ms),
            self.delivery_p99_target_ms,
            self.met
                .map(|m| if m { "yes" } else { "no" })
                .unwrap_or("unmeasured"),
        )
    }
}

/// Rows as CSV with their header.
pub fn sla_csv(rows: &[SlaRow]) -> String {
    let mut out = String::from(SlaRow::CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&r.csv());
        out.push('\n');
    }
    out
}

/// `tenant`'s SLA report for `month` (`YYYY-MM`): the API's availability from the recorded
/// probes and the tenant's alert-delivery latency from its outbox, against `targets`.
pub async fn sla_report(
    db: &Db,
    tenant: &TenantId,
    month: &str,
    targets: SlaTargets,
) -> Result<SlaRow, DbError> {
    let (from, to) = month_bounds(month).map_err(DbError::Refused)?;
    let days = db.probe_days(from, to).await?;
    let (probed, down) = days
        .iter()
        .filter(|(c, _)| c == "api")
        .fold((0i64, 0i64), |(p, d), (_, r)| {
            (p + i64::from(r.probed), d + i64::from(r.down))
        });
    let delivery = db.delivery_latency(tenant, from, to).await?;
    let availability = uptime_pct(probed, down);
    let met = availability.map(|a| {
        a >= targets.availability_pct
            && delivery.p99_ms.is_none_or(|p| p <= targets.delivery_p99_ms)
    });
    Ok(SlaRow {
        tenant: tenant.to_string(),
        month: month.to_owned(),
        api_minutes_probed: probed,
        api_minutes_down: down,
        api_availability_pct: availability,
        availability_target_pct: targets.availability_pct,
        delivery,
        delivery_p99_target_ms: targets.delivery_p99_ms,
        met,
    })
}

/// Every tenant whose plan has the SLA, for `month` (through the owner's connection, `db`).
pub async fn sla_reports(
    db: &Db,
    tiers: &crate::tiers::TierMatrix,
    month: &str,
    targets: SlaTargets,
) -> Result<Vec<SlaRow>, DbError> {
    let mut rows = Vec::new();
    for t in db.staff_tenants().await? {
        let covered = t
            .plan
            .parse::<crate::tiers::Tier>()
            .is_ok_and(|plan| tiers.is_feature_enabled(plan, crate::tiers::Feature::Sla));
        if let (true, Ok(id)) = (covered, TenantId::parse(&t.tenant_id)) {
            rows.push(sla_report(db, &id, month, targets).await?);
        }
    }
    Ok(rows)
}

/// The last complete month before `now` (epoch ms), `YYYY-MM`.
pub fn previous_month(now: i64) -> String {
    let t = kamiyo_core_models::Timestamp::from_millis(now).to_string();
    let y: i32 = t.get(..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let m: u32 = t.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    format!("{y:04}-{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(component: &str, at: i64, detail: Value) -> HeartbeatRow {
        HeartbeatRow {
            component: component.into(),
            instance: "i-1".into(),
            at,
            started_at: at,
            detail: detail.to_string(),
        }
    }

    #[test]
    fn feeds_follow_the_leader_heartbeat_and_its_feeds() {
        let now = 1_000_000;
        let live = json!({"feeds": [{"feed": "dydx.rest", "state": "LIVE"}, {"feed": "binance", "state": "LIVE"}]});
        let c = feeds_check(
            "dydx",
            &[beat("ingest:dydx", now - 3000, live.clone())],
            now,
        );
        assert_eq!((c.state, c.detail.as_str()), (State::Up, "2 feed(s) live"));
        // The leader's heartbeat too old: down, however good its last report.
        let c = feeds_check(
            "dydx",
            &[beat("ingest:dydx", now - ALIVE_MS - 1, live)],
            now,
        );
        assert_eq!(c.state, State::Down);
        assert!(c.detail.contains("for 6 s"), "{}", c.detail);
        // Another protocol's leader says nothing of this one.
        let c = feeds_check("gmx", &[beat("ingest:dydx", now, json!({}))], now);
        assert_eq!(
            (c.state, c.detail.as_str()),
            (State::Down, "no ingest leader has reported")
        );
        let mixed = json!({"feeds": [{"feed": "dydx.rest", "state": "LIVE"}, {"feed": "binance", "state": "STALE"}]});
        let c = feeds_check("dydx", &[beat("ingest:dydx", now, mixed)], now);
        assert_eq!(
            (c.state, c.detail.as_str()),
            (State::Degraded, "binance STALE")
        );
        let dead = json!({"feeds": [{"feed": "dydx.rest", "state": "DOWN"}]});
        assert_eq!(
            feeds_check("dydx", &[beat("ingest:dydx", now, dead)], now).state,
            State::Down
        );
        let starting = json!({"feeds": []});
        assert_eq!(
            feeds_check("dydx", &[beat("ingest:dydx", now, starting)], now).state,
            State::Degraded
        );
    }

    #[test]
    fn delivery_needs_a_live_worker_and_a_short_backlog() {
        let now = 10_000_000;
        let idle = Backlog {
            due: 0,
            oldest_due_ms: None,
        };
        assert_eq!(delivery_check(idle, &[], now).state, State::Down);
        let w = [beat("workers", now - 1000, json!({}))];
        assert_eq!(delivery_check(idle, &w, now).state, State::Up);
        let late = |ms| Backlog {
            due: 3,
            oldest_due_ms: Some(now - ms),
        };
        assert_eq!(delivery_check(late(59_999), &w, now).state, State::Up);
        assert_eq!(
            delivery_check(late(BACKLOG_DEGRADED_MS), &w, now).state,
            State::Degraded
        );
        let c = delivery_check(late(BACKLOG_DOWN_MS), &w, now);
        assert_eq!(
            (c.state, c.detail.as_str()),
            (
                State::Down,
                "1 worker(s); 3 alert(s) due, the oldest for 300 s"
            )
        );
    }

    #[test]
    fn months_and_uptime() {
        assert_eq!(
            month_bounds("2026-11"),
            Ok((1_793_491_200_000, 1_796_083_200_000))
        );
        // December rolls into the next year; February 2028 has 29 days.
        let (a, b) = month_bounds("2026-12").unwrap();
        assert_eq!((b - a) / DAY_MS, 31);
        let (a, b) = month_bounds("2028-02").unwrap();
        assert_eq!((b - a) / DAY_MS, 29);
        for bad in [
            "2026-13", "2026-1", "26-11", "2026/11", "", "2026-00", "abcd-ef",
        ] {
            assert!(month_bounds(bad).is_err(), "{bad}");
        }
        assert_eq!(uptime_pct(0, 0), None);
        assert_eq!(uptime_pct(1440, 15), Some(98.958));
        assert_eq!(uptime_pct(43_200, 43), Some(99.9));
        assert_eq!(day_of(DAY_MS + 5), DAY_MS);
        assert_eq!(previous_month(1_793_491_200_000), "2026-10");
        assert_eq!(
            previous_month(month_bounds("2027-01").unwrap().0 + 5),
            "2026-12"
        );
    }

    #[test]
    fn sla_rows_as_csv() {
        let row = SlaRow {
            tenant: "acme".into(),
            month: "2026-11".into(),
            api_minutes_probed: 43_200,
            api_minutes_down: 12,
            api_availability_pct: uptime_pct(43_200, 12),
            availability_target_pct: 99.9,
            delivery: DeliveryLatency {
                delivered: 10,
                failed: 1,
                p50_ms: Some(400),
                p99_ms: Some(2100),
                max_ms: Some(2100),
            },
            delivery_p99_target_ms: 60_000,
            met: Some(true),
        };
        let csv = sla_csv(&[row]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
        assert_eq!(
            lines[1],
            "acme,2026-11,43200,12,99.972,99.9,10,1,400,2100,2100,60000,yes"
        );
    }
}
