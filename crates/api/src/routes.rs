//! The HTTP handlers. Every parameter is parsed here with a named, explained error; handlers
//! never panic and answer bad input with 4xx problems.
#![allow(
    unreachable_pub,
    reason = "actix route macros wrap each handler in a public unit struct; the inner fn is what lints"
)]

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use kamiyo_core_models::{
    Coin, Decimal, DeviationSample, EventQuery, EvidenceValue, Incident, IncidentQuery,
    IncidentStatus, Order, Severity, StableId, ThreatType, Timestamp,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::*;
use crate::error::{ApiError, Problem};
use crate::views::JsonObject;
use crate::{ApiState, Scoped};

type Result<T> = std::result::Result<T, ApiError>;

/// Longest window a history endpoint accepts, in hours.
pub const MAX_HOURS: u32 = 8760;
/// Longest window of the chart endpoints (one-minute data: 43,200 points).
pub const MAX_CHART_HOURS: u32 = 720;
/// Points returned by chart endpoints at most.
pub const MAX_POINTS: usize = 2000;
const CHART_READ: u32 = 50_000;

fn parse_hours(v: Option<&str>, default: u32, max: u32) -> Result<u32> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|h| (1..=max).contains(h))
            .ok_or_else(|| ApiError::invalid("hours", format!("an integer from 1 to {max}"))),
    }
}

fn parse_limit(v: Option<&str>, default: u32, max: u32) -> Result<u32> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("an integer from 1 to {max}"))),
    }
}

fn parse_asset(v: Option<&str>) -> Result<Option<Coin>> {
    v.map(|s| {
        // Market names are printable ASCII (the documented pattern).
        Some(s)
            .filter(|s| s.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(())
            .and_then(|s| s.parse::<Coin>().map_err(|_| ()))
            .map_err(|_| ApiError::invalid("asset", "a market name such as BTC, ETH or kPEPE"))
    })
    .transpose()
}

pub(crate) fn parse_protocol(v: Option<&str>) -> Result<Option<kamiyo_core_models::ProtocolId>> {
    v.map(|s| {
        s.parse::<kamiyo_core_models::ProtocolId>().map_err(|_| {
            ApiError::invalid(
                "protocol",
                "a protocol id such as hyperliquid ([a-z0-9][a-z0-9_-]*, at most 32 characters)",
            )
        })
    })
    .transpose()
}

/// The threat types a filter accepts: the built-in ones and those declared in this process.
pub(crate) fn threat_type_names() -> Vec<&'static str> {
    ThreatType::ALL
        .iter()
        .copied()
        .chain(ThreatType::declared())
        .map(ThreatType::as_str)
        .collect()
}

fn parse_since(v: Option<&str>) -> Result<Option<Timestamp>> {
    v.map(|s| {
        // Any RFC 3339 time of years 0000-9999 (what `date-time` allows), or milliseconds.
        Timestamp::parse(s)
            .filter(|t| (-62_167_219_200_000..=253_402_300_799_999).contains(&t.0))
            .ok_or_else(|| {
                ApiError::invalid(
                    "since",
                    "an RFC 3339 time (2025-03-26T15:00:00Z) or milliseconds since the epoch",
                )
            })
    })
    .transpose()
}

/// The start of an `hours` window ending now, never before the caller's history.
fn window_start(state: &Scoped<'_>, hours: u32) -> Timestamp {
    let start = state
        .clock
        .now()
        .plus_millis(-i64::from(hours) * Timestamp::HOUR);
    state.history_floor().map_or(start, |f| start.max(f))
}

/// Evenly thins `v` to at most `n` items, keeping the first and the last.
fn thin<T: Clone>(v: Vec<T>, n: usize) -> Vec<T> {
    if v.len() <= n || n < 2 {
        return v;
    }
    let last = v.len() - 1;
    (0..n).map(|i| v[i * last / (n - 1)].clone()).collect()
}

fn json<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Serves `make`'s body through the micro-cache, keyed by the request's path and query.
async fn cached<T, F, Fut>(state: &Scoped<'_>, req: &HttpRequest, make: F) -> Result<HttpResponse>
where
    T: serde::Serialize,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    // Callers of different partitions (tenants) never share a cached body.
    let key = format!(
        "{}\u{1f}{}?{}",
        state.partition,
        req.path(),
        req.query_string()
    );
    let body = state
        .responses
        .get_or_compute(&key, state.hub.last_seq(), || async {
            let v = make().await?;
            serde_json::to_vec(&v)
                .map(actix_web::web::Bytes::from)
                .map_err(|_| ApiError::Internal)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(body))
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "The process serves requests", body = HealthResponse)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    json(&HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: the database answers and no feed is down.
#[utoipa::path(get, path = "/ready", tag = "service",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, description = "A dependency is unavailable", body = ReadyResponse)))]
#[get("/ready")]
pub async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let mut checks = Vec::new();
    let db = state.probe.check().await;
    checks.push(CheckResponse {
        name: "database".into(),
        ok: db.is_ok(),
        detail: db.err().unwrap_or_default(),
    });
    for f in state.hub.feeds() {
        checks.push(CheckResponse {
            name: format!("feed:{}", f.feed),
            ok: f.state != kamiyo_core_models::FeedState::Down,
            detail: f.detail.clone(),
        });
    }
    let ok = checks.iter().all(|c| c.ok);
    let body = ReadyResponse {
        status: if ok { "ready" } else { "not_ready" }.into(),
        checks,
    };
    if ok {
        json(&body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    let text = state
        .registry
        .as_ref()
        .map(crate::metrics::render)
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// Freshness of every feed.
#[utoipa::path(get, path = "/feeds", tag = "monitoring",
    responses((status = 200, body = FeedsResponse)))]
#[get("/feeds")]
pub async fn feeds(state: web::Data<ApiState>) -> HttpResponse {
    json(&feeds_response(&state))
}

fn feeds_response(state: &ApiState) -> FeedsResponse {
    use kamiyo_core_models::FeedState;
    let all = state.hub.feeds();
    let count = |s: FeedState| all.iter().filter(|f| f.state == s).count();
    FeedsResponse {
        live: count(FeedState::Live),
        stale: count(FeedState::Stale),
        down: count(FeedState::Down),
        feeds: all.iter().map(Into::into).collect(),
    }
}

/// Query of `/security/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Minimum severity: info, low, medium, high, critical.
    pub severity: Option<String>,
    /// Threat type, e.g. oracle_deviation, hlp_loss, large_liquidation.
    pub threat_type: Option<String>,
    /// Market, e.g. ETH.
    pub asset: Option<String>,
    /// Only events at or after this time (RFC 3339 or epoch milliseconds).
    pub since: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 50).
    pub limit: Option<String>,
}

