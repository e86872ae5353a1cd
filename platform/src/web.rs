//! The platform's HTTP routes under `/api/v1` (actix-web), in the order a request meets them:
//! pre-auth limits (sign-up per address, failed keys per address) → authentication
//! (`Authorization: Bearer <tenant>.<secret>`) → the tenant's status and daily API-call meter
//! (429 with `Retry-After` at the next UTC midnight) → the handler, which checks role and plan
//! ([`tenancy::authorize`]: 403 / 402 naming the plan that has it), calls one `db` function and
//! shapes the answer. Changes are audited by `db` in their own transaction. Errors are
//! `application/problem+json` with a stable code.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use kamiyo_api::Problem;
use kamiyo_api::auth::RateLimiter;
use kamiyo_core_models::{Address, ProtocolId};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::db::{self, Actor, Change, Db, DbError, List};
use crate::tenancy::{self, Permission, Principal, Refusal, Role, TenantId};
use crate::tiers::{Feature, Limit, Tier, TierMatrix};

/// Largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the routes share.
pub struct PlatformState {
    /// Tenant-owned state (the application role).
    pub db: Db,
    /// Plans.
    pub tiers: TierMatrix,
    /// Protocols the platform ingests (what a tenant may subscribe to).
    pub protocols: Vec<ProtocolId>,
    /// The protocol a new tenant is subscribed to.
    pub default_protocol: ProtocolId,
    /// Sign-ups and password-reset requests per client address (they send mail).
    pub account_requests: RateLimiter,
    /// Failed key checks per client address and minute (then 429 before any lookup).
    pub auth_failures: RateLimiter,
    /// Epoch-ms clock (tests move it).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Account mail (verification, reset), if configured.
    pub mailer: Option<Arc<kamiyo_alerts::channels::Smtp>>,
    /// The address people open (links in mail).
    pub public_url: String,
    /// Sign-in attempts per account.
    pub logins: RateLimiter,
    /// Keys verified moments ago.
    pub keys: Arc<KeyCache>,
    /// The staff pool (the owner role), when staff routes are served.
    pub staff_db: Option<Db>,
    /// Staff tokens: (name, SHA-256 of the token).
    pub staff_tokens: Vec<(String, String)>,
    /// Billing with Stripe, when configured (`[billing]`).
    pub billing: Option<Arc<crate::billing::Billing>>,
    /// Every protocol the platform knows (`/api/v1/protocols`; subscriptions are checked
    /// against it).
    pub registry: Arc<crate::registry::Registry>,
    /// The shared facts (read through the application role), when served: incidents a
    /// tenant acts on are checked against them.
    pub facts: Option<Arc<dyn kamiyo_core_models::IncidentStore>>,
    /// Channels may point at `http://` loopback addresses (single-machine trials, tests).
    pub loopback_channels: bool,
    /// The metrics registry `/metrics` renders, when the process exports metrics.
    pub metrics: Option<prometheus::Registry>,
    /// The SLA's targets (the monthly reports are measured against them).
    pub sla: crate::status::SlaTargets,
    /// Single sign-on providers' discovery documents and keys, kept between sign-ins.
    pub sso_providers: Arc<crate::sso::Providers>,
    /// The public status, computed at most every [`STATUS_CACHE_MS`] per replica (it is read
    /// without authentication).
    pub status_cache: StatusCache,
}

/// A replica's last public status and when it was computed.
pub type StatusCache = Arc<std::sync::Mutex<Option<(i64, Arc<serde_json::Value>)>>>;

/// How long a replica reuses the public status it computed.
pub const STATUS_CACHE_MS: i64 = 5_000;

impl PlatformState {
    /// State with the system clock, the given limits of `kamiyo_api`'s limiter (sign-ups per
    /// minute per address; failed keys per minute per address).
    pub fn new(db: Db, tiers: TierMatrix, protocols: Vec<ProtocolId>) -> Self {
        // Stored incidents may carry the platform detector's threat types.
        if let Err(e) = crate::detectors::declare_threats() {
            tracing::error!(error = %e, "declaring the platform's threat types");
        }
        Self {
            db,
            tiers,
            default_protocol: protocols
                .first()
                .cloned()
                .unwrap_or(ProtocolId::HYPERLIQUID),
            protocols,
            account_requests: RateLimiter::new(ACCOUNT_REQUESTS_PER_MINUTE),
            auth_failures: RateLimiter::new(kamiyo_api::auth::FAILED_AUTH_PER_MINUTE),
            mailer: None,
            public_url: "https://app.kamiyo.ai".into(),
            logins: RateLimiter::new(LOGINS_PER_MINUTE),
            keys: Arc::default(),
            staff_db: None,
            staff_tokens: Vec::new(),
            billing: None,
            facts: None,
            loopback_channels: false,
            metrics: None,
            sla: crate::status::SlaTargets::default(),
            sso_providers: Arc::default(),
            status_cache: Arc::default(),
            // The embedded registry is checked by the crate's tests; an empty one if it ever
            // failed would refuse every subscription outside `protocols` rather than panic.
            registry: Arc::new(crate::registry::Registry::embedded().unwrap_or_else(|e| {
                tracing::error!(error = %e, "the embedded protocol registry is invalid");
                crate::registry::Registry::empty()
            })),
            clock: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }),
        }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Serves billing: its changes drop the tenant's cached keys at once.
    pub fn with_billing(&mut self, b: Arc<crate::billing::Billing>) {
        let keys = self.keys.clone();
        b.on_change(Arc::new(move |t| keys.forget_tenant(t)));
        self.billing = Some(b);
    }
}

/// Routes under `/api/v1` that answer without a key or session.
pub const PUBLIC_PATHS: [&str; 9] = [
    "/api/v1/plans",
    "/api/v1/status",
    "/api/v1/signup",
    BILLING_WEBHOOK_PATH,
    "/api/v1/login",
    "/api/v1/verify-email",
    "/api/v1/password-reset",
    "/api/v1/password-reset/confirm",
    OPENAPI_PATH,
];

/// Where Stripe delivers webhooks (signed; no key).
pub const BILLING_WEBHOOK_PATH: &str = "/api/v1/billing/webhook";
/// Largest webhook body accepted (Stripe's events are far smaller).
pub const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

/// The session cookie (`<tenant>.<secret>`; Secure, HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "kamiyo_session";
/// How [`PlatformAuth`] marks a session cookie it read for the open core's gate (keys never
/// start with it: they are `<tenant>.<secret>`).
const SESSION_MARK: &str = "session:";

/// The CSRF cookie (readable by the page, which echoes it in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "kamiyo_csrf";
/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// How long an address-verification link lasts.
pub const VERIFY_MS: i64 = 24 * 3_600_000;
/// How long a password-reset link lasts.
pub const RESET_MS: i64 = 3_600_000;
/// Sign-in attempts per account and minute (then 429 before the password is checked).
pub const LOGINS_PER_MINUTE: u32 = 5;

/// Sign-ups and password-reset requests allowed per client address per minute (bursts of the
/// same).
pub const ACCOUNT_REQUESTS_PER_MINUTE: u32 = 5;

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// 400.
    Invalid(String),
    /// 401.
    Unauthorized,
    /// 402: the feature and the cheapest plan with it.
    PaymentRequired(String),
    /// 403.
    Forbidden(String),
    /// 404.
    NotFound,
    /// 409.
    Conflict(String),
    /// 429 (`Retry-After` seconds when a reset is known).
    TooMany {
        /// What.
        detail: String,
        /// Seconds until it resets.
        retry_after: Option<u64>,
    },
    /// 503.
    Unavailable,
    /// 503 with `Retry-After: 1`: the request lost to a concurrent one and changed nothing.
    Contention,
    /// 402: Stripe declined the payment.
    Declined(String),
    /// 503: Stripe could not be reached.
    StripeUnavailable(String),
    /// 500 (cause logged).
    Internal,
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl WebError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::PaymentRequired(_) => "plan_required",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict(_) => "conflict",
            Self::TooMany { .. } => "limit_reached",
            Self::Unavailable => "unavailable",
            Self::Contention => "contention",
            Self::Declined(_) => "payment_declined",
            Self::StripeUnavailable(_) => "billing_unavailable",
            Self::Internal => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Invalid(d)
            | Self::PaymentRequired(d)
            | Self::Forbidden(d)
            | Self::Conflict(d)
            | Self::TooMany { detail: d, .. }
            | Self::Declined(d) => d.clone(),
            Self::StripeUnavailable(d) => format!(
                "the payment provider is unavailable; nothing was changed, retry shortly ({d})"
            ),
            Self::Unauthorized => {
                "a valid API key is required (Authorization: Bearer <tenant>.<secret>)".into()
            }
            Self::NotFound => "nothing here for this tenant".into(),
            Self::Unavailable => "the database is unavailable; retry shortly".into(),
            Self::Contention => {
                "a concurrent request changed the same data first; nothing was changed, retry"
                    .into()
            }
            Self::Internal => "internal error".into(),
        }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Contention | Self::StripeUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Declined(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut r = HttpResponse::build(status);
        r.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Self::TooMany {
            retry_after: Some(s),
            ..
        } = self
        {
            r.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if matches!(self, Self::Contention) {
            r.insert_header((header::RETRY_AFTER, "1"));
        }
        if matches!(self, Self::Unauthorized) {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"kamiyo.ai\""));
        }
        let body = Problem {
            kind: format!("https://kamiyo.ai/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
        };
        r.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

impl From<Refusal> for WebError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid { .. } => Self::Invalid(r.to_string()),
            Refusal::Role { .. } => Self::Forbidden(r.to_string()),
            Refusal::Feature { .. } => Self::PaymentRequired(r.to_string()),
        }
    }
}

impl From<DbError> for WebError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => Self::NotFound,
            DbError::Conflict(d) => Self::Conflict(conflict_words(&d)),
            DbError::Limit(what, used, max) => Self::TooMany {
                detail: format!("the plan allows {max} {what}; this would make {used}"),
                retry_after: None,
            },
            DbError::Unavailable(d) => {
                tracing::warn!(error = %d, "database unavailable");
                Self::Unavailable
            }
            DbError::Contention(d) => {
                tracing::warn!(error = %d, "request lost to a concurrent transaction");
                Self::Contention
            }
            DbError::Refused(d) | DbError::Other(d) => {
                tracing::error!(error = %d, "database error while serving a request");
                Self::Internal
            }
        }
    }
}

