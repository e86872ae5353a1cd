//! HTTP API, live WebSocket stream and dashboard of kamiyo (actix-web).
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod auth;
pub mod cache;
pub mod docs;
pub mod dto;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod operator;
pub mod routes;
pub mod views;
pub mod ws;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use async_trait::async_trait;
use kamiyo_core_models::{Address, ApiKeyStore, Clock, IncidentStore, MarketStore};

pub use crate::error::{ApiError, Problem};
pub use crate::hub::{Hub, LiveMessage};

/// Readiness of what the API reads from (the database), supplied by the host.
#[async_trait]
pub trait Probe: Send + Sync {
    /// `Err(detail)` when not usable.
    async fn check(&self) -> Result<(), String>;
}

/// Settings of the API, decided by the host from its configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Refuse requests without a valid key (the host sets this whenever it binds beyond
    /// loopback).
    pub require_keys: bool,
    /// Requests per minute per key (or per client address without a key); 0 disables.
    pub rate_limit_per_minute: u32,
    /// Origins allowed by CORS (`*` for any). A request carrying an `Origin` that is neither
    /// this server's own nor one of these is refused (403): a page the operator visits cannot
    /// read the API or the `/ws` stream.
    pub cors_origins: Vec<String>,
    /// Host names (without port) a request's `Host` header may name; `None` accepts any. A
    /// keyless loopback server accepts only loopback names, so a DNS-rebinding page cannot
    /// reach it under its own name (421).
    pub allowed_hosts: Option<Vec<String>>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// The HLP vault shown.
    pub hlp_vault: Address,
}

/// What the handlers need; registered as `web::Data<ApiState>`.
pub struct ApiState {
    /// Where each request's stores come from (the host decides per caller).
    pub stores: Arc<dyn StoreResolver>,
    /// API keys: authentication happens before a caller's stores are resolved.
    pub keys: Arc<dyn ApiKeyStore>,
    /// A host's own key check, used instead of `keys` when set (a multi-tenant host whose keys
    /// live elsewhere).
    pub authenticator: Option<Arc<dyn auth::Authenticator>>,
    /// What the pipeline does after an operator's change (set once by the server).
    pub hooks: std::sync::OnceLock<Arc<dyn operator::IncidentHooks>>,
    /// Database readiness.
    pub probe: Arc<dyn Probe>,
    /// Live messages for `/ws`.
    pub hub: Hub,
    /// The monitor's clock (exchange or replay time when so configured).
    pub clock: Arc<dyn Clock>,
    /// Prometheus registry rendered at `/metrics`.
    pub registry: Option<prometheus::Registry>,
    /// Settings.
    pub config: ApiConfig,
    /// Rate limiter.
    pub limiter: auth::RateLimiter,
    /// Failed authentications per client address ([`auth::FAILED_AUTH_PER_MINUTE`]): past it,
    /// requests get 429 before any key is looked up.
    pub auth_failures: auth::RateLimiter,
    /// Verified keys.
    pub key_cache: auth::KeyCache,
    /// Shared response bodies of the read endpoints.
    pub responses: cache::ResponseCache,
    /// The anomaly model the engine scores with, if one is loaded.
    pub anomaly_model: Option<Arc<kamiyo_ml::AnomalyModelFile>>,
    /// The exploit database `/exploits` queries (public history, the same for every caller).
    pub exploit_db: Option<Arc<dyn kamiyo_core_models::ExploitStore>>,
}

/// The stores the handlers read and write, one per concern. A host with a single database
/// passes the same store for each ([`ApiStores::single`]); a host that keeps concerns apart
/// (market facts in one place, its own keys and outbox in another) passes each its own.
#[derive(Clone)]
pub struct ApiStores {
    /// Incidents and events.
    pub incidents: Arc<dyn IncidentStore>,
    /// Market history.
    pub market: Arc<dyn MarketStore>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyStore>,
    /// Alert outbox and delivery log.
    pub outbox: Arc<dyn kamiyo_core_models::OutboxStore>,
    /// Operator actions and silences.
    pub operator: Arc<dyn kamiyo_core_models::OperatorStore>,
    /// The audit log.
    pub audit: Arc<dyn kamiyo_core_models::AuditStore>,
    /// Callers with the same partition may share cached responses; callers with different
    /// ones (two tenants) never do. Empty for a single store.
    pub partition: Arc<str>,
    /// The read models kept in step with these stores (share them exactly as the stores are
    /// shared).
    pub views: Arc<views::Views>,
    /// What of these stores the caller may read (everything for a single store).
    pub scope: ReadScope,
}

/// What a caller may read of shared stores: a multi-tenant host gives each tenant its
/// protocols and its plan's history. Every read route applies it: a protocol outside it is
/// 404, none asked means the first of its protocols, times before its history are not read,
/// and with `facts_only` the host's own operator state (acknowledgements, silences, alert
/// routing and deliveries) is not the caller's — those routes answer 404 and the incident page
/// leaves them out.
#[derive(Debug, Clone, Default)]
pub struct ReadScope {
    /// Protocols it may read, the default first; `None`: every protocol.
    pub protocols: Option<Arc<[kamiyo_core_models::ProtocolId]>>,
    /// How far back it may read (ms); `None`: no limit.
    pub history_ms: Option<i64>,
    /// Shared facts only (see above).
    pub facts_only: bool,
}

