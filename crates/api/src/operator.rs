//! Working an incident: the incident page's data (`GET /security/incidents/{id}`: lifecycle,
//! operator actions, alerts and their deliveries, silences, the series around it), and the
//! write routes — acknowledge, resolve with a note, notes, silences. Writes need a key with
//! the `write` scope (or the keyless loopback operator); every write is in the audit log.
#![allow(
    unreachable_pub,
    reason = "actix route macros wrap each handler in a public unit struct; the inner fn is what lints"
)]

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, web};
use kamiyo_core_models::{
    ActionKind, AuditEntry, Coin, DeliveryQuery, Incident, IncidentAction, IncidentStatus,
    KeyScope, Severity, Silence, SilenceMatchers, StableId, ThreatType, Timestamp, acknowledgement,
    operator_resolution,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::dto::{DeliveryResponse, EventResponse, IncidentResponse};
use crate::error::{ApiError, Problem};
use crate::{ApiState, Scoped};

type Result<T> = std::result::Result<T, ApiError>;

/// What the pipeline does when an operator changes an incident (the server wires it: wake the
/// alert router, tell the engine an incident it tracks was closed).
pub trait IncidentHooks: Send + Sync {
    /// Lifecycle steps were committed by an operator: route their alerts.
    fn recorded(&self);
    /// An operator resolved `id`: the engine stops tracking it (a condition that persists
    /// opens a new incident).
    fn resolved(&self, id: &StableId);
}

/// Longest note or comment accepted.
pub const MAX_NOTE_CHARS: usize = 2000;
/// Longest silence.
pub const MAX_SILENCE_DAYS: i64 = 30;

fn actor(req: &HttpRequest) -> Principal {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or_else(|| Principal {
            key_id: None,
            name: "unknown".into(),
            scope: KeyScope::Read,
        })
}

/// A random number for the ids of people's actions and silences (two identical requests at
/// the same clock instant are two records).
fn nonce() -> u64 {
    use rand::RngCore;
    <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng().next_u64()
}

fn parse_id(id: &str, what: &str) -> Result<StableId> {
    StableId::parse(id).map_err(|_| ApiError::invalid("id", format!("{what} id")))
}

fn note_of(note: Option<&str>, required: bool) -> Result<String> {
    let n = note.unwrap_or_default().trim();
    if required && n.is_empty() {
        return Err(ApiError::invalid("note", "a non-empty note"));
    }
    if n.chars().count() > MAX_NOTE_CHARS || n.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters, no control characters"),
        ));
    }
    Ok(n.to_owned())
}

/// An operator action as returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionResponse {
    /// Id.
    pub id: String,
    /// `acknowledge`, `unacknowledge`, `resolve` or `note`.
    pub kind: String,
    /// Who.
    pub actor: String,
    /// The note.
    pub note: String,
    /// When.
    pub time: String,
}

impl From<&IncidentAction> for ActionResponse {
    fn from(a: &IncidentAction) -> Self {
        Self {
            id: a.id.to_string(),
            kind: a.kind.as_str().into(),
            actor: a.actor.clone(),
            note: a.note.clone(),
            time: a.time.to_rfc3339(),
        }
    }
}

/// A silence as returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SilenceResponse {
    /// Id (`sil_…`).
    pub id: String,
    /// Detector matcher.
    pub detector: Option<String>,
    /// Asset matcher.
    pub asset: Option<String>,
    /// Steps at or below this severity.
    pub severity: Option<String>,
    /// Protocol matcher.
    pub protocol: Option<String>,
    /// Start.
    pub starts_at: String,
    /// End (or the time it was ended early).
    pub ends_at: String,
    /// Whether it mutes now.
    pub active: bool,
    /// Creator.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

fn silence_response(s: &Silence, now: Timestamp) -> SilenceResponse {
    SilenceResponse {
        id: s.id.to_string(),
        detector: s.matchers.detector.clone(),
        asset: s.matchers.asset.as_ref().map(ToString::to_string),
        severity: s.matchers.severity.map(|x| x.as_str().to_owned()),
        protocol: s.matchers.protocol.clone(),
        starts_at: s.starts_at.to_rfc3339(),
        ends_at: s
            .expired_at
            .map_or(s.ends_at, |x| x.min(s.ends_at))
            .to_rfc3339(),
        active: s.active_at(now),
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
    }
}