/// A unique-violation message in words that name no table.
fn conflict_words(d: &str) -> String {
    if d.contains("tenants_pkey") {
        "that tenant id is taken".into()
    } else if d.contains("email") {
        "a user with that email exists".into()
    } else if d.contains("name") {
        "that name is in use".into()
    } else {
        "it exists already".into()
    }
}

type Res = Result<HttpResponse, WebError>;

/// The client's address (the peer; proxies are not trusted here).
fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
}

/// Seconds until the next UTC midnight (when daily limits reset).
pub fn secs_to_midnight(now_ms: i64) -> u64 {
    let day = 86_400_000;
    u64::try_from((day - now_ms.rem_euclid(day) + 999) / 1000).unwrap_or(1)
}

fn actor(p: &Principal, req: &HttpRequest, at: i64) -> Actor {
    Actor {
        actor: p.actor.clone(),
        ip: client_ip(req),
        at,
    }
}

/// Why a presented key was not accepted.
#[derive(Debug)]
pub enum KeyRefusal {
    /// Malformed, unknown, revoked or expired (401).
    Unknown,
    /// The tenant is suspended (403).
    Suspended,
    /// The plan's API calls for the UTC day are used (429 until midnight).
    DailyLimit {
        /// The plan's daily calls.
        max: i64,
        /// Seconds to the next UTC midnight.
        retry_after: u64,
    },
    /// The database failed.
    Db(DbError),
}

/// Checks a presented `<tenant>.<secret>` key (`session = false`) or session cookie secret and
/// counts the call against the tenant's day: the caller and what its tenant has. A key found in
/// `cache` costs one metering statement; otherwise one transaction (key, tenant,
/// subscriptions, meter), after which the key is cached.
async fn verify(
    db: &Db,
    tiers: &TierMatrix,
    cache: Option<&KeyCache>,
    presented: &str,
    session: bool,
    now: i64,
) -> Result<(Principal, db::Verified), KeyRefusal> {
    let Some(tenant) = tenancy::key_tenant(presented) else {
        return Err(KeyRefusal::Unknown);
    };
    let hash = tenancy::hash_key(presented);
    // A key verified moments ago: only the day's call is counted (durably, one statement).
    if let Some((p, mut v)) = cache.filter(|_| !session).and_then(|c| c.get(&hash, now)) {
        let limit =
            i64::try_from(tiers.config(p.plan).limits.api_calls_per_day).unwrap_or(i64::MAX);
        return match db.meter(&p.tenant, now, limit).await {
            Ok(calls) => {
                v.calls = calls;
                Ok((p, v))
            }
            Err(DbError::Limit(_, _, max)) => Err(KeyRefusal::DailyLimit {
                max,
                retry_after: secs_to_midnight(now),
            }),
            Err(e) => Err(KeyRefusal::Db(e)),
        };
    }
    let credential = if session {
        db::Credential::Session(&hash)
    } else {
        db::Credential::Key(&hash)
    };
    let t = tiers.clone();
    let limit_of = move |plan: &str| {
        plan.parse::<Tier>().map_or(0, |p| {
            i64::try_from(t.config(p).limits.get(Limit::ApiCallsPerDay)).unwrap_or(i64::MAX)
        })
    };
    let v = match db.authenticate(&tenant, credential, now, limit_of).await {
        Ok(Some(v)) => v,
        Ok(None) => return Err(KeyRefusal::Unknown),
        Err(DbError::Limit(_, _, max)) => {
            return Err(KeyRefusal::DailyLimit {
                max,
                retry_after: secs_to_midnight(now),
            });
        }
        Err(e) => return Err(KeyRefusal::Db(e)),
    };
    if v.key.status != "active" {
        return Err(KeyRefusal::Suspended);
    }
    let (Ok(role), Ok(plan)) = (Role::parse(&v.key.role), v.key.plan.parse::<Tier>()) else {
        tracing::error!(key = %v.key.key_id, "stored role or plan not understood");
        return Err(KeyRefusal::Db(DbError::Other("stored role or plan".into())));
    };
    let principal = Principal {
        tenant,
        actor: format!("key:{}", v.key.key_id),
        role,
        plan,
    };
    if let (Some(c), false) = (cache, session) {
        c.put(hash, &principal, &v, now);
    }
    Ok((principal, v))
}

/// How long a verified key is trusted before the database is asked again. A revocation or a
/// staff change made through this process takes effect at once (its entries are dropped);
/// one made elsewhere (another replica, the CLI) within this time.
pub const KEY_CACHE_MS: i64 = 5_000;

/// Verified API keys (by hash), for [`KEY_CACHE_MS`] of the platform's clock.
#[derive(Debug, Default)]
pub struct KeyCache(
    std::sync::Mutex<std::collections::HashMap<String, (Principal, db::Verified, i64)>>,
);

impl KeyCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Principal, db::Verified, i64)>>
    {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, hash: &str, now: i64) -> Option<(Principal, db::Verified)> {
        self.lock()
            .get(hash)
            .filter(|(_, _, until)| now < *until)
            .map(|(p, v, _)| (p.clone(), v.clone()))
    }

    fn put(&self, hash: String, p: &Principal, v: &db::Verified, now: i64) {
        let mut m = self.lock();
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(hash, (p.clone(), v.clone(), now + KEY_CACHE_MS));
    }

    /// Drops a tenant's entries (its plan, status or keys changed).
    pub fn forget_tenant(&self, t: &TenantId) {
        self.lock().retain(|_, (p, _, _)| p.tenant != *t);
    }
}

/// Staff routes live here; they take staff tokens only and act through the staff pool.
pub const ADMIN_PREFIX: &str = "/api/v1/admin/";

/// Who is acting on a staff route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff(pub String);

/// Staff authentication: `Authorization: Bearer <token>` whose SHA-256 is one of the configured
/// staff tokens; failures count against the address like bad keys.
async fn staff_gate(
    state: &PlatformState,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    ip: &str,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if state.staff_db.is_none() {
        return Err(WebError::NotFound.into());
    }
    let Some(who) = staff_of(state, req.headers()) else {
        let _ = state.auth_failures.check(ip);
        return Err(WebError::Unauthorized.into());
    };
    req.extensions_mut().insert(Staff(who));
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}

/// The staff member whose token `headers` present (`Authorization: Bearer …`), compared in
/// constant time against the configured hashes.
fn staff_of(state: &PlatformState, headers: &header::HeaderMap) -> Option<String> {
    let hash = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| tenancy::hash_key(t.trim()))?;
    state
        .staff_tokens
        .iter()
        .find(|(_, h)| bool::from(h.as_bytes().ct_eq(hash.as_bytes())))
        .map(|(name, _)| name.clone())
}

/// `GET /metrics`: the open core's and the platform's metrics, to a staff token only (the
/// Prometheus scrape carries one; tenants' request rates are not public).
pub async fn metrics(req: HttpRequest, state: web::Data<PlatformState>) -> HttpResponse {
    if staff_of(&state, req.headers()).is_none() {
        let _ = state.auth_failures.check(&client_ip(&req));
        return WebError::Unauthorized.error_response();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(
            state
                .metrics
                .as_ref()
                .map(kamiyo_api::metrics::render)
                .unwrap_or_default(),
        )
}

fn staff(req: &HttpRequest, state: &PlatformState) -> Result<(Staff, Db), WebError> {
    let who = req
        .extensions()
        .get::<Staff>()
        .cloned()
        .ok_or(WebError::Unauthorized)?;
    let db = state.staff_db.clone().ok_or(WebError::NotFound)?;
    Ok((who, db))
}

fn staff_actor(who: &Staff, req: &HttpRequest, at: i64) -> Actor {
    Actor {
        actor: format!("staff:{}", who.0),
        ip: client_ip(req),
        at,
    }
}

async fn admin_tenants(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let (_, db) = staff(&req, &state)?;
    Ok(HttpResponse::Ok().json(json!({ "items": db.staff_tenants().await? })))
}

/// `PUT /api/v1/admin/tenants/{id}/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// The plan.
    pub plan: String,
}

async fn admin_plan(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
    body: web::Json<PlanBody>,
) -> Res {
    let (who, db) = staff(&req, &state)?;
    let t = TenantId::parse(&path).map_err(|_| WebError::NotFound)?;
    let plan: Tier = body
        .plan
        .parse()
        .map_err(|e: crate::tiers::TierError| WebError::Invalid(e.to_string()))?;
    db.staff_set(
        &t,
        db::StaffColumn::Plan,
        plan.as_str(),
        &staff_actor(&who, &req, state.now()),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"tenant": t, "plan": plan})))
}

async fn admin_status(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<(String, String)>,
) -> Res {
    let (who, db) = staff(&req, &state)?;
    let (id, action) = path.into_inner();
    let t = TenantId::parse(&id).map_err(|_| WebError::NotFound)?;
    let status = match action.as_str() {
        "suspend" => "suspended",
        "reinstate" => "active",
        _ => return Err(WebError::NotFound),
    };
    db.staff_set(
        &t,
        db::StaffColumn::Status,
        status,
        &staff_actor(&who, &req, state.now()),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"tenant": t, "status": status})))
}

/// `POST /api/v1/admin/tenants/{id}/impersonate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateBody {
    /// Why (recorded in the tenant's audit log).
    pub reason: String,
    /// Minutes the read-only key lives (1 … 240, default 60).
    pub minutes: Option<i64>,
}

async fn admin_impersonate(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
    body: web::Json<ImpersonateBody>,
) -> Res {
    let (who, db) = staff(&req, &state)?;
    let t = TenantId::parse(&path).map_err(|_| WebError::NotFound)?;
    let reason = tenancy::parse_label("reason", &body.reason, 200)?;
    let minutes = body.minutes.unwrap_or(60);
    if !(1..=240).contains(&minutes) {
        return Err(WebError::Invalid("minutes: 1 to 240".into()));
    }
    let now = state.now();
    let key = tenancy::generate_key(&t);
    db.change(
        &t,
        &staff_actor(&who, &req, now),
        Change::Impersonate {
            key_id: key.id.clone(),
            hash: key.hash,
            reason,
            expires_at: now + minutes * 60_000,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({"tenant": t, "key": {"id": key.id, "secret": key.secret, "role": Role::Viewer, "expires_at": now + minutes * 60_000}})))
}

