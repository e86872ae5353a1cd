//! The platform against a real PostgreSQL: a fresh database per test, migrated by the owner
//! role, served through the application role `kamiyo_app` (created by `cargo xtask test`),
//! so row-level security binds every request as in production.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on broken setup"
)]

mod backup;
mod billing;
mod browser;
mod console;
mod correlate;
mod crossing;
mod dydx;
mod ensemble;
mod evaluation;
mod fanout;
mod ha;
mod idp;
mod ingest;
mod isolation;
mod kill;
mod leader;
mod metrics;
mod opencore;
mod plans;
mod sessions;
mod sockets;
mod status;
mod stripe_fake;
mod venues;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use kamiyo_core_models::ProtocolId;
use kamiyo_platform::db::Db;
use kamiyo_platform::tiers::TierMatrix;
use kamiyo_platform::web::{PlatformState, routes};
use kamiyo_testing::TestDatabase;
use serde_json::Value;

/// 2026-06-01T12:00:00Z.
pub const T0: i64 = 1_780_315_200_000;

/// A migrated database and the pools of its two roles.
pub struct Env {
    /// The database (dropped with the value).
    pub tdb: TestDatabase,
    /// The owner's pool (staff).
    pub owner: Db,
    /// The application role's pool (serving).
    pub app: Db,
    /// The application role's URL.
    pub app_url: String,
    /// The clock the routes read.
    pub clock: Arc<AtomicI64>,
    /// The shared facts as the ingest writes them (the owner).
    pub facts: kamiyo_store::Store,
    /// The shared facts as the service reads them (the application role).
    pub facts_app: kamiyo_store::Store,
}

/// The test clock as the open core reads it.
#[derive(Debug)]
pub struct TestClock(pub Arc<AtomicI64>);