/// One chart series around an incident.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeriesResponse {
    /// What it shows (`oracle vs reference (%)` …).
    pub name: String,
    /// Unit: `usd`, `pct` or `count`.
    pub unit: String,
    /// `[time (ms since the epoch), value]` pairs, oldest first.
    #[schema(value_type = Vec<Vec<f64>>)]
    pub points: Vec<(i64, f64)>,
}

/// Acknowledgement state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AckResponse {
    /// Who.
    pub by: String,
    /// When.
    pub at: String,
}

/// `GET /security/incidents/{id}`: everything about one incident, open or resolved.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    pub incident: IncidentResponse,
    /// Set while acknowledged.
    pub acknowledged: Option<AckResponse>,
    /// Its lifecycle, oldest first.
    pub events: Vec<EventResponse>,
    /// What people did, oldest first.
    pub actions: Vec<ActionResponse>,
    /// Its alerts, one per channel and step, with their delivery state (newest first).
    pub deliveries: Vec<DeliveryResponse>,
    /// Silences that matched one of its steps.
    pub silences: Vec<SilenceResponse>,
    /// Start and end of the chart window (RFC 3339).
    pub window: [String; 2],
    /// The series around it (the detection marked by `incident.first_seen`).
    pub series: Vec<SeriesResponse>,
}

/// Chart margin before the first detection and after the end.
const MARGIN_MS: i64 = 30 * 60_000;
/// Longest chart window.
const MAX_WINDOW_MS: i64 = 48 * 3_600_000;

fn to_f64(d: kamiyo_core_models::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(f64::NAN)
}

async fn series(
    state: &Scoped<'_>,
    i: &Incident,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<SeriesResponse>> {
    let within = |t: Timestamp| t >= from && t <= to;
    let mut out = Vec::new();
    let hlp = matches!(
        i.threat_type,
        ThreatType::HlpLoss
            | ThreatType::HlpDrawdown
            | ThreatType::HlpAnomaly
            | ThreatType::LiquidatorStress
    );
    if hlp {
        let pts = state
            .market
            .vault_points(Some(&i.protocol), Some(state.config.hlp_vault), from, 5000)
            .await?;
        let pts: Vec<_> = pts.into_iter().filter(|p| within(p.time)).collect();
        out.push(SeriesResponse {
            name: "HLP account value".into(),
            unit: "usd".into(),
            points: pts
                .iter()
                .map(|p| (p.time.0, to_f64(p.account_value)))
                .collect(),
        });
        out.push(SeriesResponse {
            name: "HLP cumulative PnL".into(),
            unit: "usd".into(),
            points: pts.iter().map(|p| (p.time.0, to_f64(p.pnl))).collect(),
        });
    }
    let Some(coin) = &i.asset else {
        return Ok(out);
    };
    // The finest bars recorded (the bar length is the server's `ml.record_bar_secs`).
    let mut bars = Vec::new();
    let mut minutes = 0;
    for interval in [60_000, 300_000, 900_000, 3_600_000] {
        bars = state
            .market
            .bars(Some(&i.protocol), Some(coin), interval, from, to, 3000)
            .await?;
        if !bars.is_empty() {
            minutes = interval / 60_000;
            break;
        }
    }
    if !bars.is_empty() {
        out.push(SeriesResponse {
            name: format!("{coin} price ({minutes} min close)"),
            unit: "usd".into(),
            points: bars.iter().map(|b| (b.time.0, to_f64(b.close))).collect(),
        });
    }
    if matches!(
        i.threat_type,
        ThreatType::OracleDeviation | ThreatType::VenueDisagreement | ThreatType::MarkManipulation
    ) {
        let samples = state
            .market
            .deviations(Some(&i.protocol), Some(coin), from, 5000)
            .await?;
        let mut by_kind: std::collections::BTreeMap<&str, Vec<(i64, f64)>> = Default::default();
        for s in samples
            .iter()
            .filter(|s| within(s.time) && s.venue.is_none())
        {
            by_kind
                .entry(s.kind.as_str())
                .or_default()
                .push((s.time.0, to_f64(s.deviation_pct)));
        }
        for (kind, points) in by_kind {
            out.push(SeriesResponse {
                name: format!("{coin} {} (%)", kind.replace('_', " ")),
                unit: "pct".into(),
                points,
            });
        }
    }
    if matches!(
        i.threat_type,
        ThreatType::LargeLiquidation
            | ThreatType::LiquidationCascade
            | ThreatType::CoordinatedLiquidation
            | ThreatType::AutoDeleveraging
    ) {
        // Liquidated notional per minute.
        let fills = state
            .market
            .liquidations(Some(&i.protocol), Some(coin), from, 5000)
            .await?;
        let mut per_min: std::collections::BTreeMap<i64, f64> = Default::default();
        for l in fills.iter().filter(|l| within(l.time)) {
            *per_min.entry(l.time.0 / 60_000 * 60_000).or_default() += to_f64(l.notional);
        }
        out.push(SeriesResponse {
            name: format!("{coin} liquidated notional per minute"),
            unit: "usd".into(),
            points: per_min.into_iter().collect(),
        });
    }
    Ok(out)
}

/// The incident page's data.
/// The incident `id` if the caller may read it (its protocol, within its history).
async fn readable_incident(
    state: &Scoped<'_>,
    id: &StableId,
) -> Result<kamiyo_core_models::Incident> {
    state
        .incidents
        .incident(id)
        .await?
        .filter(|i| state.may_read(&i.protocol))
        .filter(|i| state.history_floor().is_none_or(|f| i.last_seen >= f))
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))
}