/// The changes a tenant suspended for non-payment may still make: paying (billing), signing
/// out, and taking access away (revoking a key, removing a user) — never adding or configuring.
fn open_while_suspended(method: &Method, path: &str) -> bool {
    path.starts_with("/api/v1/billing")
        || path == "/api/v1/logout"
        || (*method == Method::DELETE
            && (path.starts_with("/api/v1/keys/") || path.starts_with("/api/v1/users/")))
}

/// Sent on every answer while the tenant is in dunning: `grace` or `suspended` (the banner's
/// text is in `GET /api/v1/billing`).
pub const BILLING_HEADER: &str = "kamiyo-billing";

/// Times every `/api/v1` request for the platform's metrics (route pattern, method, status, the
/// caller's plan — `staff`, or `none` before authentication), refusals included.
pub async fn metered(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    // The pattern comes from the resource map (never the raw path: bounded label values).
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await;
    let (status, plan) = match &res {
        Ok(r) => {
            let ext = r.request().extensions();
            let plan = match (ext.get::<Principal>(), ext.get::<Staff>()) {
                (Some(p), _) => p.plan.as_str(),
                (None, Some(_)) => "staff",
                (None, None) => "none",
            };
            (r.status().as_u16(), plan)
        }
        // Refused before a caller was known.
        Err(e) => (e.as_response_error().status_code().as_u16(), "none"),
    };
    crate::metrics::record_request(&route, &method, status, plan, started.elapsed());
    res.map(ServiceResponse::map_into_boxed_body)
}

/// Authentication for everything under `/api/v1` but sign-up: the key's tenant, status and
/// daily meter; attaches the [`Principal`].
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<PlatformState>>().cloned() else {
        return Err(WebError::Internal.into());
    };
    let path = req.path();
    if !path.starts_with("/api/v1/") || PUBLIC_PATHS.contains(&path) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let ip = client_ip(req.request());
    if let Some(wait) = state.auth_failures.exhausted(&ip) {
        return Err(WebError::TooMany {
            detail: "too many failed authentications from this address".into(),
            retry_after: Some(wait),
        }
        .into());
    }
    if path.starts_with(ADMIN_PREFIX) {
        return staff_gate(&state, req, next, &ip).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .map(str::to_owned);
    // No key: a session cookie (the browser), whose writes must show its CSRF token.
    let (presented, session) = match presented {
        Some(k) => (k, false),
        None => (
            req.cookie(SESSION_COOKIE)
                .map(|c| c.value().to_owned())
                .unwrap_or_default(),
            true,
        ),
    };
    let now = state.now();
    let (principal, v) = match verify(
        &state.db,
        &state.tiers,
        Some(&state.keys),
        &presented,
        session,
        now,
    )
    .await
    {
        Ok(found) => found,
        Err(KeyRefusal::Unknown) => {
            let _ = state.auth_failures.check(&ip);
            return Err(WebError::Unauthorized.into());
        }
        Err(KeyRefusal::Suspended) => {
            return Err(WebError::Forbidden("this tenant is suspended".into()).into());
        }
        Err(KeyRefusal::DailyLimit { max, retry_after }) => {
            return Err(WebError::TooMany {
                detail: format!("the plan's {max} API calls for today (UTC) are used"),
                retry_after: Some(retry_after),
            }
            .into());
        }
        Err(KeyRefusal::Db(e)) => return Err(WebError::from(e).into()),
    };
    if session && !matches!(*req.method(), Method::GET | Method::HEAD) {
        let shown = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(tenancy::hash_key)
            .unwrap_or_default();
        let want = v.key.csrf_hash.clone().unwrap_or_default();
        if want.is_empty() || !bool::from(shown.as_bytes().ct_eq(want.as_bytes())) {
            return Err(WebError::Forbidden(format!(
                "a change made with a session cookie needs its CSRF token in {CSRF_HEADER}"
            ))
            .into());
        }
    }
    let held = crate::billing::suspended(&v.key.billing_state, v.key.grace_until, now);
    if held
        && !matches!(*req.method(), Method::GET | Method::HEAD)
        && !open_while_suspended(req.method(), path)
    {
        return Err(WebError::Forbidden(
            "suspended for non-payment: the account is read-only until a payment succeeds (POST /api/v1/billing/portal)".into(),
        )
        .into());
    }
    let dunning = match (held, v.key.billing_state.as_str()) {
        (true, _) => Some("suspended"),
        (false, "grace") => Some("grace"),
        _ => None,
    };
    let (plan, calls) = (principal.plan, v.calls);
    req.extensions_mut().insert(principal);
    let limit = state.tiers.config(plan).limits.api_calls_per_day;
    let mut res = next.call(req).await?.map_into_boxed_body();
    let h = res.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&limit.to_string()) {
        h.insert(header::HeaderName::from_static("x-ratelimit-limit"), v);
    }
    let left = limit.saturating_sub(u64::try_from(calls).unwrap_or(0));
    if let Ok(v) = header::HeaderValue::from_str(&left.to_string()) {
        h.insert(header::HeaderName::from_static("x-ratelimit-remaining"), v);
    }
    if let Some(d) = dunning {
        h.insert(
            header::HeaderName::from_static(BILLING_HEADER),
            header::HeaderValue::from_static(d),
        );
    }
    Ok(res)
}

fn principal(req: &HttpRequest) -> Result<Principal, WebError> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(WebError::Unauthorized)
}

/// Checks `what` for the caller.
fn allowed(
    req: &HttpRequest,
    state: &PlatformState,
    what: Permission,
) -> Result<Principal, WebError> {
    let p = principal(req)?;
    tenancy::authorize(&p, what, &state.tiers)?;
    Ok(p)
}

// ---- sign-up ----

/// `POST /api/v1/signup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// Tenant id (becomes the first part of every key).
    pub tenant: String,
    /// Organisation name.
    pub name: String,
    /// The owner's email.
    pub email: String,
    /// The owner's password.
    pub password: String,
}

async fn signup(req: HttpRequest, state: web::Data<PlatformState>, body: web::Json<SignUp>) -> Res {
    let ip = client_ip(&req);
    state
        .account_requests
        .check(&ip)
        .map_err(|wait| WebError::TooMany {
            detail: "too many sign-ups from this address".into(),
            retry_after: Some(wait),
        })?;
    let tenant = TenantId::parse(&body.tenant)?;
    let name = tenancy::parse_label("name", &body.name, 120)?;
    let email = tenancy::parse_email(&body.email)?;
    let hash = tenancy::hash_password(&body.password)?;
    let key = tenancy::generate_key(&tenant);
    // With billing, a tenant holds the unpaid plan until Stripe confirms a subscription.
    let plan = state
        .billing
        .as_ref()
        .map_or(Tier::CloudBasic, |b| b.settings.unpaid_plan);
    let now = state.now();
    let user_id = state
        .db
        .create_tenant(
            &tenant,
            &name,
            plan.as_str(),
            &email,
            &hash,
            (&key.id, &key.hash),
            state.default_protocol.as_str(),
            &Actor {
                actor: format!("signup:{email}"),
                ip,
                at: now,
            },
        )
        .await?;
    let verification = send_token(
        &state,
        &tenant,
        db::UserRef::Id(&user_id),
        db::TokenPurpose::Verify,
        &email,
    )
    .await?;
    // The Stripe customer now; if Stripe is down, sign-up still succeeds and the
    // reconciliation job creates it.
    if let Some(b) = &state.billing {
        let who = Actor {
            actor: format!("signup:{email}"),
            ip: client_ip(&req),
            at: now,
        };
        if let Err(e) = b.ensure_customer(&tenant, &who).await {
            tracing::warn!(%tenant, error = %e, "Stripe customer not created at sign-up; reconciliation will");
        }
    }
    Ok(HttpResponse::Created().json(json!({
        "tenant": tenant,
        "plan": plan,
        "user_id": user_id,
        "verification": verification,
        "key": {"id": key.id, "secret": key.secret, "role": Role::Owner},
        "subscriptions": [state.default_protocol],
        "note": "the key is shown once; store it now",
    })))
}

// ---- sign-in ----

/// Issues a one-time token for the user and mails the link; what the response says of it.
async fn send_token(
    state: &PlatformState,
    tenant: &TenantId,
    user: db::UserRef<'_>,
    purpose: db::TokenPurpose,
    email: &str,
) -> Result<&'static str, WebError> {
    let Some(mailer) = &state.mailer else {
        return Ok("mail is not configured");
    };
    let token = tenancy::new_secret();
    let now = state.now();
    let (ttl, subject, page) = match purpose {
        db::TokenPurpose::Verify => (VERIFY_MS, "Verify your kamiyo.ai address", "verify-email"),
        db::TokenPurpose::Reset => (RESET_MS, "Reset your kamiyo.ai password", "reset-password"),
    };
    let issued = state
        .db
        .issue_token(
            tenant,
            user,
            purpose,
            &tenancy::hash_key(&token),
            now + ttl,
            now,
        )
        .await?;
    if issued.is_none() {
        return Ok("sent");
    }
    let link = format!(
        "{}/{page}?tenant={tenant}&token={token}",
        state.public_url.trim_end_matches('/')
    );
    let text = format!(
        "Open this link within {} to continue:\n\n{link}\n\nIf you did not ask for it, ignore this message.\n",
        if ttl >= 3_600_000 * 24 {
            "24 hours"
        } else {
            "one hour"
        }
    );
    match mailer.send_text(email, subject, &text).await {
        Ok(_) => Ok("sent"),
        Err(e) => {
            tracing::warn!(error = %e, "account mail not sent");
            Ok("could not be sent; ask again")
        }
    }
}

/// `POST /api/v1/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Tenant id.
    pub tenant: String,
    /// Address.
    pub email: String,
    /// Password.
    pub password: String,
}

