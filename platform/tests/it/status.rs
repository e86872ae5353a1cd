//! The public status page and the monthly SLA reports, from the platform's own records: minute
//! probes (recorded once per minute whichever replica probes first), the processes'
//! heartbeats (an ingest leader's feeds, the alert workers), and each tenant's outbox.

use actix_web::http::StatusCode;
use kamiyo_platform::db::{Actor, ProbeRow, StaffColumn};
use kamiyo_platform::status::{self, State};
use kamiyo_platform::tenancy::TenantId;
use serde_json::{Value, json};

use crate::{T0, call, commit_and_route, env, opened, signup};

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

fn probe(component: &str, minute: i64, state: &str) -> ProbeRow {
    ProbeRow {
        component: component.into(),
        minute,
        state: state.into(),
        latency_ms: Some(12),
        detail: String::new(),
    }
}

fn component<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {v}"))
}

#[tokio::test]
async fn the_status_page_shows_each_component_now_and_its_90_days_of_probes() {
    let e = env().await;
    let today = status::day_of(T0);
    // Two days ago: 100 minutes probed, 5 down, 3 degraded; yesterday 60 minutes, all up.
    for m in 0..100 {
        let state = match m {
            0..5 => "down",
            5..8 => "degraded",
            _ => "up",
        };
        assert!(
            e.app
                .record_probe(&probe("api", today - 2 * DAY + m * MIN, state))
                .await
                .unwrap()
        );
    }
    for m in 0..60 {
        assert!(
            e.app
                .record_probe(&probe("api", today - DAY + m * MIN, "up"))
                .await
                .unwrap()
        );
    }
    // Another replica probing a minute already recorded changes nothing.
    assert!(
        !e.app
            .record_probe(&probe("api", today - DAY, "down"))
            .await
            .unwrap()
    );
    // Older than 90 days: outside the page's window.
    assert!(
        e.app
            .record_probe(&probe("api", today - 95 * DAY, "down"))
            .await
            .unwrap()
    );
    // The processes: Hyperliquid's ingest leader with its feeds, one alert worker, one API
    // replica; dYdX's leader stopped beating a minute ago.
    let feeds = json!({"epoch": 3, "feeds": [
        {"feed": "hyperliquid.ws", "state": "LIVE"}, {"feed": "binance", "state": "STALE"}]});
    e.owner
        .heartbeat("ingest:hyperliquid", "ingest-a", T0 - 1500, &feeds)
        .await
        .unwrap();
    e.owner
        .heartbeat("ingest:dydx", "ingest-b", T0 - MIN, &json!({"feeds": []}))
        .await
        .unwrap();
    e.app
        .heartbeat("workers", "serve-a", T0 - 1000, &json!({}))
        .await
        .unwrap();
    e.app
        .heartbeat("api", "serve-a", T0 - 1000, &json!({}))
        .await
        .unwrap();

    let svc = e.service().await;
    // Public: no key.
    let (s, headers, v) = call(&svc, "get", "/api/v1/status", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(headers.get("cache-control").unwrap(), "public, max-age=5");
    assert_eq!(v["overall"], "down", "{v}");
    let api = component(&v, "api");
    assert_eq!(api["state"], "up");
    assert_eq!(api["minutes_probed_90d"], 160);
    assert_eq!(api["uptime_pct_90d"], 96.875);
    let days = api["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    assert_eq!(days[89]["day"], "2026-06-01");
    assert_eq!(
        (
            &days[87]["probed"],
            &days[87]["down"],
            &days[87]["degraded"],
            &days[87]["uptime_pct"]
        ),
        (&json!(100), &json!(5), &json!(3), &json!(95.0))
    );
    assert_eq!(days[88]["uptime_pct"], 100.0);
    assert_eq!(days[0]["uptime_pct"], Value::Null);
    assert_eq!(component(&v, "database")["state"], "up");
    assert_eq!(component(&v, "delivery")["state"], "up");
    let hl = component(&v, "feeds:hyperliquid");
    assert_eq!(hl["name"], "Hyperliquid feeds");
    assert_eq!(
        (&hl["state"], &hl["detail"]),
        (&json!("degraded"), &json!("binance STALE"))
    );
    let dydx = component(&v, "feeds:dydx");
    assert_eq!(dydx["state"], "down");
    assert_eq!(dydx["detail"], "no ingest leader has reported for 60 s");
    // Every platform protocol is on the page.
    assert_eq!(
        v["components"].as_array().unwrap().len(),
        3 + crate::protocols().len()
    );
    assert_eq!(v["processes"].as_array().unwrap().len(), 3, "{v}");

    // The page itself: server-rendered, one bar a day, each day's numbers in its title.
    let req = actix_web::test::TestRequest::get()
        .uri("/status")
        .to_request();
    let res = actix_web::test::call_service(&svc, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8(actix_web::test::read_body(res).await.to_vec()).unwrap();
    assert!(html.contains("Some systems down"), "{html}");
    assert!(html.contains("Hyperliquid feeds") && html.contains("binance STALE"));
    assert!(html.contains("2026-05-30: 95.000 % of 100 probed minutes up; 5 down, 3 degraded"));
    assert!(html.contains("96.875 % uptime"));
    assert_eq!(
        html.matches(r#"<span class="day "#).count(),
        90 * (3 + crate::protocols().len())
    );
    assert!(!html.contains("<script"), "no script on the status page");
}

#[tokio::test]
async fn delivery_is_down_without_a_live_worker_and_degraded_when_alerts_wait() {
    let e = env().await;
    let (checks, _) = status::checks(&e.app, &[], T0).await;
    let delivery = checks.iter().find(|c| c.component == "delivery").unwrap();
    assert_eq!(delivery.state, State::Down);
    assert_eq!(delivery.detail, "no alert worker has reported");
    // A worker, and an alert due for 2 minutes that nobody sends (its channel's worker gone).
    e.app
        .heartbeat("workers", "w", T0, &json!({}))
        .await
        .unwrap();
    let svc = e.service().await;
    with_channel(&svc, "waiting", "https://hooks.example/ops").await;
    commit_and_route(&e, vec![opened(1, "hyperliquid", "ETH", T0)], T0 - 2 * MIN).await;
    let (checks, _) = status::checks(&e.app, &[], T0).await;
    let delivery = checks.iter().find(|c| c.component == "delivery").unwrap();
    assert_eq!(delivery.state, State::Degraded, "{delivery:?}");
    assert_eq!(
        delivery.detail,
        "1 worker(s); 1 alert(s) due, the oldest for 120 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prober_records_every_component_once_a_minute() {
    let e = env().await;
    kamiyo_aggregators::install_crypto_provider();
    let http = reqwest::Client::new();
    let api = kamiyo_testing::receiver::Receiver::start(|_, r| {
        kamiyo_testing::receiver::Reply::new(if r.path == "/health" { 200 } else { 404 }, "ok")
    })
    .await;
    let protocols = vec!["hyperliquid".to_owned()];
    let now = T0 + 30_000;
    let up = format!("http://{}", api.addr);
    let checks = status::probe_once(&e.app, &http, Some(&up), &protocols, now).await;
    let states: Vec<(&str, State)> = checks
        .iter()
        .map(|c| (c.component.as_str(), c.state))
        .collect();
    assert_eq!(
        states,
        [
            ("api", State::Up),
            ("database", State::Up),
            ("delivery", State::Down),
            ("feeds:hyperliquid", State::Down)
        ]
    );
    assert!(checks[0].latency_ms.is_some());
    // A second replica in the same minute finds the API unreachable: the first result stands.
    let closed = format!("http://127.0.0.1:{}", kamiyo_testing::browser::free_port());
    let second = status::probe_once(&e.app, &http, Some(&closed), &protocols, now + 10_000).await;
    assert_eq!(second[0].state, State::Down);
    assert_eq!(second[0].detail, "/health could not be reached");
    let latest = e.app.latest_probes().await.unwrap();
    assert_eq!(latest.len(), 4);
    let api_row = latest.iter().find(|p| p.component == "api").unwrap();
    assert_eq!((api_row.minute, api_row.state.as_str()), (T0, "up"));
    // The next minute records the outage.
    status::probe_once(&e.app, &http, Some(&closed), &protocols, now + MIN).await;
    let days = e
        .app
        .probe_days(status::day_of(T0), status::day_of(T0) + DAY)
        .await
        .unwrap();
    let api_day = days.iter().find(|(c, _)| c == "api").unwrap().1;
    assert_eq!((api_day.probed, api_day.down), (2, 1));
}

/// A signed-up tenant with a webhook channel to `url`; its key.
async fn with_channel<S>(svc: &S, tenant: &str, url: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let k = signup(svc, tenant).await;
    let (s, _, v) = call(
        svc,
        "post",
        "/api/v1/channels",
        Some(&k),
        Some(json!({"name": "ops", "kind": "webhook", "url": url, "min_severity": "info"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    k
}

/// A tenant on Enterprise with a webhook channel to `url`.
async fn enterprise<S>(e: &crate::Env, svc: &S, tenant: &str, url: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let k = with_channel(svc, tenant, url).await;
    let who = Actor {
        actor: "staff:test".into(),
        ip: "127.0.0.1".into(),
        at: T0,
    };
    e.staff_set(
        &TenantId::parse(tenant).unwrap(),
        StaffColumn::Plan,
        "cloud_enterprise",
        &who,
    )
    .await
    .unwrap();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_enterprise_tenant_gets_its_monthly_sla_report_as_json_and_csv() {
    let e = env().await;
    let hook = kamiyo_testing::receiver::Receiver::start(|_, _| {
        kamiyo_testing::receiver::Reply::new(204, "")
    })
    .await;
    let owner = e.owner.clone();
    let svc = e
        .service_customised(move |s| {
            s.loopback_channels = true;
            s.staff_db = Some(owner);
            s.staff_tokens = vec![(
                "alice".into(),
                kamiyo_platform::tenancy::hash_key("staff-token-of-alice"),
            )];
        })
        .await;
    let a = enterprise(&e, &svc, "sla-a", &hook.url("/a")).await;
    let b = enterprise(&e, &svc, "sla-b", &hook.url("/b")).await;
    let pro = signup(&svc, "sla-pro").await;
    // June 2026: the API probed 1,000 minutes, 2 of them down (99.8 %).
    let june = status::month_bounds("2026-06").unwrap().0;
    for m in 0..1000 {
        let state = if m < 2 { "down" } else { "up" };
        e.app
            .record_probe(&probe("api", june + m * MIN, state))
            .await
            .unwrap();
    }
    // Ten steps, each routed and then delivered 1 … 10 s later: both tenants get every one.
    for n in 1..=10i64 {
        let at = T0 + n * MIN;
        commit_and_route(&e, vec![opened(n as usize, "hyperliquid", "ETH", at)], at).await;
        let d = kamiyo_platform::fanout::deliver_once(&e.app, None, "test", at + n * 1000, 10)
            .await
            .unwrap();
        assert_eq!(d.delivered, 2, "{d:?}");
    }
    let (s, _, v) = call(&svc, "get", "/api/v1/sla?month=2026-06", Some(&a), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let row = &v["items"][0];
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "a tenant sees its own report only"
    );
    assert_eq!(row["tenant"], "sla-a");
    assert_eq!(
        (&row["api_minutes_probed"], &row["api_minutes_down"]),
        (&json!(1000), &json!(2))
    );
    assert_eq!(row["api_availability_pct"], 99.8);
    assert_eq!(row["met"], false, "99.8 % is under 99.9 %");
    let d = &row["delivery"];
    assert_eq!((&d["delivered"], &d["failed"]), (&json!(10), &json!(0)));
    // Nearest rank: p50 is the 5th of ten (5 s), p99 the 10th (10 s); a few ms of the pass's
    // own work may add to each.
    for (field, want) in [("p50_ms", 5000), ("p99_ms", 10_000), ("max_ms", 10_000)] {
        let got = d[field].as_i64().unwrap();
        assert!((want..want + 1000).contains(&got), "{field}: {got}");
    }
    let (s, headers, csv) = call(
        &svc,
        "get",
        "/api/v1/sla?month=2026-06&format=csv",
        Some(&a),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], status::SlaRow::CSV_HEADER);
    assert!(
        lines[1].starts_with("sla-a,2026-06,1000,2,99.800,99.9,10,0,"),
        "{csv}"
    );
    assert!(lines[1].ends_with(",60000,no"), "{csv}");
    // Bad months and formats are refused; plans without the SLA are told which plan has it.
    for q in ["month=2026-13", "month=june", "format=xml"] {
        let (s, _, v) = call(&svc, "get", &format!("/api/v1/sla?{q}"), Some(&a), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    let (s, _, v) = call(&svc, "get", "/api/v1/sla", Some(&pro), None).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    // Staff: every tenant with the SLA, and no other.
    let staff = Some("staff-token-of-alice");
    let (s, _, v) = call(&svc, "get", "/api/v1/admin/sla?month=2026-06", staff, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tenants: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["sla-a", "sla-b"]);
    assert_eq!(v["items"][1]["delivery"]["delivered"], 10);
    let (s, _, _) = call(&svc, "get", "/api/v1/admin/sla", Some(&b), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A month without anything: unmeasured, not met or missed.
    let (_, _, v) = call(&svc, "get", "/api/v1/sla?month=2026-04", Some(&b), None).await;
    assert_eq!(
        (
            &v["items"][0]["met"],
            &v["items"][0]["api_availability_pct"]
        ),
        (&Value::Null, &Value::Null)
    );
}

#[tokio::test]
async fn a_dead_workers_claims_are_taken_over_and_a_live_workers_are_not() {
    let e = env().await;
    let svc = e.service().await;
    with_channel(&svc, "claims", "https://hooks.example/ops").await;
    commit_and_route(&e, vec![opened(1, "hyperliquid", "ETH", T0)], T0).await;
    let t = TenantId::parse("claims").unwrap();
    let claim = |worker, now| kamiyo_platform::db::Claim {
        worker,
        now,
        lease_ms: kamiyo_platform::fanout::LEASE_MS,
        alive_since: now - status::ALIVE_MS,
    };
    // Worker a claims the row (and then, say, is killed before it finishes).
    e.app
        .heartbeat("workers", "a", T0, &json!({}))
        .await
        .unwrap();
    e.app
        .heartbeat("workers", "b", T0, &json!({}))
        .await
        .unwrap();
    assert_eq!(
        e.app
            .claim_due(&t, &claim("a", T0), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // While a beats, b cannot take it (its lease runs a minute).
    e.app
        .heartbeat("workers", "a", T0 + 5000, &json!({}))
        .await
        .unwrap();
    e.app
        .heartbeat("workers", "b", T0 + 5000, &json!({}))
        .await
        .unwrap();
    let now = T0 + 5000;
    assert!(
        e.app
            .due_tenants(now, 10, now - status::ALIVE_MS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        e.app
            .claim_due(&t, &claim("b", now), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // a's heartbeat stops; {ALIVE_MS} later b takes the row over, long before the lease ends.
    let now = T0 + 5000 + status::ALIVE_MS + 1;
    e.app
        .heartbeat("workers", "b", now, &json!({}))
        .await
        .unwrap();
    assert_eq!(
        e.app
            .due_tenants(now, 10, now - status::ALIVE_MS)
            .await
            .unwrap(),
        std::slice::from_ref(&t)
    );
    let taken = e.app.claim_due(&t, &claim("b", now), 10).await.unwrap();
    assert_eq!((taken.len(), taken[0].attempts), (1, 2));
}