impl kamiyo_core_models::Clock for TestClock {
    fn now(&self) -> kamiyo_core_models::Timestamp {
        kamiyo_core_models::Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// The application role's URL for the same database.
pub fn app_url(owner_url: &str) -> String {
    let (scheme, rest) = owner_url
        .split_once("://")
        .unwrap_or(("postgres", owner_url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://kamiyo_app:kamiyo_app@{host}")
}

/// A fresh database, migrated, with both roles' pools.
pub async fn env() -> Env {
    let tdb = TestDatabase::new().await;
    // As `kamiyo-platform migrate` does: the shared facts, then the platform (whose grants
    // cover both).
    let here = std::path::Path::new(".");
    let facts = kamiyo_store::Store::connect(&tdb.url, here, 2)
        .await
        .unwrap();
    facts.migrate().await.unwrap();
    let owner = Db::connect(&tdb.url, 4).await.unwrap();
    owner.migrate("kamiyo_app").await.unwrap();
    let app_url = app_url(&tdb.url);
    let facts_app = kamiyo_store::Store::connect(&app_url, here, 4)
        .await
        .unwrap();
    let app = Db::connect(&app_url, 8).await.unwrap_or_else(|e| {
        panic!("the application role kamiyo_app must exist (cargo xtask test creates it): {e}")
    });
    app.check_app_role().await.unwrap();
    Env {
        tdb,
        owner,
        app,
        app_url,
        clock: Arc::new(AtomicI64::new(T0)),
        facts,
        facts_app,
    }
}

/// Protocols the test platform ingests.
pub fn protocols() -> Vec<ProtocolId> {
    [
        "hyperliquid",
        "dydx",
        "gmx",
        "aevo",
        "drift",
        "lighter",
        "paradex",
    ]
    .iter()
    .map(|p| ProtocolId::parse(p).unwrap())
    .collect()
}

impl Env {
    /// The routes over the application role's pool with `tiers`.
    pub async fn service_with(
        &self,
        tiers: TierMatrix,
    ) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
    {
        self.build(tiers, |_| {}).await
    }

    /// A staff change made directly in the database (as the CLI or another replica would):
    /// the clock then moves past the key cache, as a caller would wait for it to take effect.
    pub async fn staff_set(
        &self,
        tenant: &kamiyo_platform::tenancy::TenantId,
        column: kamiyo_platform::db::StaffColumn,
        value: &str,
        who: &kamiyo_platform::db::Actor,
    ) -> Result<(), kamiyo_platform::db::DbError> {
        self.owner.staff_set(tenant, column, value, who).await?;
        self.clock
            .fetch_add(kamiyo_platform::web::KEY_CACHE_MS + 1, Ordering::SeqCst);
        Ok(())
    }

    /// The routes with the default tiers and the state adjusted by `f`.
    pub async fn service_customised(
        &self,
        f: impl FnOnce(&mut PlatformState),
    ) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
    {
        self.build(TierMatrix::default_matrix().unwrap(), f).await
    }

    async fn build(
        &self,
        tiers: TierMatrix,
        f: impl FnOnce(&mut PlatformState),
    ) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
    {
        let mut state = PlatformState::new(self.app.clone(), tiers, protocols());
        let clock = self.clock.clone();
        state.clock = Arc::new(move || clock.load(Ordering::SeqCst));
        f(&mut state);
        let api = kamiyo_platform::web::open_core(
            &self.facts_app,
            &state,
            "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303"
                .parse()
                .unwrap(),
            Arc::new(TestClock(self.clock.clone())),
        );
        test::init_service(
            App::new()
                .app_data(web::Data::new(state))
                .configure(routes)
                .configure(kamiyo_platform::pages::routes)
                .configure(kamiyo_api::configure(api)),
        )
        .await
    }

    /// The routes with the default tiers.
    pub async fn service(
        &self,
    ) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
    {
        self.service_with(TierMatrix::default_matrix().unwrap())
            .await
    }
}

/// The open core's SMTP channel to a loopback relay on `port` (account and billing mail).
pub fn loopback_mailer(port: u16) -> kamiyo_alerts::channels::Smtp {
    use kamiyo_alerts::channels::{Smtp, SmtpSecurity, SmtpSettings};
    Smtp::new(
        "accounts",
        &SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::None,
            username: String::new(),
            password: kamiyo_alerts::Secret::new(""),
            from: "kamiyo.ai <accounts@kamiyo.ai>".into(),
            to: vec!["unused@kamiyo.ai".into()],
            ca_pem: None,
        },
    )
    .unwrap()
}

/// One request: status, headers and the JSON body (`Null` when empty, the text as a string
/// when not JSON).
pub async fn call<S>(
    svc: &S,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (status, headers, v) = call_any(svc, method, path, key, body).await;
    if status.is_server_error() {
        panic!("{method} {path}: {status} {v}");
    }
    (status, headers, v)
}

/// [`call`], a 5xx answer included (for the tests that expect one).
pub async fn call_any<S>(
    svc: &S,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut req = match method {
        "get" => test::TestRequest::get(),
        "post" => test::TestRequest::post(),
        "put" => test::TestRequest::put(),
        "delete" => test::TestRequest::delete(),
        m => panic!("method {m}"),
    }
    .uri(path)
    .peer_addr("192.0.2.10:40000".parse().unwrap());
    if let Some(k) = key {
        req = req.insert_header(("Authorization", format!("Bearer {k}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    // A middleware's refusal is an `Err` here; the server turns it into its response.
    let res = match test::try_call_service(svc, req.to_request()).await {
        Ok(r) => r.into_parts().1.map_into_boxed_body(),
        Err(e) => e.error_response().map_into_boxed_body(),
    };
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, v)
}

/// Signs `tenant` up; returns the owner's key.
pub async fn signup<S>(svc: &S, tenant: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (s, _, v) = call(
        svc,
        "post",
        "/api/v1/signup",
        None,
        Some(serde_json::json!({"tenant": tenant, "name": format!("{tenant} ltd"), "email": format!("owner@{tenant}.example"), "password": "a long enough password"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["key"]["secret"].as_str().unwrap().to_owned()
}

/// A shared incident step of `protocol` (what the ingest commits).
pub fn step(
    n: usize,
    protocol: &str,
    asset: &str,
    t: i64,
    change: kamiyo_core_models::IncidentChange,
    severity: kamiyo_core_models::Severity,
    evidence: kamiyo_core_models::Evidence,
) -> kamiyo_core_models::IncidentUpdate {
    use kamiyo_core_models::{
        Coin, Incident, IncidentKey, IncidentStatus, SecurityEvent, ThreatType, Timestamp,
    };
    let p = ProtocolId::parse(protocol).unwrap();
    let key = IncidentKey::parse(&format!("oracle_deviation:{asset}:{n}"))
        .unwrap()
        .in_protocol(&p);
    let i = Incident {
        protocol: p,
        id: Incident::derive_id(&key, Timestamp(t)),
        key,
        detector: "oracle".into(),
        threat_type: ThreatType::OracleDeviation,
        severity,
        peak_severity: severity,
        asset: Some(Coin::new(asset).unwrap()),
        status: IncidentStatus::Open,
        title: format!("{asset} on {protocol}"),
        indicators: vec!["test".into()],
        evidence,
        first_seen: Timestamp(t),
        last_seen: Timestamp(t),
        resolved_at: None,
        detections: 1,
    };
    kamiyo_core_models::IncidentUpdate {
        event: SecurityEvent::from_incident(&i, change, Timestamp(t)),
        incident: i,
    }
}

/// Commits `steps` to the shared store as the ingest would.
pub async fn commit(e: &Env, steps: Vec<kamiyo_core_models::IncidentUpdate>) {
    use kamiyo_core_models::MarketStore;
    e.facts
        .commit(&kamiyo_core_models::IngestBatch {
            updates: steps,
            ..kamiyo_core_models::IngestBatch::default()
        })
        .await
        .unwrap();
}

/// Commits `steps` as the ingest would and routes them at `now` with the default tiers.
pub async fn commit_and_route(
    e: &Env,
    steps: Vec<kamiyo_core_models::IncidentUpdate>,
    now: i64,
) -> kamiyo_platform::fanout::Pass {
    commit(e, steps).await;
    let tiers = TierMatrix::default_matrix().unwrap();
    kamiyo_platform::fanout::route_once(&e.app, &e.facts_app, &tiers, now, 100)
        .await
        .unwrap()
}

/// An opened high-severity step.
pub fn opened(n: usize, protocol: &str, asset: &str, t: i64) -> kamiyo_core_models::IncidentUpdate {
    step(
        n,
        protocol,
        asset,
        t,
        kamiyo_core_models::IncidentChange::Opened,
        kamiyo_core_models::Severity::High,
        kamiyo_core_models::Evidence::new(),
    )
}

/// The tenant's alert outbox as `GET /api/v1/alerts` lists it.
pub async fn outbox<S>(svc: &S, key: &str) -> Vec<serde_json::Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (s, _, v) = call(svc, "get", "/api/v1/alerts?limit=1000", Some(key), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// A platform replay's incident steps (`platform/replays/<name>`), every part through its
/// protocol's engine, in time order.
pub fn replay_steps(name: &str) -> Vec<kamiyo_core_models::IncidentUpdate> {
    use kamiyo_platform::evaluate::{Replay, engine};
    kamiyo_platform::detectors::declare_threats().unwrap();
    let registry = kamiyo_platform::registry::Registry::embedded().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("replays")
        .join(name);
    let replay = Replay::load(&dir).unwrap();
    let mut all = Vec::new();
    for (id, sc) in &replay.parts {
        let mut r = kamiyo_pipeline::Replay::new(engine(&registry, id).unwrap());
        for e in &sc.events {
            all.extend(r.advance(e));
        }
        all.extend(r.finish_batch(sc.manifest.scenario.end));
    }
    all.sort_by_key(|u| u.event.time);
    all
}