async fn login(req: HttpRequest, state: web::Data<PlatformState>, body: web::Json<Login>) -> Res {
    let ip = client_ip(&req);
    let refused = || WebError::Unauthorized;
    let (Ok(tenant), Ok(email)) = (
        TenantId::parse(&body.tenant),
        tenancy::parse_email(&body.email),
    ) else {
        return Err(refused());
    };
    // A tenant that signs in through its identity provider refuses passwords.
    if state.db.sso(&tenant).await?.is_some_and(|s| s.enforced) {
        return Err(WebError::Forbidden(format!(
            "{tenant} signs in through its identity provider: open /sso/{tenant}/start"
        )));
    }
    let account = format!("{tenant}/{email}");
    for (limiter, who) in [(&state.auth_failures, &ip), (&state.logins, &account)] {
        if let Some(wait) = limiter.exhausted(who) {
            return Err(WebError::TooMany {
                detail: "too many sign-in attempts; wait before trying again".into(),
                retry_after: Some(wait),
            });
        }
    }
    let user = state.db.login_user(&tenant, &email).await.unwrap_or(None);
    // The password is checked even for an unknown address, so timing tells nothing.
    let ok = tenancy::verify_password(
        &body.password,
        user.as_ref()
            .map_or(tenancy::DUMMY_HASH, |u| u.password_hash.as_str()),
    );
    let Some(user) = user.filter(|_| ok) else {
        let _ = state.auth_failures.check(&ip);
        let _ = state.logins.check(&account);
        return Err(refused());
    };
    if !user.verified {
        return Err(WebError::Forbidden(
            "verify your address first (the link was mailed at sign-up; ask again with POST /api/v1/password-reset)".into(),
        ));
    }
    let mut res = HttpResponse::Ok();
    let csrf = open_session(&state, &tenant, &user.user_id, &ip, &mut res).await?;
    Ok(res.json(json!({"tenant": tenant, "user_id": user.user_id, "role": user.role, "csrf_token": csrf, "expires_in_secs": SESSION_MS / 1000})))
}

/// Starts a session for the user: stored (hashed), audited, and its cookies set on `res`
/// (the session's, HttpOnly; the CSRF token's, readable by the page). Returns the CSRF token.
pub(crate) async fn open_session(
    state: &PlatformState,
    tenant: &TenantId,
    user_id: &str,
    ip: &str,
    res: &mut actix_web::HttpResponseBuilder,
) -> Result<String, WebError> {
    let secret = format!("{tenant}.{}", tenancy::new_secret());
    let csrf = tenancy::new_secret();
    let now = state.now();
    state
        .db
        .create_session(
            tenant,
            user_id,
            (&tenancy::hash_key(&secret), &tenancy::hash_key(&csrf)),
            now + SESSION_MS,
            &Actor {
                actor: format!("user:{user_id}"),
                ip: ip.to_owned(),
                at: now,
            },
        )
        .await?;
    let max_age = actix_web::cookie::time::Duration::milliseconds(SESSION_MS);
    let session = actix_web::cookie::Cookie::build(SESSION_COOKIE, secret)
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(max_age)
        .finish();
    let csrf_cookie = actix_web::cookie::Cookie::build(CSRF_COOKIE, csrf.clone())
        .path("/")
        .secure(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(max_age)
        .finish();
    res.cookie(session).cookie(csrf_cookie);
    Ok(csrf)
}

async fn logout(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = principal(&req)?;
    let Some(c) = req.cookie(SESSION_COOKIE) else {
        return Err(WebError::Invalid(
            "signing out ends a session cookie; keys are revoked at DELETE /api/v1/keys/{id}"
                .into(),
        ));
    };
    state
        .db
        .end_session(
            &p.tenant,
            &tenancy::hash_key(c.value()),
            &actor(&p, &req, state.now()),
        )
        .await?;
    let mut gone = actix_web::cookie::Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// `POST /api/v1/verify-email`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// Tenant id.
    pub tenant: String,
    /// The token from the link.
    pub token: String,
    /// The new password (password reset only).
    pub password: Option<String>,
}

async fn use_token(
    req: &HttpRequest,
    state: &PlatformState,
    body: &TokenBody,
    purpose: db::TokenPurpose,
) -> Res {
    let tenant = TenantId::parse(&body.tenant).map_err(|_| WebError::NotFound)?;
    let pw = match (purpose, &body.password) {
        (db::TokenPurpose::Reset, Some(p)) => Some(tenancy::hash_password(p)?),
        (db::TokenPurpose::Reset, None) => {
            return Err(WebError::Invalid("password: the new password".into()));
        }
        (db::TokenPurpose::Verify, _) => None,
    };
    let user = state
        .db
        .use_token(
            &tenant,
            purpose,
            &tenancy::hash_key(body.token.trim()),
            pw.as_deref(),
            &Actor {
                actor: "link".into(),
                ip: client_ip(req),
                at: state.now(),
            },
        )
        .await
        .map_err(|e| match e {
            DbError::NotFound => {
                WebError::Invalid("the link is unknown, used or expired; ask for a new one".into())
            }
            e => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(json!({"user_id": user, "done": true})))
}

async fn verify_email(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<TokenBody>,
) -> Res {
    use_token(&req, &state, &body, db::TokenPurpose::Verify).await
}

/// `POST /api/v1/password-reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// Tenant id.
    pub tenant: String,
    /// Address.
    pub email: String,
}

async fn password_reset(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<ResetRequest>,
) -> Res {
    let ip = client_ip(&req);
    state
        .account_requests
        .check(&ip)
        .map_err(|wait| WebError::TooMany {
            detail: "too many requests from this address".into(),
            retry_after: Some(wait),
        })?;
    // The same answer whether or not the address is known.
    if let (Ok(t), Ok(e)) = (
        TenantId::parse(&body.tenant),
        tenancy::parse_email(&body.email),
    ) {
        send_token(
            &state,
            &t,
            db::UserRef::Email(&e),
            db::TokenPurpose::Reset,
            &e,
        )
        .await?;
    }
    Ok(HttpResponse::Accepted()
        .json(json!({"note": "if the address is known, a link is on its way"})))
}

async fn password_reset_confirm(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<TokenBody>,
) -> Res {
    use_token(&req, &state, &body, db::TokenPurpose::Reset).await
}

// ---- the tenant ----

async fn tenant(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let row = state.db.tenant(&p.tenant).await?;
    let today = db::utc_day(state.now());
    let usage = state.db.usage(&p.tenant, today).await?;
    let c = state.tiers.config(p.plan);
    Ok(HttpResponse::Ok().json(json!({
        "tenant": row.tenant_id,
        "name": row.name,
        "plan": p.plan,
        "status": row.status,
        "created_at": row.created_at,
        "features": c.features,
        "limits": {
            "protocols": c.limits.protocols,
            "api_calls_per_day": c.limits.api_calls_per_day,
            "alerts_per_day": c.limits.alerts_per_day,
            "history_days": c.limits.history_days,
        },
        "usage_today": usage.first(),
        "you": {"actor": p.actor, "role": p.role},
    })))
}

/// `?days=` of `/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaysQuery {
    /// Days back (1 … the plan's history).
    pub days: Option<u32>,
}

fn history_days(state: &PlatformState, p: &Principal) -> u32 {
    state.tiers.config(p.plan).limits.history_days
}

async fn usage(req: HttpRequest, state: web::Data<PlatformState>, q: web::Query<DaysQuery>) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let max = history_days(&state, &p);
    let days = q.days.unwrap_or(30).clamp(1, max.max(1));
    let since = db::utc_day(state.now() - i64::from(days - 1) * 86_400_000);
    let rows = state.db.usage(&p.tenant, since).await?;
    Ok(HttpResponse::Ok().json(json!({"days": days, "usage": rows})))
}

// ---- lists ----

async fn list_of<R>(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    what: List,
    perm: Permission,
) -> Res
where
    R: db::ListRow,
{
    let p = allowed(&req, &state, perm)?;
    let rows: Vec<R> = state.db.list(&p.tenant, what).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": rows })))
}

async fn change(
    req: &HttpRequest,
    state: &PlatformState,
    p: &Principal,
    c: Change,
) -> Result<(), WebError> {
    state
        .db
        .change(&p.tenant, &actor(p, req, state.now()), c)
        .await
        .map_err(WebError::from)?;
    // Keys, subscriptions, the plan: what a cached verification carries may have changed.
    state.keys.forget_tenant(&p.tenant);
    Ok(())
}

// ---- users ----

/// `POST /api/v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Email.
    pub email: String,
    /// Initial password.
    pub password: String,
    /// Role.
    pub role: String,
}

async fn add_user(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<NewUser>,
) -> Res {
    let p = allowed(&req, &state, Permission::ManageAccess)?;
    let role = Role::parse(&body.role)?;
    tenancy::may_grant(&p, role, &state.tiers)?;
    let email = tenancy::parse_email(&body.email)?;
    let password_hash = tenancy::hash_password(&body.password)?;
    let user_id = tenancy::new_id("usr");
    change(
        &req,
        &state,
        &p,
        Change::AddUser {
            user_id: user_id.clone(),
            email: email.clone(),
            password_hash,
            role: role.as_str().into(),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({"user_id": user_id, "email": email, "role": role})))
}

/// An id in a path: the shape ids have (`<prefix>_<16 hex>`), else 404 without a lookup.
fn id_in_path(prefix: &str, s: &str) -> Result<String, WebError> {
    let ok = s
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(WebError::NotFound)
    }
}

async fn remove_user(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::ManageAccess)?;
    let id = id_in_path("usr", &path)?;
    change(&req, &state, &p, Change::RemoveUser(id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- keys ----

/// `POST /api/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// Label.
    pub name: String,
    /// Role of the key.
    pub role: String,
}

async fn add_key(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<NewKeyBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::ManageAccess)?;
    let role = Role::parse(&body.role)?;
    tenancy::may_grant(&p, role, &state.tiers)?;
    let name = tenancy::parse_label("name", &body.name, 80)?;
    let key = tenancy::generate_key(&p.tenant);
    change(
        &req,
        &state,
        &p,
        Change::AddKey {
            key_id: key.id.clone(),
            name: name.clone(),
            hash: key.hash,
            role: role.as_str().into(),
            created_by: p.actor.clone(),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({
        "id": key.id, "name": name, "role": role, "secret": key.secret,
        "note": "the key is shown once; store it now",
    })))
}

