//! Plans enforced on every request (402 naming the plan that has the feature, 429 with
//! Retry-After at the next UTC midnight), roles checked on every route, usage metered durably,
//! and every change audited.

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use kamiyo_platform::db::{Actor, StaffColumn};
use kamiyo_platform::tenancy::TenantId;
use kamiyo_platform::tiers::TierMatrix;
use serde_json::json;

use crate::{T0, call, env, signup};

fn staff() -> Actor {
    Actor {
        actor: "staff:test".into(),
        ip: "cli".into(),
        at: T0,
    }
}

#[tokio::test]
async fn features_outside_the_plan_answer_402_naming_the_plan_that_has_them() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "acme").await;
    let k = Some(k.as_str());
    let (s, h, v) = call(&svc, "get", "/api/v1/audit", k, None).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    assert_eq!(h.get("content-type").unwrap(), "application/problem+json");
    assert_eq!(v["code"], "plan_required");
    assert!(
        v["detail"].as_str().unwrap().contains("cloud_enterprise"),
        "{v}"
    );
    // Roles below admin need RBAC (enterprise).
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/keys",
        k,
        Some(json!({"name": "ro", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    // A second protocol on a plan without multi_protocol.
    e.staff_set(
        &TenantId::parse("acme").unwrap(),
        StaffColumn::Plan,
        "open_source",
        &staff(),
    )
    .await
    .unwrap();
    let (s, _, v) = call(&svc, "put", "/api/v1/subscriptions/dydx", k, None).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("cloud_basic"), "{v}");
    // Basic has it, up to five protocols: the sixth is a limit (429, no reset to wait for).
    e.staff_set(
        &TenantId::parse("acme").unwrap(),
        StaffColumn::Plan,
        "cloud_basic",
        &staff(),
    )
    .await
    .unwrap();
    for p in ["dydx", "gmx", "aevo", "drift"] {
        let (s, _, v) = call(&svc, "put", &format!("/api/v1/subscriptions/{p}"), k, None).await;
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    let (s, h, v) = call(&svc, "put", "/api/v1/subscriptions/lighter", k, None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(h.get("retry-after").is_none());
    // An unknown protocol is not there to subscribe to.
    let (s, _, _) = call(&svc, "put", "/api/v1/subscriptions/nosuch", k, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Enterprise: the audit log opens.
    e.staff_set(
        &TenantId::parse("acme").unwrap(),
        StaffColumn::Plan,
        "cloud_enterprise",
        &staff(),
    )
    .await
    .unwrap();
    let (s, _, v) = call(&svc, "get", "/api/v1/audit", k, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn daily_api_calls_are_metered_durably_and_reset_at_utc_midnight() {
    let e = env().await;
    let text = TierMatrix::default_matrix().unwrap();
    drop(text);
    let tiers = TierMatrix::load(
        &include_str!("../../config/tiers.toml")
            .replace("api_calls_per_day = 10000", "api_calls_per_day = 5"),
    )
    .unwrap();
    let svc = e.service_with(tiers.clone()).await;
    let k = signup(&svc, "metered").await;
    for left in (0..5).rev() {
        let (s, h, _) = call(&svc, "get", "/api/v1/tenant", Some(&k), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            h.get("x-ratelimit-remaining").unwrap().to_str().unwrap(),
            left.to_string()
        );
    }
    let (s, h, v) = call(&svc, "get", "/api/v1/tenant", Some(&k), None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // T0 is 12:00 UTC: the reset is 12 hours away.
    assert_eq!(h.get("retry-after").unwrap().to_str().unwrap(), "43200");
    // The count is in the database, not in the process: a fresh service refuses too.
    let svc2 = e.service_with(tiers).await;
    let (s, _, _) = call(&svc2, "get", "/api/v1/usage", Some(&k), None).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // The next UTC day starts afresh, and the usage shows both days.
    e.clock.store(T0 + 12 * 3_600_000, Ordering::SeqCst);
    let (s, _, v) = call(&svc2, "get", "/api/v1/usage?days=2", Some(&k), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let calls: Vec<i64> = v["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["api_calls"].as_i64().unwrap())
        .collect();
    assert_eq!(calls, [1, 5], "{v}");
}

#[tokio::test]
async fn roles_are_checked_on_every_route() {
    let e = env().await;
    let svc = e.service().await;
    let owner = signup(&svc, "roles").await;
    e.staff_set(
        &TenantId::parse("roles").unwrap(),
        StaffColumn::Plan,
        "cloud_enterprise",
        &staff(),
    )
    .await
    .unwrap();
    let mut keys = std::collections::BTreeMap::new();
    for role in ["viewer", "analyst", "admin"] {
        let (s, _, v) = call(
            &svc,
            "post",
            "/api/v1/keys",
            Some(&owner),
            Some(json!({"name": role, "role": role})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        keys.insert(role, v["secret"].as_str().unwrap().to_owned());
    }
    keys.insert("owner", owner);
    // (method, path, body, least role that may)
    let cases = [
        ("get", "/api/v1/tenant", None, "viewer"),
        ("get", "/api/v1/subscriptions", None, "viewer"),
        (
            "put",
            "/api/v1/thresholds/liquidations/cascade_count",
            Some(json!({"value": 30.0})),
            "analyst",
        ),
        (
            "put",
            "/api/v1/watched-addresses/0x00000000000000000000000000000000000000aa",
            Some(json!({"label": "w"})),
            "analyst",
        ),
        ("get", "/api/v1/keys", None, "admin"),
        ("get", "/api/v1/channels", None, "admin"),
        ("put", "/api/v1/subscriptions/dydx", None, "admin"),
        ("get", "/api/v1/audit", None, "admin"),
    ];
    let rank = |r: &str| {
        ["viewer", "analyst", "admin", "owner"]
            .iter()
            .position(|x| *x == r)
            .unwrap()
    };
    for (m, p, b, least) in cases {
        for (role, key) in &keys {
            let (s, _, v) = call(&svc, m, p, Some(key), b.clone()).await;
            if rank(role) >= rank(least) {
                assert!(s.is_success(), "{role} {m} {p}: {s} {v}");
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {m} {p}: {v}");
            }
        }
    }
    // Never granting above one's own role.
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/keys",
        Some(&keys["admin"]),
        Some(json!({"name": "x", "role": "owner"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A suspended tenant's keys stop working; reinstated, they work again.
    let t = TenantId::parse("roles").unwrap();
    e.staff_set(&t, StaffColumn::Status, "suspended", &staff())
        .await
        .unwrap();
    let (s, _, v) = call(&svc, "get", "/api/v1/tenant", Some(&keys["owner"]), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    e.staff_set(&t, StaffColumn::Status, "active", &staff())
        .await
        .unwrap();
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&keys["owner"]), None).await;
    assert_eq!(s, StatusCode::OK);
    // A revoked key stops at once.
    let (_, _, list) = call(&svc, "get", "/api/v1/keys", Some(&keys["owner"]), None).await;
    let viewer_id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "viewer")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, _) = call(
        &svc,
        "delete",
        &format!("/api/v1/keys/{viewer_id}"),
        Some(&keys["admin"]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&keys["viewer"]), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_change_is_audited_and_exported_as_json_lines() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "audited").await;
    let t = TenantId::parse("audited").unwrap();
    e.staff_set(&t, StaffColumn::Plan, "cloud_enterprise", &staff())
        .await
        .unwrap();
    let k = Some(k.as_str());
    let (_, _, ch) = call(&svc, "post", "/api/v1/channels", k, Some(json!({"name": "pager", "kind": "pagerduty", "url": "https://events.pagerduty.com/v2/enqueue", "secret": "routing-key"}))).await;
    call(
        &svc,
        "put",
        "/api/v1/thresholds/oracle/critical_pct",
        k,
        Some(json!({"value": 2.5})),
    )
    .await;
    call(
        &svc,
        "delete",
        &format!("/api/v1/channels/{}", ch["channel_id"].as_str().unwrap()),
        k,
        None,
    )
    .await;
    let (s, h, body) = call(&svc, "get", "/api/v1/audit/export", k, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get("content-type").unwrap(), "application/x-ndjson");
    let rows: Vec<serde_json::Value> = body
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "staff.plan",
            "channel.create",
            "threshold.set",
            "channel.remove"
        ]
    );
    assert!(
        rows.windows(2)
            .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64())
    );
    assert_eq!(rows[2]["ip"], "192.0.2.10");
    assert!(rows[2]["actor"].as_str().unwrap().starts_with("key:key_"));
    assert!(
        !body.as_str().unwrap().contains("routing-key"),
        "secrets never reach the log"
    );
    // The channel's secret is write-only.
    let (_, _, list) = call(&svc, "get", "/api/v1/thresholds", k, None).await;
    assert_eq!(list["items"][0]["value"], 2.5);
    // Beyond the plan's history nothing is returned.
    e.clock.store(T0 + 366 * 86_400_000, Ordering::SeqCst);
    let (_, _, v) = call(&svc, "get", "/api/v1/audit?since=0", k, None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
}

#[tokio::test]
async fn bad_input_is_a_clear_400_and_signups_are_limited() {
    let e = env().await;
    let svc = e.service().await;
    for body in [
        json!({"tenant": "A!", "name": "x", "email": "a@b.io", "password": "long enough pass"}),
        json!({"tenant": "okname", "name": "x", "email": "nope", "password": "long enough pass"}),
        json!({"tenant": "okname", "name": "x", "email": "a@b.io", "password": "short"}),
        json!({"tenant": "okname", "name": "x", "email": "a@b.io", "password": "long enough pass", "plan": "cloud_enterprise"}),
        json!("not an object"),
    ] {
        let (s, h, v) = call(&svc, "post", "/api/v1/signup", None, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(h.get("content-type").unwrap(), "application/problem+json");
        assert_eq!(v["status"], 400);
    }
    let k = signup(&svc, "first").await;
    let (s, _, v) = call(&svc, "post", "/api/v1/signup", None, Some(json!({"tenant": "first", "name": "x", "email": "a@b.io", "password": "long enough pass"}))).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(!v["detail"].as_str().unwrap().contains("pkey"), "{v}");
    let (s, _, _) = call(&svc, "post", "/api/v1/signup", None, Some(json!({"tenant": "second", "name": "x", "email": "a@b.io", "password": "long enough pass"}))).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "the sixth sign-up from one address within a minute"
    );
    for (m, p, b) in [
        (
            "put",
            "/api/v1/thresholds/oracle/x",
            Some(json!({"value": "high"})),
        ),
        (
            "put",
            "/api/v1/watched-addresses/0x12",
            Some(json!({"label": "x"})),
        ),
        (
            "post",
            "/api/v1/channels",
            Some(json!({"name": "x", "kind": "webhook", "url": "http://insecure.example"})),
        ),
        (
            "post",
            "/api/v1/channels",
            Some(json!({"name": "x", "kind": "carrier-pigeon", "url": "https://x.example"})),
        ),
        ("get", "/api/v1/usage?days=many", None),
    ] {
        let (s, _, v) = call(&svc, m, p, Some(&k), b).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{m} {p}: {v}");
    }
    for bad in ["", "first", "first.", "first.zz", "Bearer"] {
        let (s, h, _) = call(&svc, "get", "/api/v1/tenant", Some(bad), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(h.get("www-authenticate").is_some());
    }
    let (s, _, _) = call(&svc, "get", "/api/v1/nowhere", Some(&k), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The document lists every operation.
    let (s, _, doc) = call(&svc, "get", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, same) = call(&svc, "get", kamiyo_platform::web::OPENAPI_PATH, None, None).await;
    assert_eq!(doc, same);
    assert_eq!(doc["info"]["title"], "kamiyo.ai platform API");
    // The open core's routes and the platform's, in one document.
    for path in ["/security/events", "/security/incidents/{id}", "/ws"] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    for op in kamiyo_platform::openapi::OPERATIONS {
        assert!(
            doc["paths"][op.path][op.method].is_object(),
            "{} {}",
            op.method,
            op.path
        );
    }
}

#[tokio::test]
async fn staff_routes_take_staff_tokens_only_and_are_audited_in_the_tenants_log() {
    let e = env().await;
    let owner = e.owner.clone();
    let svc = e
        .service_customised(move |s| {
            s.staff_db = Some(owner);
            s.staff_tokens = vec![(
                "alice".into(),
                kamiyo_platform::tenancy::hash_key("staff-token-of-alice"),
            )];
        })
        .await;
    let k = signup(&svc, "served").await;
    let staff = Some("staff-token-of-alice");
    // A tenant's key, a wrong token, none: not staff.
    for key in [Some(k.as_str()), Some("staff-token-of-bob"), None] {
        let (s, _, _) = call(&svc, "get", "/api/v1/admin/tenants", key, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _, v) = call(&svc, "get", "/api/v1/admin/tenants", staff, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["tenant_id"], "served");
    let (s, _, v) = call(
        &svc,
        "put",
        "/api/v1/admin/tenants/served/plan",
        staff,
        Some(json!({"plan": "cloud_enterprise"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/admin/tenants/served/impersonate",
        staff,
        Some(json!({"reason": "ticket 42", "minutes": 5})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ro = v["key"]["secret"].as_str().unwrap().to_owned();
    // The impersonation key reads, never writes, and expires.
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&ro), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(
        &svc,
        "put",
        "/api/v1/thresholds/oracle/x",
        Some(&ro),
        Some(json!({"value": 1.0})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    e.clock.store(T0 + 6 * 60_000, Ordering::SeqCst);
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&ro), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/admin/tenants/served/suspend",
        staff,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&k), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/admin/tenants/served/reinstate",
        staff,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/admin/tenants/nosuch/suspend",
        staff,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Every staff action is in the tenant's own log, by name and address.
    let (_, _, log) = call(&svc, "get", "/api/v1/audit/export", Some(&k), None).await;
    let rows: Vec<serde_json::Value> = log
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let staff_rows: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["actor"] == "staff:alice")
        .map(|r| (r["action"].as_str().unwrap(), r["ip"].as_str().unwrap()))
        .collect();
    assert_eq!(
        staff_rows,
        [
            ("staff.plan", "192.0.2.10"),
            ("staff.impersonate", "192.0.2.10"),
            ("staff.status", "192.0.2.10"),
            ("staff.status", "192.0.2.10")
        ],
        "{rows:?}"
    );
}

/// `/api/v1/protocols` lists what the plan allows from the registry; subscriptions are held to
/// the registry's plan (402 naming it) and to what is available here (409 with the reason;
/// historical protocols may be followed for their past).
#[tokio::test]
async fn the_protocol_registry_decides_what_a_plan_lists_and_may_subscribe_to() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "acme").await;
    let k = Some(k.as_str());
    let t = TenantId::parse("acme").unwrap();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Basic (the sign-up plan without billing).
    let (s, _, v) = call(&svc, "get", "/api/v1/protocols", k, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let basic = ids(&v);
    for want in [
        "hyperliquid",
        "dydx",
        "gmx",
        "lighter",
        "paradex",
        "drift",
        "vertex",
    ] {
        assert!(basic.iter().any(|i| i == want), "{want} missing: {basic:?}");
    }
    assert!(!basic.iter().any(|i| i == "aave-v3"), "{basic:?}");
    assert!(v["with_a_higher_plan"].as_u64().unwrap() > 0);
    assert_eq!(v["limit"], 5);
    let item = |v: &serde_json::Value, id: &str| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(item(&v, "hyperliquid")["subscribed"], true);
    assert_eq!(item(&v, "vertex")["adapter"]["status"], "historical");
    assert_eq!(item(&v, "vertex")["available"], true);
    // Above the plan: 402 naming the plan the registry asks for.
    let (s, _, v) = call(&svc, "put", "/api/v1/subscriptions/aave-v3", k, None).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("cloud_pro"), "{v}");
    // A historical protocol may be followed.
    let (s, _, v) = call(&svc, "put", "/api/v1/subscriptions/vertex", k, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Pro lists more; a planned protocol this deployment does not ingest is refused with why.
    e.staff_set(&t, StaffColumn::Plan, "cloud_pro", &staff())
        .await
        .unwrap();
    let (_, _, v) = call(&svc, "get", "/api/v1/protocols", k, None).await;
    let pro = ids(&v);
    assert!(pro.len() > basic.len() && pro.iter().any(|i| i == "aave-v3"));
    assert_eq!(item(&v, "jupiter-perps")["available"], false);
    let (s, _, v) = call(&svc, "put", "/api/v1/subscriptions/jupiter-perps", k, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("Solana RPC"), "{v}");
    // Open source sees Hyperliquid alone.
    e.staff_set(&t, StaffColumn::Plan, "open_source", &staff())
        .await
        .unwrap();
    let (_, _, v) = call(&svc, "get", "/api/v1/protocols", k, None).await;
    assert_eq!(ids(&v), ["hyperliquid"]);
}
