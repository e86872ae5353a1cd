//! Working an incident over HTTP: acknowledge, resolve with a note, notes, silences; the
//! write scope, cross-origin refusal and bad bodies; the incident page's data.

use kamiyo_core_models::{
    ApiKeyStore, AuditStore, IncidentChange, IngestBatch, KeyScope, Severity, ThreatType, Timestamp,
};
use serde_json::{Value, json};

use crate::support::{NOW, TestApi, config, incident, step};

async fn post(api: &TestApi, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = api.http.post(api.url(path)).json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Commits the opening of incident `n` and returns it.
async fn opened(
    api: &TestApi,
    n: usize,
    sev: Severity,
    threat: ThreatType,
    asset: &str,
    t: i64,
) -> kamiyo_core_models::Incident {
    let i = incident(n, sev, threat, asset, t);
    api.commit(&IngestBatch {
        updates: vec![step(&i, IncidentChange::Opened, t)],
        ..IngestBatch::default()
    })
    .await;
    i
}

#[tokio::test]
async fn acknowledge_resolve_with_a_note_and_the_history_shows_it() {
    let api = TestApi::start(config()).await;
    let i = opened(
        &api,
        1,
        Severity::High,
        ThreatType::OracleDeviation,
        "ETH",
        NOW - 600_000,
    )
    .await;
    let base = format!("/security/incidents/{}", i.id);

    let (s, body) = post(&api, &format!("{base}/acknowledge"), None, json!({})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["acknowledged"]["by"], "local");
    let (s, body) = post(&api, &format!("{base}/acknowledge"), None, json!({})).await;
    assert_eq!(s, 409, "twice: {body}");
    let list = api.json("/security/incidents?status=open").await;
    assert_eq!(list["incidents"][0]["acknowledged_by"], "local");

    // Resolving needs a note: absent, or only blanks.
    let (s, body) = post(&api, &format!("{base}/resolve"), None, json!({})).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = post(
        &api,
        &format!("{base}/resolve"),
        None,
        json!({"note": "  "}),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
    let (s, body) = post(
        &api,
        &format!("{base}/resolve"),
        None,
        json!({"note": "Binance maintenance window; oracle fine"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["incident"]["status"], "resolved");
    assert!(
        body["acknowledged"].is_null(),
        "a resolved incident is not 'acknowledged'"
    );
    let events = body["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["change"], "resolved");
    assert!(
        last["title"]
            .as_str()
            .unwrap()
            .contains("Binance maintenance"),
        "{last}"
    );
    let kinds: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["acknowledge", "resolve"]);
    let (s, _) = post(
        &api,
        &format!("{base}/resolve"),
        None,
        json!({"note": "again"}),
    )
    .await;
    assert_eq!(s, 409);
    // Notes go on resolved incidents too; the page still answers (alert links land here).
    let (s, body) = post(
        &api,
        &format!("{base}/notes"),
        None,
        json!({"note": "post-mortem in OPS-12"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // The same note again at the same clock instant is a second note, not a lost one.
    let (s, _) = post(
        &api,
        &format!("{base}/notes"),
        None,
        json!({"note": "post-mortem in OPS-12"}),
    )
    .await;
    assert_eq!(s, 200);
    let page = api.json(&base).await;
    assert_eq!(page["actions"].as_array().unwrap().len(), 4);
    assert_eq!(page["window"].as_array().unwrap().len(), 2);
    // Every write is audited.
    let audit = api.store.audit_log(10).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"incident.resolve"), "{actions:?}");

    // Bad input: unknown fields, a non-JSON body, an unknown incident, a malformed id.
    let (s, _) = post(
        &api,
        &format!("{base}/notes"),
        None,
        json!({"note": "x", "extra": 1}),
    )
    .await;
    assert_eq!(s, 400);
    let r = api
        .http
        .post(api.url(&format!("{base}/notes")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (s, _) = post(
        &api,
        "/security/incidents/inc_0000000000000000/acknowledge",
        None,
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = post(
        &api,
        "/security/incidents/not%20an%20id/acknowledge",
        None,
        json!({}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn writes_need_the_write_scope_and_the_same_origin() {
    let api = TestApi::start(kamiyo_api::ApiConfig {
        require_keys: true,
        ..config()
    })
    .await;
    let i = opened(
        &api,
        2,
        Severity::Critical,
        ThreatType::LargeLiquidation,
        "BTC",
        NOW - 60_000,
    )
    .await;
    let read = kamiyo_api::auth::generate_key("grafana", KeyScope::Read, Timestamp(0));
    let write = kamiyo_api::auth::generate_key("oncall", KeyScope::Write, Timestamp(0));
    api.store.insert_key(&read.record).await.unwrap();
    api.store.insert_key(&write.record).await.unwrap();
    let path = format!("/security/incidents/{}/acknowledge", i.id);

    let (s, _) = post(&api, &path, None, json!({})).await;
    assert_eq!(s, 401, "no key");
    let (s, body) = post(&api, &path, Some(&read.secret), json!({})).await;
    assert_eq!(s, 403, "read-only key: {body}");
    assert!(body["detail"].as_str().unwrap().contains("write scope"));
    // A page elsewhere cannot make the operator's browser act (cross-origin POST).
    let r = api
        .http
        .post(api.url(&path))
        .bearer_auth(&write.secret)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (s, body) = post(&api, &path, Some(&write.secret), json!({"note": "on it"})).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body["acknowledged"]["by"]
            .as_str()
            .unwrap()
            .contains("oncall")
    );
    // Reads still work with the read key.
    let r = api
        .http
        .get(api.url(&format!("/security/incidents/{}", i.id)))
        .bearer_auth(&read.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn silences_are_created_listed_matched_and_ended() {
    let api = TestApi::start(config()).await;
    let ends = Timestamp(NOW + 3_600_000).to_rfc3339();
    let (s, sil) = post(
        &api,
        "/silences",
        None,
        json!({"asset": "JELLY", "severity": "high", "ends_at": ends, "comment": "JELLY delisting"}),
    )
    .await;
    assert_eq!(s, 201, "{sil}");
    assert_eq!(sil["active"], true);
    assert_eq!(sil["created_by"], "local");
    let list = api.json("/silences").await;
    assert_eq!(list["silences"].as_array().unwrap().len(), 1);
    // By length, on the monitor's clock.
    let (s, by_len) = post(
        &api,
        "/silences",
        None,
        json!({"detector": "oracle", "minutes": 90, "comment": "venue maintenance"}),
    )
    .await;
    assert_eq!(s, 201, "{by_len}");
    assert_eq!(by_len["ends_at"], Timestamp(NOW + 90 * 60_000).to_rfc3339());
    let r = api
        .http
        .delete(api.url(&format!("/silences/{}", by_len["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // An incident that matched it lists the silence on its page.
    let i = opened(
        &api,
        3,
        Severity::Medium,
        ThreatType::ThinMarketManipulation,
        "JELLY",
        NOW,
    )
    .await;
    let page = api.json(&format!("/security/incidents/{}", i.id)).await;
    assert_eq!(page["silences"][0]["id"], sil["id"], "{page}");

    // Refused: no matcher, no comment, an end in the past, beyond 30 days, an unknown severity,
    // a malformed protocol id.
    for bad in [
        json!({"ends_at": ends, "comment": "everything"}),
        json!({"asset": "ETH", "ends_at": ends, "comment": ""}),
        json!({"severity": "apocalyptic", "ends_at": ends, "comment": "x"}),
        json!({"protocol": "DyDx!", "ends_at": ends, "comment": "x"}),
        json!({"asset": "ETH", "comment": "no end"}),
        json!({"asset": "ETH", "comment": "both", "ends_at": ends, "minutes": 5}),
        json!({"asset": "ETH", "comment": "too long", "minutes": 43_201}),
    ] {
        let (s, body) = post(&api, "/silences", None, bad.clone()).await;
        assert_eq!(s, 400, "{bad} → {body}");
    }
    // Well-formed but contradicting the clock or the 30-day limit: 409.
    for late in [
        json!({"asset": "ETH", "ends_at": "2020-01-01T00:00:00Z", "comment": "x"}),
        json!({"asset": "ETH", "ends_at": Timestamp(NOW + 31 * 86_400_000).to_rfc3339(), "comment": "x"}),
    ] {
        let (s, body) = post(&api, "/silences", None, late.clone()).await;
        assert_eq!(s, 409, "{late} → {body}");
    }
    let id = sil["id"].as_str().unwrap();
    let r = api
        .http
        .delete(api.url(&format!("/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api
        .http
        .delete(api.url(&format!("/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "ended once");
    assert!(
        api.json("/silences").await["silences"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        api.json("/silences?active=false").await["silences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