async fn revoke_key(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::ManageAccess)?;
    let id = id_in_path("key", &path)?;
    change(&req, &state, &p, Change::RevokeKey(id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- subscriptions ----

/// A protocol `p` may subscribe to: in the registry (or ingested here), within the plan
/// (402 naming the plan it needs), and available — ingested by this deployment, or historical
/// (409 with the reason otherwise).
fn subscribable(state: &PlatformState, p: &Principal, s: &str) -> Result<ProtocolId, WebError> {
    use crate::registry::AdapterStatus;
    let id = ProtocolId::parse(s).map_err(|_| WebError::NotFound)?;
    let ingested = state.protocols.contains(&id);
    match state.registry.get(&id) {
        None if ingested => Ok(id),
        None => Err(WebError::NotFound),
        Some(d) if d.min_plan > p.plan => Err(WebError::PaymentRequired(format!(
            "{} needs the {} plan",
            d.name,
            d.min_plan.as_str()
        ))),
        Some(d) if !ingested && d.adapter.status != AdapterStatus::Historical => {
            Err(WebError::Conflict(format!(
                "{} is not available here yet: {}",
                d.name,
                d.adapter
                    .reason
                    .as_deref()
                    .unwrap_or("this deployment does not ingest it")
            )))
        }
        Some(_) => Ok(id),
    }
}

/// `GET /api/v1/protocols`: what the caller's plan allows, with whether each is available
/// here and subscribed; how many more a higher plan opens.
async fn protocols(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    use crate::registry::AdapterStatus;
    let p = allowed(&req, &state, Permission::Read)?;
    let have: Vec<db::SubscriptionRow> = state.db.list(&p.tenant, List::Subscriptions).await?;
    let items: Vec<serde_json::Value> = state
        .registry
        .for_plan(p.plan)
        .map(|d| {
            let ingested = d.protocol().is_some_and(|id| state.protocols.contains(&id));
            json!({
                "id": d.id,
                "name": d.name,
                "category": d.category,
                "chains": d.chains,
                "min_plan": d.min_plan,
                "adapter": d.adapter,
                "docs": d.docs,
                "sources": d.sources,
                "available": ingested || d.adapter.status == AdapterStatus::Historical,
                "subscribed": have.iter().any(|s| s.protocol == d.id),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "plan": p.plan,
        "limit": state.tiers.config(p.plan).limits.protocols,
        "subscribed": have.len(),
        "items": items,
        "with_a_higher_plan": state.registry.all().len() - state.registry.for_plan(p.plan).count(),
    })))
}

async fn subscribe(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::Configure)?;
    let protocol = subscribable(&state, &p, &path)?;
    let have: Vec<db::SubscriptionRow> = state.db.list(&p.tenant, List::Subscriptions).await?;
    if !have.iter().any(|s| s.protocol == protocol.as_str()) && !have.is_empty() {
        tenancy::require(p.plan, Feature::MultiProtocol, &state.tiers)?;
    }
    let max = i64::from(state.tiers.config(p.plan).limits.protocols);
    change(
        &req,
        &state,
        &p,
        Change::Subscribe {
            protocol: protocol.as_str().into(),
            max,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"protocol": protocol, "subscribed": true})))
}

async fn unsubscribe(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::Configure)?;
    let protocol = ProtocolId::parse(&path).map_err(|_| WebError::NotFound)?;
    change(
        &req,
        &state,
        &p,
        Change::Unsubscribe(protocol.as_str().into()),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- thresholds ----

/// `PUT /api/v1/thresholds/{detector}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdBody {
    /// The value (finite).
    pub value: f64,
}

async fn set_threshold(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<(String, String)>,
    body: web::Json<ThresholdBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Tune)?;
    let (d, n) = path.into_inner();
    let detector = tenancy::parse_name("detector", &d)?;
    let name = tenancy::parse_name("name", &n)?;
    if !body.value.is_finite() {
        return Err(WebError::Invalid("value: a finite number".into()));
    }
    change(
        &req,
        &state,
        &p,
        Change::SetThreshold {
            detector: detector.clone(),
            name: name.clone(),
            value: body.value,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"detector": detector, "name": name, "value": body.value})))
}

async fn remove_threshold(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<(String, String)>,
) -> Res {
    let p = allowed(&req, &state, Permission::Tune)?;
    let (d, n) = path.into_inner();
    let (Ok(detector), Ok(name)) = (
        tenancy::parse_name("detector", &d),
        tenancy::parse_name("name", &n),
    ) else {
        return Err(WebError::NotFound);
    };
    change(&req, &state, &p, Change::RemoveThreshold { detector, name }).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- watched addresses ----

/// `PUT /api/v1/watched-addresses/{address}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchBody {
    /// Label.
    pub label: String,
}

fn address_in_path(s: &str) -> Result<String, WebError> {
    Address::parse(s)
        .map(|a| a.to_string().to_lowercase())
        .map_err(|_| WebError::NotFound)
}

async fn watch(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
    body: web::Json<WatchBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Tune)?;
    let address = Address::parse(&path)
        .map(|a| a.to_string().to_lowercase())
        .map_err(|_| WebError::Invalid("address: 0x followed by 40 hex digits".into()))?;
    let label = tenancy::parse_label("label", &body.label, 80)?;
    change(
        &req,
        &state,
        &p,
        Change::Watch {
            address: address.clone(),
            label: label.clone(),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"address": address, "label": label})))
}

async fn unwatch(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::Tune)?;
    let address = address_in_path(&path)?;
    change(&req, &state, &p, Change::Unwatch(address)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- channels ----

/// `POST /api/v1/channels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    /// Name.
    pub name: String,
    /// Kind (webhook, slack, discord, telegram, email, pagerduty, opsgenie).
    pub kind: String,
    /// Destination URL (https; for email, `mailto:`).
    pub url: String,
    /// Signing secret or token (write-only).
    pub secret: Option<String>,
    /// Least severity sent (default high).
    pub min_severity: Option<String>,
}

async fn add_channel(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<ChannelBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Configure)?;
    let name = tenancy::parse_label("name", &body.name, 80)?;
    if !tenancy::CHANNEL_KINDS.contains(&body.kind.as_str()) {
        return Err(WebError::Invalid(format!(
            "kind: one of {}",
            tenancy::CHANNEL_KINDS.join(", ")
        )));
    }
    let loopback = state.loopback_channels
        && ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| body.url.starts_with(p));
    let url_ok = if body.kind == "email" {
        body.url.starts_with("mailto:") && tenancy::parse_email(&body.url[7..]).is_ok()
    } else {
        (body.url.starts_with("https://") || loopback)
            && body.url.len() <= 2048
            && !body.url.contains(char::is_whitespace)
    };
    if !url_ok {
        return Err(WebError::Invalid(
            "url: an https:// URL (mailto:<address> for email), at most 2048 characters".into(),
        ));
    }
    let min_severity = body.min_severity.clone().unwrap_or_else(|| "high".into());
    if !tenancy::SEVERITIES.contains(&min_severity.as_str()) {
        return Err(WebError::Invalid(format!(
            "min_severity: one of {}",
            tenancy::SEVERITIES.join(", ")
        )));
    }
    if body
        .secret
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > 512)
    {
        return Err(WebError::Invalid("secret: 1 to 512 characters".into()));
    }
    let channel_id = tenancy::new_id("chn");
    change(
        &req,
        &state,
        &p,
        Change::AddChannel {
            channel_id: channel_id.clone(),
            name: name.clone(),
            kind: body.kind.clone(),
            url: body.url.clone(),
            secret: body.secret.clone(),
            min_severity: min_severity.clone(),
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({
        "channel_id": channel_id, "name": name, "kind": body.kind, "min_severity": min_severity,
        "has_secret": body.secret.is_some(),
    })))
}

async fn remove_channel(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::Configure)?;
    let id = id_in_path("chn", &path)?;
    change(&req, &state, &p, Change::RemoveChannel(id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- audit ----

/// `?since=&limit=` of `/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Epoch ms (clamped to the plan's history).
    pub since: Option<i64>,
    /// Rows (1 … 1000, default 100).
    pub limit: Option<u32>,
}

fn audit_since(state: &PlatformState, p: &Principal, since: Option<i64>) -> i64 {
    let floor = state.now() - i64::from(history_days(state, p)) * 86_400_000;
    since.unwrap_or(floor).max(floor)
}

async fn audit(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<AuditQuery>,
) -> Res {
    let p = allowed(&req, &state, Permission::ReadAudit)?;
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
    let rows = state
        .db
        .audit_log(&p.tenant, audit_since(&state, &p, q.since), limit, false)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": rows })))
}

/// Most rows one export returns (ask again with `since` after the last).
pub const EXPORT_ROWS: i64 = 100_000;

async fn audit_export(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<AuditQuery>,
) -> Res {
    let p = allowed(&req, &state, Permission::ReadAudit)?;
    let rows = state
        .db
        .audit_log(
            &p.tenant,
            audit_since(&state, &p, q.since),
            EXPORT_ROWS,
            true,
        )
        .await?;
    let mut body = String::new();
    for r in rows {
        body.push_str(&serde_json::to_string(&r).map_err(|_| WebError::Internal)?);
        body.push('\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .body(body))
}

/// `?limit=` of `/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// Rows (1 … 1000, default 100).
    pub limit: Option<u32>,
}

async fn alerts(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<LimitQuery>,
) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
    let rows = state.db.tenant_outbox(&p.tenant, limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": rows })))
}

/// The cross-protocol correlated incidents touching the tenant's protocols (plans with
/// cross-protocol correlation), latest first, each with its members, protocols and the
/// evidence of each attack stage.
async fn correlated(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<LimitQuery>,
) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    tenancy::require(p.plan, Feature::CrossProtocolCorrelation, &state.tiers)?;
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 500));
    let subs: Vec<db::SubscriptionRow> = state.db.list(&p.tenant, List::Subscriptions).await?;
    let protocols: Vec<String> = subs.into_iter().map(|s| s.protocol).collect();
    let rows = if protocols.is_empty() {
        Vec::new()
    } else {
        state.db.correlated(&protocols, limit).await?
    };
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let stages: serde_json::Value =
                serde_json::from_str(&r.stages).unwrap_or_else(|_| json!({}));
            json!({
                "id": r.correlated_id,
                "pattern": r.pattern,
                "entity": r.entity,
                "protocols": r.protocols,
                "members": r.members,
                "stages": stages,
                "severity": r.severity,
                "score": r.score,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
                "opened_at": r.opened_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::merged())
}

async fn not_found() -> Res {
    Err(WebError::NotFound)
}

/// The whole service's OpenAPI document is also served here (and at `/openapi.json`).
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

// ---- the open core's API, tenant-scoped ----