fn parse_cursor(v: Option<&str>) -> Result<Option<i64>> {
    v.map(|c| {
        c.strip_prefix('e')
            .filter(|d| !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<i64>().ok())
            .ok_or_else(|| ApiError::invalid("cursor", "a next_cursor value from a previous page"))
    })
    .transpose()
}

/// Security events (incident lifecycle steps), newest first, with cursor pagination.
#[utoipa::path(get, path = "/security/events", tag = "security", params(EventsParams),
    responses(
        (status = 200, body = EventsPage),
        (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/events")]
pub async fn events(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<EventsParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    let mut query = events_query(&q)?;
    query.protocol = state.protocol(q.protocol.as_deref())?;
    query.since = state.since(query.since);
    let page = state
        .views
        .events
        .query(state.incidents.as_ref(), state.hub.last_seq(), &query)
        .await?;
    let mut body = JsonObject::new().array("events", page.iter().map(|e| &e.json[..]));
    if let (true, Some(e)) = (page.len() == query.limit as usize, page.last()) {
        body = body.value("next_cursor", &format!("e{}", e.seq))?;
    }
    Ok(json_bytes(body.finish()))
}

/// Query of `/security/log`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Entries after this `seq` (default 0: from the first).
    pub after: Option<String>,
    /// Page size, 1–1000 (default 500).
    pub limit: Option<String>,
}

/// The event log: an append-only SHA-256 chain with one entry per stored security event, oldest
/// first, and the current head. Entries carry no event content (digests and times only) and
/// cover every protocol; they outlive the events retention prunes. Keep a head you have seen:
/// every entry before it can then be checked against it, and each event against its entry.
#[utoipa::path(get, path = "/security/log", tag = "security", params(LogParams),
    responses(
        (status = 200, body = LogPage),
        (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/log")]
pub async fn event_log(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<LogParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    let after = q
        .after
        .as_deref()
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::invalid("after", "a non-negative integer (a seq)"))
        })
        .transpose()?
        .unwrap_or(0);
    let limit = parse_limit(q.limit.as_deref(), 500, 1000)?;
    // The head first: every entry of the page is then at or before it.
    let head = state.incidents.event_log_head().await?;
    let entries = state.incidents.event_log(after, limit).await?;
    let next_after = entries
        .last()
        .filter(|_| entries.len() == limit as usize)
        .map(|e| e.seq);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(LogPage {
            entries: entries.iter().map(Into::into).collect(),
            head: head.as_ref().map(Into::into),
            next_after,
        }))
}

/// A JSON body that is already encoded.
fn json_bytes(body: actix_web::web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(body)
}

fn events_query(q: &EventsParams) -> Result<EventQuery> {
    let min_severity = q
        .severity
        .as_deref()
        .map(|s| {
            s.parse::<Severity>().map_err(|_| {
                ApiError::invalid("severity", "one of info, low, medium, high, critical")
            })
        })
        .transpose()?;
    let threat_type = q
        .threat_type
        .as_deref()
        .map(|s| {
            s.parse::<ThreatType>().map_err(|_| {
                ApiError::invalid(
                    "threat_type",
                    format!("one of {}", threat_type_names().join(", ")),
                )
            })
        })
        .transpose()?;
    Ok(EventQuery {
        protocol: None,
        min_severity,
        threat_type,
        asset: parse_asset(q.asset.as_deref())?,
        since: parse_since(q.since.as_deref())?,
        before_seq: parse_cursor(q.cursor.as_deref())?,
        after_seq: None,
        order: Order::Desc,
        limit: parse_limit(q.limit.as_deref(), 50, 1000)?,
    })
}

/// Query of `/security/incidents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentsParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// `open` or `resolved`.
    pub status: Option<String>,
    /// Market.
    pub asset: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<String>,
}

/// Incidents, most recently seen first.
#[utoipa::path(get, path = "/security/incidents", tag = "security", params(IncidentsParams),
    responses((status = 200, body = IncidentsPage), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/incidents")]
pub async fn incidents(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<IncidentsParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<IncidentStatus>()
                .map_err(|_| ApiError::invalid("status", "open or resolved"))
        })
        .transpose()?;
    let query = IncidentQuery {
        protocol: state.protocol(q.protocol.as_deref())?,
        status,
        asset: parse_asset(q.asset.as_deref())?,
        seen_since: state.history_floor(),
        limit: parse_limit(q.limit.as_deref(), 50, 500)?,
    };
    sync_incidents(&state).await?;
    if let Some(items) = state.views.incidents.page(&query) {
        let body = JsonObject::new().array("incidents", items.iter().map(|i| &i[..]));
        return Ok(json_bytes(body.finish()));
    }
    Ok(json(&incidents_from_store(&state, &query).await?))
}

/// Brings the caller's event and incident views up to the store.
async fn sync_incidents(state: &Scoped<'_>) -> Result<()> {
    let views = &state.views;
    views
        .events
        .sync(state.incidents.as_ref(), state.hub.last_seq())
        .await?;
    views
        .incidents
        .sync(
            state.incidents.as_ref(),
            state.operator.as_ref(),
            &views.events,
        )
        .await?;
    Ok(())
}