pub(crate) async fn incident_detail(state: &Scoped<'_>, id: &StableId) -> Result<IncidentDetail> {
    let i = readable_incident(state, id).await?;
    let steps = state.incidents.incident_events(id).await?;
    let now = state.clock.now();
    // A caller of shared facts only sees no operator state of the host's.
    let (actions, deliveries, silences) = if state.scope.facts_only {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        let actions = state
            .operator
            .incident_actions(std::slice::from_ref(id))
            .await?;
        let deliveries = state
            .outbox
            .deliveries(&DeliveryQuery {
                incident: Some(id.clone()),
                limit: 500,
                ..DeliveryQuery::default()
            })
            .await?;
        let silences: Vec<SilenceResponse> = state
            .operator
            .silences(Some(i.first_seen), 500)
            .await?
            .iter()
            .filter(|s| steps.iter().any(|e| s.mutes(&e.event)))
            .map(|s| silence_response(s, now))
            .collect();
        (actions, deliveries, silences)
    };
    let end = i.resolved_at.unwrap_or(i.last_seen).max(i.last_seen);
    let from = i.first_seen.plus_millis(-MARGIN_MS);
    let to = end
        .plus_millis(MARGIN_MS)
        .min(from.plus_millis(MAX_WINDOW_MS));
    Ok(IncidentDetail {
        acknowledged: acknowledgement(&actions)
            .filter(|_| i.status == IncidentStatus::Open)
            .map(|a| AckResponse {
                by: a.actor.clone(),
                at: a.time.to_rfc3339(),
            }),
        series: series(state, &i, from, to).await?,
        window: [from.to_rfc3339(), to.to_rfc3339()],
        incident: (&i).into(),
        events: steps.iter().map(Into::into).collect(),
        actions: actions.iter().map(Into::into).collect(),
        deliveries: deliveries.iter().map(Into::into).collect(),
        silences,
    })
}

/// One incident with everything on it: lifecycle, actions, alerts and deliveries, matching
/// silences and the series around it. Alert links land here, open or resolved.
#[utoipa::path(get, path = "/security/incidents/{id}", tag = "security",
    params(("id" = String, Path, description = "Incident id (`inc_…`)")),
    responses(
        (status = 200, body = IncidentDetail),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[get("/security/incidents/{id}")]
pub async fn incident(
    req: HttpRequest,
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    let id = parse_id(&id, "an incident")?;
    Ok(no_store(&incident_detail(&state, &id).await?))
}

fn no_store<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Body of acknowledge and unacknowledge (`{}` without a note).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Free text, at most 2,000 characters.
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub note: Option<String>,
}

/// Body of resolve and notes: the note is required.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// Free text with at least one visible character, at most 2,000 characters.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub note: String,
}