/// What the open core's routes know of a request's tenant (attached by [`PlatformAuth`]).
#[derive(Debug, Clone)]
pub struct TenantContext {
    /// The caller.
    pub principal: Principal,
    /// Its tenant's protocols, first subscribed first.
    pub protocols: Arc<[ProtocolId]>,
}

/// The open core's gate checks platform keys through this: the same check and daily meter as
/// `/api/v1`, the tenant attached for [`TenantResolver`]. Keys are read-only there (acting on
/// shared incidents is not a tenant's).
pub struct PlatformAuth {
    /// Tenant state.
    pub db: Db,
    /// Plans.
    pub tiers: TierMatrix,
    /// Epoch-ms clock.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The keys verified moments ago (shared with `/api/v1`).
    pub keys: Arc<KeyCache>,
}

#[async_trait::async_trait(?Send)]
impl kamiyo_api::auth::Authenticator for PlatformAuth {
    async fn authenticate(
        &self,
        presented: &str,
        req: &ServiceRequest,
    ) -> Result<Option<(String, kamiyo_api::auth::Principal)>, kamiyo_api::ApiError> {
        use kamiyo_api::ApiError;
        let now = (self.clock)();
        // A browser session (the cookie, read by `presented`) or a key.
        let (presented, session) = match presented.strip_prefix(SESSION_MARK) {
            Some(s) => (s, true),
            None => (presented, false),
        };
        let (p, v) = match verify(
            &self.db,
            &self.tiers,
            Some(&self.keys),
            presented,
            session,
            now,
        )
        .await
        {
            Ok(found) => found,
            Err(KeyRefusal::Unknown) => return Ok(None),
            Err(KeyRefusal::Suspended) => {
                return Err(ApiError::Forbidden("this tenant is suspended".into()));
            }
            Err(KeyRefusal::DailyLimit { retry_after, .. }) => {
                return Err(ApiError::RateLimited {
                    retry_after_secs: retry_after,
                });
            }
            Err(KeyRefusal::Db(e)) => {
                tracing::error!(error = %e, "key check failed");
                return Err(ApiError::Unavailable("the database is unavailable".into()));
            }
        };
        let protocols: Arc<[ProtocolId]> = v
            .protocols
            .iter()
            .filter_map(|s| ProtocolId::parse(s).ok())
            .collect();
        let limited_as = format!("tenant:{}:{}", p.tenant, p.actor);
        let open_core = kamiyo_api::auth::Principal {
            key_id: None,
            name: format!("{} of {}", p.actor, p.tenant),
            scope: kamiyo_core_models::KeyScope::Read,
        };
        req.extensions_mut().insert(TenantContext {
            principal: p,
            protocols,
        });
        Ok(Some((limited_as, open_core)))
    }

    async fn still_valid(&self, presented: &str) -> Result<bool, kamiyo_api::ApiError> {
        let (secret, session) = match presented.strip_prefix(SESSION_MARK) {
            Some(s) => (s, true),
            None => (presented, false),
        };
        let Some(t) = tenancy::key_tenant(secret) else {
            return Ok(false);
        };
        let (hash, now) = (tenancy::hash_key(secret), (self.clock)());
        if session {
            self.db.session_valid(&t, &hash, now).await
        } else {
            self.db.key_valid(&t, &hash, now).await
        }
        .map_err(|e| kamiyo_api::ApiError::Unavailable(e.to_string()))
    }

    fn presented(&self, req: &HttpRequest) -> Option<String> {
        req.cookie(SESSION_COOKIE)
            .map(|c| format!("{SESSION_MARK}{}", c.value()))
    }
}

/// Each tenant's view of the shared facts: its protocols, its plan's history, facts only;
/// cached responses never shared between tenants.
pub struct TenantResolver {
    /// The shared stores (one store for every tenant, read through the scope).
    pub shared: kamiyo_api::ApiStores,
    /// Plans.
    pub tiers: TierMatrix,
}

impl kamiyo_api::StoreResolver for TenantResolver {
    fn resolve(
        &self,
        _: &kamiyo_api::auth::Principal,
        req: &HttpRequest,
    ) -> Result<kamiyo_api::ApiStores, kamiyo_api::ApiError> {
        let ext = req.extensions();
        let t = ext
            .get::<TenantContext>()
            .ok_or_else(|| kamiyo_api::ApiError::Unauthorized("no tenant".into()))?;
        let days = i64::from(self.tiers.config(t.principal.plan).limits.history_days);
        let mut s = self.shared.clone();
        s.partition = Arc::from(format!("tenant:{}", t.principal.tenant));
        s.scope = kamiyo_api::ReadScope {
            protocols: Some(t.protocols.clone()),
            history_ms: Some(days * 86_400_000),
            facts_only: true,
        };
        Ok(s)
    }
}

/// Turns an open-core API state over the shared store into the platform's: platform keys,
/// tenant scopes.
fn scope_open_core(
    api: &mut kamiyo_api::ApiState,
    shared: kamiyo_api::ApiStores,
    platform: &PlatformState,
) {
    api.stores = Arc::new(TenantResolver {
        shared,
        tiers: platform.tiers.clone(),
    });
    api.authenticator = Some(Arc::new(PlatformAuth {
        db: platform.db.clone(),
        tiers: platform.tiers.clone(),
        clock: platform.clock.clone(),
        keys: platform.keys.clone(),
    }));
}

/// Readiness of the open core's routes: the shared store answers.
struct Ping(kamiyo_store::Store);

#[async_trait::async_trait]
impl kamiyo_api::Probe for Ping {
    async fn check(&self) -> Result<(), String> {
        self.0
            .ping()
            .await
            .map_err(|_| "the database does not answer".to_owned())
    }
}

/// The open core's API over the shared facts (`shared`, connected as the application role),
/// with platform keys and tenant scopes; register it after [`routes`] with
/// `kamiyo_api::configure`.
pub fn open_core(
    shared: &kamiyo_store::Store,
    platform: &PlatformState,
    hlp_vault: Address,
    clock: Arc<dyn kamiyo_core_models::Clock>,
) -> web::Data<kamiyo_api::ApiState> {
    let stores = kamiyo_api::ApiStores::single(shared);
    let mut api = kamiyo_api::ApiState::new(
        stores.clone(),
        Arc::new(Ping(shared.clone())),
        kamiyo_api::Hub::default(),
        clock,
        kamiyo_api::ApiConfig {
            require_keys: true,
            rate_limit_per_minute: 0,
            cors_origins: Vec::new(),
            allowed_hosts: None,
            max_body_bytes: MAX_BODY_BYTES,
            hlp_vault,
        },
    );
    // The exploit database is public history, the same for every tenant.
    api.exploit_db = Some(Arc::new(shared.clone()));
    scope_open_core(&mut api, stores, platform);
    api.shared()
}

/// `GET /api/v1/plans` (public): the tier matrix enforcement reads, as the landing page shows it.
async fn plans(state: web::Data<PlatformState>) -> Res {
    let items: Vec<serde_json::Value> = Tier::ALL
        .into_iter()
        .map(|t| {
            let c = state.tiers.config(t);
            json!({
                "id": t,
                "name": c.display_name,
                "price_cents_per_month": c.price_cents_per_month,
                "managed_hosting": c.managed_hosting,
                "support": c.support,
                "features": c.features,
                "limits": {
                    "protocols": c.limits.protocols,
                    "api_calls_per_day": c.limits.api_calls_per_day,
                    "alerts_per_day": c.limits.alerts_per_day,
                    "history_days": c.limits.history_days,
                },
            })
        })
        .collect();
    let trial_days = state.billing.as_ref().map_or(0, |b| b.settings.trial_days);
    Ok(HttpResponse::Ok().json(json!({ "items": items, "trial_days": trial_days })))
}

// ---- working incidents (the tenant's own state of shared incidents) ----

/// `GET /api/v1/incident-states?ids=a,b`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatesQuery {
    /// Incident ids, comma-separated (at most 200).
    pub ids: String,
}

/// The tenant's newest action on each of the incidents named (those it never acted on are
/// absent: open, unacknowledged).
async fn incident_states(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<StatesQuery>,
) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let ids: Vec<String> = q
        .ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.len() > 200 || ids.iter().any(|i| i.len() > 80) {
        return Err(WebError::Invalid(
            "ids: at most 200 incident ids, comma-separated".into(),
        ));
    }
    let rows = state.db.incident_states(&p.tenant, &ids).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": rows })))
}

async fn incident_actions(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let rows = state.db.incident_history(&p.tenant, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": rows })))
}

/// `POST /api/v1/incidents/{id}/actions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `acknowledge`, `mute` (no more alerts for it), `resolve` (a new alerting step reopens
    /// it) or `reopen`.
    pub action: String,
    /// Why (shown in the incident's history and the audit log).
    #[serde(default)]
    pub note: String,
}

/// Incident actions a tenant may take.
pub const INCIDENT_ACTIONS: [&str; 4] = ["acknowledge", "mute", "resolve", "reopen"];

async fn act_on_incident(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
    body: web::Json<ActionBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Respond)?;
    if !INCIDENT_ACTIONS.contains(&body.action.as_str()) {
        return Err(WebError::Invalid(format!(
            "action: one of {}",
            INCIDENT_ACTIONS.join(", ")
        )));
    }
    let note = body.note.trim();
    if note.chars().count() > 500 || note.chars().any(char::is_control) {
        return Err(WebError::Invalid(
            "note: at most 500 characters, no control characters".into(),
        ));
    }
    // Only an incident the tenant can see (one of its protocols) is acted on.
    let id = path.into_inner();
    if let Some(facts) = &state.facts {
        let subs: Vec<db::SubscriptionRow> = state.db.list(&p.tenant, List::Subscriptions).await?;
        let incident = kamiyo_core_models::StableId::parse(&id)
            .ok()
            .map(|i| async move { facts.incident(&i).await });
        let found = match incident {
            Some(f) => f.await.map_err(|e| {
                tracing::warn!(error = %e, "incident lookup failed");
                WebError::Unavailable
            })?,
            None => None,
        };
        if !found.is_some_and(|i| subs.iter().any(|s| s.protocol == i.protocol.as_str())) {
            return Err(WebError::NotFound);
        }
    }
    change(
        &req,
        &state,
        &p,
        Change::IncidentAction {
            incident_id: id.clone(),
            action: body.action.clone(),
            note: note.to_owned(),
        },
    )
    .await?;
    let rows = state.db.incident_history(&p.tenant, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "incident_id": id, "items": rows })))
}