/// `/security/incidents` read from the store (a page older than the incidents held in memory).
async fn incidents_from_store(state: &Scoped<'_>, query: &IncidentQuery) -> Result<IncidentsPage> {
    let list = state.incidents.incidents(query).await?;
    let ids: Vec<StableId> = list
        .iter()
        .filter(|i| i.status == kamiyo_core_models::IncidentStatus::Open)
        .map(|i| i.id.clone())
        .collect();
    let actions = state.operator.incident_actions(&ids).await?;
    let acks = kamiyo_core_models::acknowledgements(&actions);
    let mut page: Vec<IncidentResponse> = list.iter().map(Into::into).collect();
    for (r, i) in page.iter_mut().zip(&list) {
        if let Some(a) = acks.get(&i.id) {
            r.acknowledge(a);
        }
    }
    Ok(IncidentsPage { incidents: page })
}

/// Query with a window.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Window in hours, 1–720 (default 24).
    pub hours: Option<String>,
}

/// The HLP vault: account value, PnL change and drawdown over the window, and its history.
#[utoipa::path(get, path = "/security/hlp-vault", tag = "security", params(WindowParams),
    responses((status = 200, body = HlpVaultResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/hlp-vault")]
pub async fn hlp_vault(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<WindowParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    cached(&state, &req, || hlp_vault_body(&state, &q)).await
}

async fn hlp_vault_body(state: &Scoped<'_>, q: &WindowParams) -> Result<HlpVaultResponse> {
    let hours = parse_hours(q.hours.as_deref(), 24, MAX_CHART_HOURS)?;
    let protocol = state.protocol(q.protocol.as_deref())?;
    let since = window_start(state, hours);
    let now = state.clock.now();
    state
        .views
        .market
        .sync(state.market.clone(), state.config.hlp_vault, now)
        .await?;
    let points = match state
        .views
        .market
        .vault_points(protocol.as_ref(), since, now)
    {
        Some(p) => p,
        None => {
            state
                .market
                .vault_points(
                    protocol.as_ref(),
                    Some(state.config.hlp_vault),
                    since,
                    CHART_READ,
                )
                .await?
        }
    };
    let (change, dd, _) = crate::views::vault_stats(&points);
    Ok(HlpVaultResponse {
        vault: state.config.hlp_vault.to_string(),
        hours,
        account_value: points
            .last()
            .map(|p| p.account_value.normalize().to_string()),
        pnl_change: change.map(|d| d.normalize().to_string()),
        drawdown_pct: dd.map(|d| d.normalize().to_string()),
        points: thin(points, MAX_POINTS).iter().map(Into::into).collect(),
    })
}

/// Query of `/security/oracle-deviations`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviationParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Market; required for `samples` (without it only `latest` is filled).
    pub asset: Option<String>,
    /// Window in hours, 1–720 (default 24).
    pub hours: Option<String>,
}

/// The latest sample per (asset, kind), largest absolute deviation first.
fn latest_per_asset(samples: &[DeviationSample]) -> Vec<DeviationResponse> {
    let mut latest: BTreeMap<(String, &str), &DeviationSample> = BTreeMap::new();
    for s in samples {
        let k = (s.coin.to_string(), s.kind.as_str());
        if latest.get(&k).is_none_or(|o| s.time >= o.time) {
            latest.insert(k, s);
        }
    }
    let mut v: Vec<&DeviationSample> = latest.into_values().collect();
    v.sort_by_key(|d| std::cmp::Reverse(d.deviation_pct.abs()));
    v.into_iter().map(Into::into).collect()
}

/// Oracle against the outside exchanges (and mark against oracle): latest per asset, and one
/// asset's history.
#[utoipa::path(get, path = "/security/oracle-deviations", tag = "security", params(DeviationParams),
    responses((status = 200, body = OracleDeviationsResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/oracle-deviations")]
pub async fn oracle_deviations(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<DeviationParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    cached(&state, &req, || oracle_deviations_body(&state, &q)).await
}

async fn oracle_deviations_body(
    state: &Scoped<'_>,
    q: &DeviationParams,
) -> Result<OracleDeviationsResponse> {
    let hours = parse_hours(q.hours.as_deref(), 24, MAX_CHART_HOURS)?;
    let asset = parse_asset(q.asset.as_deref())?;
    let protocol = state.protocol(q.protocol.as_deref())?;
    let recent = state
        .market
        .deviations(
            protocol.as_ref(),
            asset.as_ref(),
            state.clock.now().plus_millis(-15 * Timestamp::MINUTE),
            5000,
        )
        .await?;
    let samples = match &asset {
        Some(a) => {
            state
                .market
                .deviations(
                    protocol.as_ref(),
                    Some(a),
                    window_start(state, hours),
                    CHART_READ,
                )
                .await?
        }
        None => Vec::new(),
    };
    Ok(OracleDeviationsResponse {
        hours,
        latest: latest_per_asset(&recent),
        samples: thin(samples, MAX_POINTS).iter().map(Into::into).collect(),
    })
}

/// Query of `/security/liquidations`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiquidationParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Market.
    pub asset: Option<String>,
    /// Window in hours, 1–8760 (default 24).
    pub hours: Option<String>,
    /// 1–1000 (default 200).
    pub limit: Option<String>,
}

/// Query of `/security/positions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PositionsParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Market.
    pub asset: Option<String>,
    /// Positions seen in the last hours, 1–720 (default 24).
    pub hours: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<String>,
}

/// The watched accounts' positions (the largest traders and the HLP vaults), latest per account
/// and market, largest notional first.
#[utoipa::path(get, path = "/security/positions", tag = "security", params(PositionsParams),
    responses((status = 200, body = PositionsResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/positions")]
pub async fn positions(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<PositionsParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    cached(&state, &req, || positions_body(&state, &q)).await
}

async fn positions_body(state: &Scoped<'_>, q: &PositionsParams) -> Result<PositionsResponse> {
    let hours = parse_hours(q.hours.as_deref(), 24, 720)?;
    let limit = parse_limit(q.limit.as_deref(), 50, 500)?;
    let asset = parse_asset(q.asset.as_deref())?;
    let list = state
        .market
        .positions(
            state.protocol(q.protocol.as_deref())?.as_ref(),
            None,
            window_start(state, hours),
            5000,
        )
        .await?;
    let hlp = state.config.hlp_vault;
    let found: Vec<PositionResponse> = list
        .iter()
        .filter(|p| asset.as_ref().is_none_or(|a| p.coin == *a))
        .filter(|p| !p.szi.is_zero())
        .take(limit as usize)
        .map(|p| PositionResponse::of(p, p.user == hlp))
        .collect();
    Ok(PositionsResponse {
        hours,
        positions: found,
    })
}

/// Liquidation and auto-deleveraging fills, newest first.
#[utoipa::path(get, path = "/security/liquidations", tag = "security", params(LiquidationParams),
    responses((status = 200, body = LiquidationsResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/liquidations")]
pub async fn liquidations(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<LiquidationParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    cached(&state, &req, || liquidations_body(&state, &q)).await
}

async fn liquidations_body(
    state: &Scoped<'_>,
    q: &LiquidationParams,
) -> Result<LiquidationsResponse> {
    let hours = parse_hours(q.hours.as_deref(), 24, MAX_HOURS)?;
    let limit = parse_limit(q.limit.as_deref(), 200, 1000)?;
    let asset = parse_asset(q.asset.as_deref())?;
    let list = state
        .market
        .liquidations(
            state.protocol(q.protocol.as_deref())?.as_ref(),
            asset.as_ref(),
            window_start(state, hours),
            limit,
        )
        .await?;
    let total: Decimal = list.iter().map(|l| l.notional).sum();
    Ok(LiquidationsResponse {
        hours,
        count: list.len(),
        total_notional: total.normalize().to_string(),
        adl_count: list.iter().filter(|l| l.is_adl).count(),
        liquidations: list.iter().map(Into::into).collect(),
    })
}

/// Query of `/exploits`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExploitsParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Window in hours, 1–8760 (default 24).
    pub hours: Option<String>,
    /// Exploit database: the attacked protocol's name contains this (any case, spaces and
    /// "finance"/"protocol" ignored).
    pub name: Option<String>,
    /// Exploit database: chain (as the lists name it, e.g. Ethereum).
    pub chain: Option<String>,
    /// Exploit database: category.
    pub category: Option<String>,
    /// Exploit database: at least this loss in USD.
    pub min_amount: Option<String>,
    /// Exploit database: the last this many days (1–36500; default all).
    pub days: Option<String>,
    /// Exploit database: page size, 1–500 (default 50).
    pub limit: Option<String>,
    /// Exploit database: rows to skip, 0–100000 (default 0).
    pub offset: Option<String>,
}

const AMOUNT_KEYS: &[&str] = &[
    "loss_usd",
    "liquidated_notional_usd",
    "window_notional_usd",
    "adl_notional_usd",
    "notional_usd",
    "position_notional_usd",
    "pnl_24h_usd",
];

fn amount_usd(i: &Incident) -> Option<String> {
    AMOUNT_KEYS.iter().find_map(|k| match i.evidence.0.get(*k) {
        Some(EvidenceValue::Decimal(d)) => Some(d.abs().round_dp(2).normalize().to_string()),
        Some(EvidenceValue::Int(n)) => Some(n.unsigned_abs().to_string()),
        _ => None,
    })
}

/// Exploit-class incidents (severity high or critical) seen in the window.
#[utoipa::path(get, path = "/exploits", tag = "security", params(ExploitsParams),
    responses((status = 200, body = ExploitsResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/exploits")]
pub async fn exploits(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<ExploitsParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    cached(&state, &req, || exploits_body(&state, &q)).await
}

async fn exploits_body(state: &Scoped<'_>, q: &ExploitsParams) -> Result<ExploitsResponse> {
    let hours = parse_hours(q.hours.as_deref(), 24, MAX_HOURS)?;
    let evs = state
        .incidents
        .events(&EventQuery {
            protocol: state.protocol(q.protocol.as_deref())?,
            min_severity: Some(Severity::High),
            since: Some(window_start(state, hours)),
            order: Order::Desc,
            limit: 1000,
            ..EventQuery::default()
        })
        .await?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for e in &evs {
        if out.len() >= 100 || !seen.insert(e.event.incident_id.clone()) {
            continue;
        }
        if let Some(i) = state.incidents.incident(&e.event.incident_id).await? {
            out.push(ExploitResponse {
                id: i.id.to_string(),
                protocol: i.protocol.to_string(),
                category: i.threat_type.as_str().into(),
                severity: i.peak_severity.as_str().into(),
                asset: i.asset.as_ref().map(ToString::to_string),
                title: i.title.clone(),
                amount_usd: amount_usd(&i),
                status: i.status.as_str().into(),
                first_seen: i.first_seen.to_rfc3339(),
                last_seen: i.last_seen.to_rfc3339(),
            });
        }
    }
    Ok(ExploitsResponse {
        hours,
        count: out.len(),
        exploits: out,
        database: exploit_db_page(state, q).await?,
    })
}

/// The exploit database's page for `q` (none when the host keeps no database).
async fn exploit_db_page(state: &Scoped<'_>, q: &ExploitsParams) -> Result<Option<ExploitDbPage>> {
    let Some(db) = &state.exploit_db else {
        return Ok(None);
    };
    let text = |v: &Option<String>, name: &'static str| -> Result<Option<String>> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) if s.len() <= 64 && !s.chars().any(char::is_control) => Ok(Some(s.to_owned())),
            Some(_) => Err(ApiError::invalid(name, "1 to 64 printable characters")),
        }
    };
    let number =
        |v: &Option<String>, name: &'static str, lo: i64, hi: i64| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    s.parse::<i64>()
                        .ok()
                        .filter(|n| (lo..=hi).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(name, format!("a whole number from {lo} to {hi}"))
                        })
                })
                .transpose()
        };
    let category = q
        .category
        .as_deref()
        .map(|c| {
            c.parse::<kamiyo_core_models::ExploitCategory>()
                .map_err(|_| ApiError::invalid("category", "an exploit category (see the schema)"))
        })
        .transpose()?;
    let limit = number(&q.limit, "limit", 1, 500)?.unwrap_or(50);
    let offset = number(&q.offset, "offset", 0, 100_000)?.unwrap_or(0);
    let days = number(&q.days, "days", 1, 36_500)?;
    let query = kamiyo_core_models::ExploitQuery {
        from: days.map(|d| Timestamp(state.clock.now().0 - d * Timestamp::DAY)),
        to: None,
        protocol: text(&q.name, "name")?,
        chain: text(&q.chain, "chain")?,
        category,
        min_loss_usd: number(&q.min_amount, "min_amount", 0, i64::MAX)?,
        limit: u32::try_from(limit).unwrap_or(50),
        offset: u32::try_from(offset).unwrap_or(0),
    };
    let page = db.exploits(&query).await?;
    Ok(Some(ExploitDbPage {
        total: page.total,
        offset: query.offset,
        limit: query.limit,
        items: page.items.iter().map(Into::into).collect(),
    }))
}