async fn audit(state: &Scoped<'_>, who: &Principal, action: &str, detail: String) -> Result<()> {
    state
        .audit
        .audit(&AuditEntry {
            time: state.clock.now(),
            actor: who.name.clone(),
            action: action.into(),
            detail,
        })
        .await?;
    Ok(())
}

async fn act(
    state: &ApiState,
    req: &HttpRequest,
    id: &str,
    kind: ActionKind,
    note: Option<String>,
) -> Result<HttpResponse> {
    let who = actor(req);
    let state = &state.scoped(req)?;
    state.operator_state()?;
    let id = parse_id(id, "an incident")?;
    let note = note_of(
        note.as_deref(),
        matches!(kind, ActionKind::Resolve | ActionKind::Note),
    )?;
    let i = readable_incident(state, &id).await?;
    let actions = state
        .operator
        .incident_actions(std::slice::from_ref(&id))
        .await?;
    // The history is ordered by time: an action comes at least 1 ms after the step and the
    // action before it (a replay's clock stands still once the replay has ended).
    let now = state.clock.now().max(i.last_seen).max(
        actions
            .last()
            .map_or(Timestamp(i64::MIN), |a| a.time.plus_millis(1)),
    );
    let action = IncidentAction::new(&id, kind, &who.name, &note, now, nonce());
    let open = i.status == IncidentStatus::Open;
    match kind {
        ActionKind::Resolve => {
            if !open {
                return Err(ApiError::Conflict(format!(
                    "incident {id} is already resolved"
                )));
            }
            let update = operator_resolution(&i, &who.name, &note, now);
            let stored = state
                .market
                .commit(&kamiyo_core_models::IngestBatch {
                    updates: vec![update],
                    actions: vec![action.clone()],
                    ..Default::default()
                })
                .await?;
            state.hub.publish_events(&stored);
            if let Some(h) = state.hooks.get() {
                h.resolved(&id);
                h.recorded();
            }
        }
        ActionKind::Acknowledge | ActionKind::Unacknowledge => {
            if !open {
                return Err(ApiError::Conflict(format!(
                    "incident {id} is resolved; there is nothing to acknowledge"
                )));
            }
            let acked = acknowledgement(&actions).is_some();
            if acked == (kind == ActionKind::Acknowledge) {
                return Err(ApiError::Conflict(format!(
                    "incident {id} is {} acknowledged",
                    if acked { "already" } else { "not" }
                )));
            }
            state.operator.record_action(&action).await?;
            state.views.incidents.acknowledgements_changed();
        }
        ActionKind::Note => state.operator.record_action(&action).await?,
    }
    audit(
        state,
        &who,
        &format!("incident.{}", kind.as_str()),
        format!("{id}: {note}"),
    )
    .await?;
    Ok(no_store(&incident_detail(state, &id).await?))
}

macro_rules! incident_action {
    ($fn:ident, $path:literal, $kind:expr, $doc:literal, $body:ty, $required:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "operator",
                    params(("id" = String, Path, description = "Incident id (`inc_…`)")),
                    request_body(content = $body, description = $required),
                    responses(
                        (status = 200, body = IncidentDetail),
                        (status = 400, body = Problem, content_type = "application/problem+json"),
                        (status = 403, body = Problem, content_type = "application/problem+json"),
                        (status = 404, body = Problem, content_type = "application/problem+json"),
                        (status = 409, body = Problem, content_type = "application/problem+json")))]
        #[post($path)]
        pub async fn $fn(
            state: web::Data<ApiState>,
            req: HttpRequest,
            id: web::Path<String>,
            body: web::Json<$body>,
        ) -> Result<HttpResponse> {
            act(&state, &req, &id, $kind, body.into_inner().note.into()).await
        }
    };
}

incident_action!(
    acknowledge,
    "/security/incidents/{id}/acknowledge",
    ActionKind::Acknowledge,
    "Acknowledges an open incident (\"I am on it\"); shown on the dashboard and in its history.",
    AckBody,
    "optional note"
);
incident_action!(
    unacknowledge,
    "/security/incidents/{id}/unacknowledge",
    ActionKind::Unacknowledge,
    "Withdraws an acknowledgement.",
    AckBody,
    "optional note"
);
incident_action!(
    resolve,
    "/security/incidents/{id}/resolve",
    ActionKind::Resolve,
    "Resolves an open incident with a note: a resolution step is stored, streamed and alerted to the channels that heard it open. If the condition persists, the monitor opens a new incident.",
    NoteBody,
    "the note (required)"
);
incident_action!(
    add_note,
    "/security/incidents/{id}/notes",
    ActionKind::Note,
    "Adds a note to an incident's history (open or resolved).",
    NoteBody,
    "the note (required)"
);

