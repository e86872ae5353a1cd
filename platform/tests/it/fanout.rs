//! Per-tenant alerting: one shared step into every subscribed tenant's outbox, judged against
//! each tenant's thresholds and channels, exactly once per tenant across interrupted passes,
//! and past the plan's daily cap held back with one digest per channel.

use actix_web::http::StatusCode;
use kamiyo_core_models::{Decimal, Evidence, IncidentChange, IngestBatch, MarketStore, Severity};
use kamiyo_platform::db::{Actor, StaffColumn};
use kamiyo_platform::fanout::{self, route_once};
use kamiyo_platform::tenancy::TenantId;
use kamiyo_platform::tiers::TierMatrix;
use serde_json::json;

use crate::{T0, call, env, outbox, signup, step};

#[tokio::test]
async fn one_step_reaches_each_subscribed_tenant_once_judged_by_its_own_thresholds() {
    let e = env().await;
    let svc = e.service().await;
    let staff = Actor {
        actor: "staff:test".into(),
        ip: "cli".into(),
        at: T0,
    };
    // alpha: one channel (high and above) and a threshold the step does not reach.
    // bravo: two channels, info and critical. charlie: follows dYdX only.
    let alpha = signup(&svc, "alpha").await;
    let bravo = signup(&svc, "bravo").await;
    let charlie = signup(&svc, "charlie").await;
    for t in ["alpha", "bravo", "charlie"] {
        e.staff_set(
            &TenantId::parse(t).unwrap(),
            StaffColumn::Plan,
            "cloud_enterprise",
            &staff,
        )
        .await
        .unwrap();
    }
    let chan = |name: &str, sev: &str| json!({"name": name, "kind": "webhook", "url": format!("https://hooks.example/{name}"), "min_severity": sev});
    for (k, body) in [
        (&alpha, chan("a", "high")),
        (&bravo, chan("b-info", "info")),
        (&bravo, chan("b-crit", "critical")),
        (&charlie, chan("c", "info")),
    ] {
        let (s, _, v) = call(&svc, "post", "/api/v1/channels", Some(k), Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, _, _) = call(
        &svc,
        "put",
        "/api/v1/thresholds/oracle/deviation_pct",
        Some(&alpha),
        Some(json!({"value": 5.0})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for (m, p) in [
        ("put", "/api/v1/subscriptions/dydx"),
        ("delete", "/api/v1/subscriptions/hyperliquid"),
    ] {
        let (s, _, _) = call(&svc, m, p, Some(&charlie), None).await;
        assert!(s.is_success());
    }
    let ev = Evidence::new().with("deviation_pct", Decimal::new(125, 2));
    let opened = step(
        1,
        "hyperliquid",
        "ETH",
        T0,
        IncidentChange::Opened,
        Severity::High,
        ev.clone(),
    );
    let updated = step(
        1,
        "hyperliquid",
        "ETH",
        T0 + 1000,
        IncidentChange::Updated,
        Severity::High,
        ev.clone(),
    );
    e.facts
        .commit(&IngestBatch {
            updates: vec![opened.clone(), updated],
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let tiers = TierMatrix::default_matrix().unwrap();
    let pass = route_once(&e.app, &e.facts_app, &tiers, T0 + 2000, 100)
        .await
        .unwrap();
    assert_eq!(
        (pass.steps, pass.routed, pass.sent, pass.held),
        (2, 2, 1, 0),
        "{pass:?}"
    );
    // bravo: its info channel only (a high step); alpha: nothing (1.25 % < its 5 %); charlie:
    // nothing (another protocol).
    let b = outbox(&svc, &bravo).await;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["status"], "pending");
    let msg: serde_json::Value = serde_json::from_str(b[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        msg["update"]["event"]["incident_id"],
        opened.incident.id.as_str()
    );
    assert_eq!(msg["update"]["event"]["change"], "opened");
    assert!(outbox(&svc, &alpha).await.is_empty());
    assert!(outbox(&svc, &charlie).await.is_empty());
    // Again: nothing new (the router's and each tenant's positions hold).
    let again = route_once(&e.app, &e.facts_app, &tiers, T0 + 3000, 100)
        .await
        .unwrap();
    assert_eq!(again, fanout::Pass::default());
    assert_eq!(outbox(&svc, &bravo).await.len(), 1);
    // An escalation to critical: bravo gets both channels; alpha's threshold still holds it
    // back. The router stops after bravo (as a kill between tenants would): bravo's rows are
    // written with its position, so the next pass neither loses alpha's turn nor repeats bravo's.
    let ev_big = Evidence::new().with("deviation_pct", Decimal::new(75, 1));
    let esc = step(
        1,
        "hyperliquid",
        "ETH",
        T0 + 4000,
        IncidentChange::Escalated,
        Severity::Critical,
        ev_big,
    );
    let stored = e
        .facts
        .commit(&IngestBatch {
            updates: vec![esc],
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let seq = stored[0].seq;
    let bravo_id = TenantId::parse("bravo").unwrap();
    let esc_stored = stored[0].clone();
    let esc_incident =
        kamiyo_core_models::IncidentStore::incident(&e.facts, &esc_stored.event.incident_id)
            .await
            .unwrap()
            .unwrap();
    let first = e
        .app
        .route_to_tenant(
            &bravo_id,
            seq,
            "oracle",
            esc_stored.event.incident_id.as_str(),
            T0 + 5000,
            |view| fanout::judge(&esc_stored, None, &esc_incident, view, 10_000, T0 + 5000),
        )
        .await
        .unwrap();
    assert_eq!(first.map(|r| r.sent), Some(2));
    let pass = route_once(&e.app, &e.facts_app, &tiers, T0 + 6000, 100)
        .await
        .unwrap();
    // alpha now passes (7.5 % ≥ 5 %): one alert; bravo is not routed twice.
    assert_eq!((pass.steps, pass.routed, pass.sent), (1, 1, 1), "{pass:?}");
    assert_eq!(outbox(&svc, &bravo).await.len(), 3);
    assert_eq!(outbox(&svc, &alpha).await.len(), 1);
    // Usage counts what was enqueued.
    let (_, _, u) = call(&svc, "get", "/api/v1/usage?days=1", Some(&bravo), None).await;
    assert_eq!(u["usage"][0]["alerts"], 3, "{u}");
}

#[tokio::test]
async fn past_the_daily_cap_alerts_are_held_back_and_summarised_in_one_digest() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "capped").await;
    let (s, _, _) = call(&svc, "post", "/api/v1/channels", Some(&k), Some(json!({"name": "ops", "kind": "slack", "url": "https://hooks.slack.com/x", "min_severity": "info"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    // Basic allows 100 alerts a day; a matrix with 2 makes the cap reachable.
    let tiers = TierMatrix::load(
        &include_str!("../../config/tiers.toml")
            .replace("alerts_per_day = 100\n", "alerts_per_day = 2\n"),
    )
    .unwrap();
    let steps: Vec<_> = (0..5)
        .map(|n| {
            step(
                n,
                "hyperliquid",
                "SOL",
                T0 + n as i64,
                IncidentChange::Opened,
                Severity::Medium,
                Evidence::new(),
            )
        })
        .collect();
    crate::commit(&e, steps).await;
    let pass = route_once(&e.app, &e.facts_app, &tiers, T0 + 10_000, 100)
        .await
        .unwrap();
    assert_eq!((pass.sent, pass.held), (2, 3), "{pass:?}");
    let rows = outbox(&svc, &k).await;
    let count = |st: &str| rows.iter().filter(|r| r["status"] == st).count();
    assert_eq!(
        (count("pending"), count("held"), count("digest")),
        (2, 3, 1),
        "{rows:?}"
    );
    let digest = rows.iter().find(|r| r["status"] == "digest").unwrap();
    let d: serde_json::Value = serde_json::from_str(digest["payload"].as_str().unwrap()).unwrap();
    let title = d["update"]["event"]["title"].as_str().unwrap();
    assert!(
        title.starts_with("3 alerts held back on 2026-06-01"),
        "{title}"
    );
    // Sent when the cap resets: the next UTC midnight (T0 is noon).
    assert_eq!(digest["next_attempt_ms"], T0 + 12 * 3_600_000);
    let (_, _, u) = call(&svc, "get", "/api/v1/usage?days=1", Some(&k), None).await;
    assert_eq!(
        (
            u["usage"][0]["alerts"].as_i64(),
            u["usage"][0]["alerts_held"].as_i64()
        ),
        (Some(2), Some(3)),
        "{u}"
    );
}

#[tokio::test]
async fn routed_alerts_are_delivered_to_each_tenants_channels_with_retries() {
    use kamiyo_platform::db::Change;
    use kamiyo_testing::receiver::{Receiver, Reply};

    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "deliver").await;
    let t = TenantId::parse("deliver").unwrap();
    let rx = Receiver::start(|_, r| match r.path.as_str() {
        "/ok" => Reply::new(200, "{}"),
        "/flaky" => Reply::new(503, "try later"),
        _ => Reply::new(404, "no such hook"),
    })
    .await;
    // Loopback URLs (the API asks https of tenants; the store takes what staff tooling writes).
    let who = Actor {
        actor: "staff:test".into(),
        ip: "cli".into(),
        at: T0,
    };
    for (name, path) in [("ok", "/ok"), ("flaky", "/flaky"), ("gone", "/gone")] {
        e.app
            .change(
                &t,
                &who,
                Change::AddChannel {
                    channel_id: kamiyo_platform::tenancy::new_id("chn"),
                    name: name.into(),
                    kind: "webhook".into(),
                    url: rx.url(path),
                    secret: Some("hook secret".into()),
                    min_severity: "info".into(),
                },
            )
            .await
            .unwrap();
    }
    let s = step(
        7,
        "hyperliquid",
        "BTC",
        T0,
        IncidentChange::Opened,
        Severity::Critical,
        Evidence::new(),
    );
    e.facts
        .commit(&IngestBatch {
            updates: vec![s.clone()],
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let tiers = TierMatrix::default_matrix().unwrap();
    route_once(&e.app, &e.facts_app, &tiers, T0 + 1000, 100)
        .await
        .unwrap();
    let d = fanout::deliver_once(&e.app, None, "test", T0 + 2000, 50)
        .await
        .unwrap();
    assert_eq!((d.delivered, d.retried, d.failed), (1, 1, 1), "{d:?}");
    let got = rx.wait_for(3, std::time::Duration::from_secs(10)).await;
    let ok = got.iter().find(|r| r.path == "/ok").unwrap();
    assert!(String::from_utf8_lossy(&ok.body).contains(s.incident.id.as_str()));
    // The tenant's webhook carries the step's entry of the shared event log.
    let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    let head = kamiyo_core_models::IncidentStore::event_log_head(&e.facts)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["log"]["chain"], head.chain.as_str(), "{body}");
    assert_eq!(body["log"]["digest"], head.digest.as_str());
    // Nothing is due again before its time; the 503 is tried again 30 s later.
    assert_eq!(
        fanout::deliver_once(&e.app, None, "test", T0 + 3000, 50)
            .await
            .unwrap(),
        fanout::Delivered::default()
    );
    let again = fanout::deliver_once(&e.app, None, "test", T0 + 2000 + 30_000, 50)
        .await
        .unwrap();
    assert_eq!((again.delivered, again.retried), (0, 1), "{again:?}");
    let rows = outbox(&svc, &k).await;
    let mut states: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("delivered".to_owned(), 1),
            ("failed".to_owned(), 1),
            ("pending".to_owned(), 2)
        ],
        "{rows:?}"
    );
}
