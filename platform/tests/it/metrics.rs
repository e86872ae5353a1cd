//! The platform's metrics at `/metrics` (staff only): requests by route, status and plan,
//! subscriptions by plan, detections by protocol and severity, alert deliveries and their
//! latency, the database pool — and every series the shipped dashboard and alert rules read is
//! one of them; every rule names a runbook entry that exists.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::{T0, call, commit_and_route, env, opened, signup};

fn repo(path: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_what_the_dashboard_and_alert_rules_read() {
    // This test process's meter provider (nextest runs each test in its own process).
    let (provider, registry) = kamiyo_api::metrics::prometheus_provider().unwrap();
    opentelemetry::global::set_meter_provider(provider);
    let e = env().await;
    let hook = kamiyo_testing::receiver::Receiver::start(|_, _| {
        kamiyo_testing::receiver::Reply::new(204, "")
    })
    .await;
    let reg = registry.clone();
    let svc = e
        .service_customised(move |s| {
            s.metrics = Some(reg);
            s.loopback_channels = true;
            s.staff_tokens = vec![(
                "prometheus".into(),
                kamiyo_platform::tenancy::hash_key("scrape-token"),
            )];
        })
        .await;
    let k = signup(&svc, "metered").await;
    let (s, _, _) = call(&svc, "post", "/api/v1/channels", Some(&k), Some(json!({"name": "ops", "kind": "webhook", "url": hook.url("/in"), "min_severity": "low"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&k), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some("metered.wrong"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A step routed and delivered; the pool and subscription gauges as `serve` sets them.
    commit_and_route(&e, vec![opened(1, "hyperliquid", "ETH", T0)], T0 + 1000).await;
    let d = kamiyo_platform::fanout::deliver_once(&e.app, None, "test", T0 + 3000, 10)
        .await
        .unwrap();
    assert_eq!(d.delivered, 1, "{d:?}");
    let (open, idle) = e.app.pool_state();
    kamiyo_platform::metrics::set_pool("app", open, idle);
    for (plan, n) in e.app.subscriptions_by_plan().await.unwrap() {
        kamiyo_platform::metrics::set_subscriptions(&plan, u64::try_from(n).unwrap());
    }

    // Staff only.
    let (s, _, _) = call(&svc, "get", "/metrics", Some(&k), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, body) = call(&svc, "get", "/metrics", Some("scrape-token"), None).await;
    assert_eq!(s, StatusCode::OK);
    let metrics = body.as_str().unwrap().to_owned();
    for series in [
        r#"kamiyo_platform_requests_total{method="GET",plan="cloud_basic",route="/api/v1/tenant",status="200"} 1"#,
        r#"kamiyo_platform_requests_total{method="GET",plan="none",route="/api/v1/tenant",status="401"} 1"#,
        r#"kamiyo_platform_requests_total{method="POST",plan="none",route="/api/v1/signup",status="201"} 1"#,
        r#"kamiyo_platform_subscriptions{plan="cloud_basic"} 1"#,
        r#"kamiyo_platform_detections_total{change="opened",protocol="hyperliquid",severity="high"} 1"#,
        r#"kamiyo_platform_alert_deliveries_total{outcome="delivered"} 1"#,
        "kamiyo_platform_alert_delivery_latency_seconds_count 1",
        r#"kamiyo_platform_db_pool_connections{pool="app",state="open"}"#,
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }

    // Every series the dashboard and the alert rules read exists, except those that appear
    // only once their event happened (no billing or ML detector runs in this test).
    let only_after_first_event = [
        "kamiyo_platform_billing_webhooks_total",
        "kamiyo_platform_ml_score_duration_seconds_bucket",
    ];
    let rules = repo("deploy/kubernetes/monitoring/alerts.yml");
    for file in [
        "deploy/kubernetes/monitoring/dashboard.json",
        "deploy/kubernetes/monitoring/alerts.yml",
    ] {
        let missing = kamiyo_testing::metrics::unexported(
            &metrics,
            &repo(file),
            "kamiyo_platform_",
            &only_after_first_event,
        );
        assert!(
            missing.is_empty(),
            "{file} reads {missing:?}, which /metrics does not export"
        );
    }
    // Every rule names a runbook entry that exists.
    let runbook = repo("docs/PLATFORM_RUNBOOK.md");
    let alerts = rules.matches("- alert:").count();
    let mut anchors = 0;
    for (i, _) in rules.match_indices("PLATFORM_RUNBOOK.md#") {
        let anchor: String = rules[i + "PLATFORM_RUNBOOK.md#".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        assert!(
            runbook.contains(&format!("\n## {anchor}\n")),
            "no runbook entry {anchor}"
        );
        anchors += 1;
    }
    assert_eq!(anchors, alerts, "every alert rule has a runbook_url");
}