fn severity_points(s: Severity) -> u32 {
    match s {
        Severity::Critical => 85,
        Severity::High => 65,
        Severity::Medium => 40,
        Severity::Low => 20,
        Severity::Info => 5,
    }
}

/// What the risk summary is computed from (see [`risk`]).
#[derive(Debug, Clone, Copy)]
pub struct RiskInputs<'a> {
    /// Open incidents.
    pub open: &'a [Incident],
    /// Incidents resolved in the last 24 hours.
    pub resolved: &'a [Incident],
    /// HLP PnL change over 24 hours and the latest account value.
    pub hlp: Option<(Decimal, Decimal)>,
    /// Feeds DOWN, and feeds known.
    pub feeds_down: usize,
    /// Feeds reported at all.
    pub feeds: usize,
    /// Now.
    pub now: Timestamp,
}

/// Points of an HLP loss over 24 h: by its share of the account value (≥ 5 % 80, ≥ 2 % 60,
/// ≥ 1 % 40, ≥ 0.25 % 20) or its size ($10M 60, $1M 30), whichever is higher.
fn hlp_loss_points(loss: Decimal, value: Decimal) -> u32 {
    let share = if value > Decimal::ZERO {
        loss / value * Decimal::ONE_HUNDRED
    } else {
        Decimal::ZERO
    };
    let by_share = [(5, 80), (2, 60), (1, 40)]
        .iter()
        .find(|(p, _)| share >= Decimal::from(*p))
        .map_or(
            if share >= Decimal::new(25, 2) { 20 } else { 0 },
            |(_, pts)| *pts,
        );
    let by_size = if loss >= Decimal::from(10_000_000) {
        60
    } else if loss >= Decimal::from(1_000_000) {
        30
    } else {
        0
    };
    by_share.max(by_size)
}