/// Body of `POST /silences`: at least one matcher, a comment, and `ends_at` or `minutes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// Detector name, exactly.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub detector: Option<String>,
    /// Market.
    #[schema(pattern = "^[!-~]{1,64}$")]
    pub asset: Option<String>,
    /// Mute steps at or below this severity (`info`, `low`, `medium`, `high`, `critical`).
    #[schema(pattern = "^(info|low|medium|high|critical)$")]
    pub severity: Option<String>,
    /// Protocol (`hyperliquid`).
    #[schema(pattern = "^hyperliquid$")]
    pub protocol: Option<String>,
    /// Start (RFC 3339; default now).
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// End (RFC 3339), after now and the start and at most 30 days after the start (else
    /// 409); or give `minutes`.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// Length in minutes from the start (1–43,200), on the monitor's clock (replay time
    /// when serving a replay); instead of `ends_at`.
    /// (Read as a number: JSON Schema's integers include `25.0`.)
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 43200)]
    pub minutes: Option<f64>,
    /// Why (required): at least one visible character, at most 2,000.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
    )]
    pub comment: String,
}

fn parse_time(v: &str, name: &str) -> Result<Timestamp> {
    Timestamp::parse(v)
        .filter(|t| (-62_167_219_200_000..=253_402_300_799_999).contains(&t.0))
        .ok_or_else(|| ApiError::invalid(name, "an RFC 3339 time such as 2026-12-04T18:00:00Z"))
}

fn silence_of(b: SilenceBody, who: &Principal, now: Timestamp) -> Result<Silence> {
    let name = |v: Option<String>, what: &str| -> Result<Option<String>> {
        v.map(|s| {
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            ok.then_some(s)
                .ok_or_else(|| ApiError::invalid(what, "a name of letters, digits, _ and -"))
        })
        .transpose()
    };
    let protocol = b
        .protocol
        .map(|p| {
            p.parse::<kamiyo_core_models::ProtocolId>()
                .map(|p| p.to_string())
                .map_err(|_| {
                    ApiError::invalid(
                        "protocol",
                        "a protocol id such as hyperliquid ([a-z0-9][a-z0-9_-]*, at most 32 characters)",
                    )
                })
        })
        .transpose()?;
    let matchers = SilenceMatchers {
        detector: name(b.detector, "detector")?,
        asset: b
            .asset
            .map(|a| a.parse::<Coin>())
            .transpose()
            .map_err(|_| ApiError::invalid("asset", "a market name such as ETH"))?,
        severity: b
            .severity
            .map(|s| s.parse::<Severity>())
            .transpose()
            .map_err(|_| ApiError::invalid("severity", "info, low, medium, high or critical"))?,
        protocol,
    };
    if matchers.is_empty() {
        return Err(ApiError::BadRequest(
            "a silence needs at least one matcher (detector, asset, severity or protocol)".into(),
        ));
    }
    let starts_at = b
        .starts_at
        .as_deref()
        .map(|s| parse_time(s, "starts_at"))
        .transpose()?
        .unwrap_or(now);
    let ends_at = match (b.ends_at.as_deref(), b.minutes) {
        (Some(e), None) => parse_time(e, "ends_at")?,
        (None, Some(m))
            if m.fract() == 0.0 && (1.0..=(MAX_SILENCE_DAYS * 1440) as f64).contains(&m) =>
        {
            starts_at.plus_millis(m as i64 * 60_000)
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "minutes",
                format!("1 to {} minutes", MAX_SILENCE_DAYS * 1440),
            ));
        }
        _ => {
            return Err(ApiError::BadRequest(
                "a silence needs an end: `ends_at` (RFC 3339) or `minutes`, not both".into(),
            ));
        }
    };
    // Refusals relative to the clock or between fields are conflicts (409): the document
    // cannot state them, and the request is well-formed.
    if ends_at <= starts_at.max(now) {
        return Err(ApiError::Conflict(format!(
            "ends_at {} is not after the start and the monitor's clock ({})",
            ends_at.to_rfc3339(),
            starts_at.max(now).to_rfc3339()
        )));
    }
    if ends_at.millis_since(starts_at) > MAX_SILENCE_DAYS * 86_400_000 {
        return Err(ApiError::Conflict(format!(
            "a silence lasts at most {MAX_SILENCE_DAYS} days; ends_at is later"
        )));
    }
    let comment = note_of(Some(&b.comment), true).map_err(|_| {
        ApiError::invalid(
            "comment",
            format!("a non-empty reason of at most {MAX_NOTE_CHARS} characters"),
        )
    })?;
    Ok(Silence {
        id: StableId::derive(
            "sil",
            &[
                &who.name,
                &now.0.to_string(),
                &serde_json::to_string(&matchers).unwrap_or_default(),
                &comment,
                &nonce().to_string(),
            ],
        ),
        matchers,
        starts_at,
        ends_at,
        created_by: who.name.clone(),
        comment,
        created_at: now,
        expired_at: None,
    })
}

