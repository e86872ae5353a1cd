//! The open core's API served by the platform: platform keys, each tenant kept to its
//! protocols and its plan's history, the host's operator routes closed to tenants, and every
//! call metered on the tenant's day.

use actix_web::http::StatusCode;
use kamiyo_core_models::{IngestBatch, MarketStore};
use kamiyo_platform::db::{Actor, StaffColumn};
use kamiyo_platform::tenancy::TenantId;

use crate::{T0, call, env, opened, signup};

#[tokio::test]
async fn each_tenant_reads_its_protocols_within_its_history() {
    let e = env().await;
    let hl = opened(1, "hyperliquid", "ETH", T0 - 3_600_000);
    let dydx = opened(2, "dydx", "ETH", T0 - 3_600_000);
    let old = opened(3, "hyperliquid", "BTC", T0 - 40 * 86_400_000);
    e.facts
        .commit(&IngestBatch {
            updates: vec![old.clone(), hl.clone(), dydx.clone()],
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let svc = e.service().await;
    let alpha = signup(&svc, "alpha").await;
    let bravo = signup(&svc, "bravo").await;
    // Bravo follows dYdX only.
    for (m, p) in [
        ("put", "/api/v1/subscriptions/dydx"),
        ("delete", "/api/v1/subscriptions/hyperliquid"),
    ] {
        let (s, _, v) = call(&svc, m, p, Some(&bravo), None).await;
        assert!(s.is_success(), "{p}: {v}");
    }
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, _, v) = call(&svc, "get", "/security/incidents", Some(&alpha), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Basic keeps 30 days: the 40-day-old incident is not alpha's to read.
    assert_eq!(ids(&v), [hl.incident.id.to_string()]);
    let (_, _, v) = call(&svc, "get", "/security/incidents", Some(&bravo), None).await;
    assert_eq!(ids(&v), [dydx.incident.id.to_string()]);
    let (_, _, v) = call(&svc, "get", "/security/events", Some(&bravo), None).await;
    let text = v.to_string();
    assert!(
        text.contains(dydx.incident.id.as_str()) && !text.contains(hl.incident.id.as_str()),
        "{text}"
    );
    // Crossing by id or by protocol: 404.
    for (key, path) in [
        (&alpha, format!("/security/incidents/{}", dydx.incident.id)),
        (&alpha, format!("/security/incidents/{}", old.incident.id)),
        (&bravo, format!("/security/incidents/{}", hl.incident.id)),
        (&alpha, "/security/incidents?protocol=dydx".to_owned()),
        (
            &bravo,
            "/security/dashboard?protocol=hyperliquid".to_owned(),
        ),
        (&alpha, "/silences".to_owned()),
        (&alpha, "/alerts/deliveries".to_owned()),
    ] {
        let (s, _, v) = call(&svc, "get", &path, Some(key), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (s, _, v) = call(
        &svc,
        "get",
        &format!("/security/incidents/{}", hl.incident.id),
        Some(&alpha),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deliveries"], serde_json::json!([]));
    // Tenants read; acting on shared incidents is not theirs.
    let (s, _, _) = call(
        &svc,
        "post",
        &format!("/security/incidents/{}/acknowledge", hl.incident.id),
        Some(&alpha),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // No key, a bad key: 401; the probes stay public.
    for key in [None, Some("alpha.00")] {
        let (s, _, _) = call(&svc, "get", "/security/events", key, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _, _) = call(&svc, "get", "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    // On Enterprise (365 days) the old incident is alpha's to read.
    let staff = Actor {
        actor: "staff:test".into(),
        ip: "cli".into(),
        at: T0,
    };
    let t = TenantId::parse("alpha").unwrap();
    e.staff_set(&t, StaffColumn::Plan, "cloud_enterprise", &staff)
        .await
        .unwrap();
    let (_, _, v) = call(&svc, "get", "/security/incidents", Some(&alpha), None).await;
    assert_eq!(
        ids(&v),
        [hl.incident.id.to_string(), old.incident.id.to_string()]
    );
    // Every open-core call was metered on alpha's day.
    let (_, _, u) = call(&svc, "get", "/api/v1/usage?days=1", Some(&alpha), None).await;
    assert!(u["usage"][0]["api_calls"].as_i64().unwrap() >= 8, "{u}");
    // Suspended: refused on the open core's routes too.
    e.staff_set(&t, StaffColumn::Status, "suspended", &staff)
        .await
        .unwrap();
    let (s, _, _) = call(&svc, "get", "/security/events", Some(&alpha), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