/// The overall market risk, 0–100, from what happened to the market — not from kamiyo's own
/// health: the highest open market incident (critical 85, high 65, medium 40, low 20, info 5)
/// plus 5 per further one; incidents resolved in the last 24 hours at 60 % of their peak,
/// fading linearly over the day; an HLP loss over 24 hours ([`hlp_loss_points`]). The highest
/// component sets the score. Feed-health incidents do not raise it: when every feed is down
/// the level is `unknown` (nothing can be assessed), when some are, the reasons say so.
pub fn risk(r: &RiskInputs<'_>) -> RiskResponse {
    let market = |i: &&Incident| i.threat_type != ThreatType::FeedHealth;
    let mut reasons = Vec::new();
    let mut score = 0u32;
    let open: Vec<&Incident> = r.open.iter().filter(market).collect();
    if let Some(top) = open.iter().max_by_key(|i| i.severity) {
        let more = u32::try_from(open.len().saturating_sub(1)).unwrap_or(u32::MAX);
        score = severity_points(top.severity).saturating_add(more.saturating_mul(5));
        reasons.push(format!(
            "open {} {}: {}",
            top.severity.as_str(),
            top.threat_type.as_str(),
            top.title
        ));
        if more > 0 {
            reasons.push(format!("{more} more open incident(s)"));
        }
    }
    let recent = r
        .resolved
        .iter()
        .filter(market)
        .filter_map(|i| {
            let age = r.now.millis_since(i.resolved_at?);
            let fade = 1.0 - (age.max(0) as f64 / Timestamp::DAY as f64);
            (fade > 0.0).then(|| {
                let pts = (f64::from(severity_points(i.peak_severity)) * 0.6 * fade).round() as u32;
                (pts, i)
            })
        })
        .max_by_key(|(pts, _)| *pts);
    if let Some((pts, i)) = recent
        && pts > 0
    {
        if pts > score {
            score = pts;
        }
        reasons.push(format!(
            "resolved {} ago, peak {} {}: {}",
            kamiyo_core_models::units::duration_ms(
                r.now.millis_since(i.resolved_at.unwrap_or(r.now))
            ),
            i.peak_severity.as_str(),
            i.threat_type.as_str(),
            i.title
        ));
    }
    if let Some((change, value)) = r.hlp
        && change < Decimal::ZERO
    {
        let pts = hlp_loss_points(-change, value);
        if pts > 0 {
            score = score.max(pts);
            reasons.push(format!(
                "HLP vault lost {} in 24 h",
                kamiyo_core_models::units::usd(-change)
            ));
        }
    }
    let score = score.min(100);
    let blind = r.feeds > 0 && r.feeds_down == r.feeds;
    let level = if blind {
        "unknown"
    } else {
        match score {
            0..25 => "low",
            25..50 => "medium",
            50..80 => "high",
            _ => "critical",
        }
    };
    if blind {
        reasons.insert(
            0,
            "every feed is down: the market cannot be assessed".into(),
        );
    } else if r.feeds_down > 0 {
        reasons.push(format!(
            "{} of {} feeds down: monitoring is degraded",
            r.feeds_down, r.feeds
        ));
    }
    RiskResponse {
        score,
        level: level.into(),
        reasons,
    }
}