async fn test_channel(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
) -> Res {
    let p = allowed(&req, &state, Permission::Configure)?;
    let brand = brand_of_plan(&state, &p).await?;
    let sent = crate::fanout::send_test(
        &state.db,
        state.mailer.as_deref(),
        &p.tenant,
        &path,
        brand.as_deref(),
        state.now(),
    )
    .await;
    let outcome = match sent {
        Ok(None) => return Err(WebError::NotFound),
        Ok(Some(())) => json!({"channel_id": *path, "delivered": true}),
        Err(e) => json!({"channel_id": *path, "delivered": false, "error": e.to_string()}),
    };
    let who = actor(&p, &req, state.now());
    let summary = if outcome["delivered"] == true {
        "test message delivered".to_owned()
    } else {
        format!(
            "test message failed: {}",
            outcome["error"].as_str().unwrap_or("")
        )
    };
    state
        .db
        .note(&p.tenant, &who, "channel.test", &path, &summary)
        .await?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// The name the tenant's alerts go out under: its brand on plans with white label.
async fn brand_of_plan(state: &PlatformState, p: &Principal) -> Result<Option<String>, WebError> {
    if !state.tiers.is_feature_enabled(p.plan, Feature::WhiteLabel) {
        return Ok(None);
    }
    Ok(state.db.brand(&p.tenant).await?.map(|b| b.name))
}

// ---- branding (white label) ----

/// `PUT /api/v1/branding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandBody {
    /// Name shown (and, with white label, the name alerts are sent under).
    pub name: String,
    /// Logo: a `data:image/png;base64,…` or `data:image/svg+xml;base64,…` URL (≤ 64 KiB).
    pub logo: Option<String>,
    /// Main colour, `#rrggbb` (white text on it must reach 4.5:1).
    pub primary_colour: String,
    /// Accent colour, `#rrggbb` (same rule).
    pub accent_colour: String,
    /// Custom domain (plans with custom domains).
    pub domain: Option<String>,
}

async fn get_branding(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let brand = state.db.brand(&p.tenant).await?;
    Ok(HttpResponse::Ok().json(json!({
        "brand": brand,
        "may_brand": state.tiers.is_feature_enabled(p.plan, Feature::CustomBranding),
        "may_use_domain": state.tiers.is_feature_enabled(p.plan, Feature::CustomDomain),
        "alerts_branded": state.tiers.is_feature_enabled(p.plan, Feature::WhiteLabel),
    })))
}

async fn put_branding(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<BrandBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Brand)?;
    let b = body.into_inner();
    let name = tenancy::parse_label("name", &b.name, 60)?;
    let primary = crate::pages::parse_colour("primary_colour", &b.primary_colour)?;
    let accent = crate::pages::parse_colour("accent_colour", &b.accent_colour)?;
    let logo = match b.logo.filter(|l| !l.is_empty()) {
        Some(l) => Some(crate::pages::parse_logo(&l)?),
        None => None,
    };
    let domain = match b.domain.filter(|d| !d.is_empty()) {
        Some(d) => {
            tenancy::require(p.plan, Feature::CustomDomain, &state.tiers)?;
            Some(crate::pages::parse_domain(&d)?)
        }
        None => None,
    };
    change(
        &req,
        &state,
        &p,
        Change::SetBrand {
            name,
            logo,
            primary_colour: primary,
            accent_colour: accent,
            domain,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "brand": state.db.brand(&p.tenant).await? })))
}

async fn delete_branding(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Brand)?;
    change(&req, &state, &p, Change::RemoveBrand).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- single sign-on ----

/// `PUT /api/v1/sso`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoBody {
    /// The identity provider's issuer (https; http only on a loopback address).
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// The ID-token claim with the user's groups or roles (default `groups`).
    pub role_claim: Option<String>,
    /// Claim value → role (`admin`, `analyst`, `viewer`).
    #[serde(default)]
    pub role_map: std::collections::BTreeMap<String, String>,
    /// Role of a user no mapping names; absent: refused.
    pub default_role: Option<String>,
    /// Refuse password sign-in.
    #[serde(default)]
    pub enforced: bool,
}

async fn get_sso(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let row = state.db.sso(&p.tenant).await?;
    Ok(HttpResponse::Ok().json(json!({
        "sso": row.map(|r| {
            let map: serde_json::Value = serde_json::from_str(&r.role_map).unwrap_or_default();
            json!({"issuer": r.issuer, "client_id": r.client_id, "role_claim": r.role_claim,
                   "role_map": map, "default_role": r.default_role, "enforced": r.enforced,
                   "start_url": format!("{}/sso/{}/start", state.public_url.trim_end_matches('/'), p.tenant),
                   "redirect_uri": crate::sso::redirect_uri(&state.public_url, &p.tenant)})
        }),
        "available": state.tiers.is_feature_enabled(p.plan, Feature::Sso),
    })))
}

async fn put_sso(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<SsoBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::SingleSignOn)?;
    let b = body.into_inner();
    let issuer = crate::sso::parse_issuer(&b.issuer)?;
    let client_id = tenancy::parse_label("client_id", &b.client_id, 200)?;
    if b.client_secret.is_empty() || b.client_secret.len() > 500 {
        return Err(WebError::Invalid(
            "client_secret: 1 to 500 characters".into(),
        ));
    }
    let role_claim = tenancy::parse_label(
        "role_claim",
        b.role_claim.as_deref().unwrap_or("groups"),
        80,
    )?;
    let assignable = |r: &str| matches!(r, "admin" | "analyst" | "viewer");
    if let Some((k, v)) = b
        .role_map
        .iter()
        .find(|(k, v)| k.is_empty() || !assignable(v))
    {
        return Err(WebError::Invalid(format!(
            "role_map: {k:?} → {v:?}; values are admin, analyst or viewer (owners are made in kamiyo)"
        )));
    }
    if b.default_role.as_deref().is_some_and(|r| !assignable(r)) {
        return Err(WebError::Invalid(
            "default_role: admin, analyst or viewer".into(),
        ));
    }
    // The provider must answer discovery before password sign-in can be turned off (and
    // its answer is kept for the sign-ins).
    state
        .sso_providers
        .fetch(&issuer)
        .await
        .map_err(|e| WebError::Invalid(format!("issuer: discovery failed: {e}")))?;
    change(
        &req,
        &state,
        &p,
        Change::SetSso {
            issuer,
            client_id,
            client_secret: b.client_secret,
            role_claim,
            role_map: serde_json::to_string(&b.role_map).unwrap_or_else(|_| "{}".into()),
            default_role: b.default_role,
            enforced: b.enforced,
        },
    )
    .await?;
    get_sso(req, state).await
}

async fn delete_sso(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::SingleSignOn)?;
    change(&req, &state, &p, Change::RemoveSso).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- staff: audit and health ----

async fn admin_audit(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<LimitQuery>,
) -> Res {
    let (_, db) = staff(&req, &state)?;
    let limit = i64::from(q.limit.unwrap_or(200).clamp(1, 1000));
    Ok(HttpResponse::Ok().json(json!({ "items": db.staff_audit(limit).await? })))
}

async fn admin_health(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let (_, db) = staff(&req, &state)?;
    let now = state.now();
    let h = db.staff_health().await?;
    let newest = match &state.facts {
        Some(f) => Some(crate::fanout::newest_seq(f.as_ref()).await?),
        None => None,
    };
    let checks = json!({
        "database": "ok",
        "router_lag_steps": newest.map(|n| (n - h.router_seq).max(0)),
        "correlator_lag_steps": newest.map(|n| (n - h.correlator_seq).max(0)),
        "oldest_pending_alert_secs": h.oldest_pending_ms.map(|t| ((now - t).max(0)) / 1000),
        "billing": if state.billing.is_some() { "configured" } else { "not configured" },
        "mail": if state.mailer.is_some() { "configured" } else { "not configured" },
    });
    Ok(HttpResponse::Ok()
        .json(json!({ "counts": h, "newest_seq": newest, "checks": checks, "at": now })))
}

// ---- availability ----

impl PlatformState {
    /// The public status (each component's state and 90-day history), from this replica's
    /// cache when it is younger than [`STATUS_CACHE_MS`].
    pub async fn public_status(&self) -> Arc<serde_json::Value> {
        let now = self.now();
        if let Ok(c) = self.status_cache.lock()
            && let Some((at, v)) = c.as_ref()
            && now - *at < STATUS_CACHE_MS
            && now >= *at
        {
            return v.clone();
        }
        let protocols: Vec<String> = self.protocols.iter().map(|p| p.to_string()).collect();
        let names = self
            .protocols
            .iter()
            .filter_map(|p| Some((p.to_string(), self.registry.get(p)?.name.clone())))
            .collect();
        let v = Arc::new(crate::status::status(&self.db, &protocols, &names, now).await);
        if let Ok(mut c) = self.status_cache.lock() {
            *c = Some((now, v.clone()));
        }
        v
    }
}

/// `GET /api/v1/status` (public).
async fn status(state: web::Data<PlatformState>) -> Res {
    let v = state.public_status().await;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=5"))
        .json(v.as_ref()))
}

/// `?month=YYYY-MM&format=json|csv` of the SLA reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaQuery {
    /// The month (default: the last complete one).
    pub month: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

impl SlaQuery {
    fn month(&self, now: i64) -> Result<String, WebError> {
        let month = self
            .month
            .clone()
            .unwrap_or_else(|| crate::status::previous_month(now));
        crate::status::month_bounds(&month).map_err(WebError::Invalid)?;
        Ok(month)
    }

    fn answer(&self, rows: &[crate::status::SlaRow], month: &str) -> Res {
        match self.format.as_deref().unwrap_or("json") {
            "json" => Ok(HttpResponse::Ok().json(json!({ "month": month, "items": rows }))),
            "csv" => Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"kamiyo-sla-{month}.csv\""),
                ))
                .body(crate::status::sla_csv(rows))),
            other => Err(WebError::Invalid(format!("format {other:?}: json or csv"))),
        }
    }
}

/// `GET /api/v1/sla`: the tenant's SLA report for a month (plans with the SLA).
async fn sla(req: HttpRequest, state: web::Data<PlatformState>, q: web::Query<SlaQuery>) -> Res {
    let p = allowed(&req, &state, Permission::ReadSla)?;
    let month = q.month(state.now())?;
    let row = crate::status::sla_report(&state.db, &p.tenant, &month, state.sla).await?;
    q.answer(&[row], &month)
}