/// Where a request's stores come from. The host supplies it: the self-hosted server has one
/// store for every caller ([`SingleStore`]); a multi-tenant host picks the caller's from the
/// [`auth::Principal`] the gate attached, or from what its own middleware attached to the
/// request after the gate.
pub trait StoreResolver: Send + Sync {
    /// The stores of this request's caller, or the error answered instead (403 …).
    fn resolve(
        &self,
        principal: &auth::Principal,
        req: &actix_web::HttpRequest,
    ) -> Result<ApiStores, ApiError>;
}

/// One set of stores for every caller.
#[derive(Debug, Clone)]
pub struct SingleStore(pub ApiStores);

impl StoreResolver for SingleStore {
    fn resolve(
        &self,
        _: &auth::Principal,
        _: &actix_web::HttpRequest,
    ) -> Result<ApiStores, ApiError> {
        Ok(self.0.clone())
    }
}

/// A request's view: its caller's stores, and the shared state (through `Deref`).
pub struct Scoped<'a> {
    /// Incidents and events.
    pub incidents: Arc<dyn IncidentStore>,
    /// Market history.
    pub market: Arc<dyn MarketStore>,
    /// Alert outbox and delivery log.
    pub outbox: Arc<dyn kamiyo_core_models::OutboxStore>,
    /// Operator actions and silences.
    pub operator: Arc<dyn kamiyo_core_models::OperatorStore>,
    /// The audit log.
    pub audit: Arc<dyn kamiyo_core_models::AuditStore>,
    /// The cache partition.
    pub partition: Arc<str>,
    /// The read models of these stores.
    pub views: Arc<views::Views>,
    /// What the caller may read.
    pub scope: ReadScope,
    state: &'a ApiState,
}

impl Scoped<'_> {
    /// The protocol a read is about: the one asked (404 outside the caller's), or without one
    /// every protocol (`None`) for an unscoped caller and its first protocol for a scoped one.
    pub fn protocol(
        &self,
        asked: Option<&str>,
    ) -> Result<Option<kamiyo_core_models::ProtocolId>, ApiError> {
        let asked = routes::parse_protocol(asked)?;
        let Some(mine) = &self.scope.protocols else {
            return Ok(asked);
        };
        match asked {
            Some(p) if mine.contains(&p) => Ok(Some(p)),
            Some(p) => Err(ApiError::NotFound(format!(
                "protocol {p} is not among this caller's"
            ))),
            None => mine
                .first()
                .cloned()
                .map(Some)
                .ok_or_else(|| ApiError::NotFound("this caller has no protocol".into())),
        }
    }

    /// True when `protocol`'s facts are the caller's.
    pub fn may_read(&self, protocol: &kamiyo_core_models::ProtocolId) -> bool {
        self.scope
            .protocols
            .as_ref()
            .is_none_or(|mine| mine.contains(protocol))
    }

    /// The earliest time the caller may read, if limited.
    pub fn history_floor(&self) -> Option<kamiyo_core_models::Timestamp> {
        self.scope
            .history_ms
            .map(|h| self.state.clock.now().plus_millis(-h))
    }

    /// `since` raised to the caller's history floor.
    pub fn since(
        &self,
        since: Option<kamiyo_core_models::Timestamp>,
    ) -> Option<kamiyo_core_models::Timestamp> {
        match (since, self.history_floor()) {
            (Some(s), Some(f)) => Some(s.max(f)),
            (s, f) => s.or(f),
        }
    }

    /// 404 for a caller that sees shared facts only (the host's operator state is not its).
    pub fn operator_state(&self) -> Result<(), ApiError> {
        if self.scope.facts_only {
            Err(ApiError::NotFound(
                "acknowledgements, silences and deliveries are not served to this caller".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl std::ops::Deref for Scoped<'_> {
    type Target = ApiState;
    fn deref(&self) -> &ApiState {
        self.state
    }
}

impl ApiState {
    /// The request's view: the stores the host's resolver gives its caller. A request the
    /// gate let through always carries a principal; one without is refused.
    pub fn scoped(&self, req: &actix_web::HttpRequest) -> Result<Scoped<'_>, ApiError> {
        let principal = actix_web::HttpMessage::extensions(req)
            .get::<auth::Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("no authenticated caller".into()))?;
        let s = self.stores.resolve(&principal, req)?;
        Ok(Scoped {
            incidents: s.incidents,
            market: s.market,
            outbox: s.outbox,
            operator: s.operator,
            audit: s.audit,
            partition: s.partition,
            views: s.views,
            scope: s.scope,
            state: self,
        })
    }
}

impl std::fmt::Debug for ApiStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiStores").finish_non_exhaustive()
    }
}