/// Everything the dashboard's first paint needs, in one call.
#[utoipa::path(get, path = "/security/dashboard", tag = "security", params(DashboardParams),
    responses((status = 200, body = DashboardResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/security/dashboard")]
pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<DashboardParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    let protocol = state.protocol(q.protocol.as_deref())?;
    Ok(json_bytes(dashboard_body(&state, protocol.as_ref()).await?))
}

/// Query of `/security/dashboard`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DashboardParams {
    /// Only this protocol (e.g. hyperliquid); every protocol when absent.
    pub protocol: Option<String>,
}

async fn dashboard_body(
    state: &Scoped<'_>,
    protocol: Option<&kamiyo_core_models::ProtocolId>,
) -> Result<actix_web::web::Bytes> {
    let now = state.clock.now();
    let views = &state.views;
    sync_incidents(state).await?;
    views
        .market
        .sync(state.market.clone(), state.config.hlp_vault, now)
        .await?;
    let query = |status| IncidentQuery {
        protocol: protocol.cloned(),
        status: Some(status),
        asset: None,
        seen_since: state.history_floor(),
        limit: 50,
    };
    let (open, open_json): (Vec<Incident>, Vec<actix_web::web::Bytes>) =
        match views.incidents.list(&query(IncidentStatus::Open)) {
            Some(v) => v
                .iter()
                .map(|i| (i.incident.clone(), i.json.clone()))
                .unzip(),
            None => {
                let list = state
                    .incidents
                    .incidents(&query(IncidentStatus::Open))
                    .await?;
                let json = list
                    .iter()
                    .map(|i| serde_json::to_vec(&IncidentResponse::from(i)).map(Into::into))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| ApiError::Internal)?;
                (list, json)
            }
        };
    let resolved: Vec<Incident> = match views.incidents.list(&query(IncidentStatus::Resolved)) {
        Some(v) => v.iter().map(|i| i.incident.clone()).collect(),
        None => {
            state
                .incidents
                .incidents(&query(IncidentStatus::Resolved))
                .await?
        }
    }
    .into_iter()
    .filter(|i| {
        i.resolved_at
            .is_some_and(|t| now.millis_since(t) < Timestamp::DAY)
    })
    .collect();
    let recent = views
        .events
        .query(
            state.incidents.as_ref(),
            state.hub.last_seq(),
            &EventQuery {
                protocol: protocol.cloned(),
                since: state.history_floor(),
                limit: 20,
                ..EventQuery::default()
            },
        )
        .await?;
    let m = views.market.figures(protocol, now);
    let (change, dd, last_value) = m.vault;
    let mut oracle: Vec<DeviationResponse> = latest_per_asset(&m.deviations)
        .into_iter()
        .filter(|d| d.kind == "oracle_vs_reference")
        .collect();
    oracle.truncate(10);
    let fr = feeds_response(state);
    let last_event_id = recent
        .first()
        .map_or(0, |e| e.seq)
        .max(state.hub.last_seq());
    let risk = risk(&RiskInputs {
        open: &open,
        resolved: &resolved,
        hlp: change.zip(last_value),
        feeds_down: fr.down,
        feeds: fr.feeds.len(),
        now,
    });
    let hlp = HlpSummary {
        account_value: last_value.map(|v| v.normalize().to_string()),
        pnl_24h: change.map(|d| d.normalize().to_string()),
        drawdown_pct: dd.map(|d| d.normalize().to_string()),
    };
    let (count, total, adl_count) = m.liquidations;
    let liq_summary = LiquidationSummary {
        count,
        total_notional: total.normalize().to_string(),
        adl_count,
    };
    // `DashboardResponse`, member by member, with the JSON the views hold as it is.
    let body = JsonObject::new()
        .value("generated_at", &now.to_rfc3339())?
        .value("risk", &risk)?
        .array("open_incidents", open_json.iter().map(|j| &j[..]))
        .array("recent_events", recent.iter().map(|e| &e.json[..]))
        .value("hlp", &hlp)?
        .value("oracle", &oracle)?
        .value("liquidations_24h", &liq_summary)?
        .value("feeds", &fr.feeds)?
        .value("last_event_id", &last_event_id)?;
    Ok(body.finish())
}

/// Anything else: a problem, not actix's empty 404.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse> {
    // A documented path asked with another method: 405 with the methods it has.
    let methods = crate::docs::methods_of(req.path());
    if !methods.is_empty() && !methods.contains(&req.method().as_str()) {
        let allow = methods.join(", ");
        let p = ApiError::MethodNotAllowed(format!(
            "{} {} is not supported; this path answers {allow}",
            req.method(),
            req.path()
        ));
        let mut r = actix_web::ResponseError::error_response(&p);
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
            r.headers_mut().insert(actix_web::http::header::ALLOW, v);
        }
        return Ok(r);
    }
    Err(ApiError::NotFound(format!(
        "no route {} {}; see /docs",
        req.method(),
        req.path()
    )))
}

/// Query of `/alerts/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// `pending`, `delivered`, `failed` or `suppressed`.
    pub status: Option<String>,
    /// Only alerts enqueued at or after this time (RFC 3339 or epoch milliseconds; default: the
    /// last 24 hours).
    pub since: Option<String>,
    /// 1–1000 (default 200).
    pub limit: Option<String>,
}