/// Query of `GET /silences`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilencesParams {
    /// `true` (default): only silences not yet over; `false`: the latest 200 of all.
    pub active: Option<String>,
}

/// `GET /silences`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SilencesResponse {
    /// Newest first.
    pub silences: Vec<SilenceResponse>,
}

/// Silences: current and future ones by default.
#[utoipa::path(get, path = "/silences", tag = "operator", params(SilencesParams),
    responses((status = 200, body = SilencesResponse),
        (status = 400, body = Problem, content_type = "application/problem+json")))]
#[get("/silences")]
pub async fn list_silences(
    req: HttpRequest,
    state: web::Data<ApiState>,
    q: web::Query<SilencesParams>,
) -> Result<HttpResponse> {
    let state = state.scoped(&req)?;
    state.operator_state()?;
    let active = match q.active.as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(ApiError::invalid("active", "true or false")),
    };
    let now = state.clock.now();
    let list = state.operator.silences(active.then_some(now), 200).await?;
    Ok(no_store(&SilencesResponse {
        silences: list.iter().map(|s| silence_response(s, now)).collect(),
    }))
}

/// Creates a silence: notifications of matching steps are recorded as suppressed, not sent,
/// until it ends. Incidents are detected, stored and shown as always.
#[utoipa::path(post, path = "/silences", tag = "operator", request_body = SilenceBody,
    responses((status = 201, body = SilenceResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The end is not after the start and the monitor's clock, or more than 30 days after the start", body = Problem, content_type = "application/problem+json")))]
#[post("/silences")]
pub async fn create_silence(
    state: web::Data<ApiState>,
    req: HttpRequest,
    body: web::Json<SilenceBody>,
) -> Result<HttpResponse> {
    let who = actor(&req);
    let state = state.scoped(&req)?;
    state.operator_state()?;
    let now = state.clock.now();
    let s = silence_of(body.into_inner(), &who, now)?;
    state.operator.insert_silence(&s).await?;
    audit(
        &state,
        &who,
        "silence.create",
        format!(
            "{} {}",
            s.id,
            serde_json::to_string(&s.matchers).unwrap_or_default()
        ),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(silence_response(&s, now)))
}

/// Ends a silence now.
#[utoipa::path(delete, path = "/silences/{id}", tag = "operator",
    params(("id" = String, Path, description = "Silence id (`sil_…`)")),
    responses((status = 200, body = SilencesResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
#[delete("/silences/{id}")]
pub async fn expire_silence(
    state: web::Data<ApiState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    let who = actor(&req);
    let state = state.scoped(&req)?;
    state.operator_state()?;
    let id = parse_id(&id, "a silence")?;
    let now = state.clock.now();
    if !state.operator.expire_silence(&id, now).await? {
        return Err(ApiError::NotFound(format!("no active silence {id}")));
    }
    audit(&state, &who, "silence.expire", id.to_string()).await?;
    let list = state.operator.silences(Some(now), 200).await?;
    Ok(no_store(&SilencesResponse {
        silences: list.iter().map(|s| silence_response(s, now)).collect(),
    }))
}