impl ApiStores {
    /// One store for every concern.
    pub fn single<S>(store: &S) -> Self
    where
        S: IncidentStore
            + MarketStore
            + ApiKeyStore
            + kamiyo_core_models::OutboxStore
            + kamiyo_core_models::OperatorStore
            + kamiyo_core_models::AuditStore
            + Clone
            + 'static,
    {
        Self {
            incidents: Arc::new(store.clone()),
            market: Arc::new(store.clone()),
            keys: Arc::new(store.clone()),
            outbox: Arc::new(store.clone()),
            operator: Arc::new(store.clone()),
            audit: Arc::new(store.clone()),
            partition: Arc::from(""),
            views: Arc::default(),
            scope: ReadScope::default(),
        }
    }
}

impl ApiState {
    /// The state of an API over `stores` (one set for every caller; replace
    /// [`ApiState::stores`] with a resolver of your own for more), with the rate limiters of `config`, the default
    /// response cache, no metrics registry and no anomaly model (set those fields after).
    pub fn new(
        stores: ApiStores,
        probe: Arc<dyn Probe>,
        hub: Hub,
        clock: Arc<dyn Clock>,
        config: ApiConfig,
    ) -> Self {
        Self {
            keys: stores.keys.clone(),
            authenticator: None,
            stores: Arc::new(SingleStore(stores)),
            hooks: std::sync::OnceLock::new(),
            probe,
            hub,
            clock,
            registry: None,
            limiter: auth::RateLimiter::new(config.rate_limit_per_minute),
            auth_failures: auth::RateLimiter::new(auth::FAILED_AUTH_PER_MINUTE),
            key_cache: auth::KeyCache::default(),
            responses: cache::ResponseCache::default(),
            anomaly_model: None,
            exploit_db: None,
            config,
        }
    }

    /// The state shared with the HTTP server's workers (what [`configure`] takes).
    pub fn shared(self) -> web::Data<Self> {
        web::Data::new(self)
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Every route registered by [`configure`], as `(method, path)`; the OpenAPI test checks the
/// document against this list and this list against the running server.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/feeds"),
    ("GET", "/exploits"),
    ("GET", "/security/dashboard"),
    ("GET", "/security/hlp-vault"),
    ("GET", "/security/oracle-deviations"),
    ("GET", "/security/liquidations"),
    ("GET", "/security/positions"),
    ("GET", "/security/events"),
    ("GET", "/security/log"),
    ("GET", "/security/incidents"),
    ("GET", "/security/incidents/{id}"),
    ("POST", "/security/incidents/{id}/acknowledge"),
    ("POST", "/security/incidents/{id}/unacknowledge"),
    ("POST", "/security/incidents/{id}/resolve"),
    ("POST", "/security/incidents/{id}/notes"),
    ("GET", "/silences"),
    ("POST", "/silences"),
    ("DELETE", "/silences/{id}"),
    ("GET", "/alerts/deliveries"),
    ("GET", "/ml/anomalies"),
    ("GET", "/ml/forecast"),
    ("GET", "/ws"),
];

const DASHBOARD_HTML: &str = include_str!("../assets/dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard/dashboard.css");

/// `GET /`: the dashboard.
#[get("/")]
async fn dashboard_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'",
        ))
        .body(DASHBOARD_HTML)
}

#[get("/assets/dashboard.js")]
async fn dashboard_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(DASHBOARD_JS)
}

#[get("/assets/dashboard.css")]
async fn dashboard_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(DASHBOARD_CSS)
}

/// Registers the API, `/ws`, the documents and the dashboard, with the gate (CORS, keys, rate
/// limits, metrics) and problem+json errors for malformed requests.
pub fn configure(state: web::Data<ApiState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let limit = state.config.max_body_bytes;
        cfg.app_data(state)
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(error::json_error),
            )
            .app_data(web::PayloadConfig::new(limit))
            .service(
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(auth::gate))
                    .service(routes::health)
                    .service(routes::ready)
                    .service(routes::metrics)
                    .service(routes::feeds)
                    .service(routes::exploits)
                    .service(routes::dashboard)
                    .service(routes::hlp_vault)
                    .service(routes::oracle_deviations)
                    .service(routes::liquidations)
                    .service(routes::positions)
                    .service(routes::events)
                    .service(routes::event_log)
                    .service(routes::incidents)
                    .service(operator::list_silences)
                    .service(operator::create_silence)
                    .service(routes::deliveries)
                    .service(routes::ml_anomalies)
                    .service(routes::ml_forecast)
                    .service(ws::ws)
                    .service(docs::openapi_doc)
                    .service(docs::swagger)
                    .service(docs::redoc)
                    .service(docs::swagger_init)
                    .service(docs::swagger_js)
                    .service(docs::swagger_css)
                    .service(docs::redoc_js)
                    .service(dashboard_page)
                    .service(dashboard_js)
                    .service(dashboard_css)
                    // Paths with a parameter last: actix tries routes in order, and each of
                    // these is a pattern match that every request for a later route would run.
                    .service(operator::incident)
                    .service(operator::acknowledge)
                    .service(operator::unacknowledge)
                    .service(operator::resolve)
                    .service(operator::add_note)
                    .service(operator::expire_silence)
                    .default_service(web::to(routes::not_found)),
            );
    }
}