/// The alert delivery log: each alert per channel with its status, attempts, latency and last
/// error, and per-channel figures.
#[utoipa::path(get, path = "/alerts/deliveries", tag = "alerts", params(DeliveriesParams),
    responses((status = 200, body = DeliveriesResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/alerts/deliveries")]
pub async fn deliveries(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<DeliveriesParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    state.operator_state()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            kamiyo_core_models::OutboxStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "one of pending, delivered, failed, suppressed")
            })
        })
        .transpose()?;
    let channel = q
        .channel
        .as_deref()
        .map(|c| {
            if !c.is_empty()
                && c.len() <= 64
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                Ok(c.to_owned())
            } else {
                Err(ApiError::invalid(
                    "channel",
                    "a channel name (letters, digits, - and _)",
                ))
            }
        })
        .transpose()?;
    let since = parse_since(q.since.as_deref())?.unwrap_or_else(|| window_start(&state, 24));
    let limit = parse_limit(q.limit.as_deref(), 200, 1000)?;
    let protocol = state.protocol(q.protocol.as_deref())?;
    let list = state
        .outbox
        .deliveries(&kamiyo_core_models::DeliveryQuery {
            channel: channel.clone(),
            status,
            since: Some(since),
            incident: None,
            protocol: protocol.clone(),
            limit,
        })
        .await?;
    // The per-channel figures cover the whole window (up to SUMMARY_ROWS entries), not the page.
    let all = if list.len() < limit as usize {
        list.clone()
    } else {
        state
            .outbox
            .deliveries(&kamiyo_core_models::DeliveryQuery {
                channel,
                status,
                since: Some(since),
                incident: None,
                protocol,
                limit: SUMMARY_ROWS,
            })
            .await?
    };
    let mut by: std::collections::BTreeMap<&str, Vec<&kamiyo_core_models::OutboxEntry>> =
        std::collections::BTreeMap::new();
    for e in &all {
        by.entry(e.channel.as_str()).or_default().push(e);
    }
    let channels = by
        .into_iter()
        .map(|(name, es)| channel_summary(name, &es))
        .collect();
    Ok(json(&DeliveriesResponse {
        channels,
        deliveries: list.iter().map(Into::into).collect(),
    }))
}

/// Most delivery-log entries the per-channel figures of `/alerts/deliveries` are computed over.
pub const SUMMARY_ROWS: u32 = 100_000;

fn channel_summary(name: &str, es: &[&kamiyo_core_models::OutboxEntry]) -> ChannelSummary {
    use kamiyo_core_models::OutboxStatus as S;
    let count = |s: S| es.iter().filter(|e| e.status == s).count();
    let delivered: Vec<_> = es.iter().filter(|e| e.status == S::Delivered).collect();
    let mut lat: Vec<i64> = delivered
        .iter()
        .filter_map(|e| e.delivered_at.map(|t| t.0 - e.created_at.0))
        .collect();
    lat.sort_unstable();
    let pct =
        |p: f64| (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * p).round() as usize]);
    ChannelSummary {
        channel: name.to_owned(),
        delivered: delivered.len(),
        pending: count(S::Pending),
        failed: count(S::Failed),
        suppressed: count(S::Suppressed),
        mean_attempts: (!delivered.is_empty()).then(|| {
            delivered.iter().map(|e| f64::from(e.attempts)).sum::<f64>() / delivered.len() as f64
        }),
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
    }
}

/// Query of `/ml/anomalies`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnomaliesParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// Market.
    pub asset: Option<String>,
    /// 1–1000 (default 100).
    pub limit: Option<String>,
}