/// `GET /api/v1/admin/sla`: every tenant on a plan with the SLA, for a month (staff).
async fn admin_sla(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    q: web::Query<SlaQuery>,
) -> Res {
    let (_, db) = staff(&req, &state)?;
    let month = q.month(state.now())?;
    let rows = crate::status::sla_reports(&db, &state.tiers, &month, state.sla).await?;
    q.answer(&rows, &month)
}

/// Registers the platform's routes (the caller adds `web::Data<PlatformState>`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    use db::{ChannelRow, KeyRow, SubscriptionRow, ThresholdRow, UserRow, WatchedRow};
    let json_cfg = web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|e, _| WebError::Invalid(format!("body: {e}")).into());
    let query_cfg = web::QueryConfig::default()
        .error_handler(|e, _| WebError::Invalid(format!("query: {e}")).into());
    let path_cfg = web::PathConfig::default().error_handler(|_, _| WebError::NotFound.into());
    macro_rules! list {
        ($row:ty, $what:expr, $perm:expr) => {
            web::get().to(|req: HttpRequest, state: web::Data<PlatformState>| {
                list_of::<$row>(req, state, $what, $perm)
            })
        };
    }
    // Before the open core's own `/openapi.json` and `/metrics`: the whole service's document,
    // and the metrics to staff only.
    cfg.route("/openapi.json", web::get().to(openapi))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/api/v1")
                .app_data(json_cfg)
                .app_data(query_cfg)
                .app_data(path_cfg)
                .wrap(actix_web::middleware::from_fn(gate))
                .wrap(actix_web::middleware::from_fn(metered))
                .route("/openapi.json", web::get().to(openapi))
                .route("/signup", web::post().to(signup))
                .route("/login", web::post().to(login))
                .route("/logout", web::post().to(logout))
                .route("/verify-email", web::post().to(verify_email))
                .route("/password-reset", web::post().to(password_reset))
                .route(
                    "/password-reset/confirm",
                    web::post().to(password_reset_confirm),
                )
                .route("/tenant", web::get().to(tenant))
                .route("/usage", web::get().to(usage))
                .route(
                    "/users",
                    list!(UserRow, List::Users, Permission::ManageAccess),
                )
                .route("/users", web::post().to(add_user))
                .route("/users/{id}", web::delete().to(remove_user))
                .route("/keys", list!(KeyRow, List::Keys, Permission::ManageAccess))
                .route("/keys", web::post().to(add_key))
                .route("/keys/{id}", web::delete().to(revoke_key))
                .route(
                    "/subscriptions",
                    list!(SubscriptionRow, List::Subscriptions, Permission::Read),
                )
                .route("/subscriptions/{protocol}", web::put().to(subscribe))
                .route("/subscriptions/{protocol}", web::delete().to(unsubscribe))
                .route(
                    "/thresholds",
                    list!(ThresholdRow, List::Thresholds, Permission::Read),
                )
                .route(
                    "/thresholds/{detector}/{name}",
                    web::put().to(set_threshold),
                )
                .route(
                    "/thresholds/{detector}/{name}",
                    web::delete().to(remove_threshold),
                )
                .route(
                    "/watched-addresses",
                    list!(WatchedRow, List::Watched, Permission::Read),
                )
                .route("/watched-addresses/{address}", web::put().to(watch))
                .route("/watched-addresses/{address}", web::delete().to(unwatch))
                .route(
                    "/channels",
                    list!(ChannelRow, List::Channels, Permission::Configure),
                )
                .route("/channels", web::post().to(add_channel))
                .route("/channels/{id}", web::delete().to(remove_channel))
                .route("/alerts", web::get().to(alerts))
                .route("/correlated", web::get().to(correlated))
                .route("/plans", web::get().to(plans))
                .route("/incident-states", web::get().to(incident_states))
                .route("/incidents/{id}/actions", web::get().to(incident_actions))
                .route("/incidents/{id}/actions", web::post().to(act_on_incident))
                .route("/channels/{id}/test", web::post().to(test_channel))
                .route("/branding", web::get().to(get_branding))
                .route("/branding", web::put().to(put_branding))
                .route("/branding", web::delete().to(delete_branding))
                .route("/sso", web::get().to(get_sso))
                .route("/sso", web::put().to(put_sso))
                .route("/sso", web::delete().to(delete_sso))
                .route("/admin/audit", web::get().to(admin_audit))
                .route("/admin/health", web::get().to(admin_health))
                .route("/admin/sla", web::get().to(admin_sla))
                .route("/status", web::get().to(status))
                .route("/sla", web::get().to(sla))
                .route("/admin/tenants", web::get().to(admin_tenants))
                .route("/admin/tenants/{id}/plan", web::put().to(admin_plan))
                .route(
                    "/admin/tenants/{id}/impersonate",
                    web::post().to(admin_impersonate),
                )
                .route("/admin/tenants/{id}/{action}", web::post().to(admin_status))
                .route("/protocols", web::get().to(protocols))
                .route("/billing", web::get().to(billing_status))
                .route("/billing/checkout", web::post().to(billing_checkout))
                .route("/billing/portal", web::post().to(billing_portal))
                .route("/billing/plan", web::post().to(billing_plan))
                .route("/billing/cancel", web::post().to(billing_cancel))
                .route("/billing/reactivate", web::post().to(billing_reactivate))
                .service(
                    web::resource("/billing/webhook")
                        .app_data(web::PayloadConfig::new(MAX_WEBHOOK_BYTES))
                        .route(web::post().to(billing_webhook)),
                )
                .route("/audit", web::get().to(audit))
                .route("/audit/export", web::get().to(audit_export))
                .default_service(web::to(not_found)),
        );
}

// ---- billing ----

impl From<crate::billing::BillingError> for WebError {
    fn from(e: crate::billing::BillingError) -> Self {
        use crate::billing::BillingError as B;
        match e {
            B::Invalid(d) => Self::Invalid(d),
            B::Conflict(d) => Self::Conflict(d),
            B::Declined(d) => Self::Declined(d),
            B::Unavailable(d) => {
                tracing::warn!(error = %d, "Stripe unavailable");
                Self::StripeUnavailable("Stripe did not answer".into())
            }
            B::Db(e) => e.into(),
        }
    }
}

fn billing_of(state: &PlatformState) -> Result<Arc<crate::billing::Billing>, WebError> {
    state.billing.clone().ok_or(WebError::NotFound)
}

/// The request's idempotency: the client's `Idempotency-Key` (so a retried request makes
/// one Checkout Session or one plan change), or a fresh one.
fn nonce(req: &HttpRequest) -> String {
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| (1..=100).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || crate::tenancy::new_id("req"),
            |k| format!("c-{}", tenancy::hash_key(k).get(..32).unwrap_or_default()),
        )
}

async fn billing_status(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Read)?;
    let b = billing_of(&state)?;
    Ok(HttpResponse::Ok().json(b.status(&p.tenant).await?))
}

/// `POST /api/v1/billing/checkout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The plan.
    pub plan: String,
}

async fn billing_checkout(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<CheckoutBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Billing)?;
    let b = billing_of(&state)?;
    let who = actor(&p, &req, state.now());
    let out = b
        .checkout(&p.tenant, &body.plan, &who, &nonce(&req))
        .await?;
    Ok(HttpResponse::Created().json(out))
}

async fn billing_portal(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Billing)?;
    let b = billing_of(&state)?;
    let who = actor(&p, &req, state.now());
    Ok(HttpResponse::Created().json(b.portal(&p.tenant, &who, &nonce(&req)).await?))
}

/// The billing view after a change Stripe confirmed.
fn billing_changed(
    state: &PlatformState,
    b: &crate::billing::Billing,
    row: &db::BillingRow,
) -> HttpResponse {
    HttpResponse::Ok().json(crate::billing::status_json(
        row,
        state.now(),
        b.settings.trial_days,
    ))
}

async fn billing_plan(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<PlanBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Billing)?;
    let b = billing_of(&state)?;
    let row = b.change_plan(&p.tenant, &body.plan, &nonce(&req)).await?;
    state.keys.forget_tenant(&p.tenant);
    Ok(billing_changed(&state, &b, &row))
}

/// `POST /api/v1/billing/cancel`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// `true`: at the end of the paid period (the plan applies until then); `false`: now.
    pub at_period_end: bool,
}

async fn billing_cancel(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Json<CancelBody>,
) -> Res {
    let p = allowed(&req, &state, Permission::Billing)?;
    let b = billing_of(&state)?;
    let row = b
        .cancel(&p.tenant, body.at_period_end, &nonce(&req))
        .await?;
    state.keys.forget_tenant(&p.tenant);
    Ok(billing_changed(&state, &b, &row))
}

async fn billing_reactivate(req: HttpRequest, state: web::Data<PlatformState>) -> Res {
    let p = allowed(&req, &state, Permission::Billing)?;
    let b = billing_of(&state)?;
    let row = b.reactivate(&p.tenant, &nonce(&req)).await?;
    state.keys.forget_tenant(&p.tenant);
    Ok(billing_changed(&state, &b, &row))
}

/// Stripe's deliveries: verified against the raw body, then applied once.
async fn billing_webhook(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    body: web::Bytes,
) -> Res {
    let b = billing_of(&state)?;
    if body.len() > MAX_WEBHOOK_BYTES {
        return Err(WebError::Invalid(
            "the body is too large for a Stripe event".into(),
        ));
    }
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|h| h.to_str().ok());
    match b.webhook(&body, header).await {
        Err(refusal) => {
            crate::metrics::record_webhook("refused");
            tracing::warn!(ip = %client_ip(&req), reason = %refusal, "Stripe webhook refused");
            Err(WebError::Invalid(refusal.to_string()))
        }
        Ok(Err(e)) => {
            crate::metrics::record_webhook("failed");
            tracing::warn!(error = %e, "Stripe webhook not processed now; Stripe will deliver it again");
            Err(match e {
                crate::billing::BillingError::Db(d) => d.into(),
                other => WebError::from(other),
            })
        }
        Ok(Ok(what)) => {
            crate::metrics::record_webhook("processed");
            Ok(HttpResponse::Ok().json(json!({"received": true, "outcome": what})))
        }
    }
}