/// The anomaly model and its recent detections.
#[utoipa::path(get, path = "/ml/anomalies", tag = "ml", params(AnomaliesParams),
    responses((status = 200, body = AnomaliesResponse), (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/ml/anomalies")]
pub async fn ml_anomalies(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<AnomaliesParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    let limit = parse_limit(q.limit.as_deref(), 100, 1000)?;
    let query = EventQuery {
        protocol: state.protocol(q.protocol.as_deref())?,
        threat_type: Some(kamiyo_core_models::ThreatType::MlAnomaly),
        asset: parse_asset(q.asset.as_deref())?,
        // A caller with a history window sees anomalies within it, as it sees events.
        since: state.since(None),
        order: Order::Desc,
        limit,
        ..EventQuery::default()
    };
    let found = state
        .views
        .events
        .query(state.incidents.as_ref(), state.hub.last_seq(), &query)
        .await?;
    let body = JsonObject::new()
        .value("model", &model_info(&state))?
        .array("anomalies", found.iter().map(|e| &e.json[..]));
    Ok(json_bytes(body.finish()))
}

/// What `/ml/anomalies` says of the loaded model.
fn model_info(state: &ApiState) -> Option<ModelInfo> {
    state.anomaly_model.as_ref().map(|m| ModelInfo {
        model: "isolation_forest".into(),
        trained_on: m.trained_on.clone(),
        window: [
            Timestamp(m.window.0).to_rfc3339(),
            Timestamp(m.window.1).to_rfc3339(),
        ],
        rows: m.rows,
        threshold: m.threshold,
        threshold_quantile: m.threshold_quantile,
        features: m.features.names.clone(),
        feature_version: m.features.version,
        bar_secs: m.bar_ms / 1000,
        data_hash: m.data_hash.clone(),
    })
}

/// Query of `/ml/forecast`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// Protocol, e.g. hyperliquid.
    pub protocol: Option<String>,
    /// `hlp_pnl` (the only series today).
    pub series: Option<String>,
    /// Hours of history to fit, 48–2160 (default 720).
    pub hours: Option<String>,
}

/// The 24-hour forecast of the HLP vault's PnL: ARIMA with the order chosen by AIC, fitted on
/// hourly values, with 95 % prediction intervals.
#[utoipa::path(get, path = "/ml/forecast", tag = "ml", params(ForecastParams),
    responses((status = 200, body = ForecastResponse), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Too little history yet", body = Problem, content_type = "application/problem+json")))]
#[get("/ml/forecast")]
pub async fn ml_forecast(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<ForecastParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    Ok(json_bytes(forecast_body(&state, &q).await?))
}

async fn forecast_body(state: &Scoped<'_>, q: &ForecastParams) -> Result<actix_web::web::Bytes> {
    if q.series.as_deref().is_some_and(|s| s != "hlp_pnl") {
        return Err(ApiError::invalid("series", "hlp_pnl"));
    }
    let hours = match q.hours.as_deref() {
        None => 720,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|h| (48..=2160).contains(h))
            .ok_or_else(|| ApiError::invalid("hours", "an integer from 48 to 2160"))?,
    };
    let protocol = state.protocol(q.protocol.as_deref())?;
    let now = state.clock.now();
    let since = window_start(state, u32::try_from(hours).unwrap_or(u32::MAX));
    state
        .views
        .market
        .sync(state.market.clone(), state.config.hlp_vault, now)
        .await?;
    // The view holds the vault's last 90 days, the longest window.
    let (hourly, fingerprint) = state
        .views
        .market
        .hourly_pnl(protocol.as_ref(), since, now)
        .ok_or(ApiError::Internal)?;
    let key = (protocol, hours);
    if let Some(body) = state.views.forecasts.get(&key, fingerprint) {
        return Ok(body);
    }
    let y: Vec<f64> = hourly.iter().map(|p| p.1).collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let fitted = tokio::task::spawn_blocking(move || kamiyo_ml::arima::risk::forecast(&y, threads))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| ApiError::InsufficientData(e.to_string()))?;
    let (model, f) = (&fitted.model, &fitted.forecast);
    let (last_t, last_v) = hourly[hourly.len() - 1];
    let point = |h: usize| ForecastPoint {
        time: Timestamp(last_t + (h as i64 + 1) * Timestamp::HOUR).to_rfc3339(),
        mean: f.mean[h],
        lower: f.lower[h],
        upper: f.upper[h],
    };
    let response = ForecastResponse {
        series: "hlp_pnl".into(),
        history_hours: hourly.len(),
        order: [model.p, model.d, model.q],
        aic: model.aic,
        last_time: Timestamp(last_t).to_rfc3339(),
        last_value: last_v,
        change_24h: {
            let (mean, lower, upper) = fitted.change();
            ForecastPoint {
                time: Timestamp(last_t + 24 * Timestamp::HOUR).to_rfc3339(),
                mean,
                lower,
                upper,
            }
        },
        points: (0..24).map(point).collect(),
    };
    let body: actix_web::web::Bytes = serde_json::to_vec(&response)
        .map_err(|_| ApiError::Internal)?
        .into();
    state.views.forecasts.put(key, fingerprint, body.clone());
    Ok(body)
}

#[cfg(test)]
mod risk_tests {
    use kamiyo_core_models::{Evidence, IncidentKey};

    use super::*;

    fn incident(t: ThreatType, sev: Severity, resolved_at: Option<i64>) -> Incident {
        let key = IncidentKey::new(t.as_str(), &["X"]);
        Incident {
            protocol: Default::default(),
            id: Incident::derive_id(&key, Timestamp(0)),
            key,
            detector: "test".into(),
            threat_type: t,
            severity: sev,
            peak_severity: sev,
            asset: None,
            status: if resolved_at.is_some() {
                IncidentStatus::Resolved
            } else {
                IncidentStatus::Open
            },
            title: "t".into(),
            indicators: vec![],
            evidence: Evidence::new(),
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            resolved_at: resolved_at.map(Timestamp),
            detections: 1,
        }
    }

    const H: i64 = Timestamp::HOUR;

    fn inputs<'a>(open: &'a [Incident], resolved: &'a [Incident]) -> RiskInputs<'a> {
        RiskInputs {
            open,
            resolved,
            hlp: None,
            feeds_down: 0,
            feeds: 3,
            now: Timestamp(10 * H),
        }
    }

    #[test]
    fn feed_health_is_not_market_risk_and_all_feeds_down_is_unknown() {
        let down = [incident(ThreatType::FeedHealth, Severity::Critical, None)];
        let r = risk(&RiskInputs {
            feeds_down: 3,
            ..inputs(&down, &[])
        });
        assert_eq!((r.level.as_str(), r.score), ("unknown", 0), "{r:?}");
        let r = risk(&RiskInputs {
            feeds_down: 1,
            ..inputs(&down, &[])
        });
        assert_eq!(r.level, "low");
        assert!(r.reasons[0].contains("1 of 3 feeds down"), "{r:?}");
    }

    #[test]
    fn a_recent_loss_keeps_the_risk_up_after_its_incidents_resolve() {
        // HLP lost $11M two hours ago; its incident has resolved.
        let resolved = [incident(
            ThreatType::HlpLoss,
            Severity::Critical,
            Some(8 * H),
        )];
        let r = risk(&inputs(&[], &resolved));
        assert_eq!(r.level, "medium", "{r:?}");
        assert!(r.reasons[0].contains("resolved 2 h 0 min ago"), "{r:?}");
        let r = risk(&RiskInputs {
            hlp: Some((Decimal::from(-11_000_000), Decimal::from(400_000_000))),
            ..inputs(&[], &resolved)
        });
        assert_eq!(r.level, "high", "{r:?}");
        assert!(
            r.reasons.iter().any(|x| x.contains("lost $11,000,000")),
            "{r:?}"
        );
        // A day later it has faded.
        let r = risk(&RiskInputs {
            now: Timestamp(40 * H),
            ..inputs(&[], &resolved)
        });
        assert_eq!((r.level.as_str(), r.score), ("low", 0));
        // Open incidents still set it.
        let open = [
            incident(ThreatType::OracleDeviation, Severity::Critical, None),
            incident(ThreatType::MarkManipulation, Severity::High, None),
        ];
        let r = risk(&inputs(&open, &[]));
        assert_eq!((r.level.as_str(), r.score), ("critical", 90));
    }
}
