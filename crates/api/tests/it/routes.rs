//! Each endpoint's contents on a seeded store.

use std::collections::BTreeSet;

use kamiyo_core_models::{FeedState, FeedStatus, IngestBatch, Timestamp};

use crate::support::{NOW, seeded, updates};

#[tokio::test]
async fn health_ready_and_feeds() {
    let api = seeded().await;
    assert_eq!(api.json("/health").await["status"], "ok");
    assert_eq!(api.json("/ready").await["status"], "ready");
    api.hub.publish_feed(FeedStatus {
        feed: "hyperliquid.ws".into(),
        state: FeedState::Down,
        changed_at: Timestamp(NOW),
        last_data_at: None,
        detail: "connection refused".into(),
    });
    let r = api.get("/ready").await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["checks"][1]["name"], "feed:hyperliquid.ws");
    assert_eq!(body["checks"][1]["detail"], "connection refused");
    let feeds = api.json("/feeds").await;
    assert_eq!(feeds["down"], 1);
    assert_eq!(feeds["feeds"][0]["state"], "DOWN");
}

#[tokio::test]
async fn events_paginate_by_cursor_without_gaps_or_duplicates() {
    let api = seeded().await;
    let mut seen = Vec::new();
    let mut path = "/security/events?limit=7".to_owned();
    loop {
        let page = api.json(&path).await;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/security/events?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=30).rev().collect::<Vec<i64>>());
}

#[tokio::test]
async fn event_filters() {
    let api = seeded().await;
    let crit = api
        .json("/security/events?severity=critical&limit=100")
        .await;
    let crit = crit["events"].as_array().unwrap();
    assert_eq!(crit.len(), 10);
    assert!(crit.iter().all(|e| e["severity"] == "critical"));
    let high = api.json("/security/events?severity=high&limit=100").await;
    assert_eq!(high["events"].as_array().unwrap().len(), 20);
    let eth = api.json("/security/events?asset=ETH&limit=100").await;
    assert!(
        eth["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["asset"] == "ETH")
    );
    let hlp = api.json("/security/events?threat_type=hlp_loss").await;
    assert_eq!(hlp["events"].as_array().unwrap().len(), 10);
    let since = Timestamp(NOW - 5_000).to_rfc3339();
    let recent = api.json(&format!("/security/events?since={since}")).await;
    let times: BTreeSet<String> = recent["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time"].as_str().unwrap().to_owned())
        .collect();
    assert!(!times.is_empty() && times.iter().all(|t| *t >= since));
}

#[tokio::test]
async fn incidents_and_one_incident_with_its_events() {
    let api = seeded().await;
    let list = api.json("/security/incidents?status=open&limit=5").await;
    let list = list["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    let id = list[0]["id"].as_str().unwrap();
    let one = api.json(&format!("/security/incidents/{id}")).await;
    assert_eq!(one["incident"]["id"], id);
    assert_eq!(one["events"][0]["change"], "opened");
    let missing = api.get("/security/incidents/inc_0000000000000000").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn hlp_vault_oracle_and_liquidations() {
    let api = seeded().await;
    let h = api.json("/security/hlp-vault?hours=2").await;
    let pts = h["points"].as_array().unwrap();
    assert!((119..=121).contains(&pts.len()), "{}", pts.len());
    assert!(h["pnl_change"].as_str().unwrap().starts_with('-'));
    assert!(h["drawdown_pct"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);

    let o = api
        .json("/security/oracle-deviations?asset=ETH&hours=1")
        .await;
    assert!((59..=61).contains(&o["samples"].as_array().unwrap().len()));
    assert_eq!(o["latest"][0]["asset"], "ETH");
    let all = api.json("/security/oracle-deviations").await;
    assert!(
        all["samples"].as_array().unwrap().is_empty(),
        "samples need an asset"
    );

    let l = api.json("/security/liquidations?hours=3").await;
    assert_eq!(l["count"], 6);
    assert_eq!(l["adl_count"], 1);
    assert_eq!(l["total_notional"], "1200000");
}

#[tokio::test]
async fn dashboard_and_exploits() {
    let api = seeded().await;
    let d = api.json("/security/dashboard").await;
    assert_eq!(d["risk"]["level"], "critical");
    assert_eq!(d["open_incidents"].as_array().unwrap().len(), 30);
    assert_eq!(d["recent_events"].as_array().unwrap().len(), 20);
    assert_eq!(d["last_event_id"], 30);
    assert_eq!(d["liquidations_24h"]["count"], 6);
    assert_eq!(d["oracle"][0]["asset"], "ETH");
    let x = api.json("/exploits?hours=1").await;
    let x = x["exploits"].as_array().unwrap();
    assert_eq!(x.len(), 20, "high and critical incidents only");
    assert!(x.iter().all(|e| e["severity"] != "medium"));
    assert_eq!(x[0]["amount_usd"], "2500000");
}

#[tokio::test]
async fn metrics_docs_and_dashboard_pages_are_served_offline() {
    let api = seeded().await;
    let _ = api.json("/health").await;
    let m = api.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("kamiyo_api_requests"), "{m}");
    for (path, needle) in [
        ("/", "/assets/dashboard.js"),
        ("/assets/dashboard.js", "new WebSocket"),
        ("/assets/dashboard.css", "--crit"),
        ("/docs", "/assets/vendor/swagger-ui-bundle.js"),
        ("/redoc", "/assets/vendor/redoc.standalone.js"),
        ("/assets/vendor/swagger-ui-bundle.js", "SwaggerUIBundle"),
        ("/assets/vendor/swagger-ui.css", "swagger-ui"),
        ("/assets/vendor/redoc.standalone.js", "redoc"),
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        assert!(
            !body.contains("cdn.jsdelivr") && !body.contains("unpkg.com"),
            "{path} uses a CDN"
        );
    }
}

#[tokio::test]
async fn cached_reads_never_hide_a_new_security_event() {
    let api = seeded().await;
    let before = api.json("/security/events?limit=5").await;
    let dash_before = api.json("/security/dashboard").await;
    assert_eq!(before["events"][0]["seq"], 30);
    // Served again from the cache within its second: the same body.
    assert_eq!(api.json("/security/events?limit=5").await, before);
    // A new event is visible at once on every cached endpoint.
    api.commit(&IngestBatch {
        updates: updates(1, 30),
        ..IngestBatch::default()
    })
    .await;
    let after = api.json("/security/events?limit=5").await;
    assert_eq!(after["events"][0]["seq"], 31);
    assert_ne!(api.json("/security/dashboard").await, dash_before);
}

#[tokio::test]
async fn delivery_log_with_per_channel_figures() {
    use kamiyo_core_models::{Alert, OutboxEntry, OutboxStatus, OutboxStore};
    let api = seeded().await;
    let ups = updates(3, 0);
    let mut entries = Vec::new();
    for (n, u) in ups.iter().enumerate() {
        let a = Alert::new(u.clone(), "ops", None);
        entries.push(OutboxEntry {
            id: a.idempotency_key.clone(),
            channel: "ops".into(),
            alert: a,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: Timestamp(NOW),
            created_at: Timestamp(NOW - 10_000 + n as i64),
            delivered_at: None,
            last_error: None,
            consumer: "alerts:routed".into(),
        });
    }
    api.store.enqueue(&entries).await.unwrap();
    api.store
        .mark_delivered(&entries[0].id, 1, Timestamp(NOW - 10_000 + 120))
        .await
        .unwrap();
    api.store
        .mark_delivered(&entries[1].id, 3, Timestamp(NOW - 10_000 + 2_001))
        .await
        .unwrap();
    api.store
        .mark_failed(&entries[2].id, 1, "HTTP 404: Unknown Webhook")
        .await
        .unwrap();
    let log = api.json("/alerts/deliveries").await;
    let d = log["deliveries"].as_array().unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["last_error"], "HTTP 404: Unknown Webhook");
    assert_eq!(d[2]["latency_ms"], 120);
    let ch = &log["channels"][0];
    assert_eq!(ch["channel"], "ops");
    assert_eq!(
        (ch["delivered"].as_u64(), ch["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(ch["mean_attempts"], 2.0);
    assert_eq!(ch["latency_p50_ms"], 2000);
    let failed = api.json("/alerts/deliveries?status=failed").await;
    assert_eq!(failed["deliveries"].as_array().unwrap().len(), 1);
    let none = api.json("/alerts/deliveries?channel=other").await;
    assert!(none["deliveries"].as_array().unwrap().is_empty());
    assert_eq!(d[0]["protocol"], "hyperliquid");
    let hl = api.json("/alerts/deliveries?protocol=hyperliquid").await;
    assert_eq!(hl["deliveries"].as_array().unwrap().len(), 3);
    let none = api.json("/alerts/deliveries?protocol=gmx").await;
    assert!(none["deliveries"].as_array().unwrap().is_empty());
    for bad in [
        "status=lost",
        "channel=a%20b",
        "limit=0",
        "since=yesterday",
        "protocol=GMX",
    ] {
        let r = api.get(&format!("/alerts/deliveries?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn ml_anomalies_and_the_hlp_forecast() {
    use std::sync::Arc;

    use kamiyo_api::{ApiStores, SingleStore, views::Views};
    use kamiyo_core_models::{Address, Decimal, ThreatType, VaultPoint};
    // Market views read the store whole on every look here (rather than every 30 s), so the
    // back-dated history committed below is seen at the next look.
    let api = crate::support::TestApi::start_custom(
        crate::support::config(),
        kamiyo_api::Hub::default(),
        |state, store| {
            let mut stores = ApiStores::single(store);
            stores.views = Arc::new(Views::with_market_reload(std::time::Duration::ZERO));
            state.stores = Arc::new(SingleStore(stores));
        },
    )
    .await;
    let api = crate::support::seed(api).await;
    let a = api.json("/ml/anomalies").await;
    assert!(a["model"].is_null());
    assert!(a["anomalies"].as_array().unwrap().is_empty());
    // An anomaly step appears with its evidence.
    let mut u = updates(1, 40);
    u[0].event.threat_type = ThreatType::MlAnomaly;
    u[0].incident.threat_type = ThreatType::MlAnomaly;
    api.commit(&IngestBatch {
        updates: u,
        ..IngestBatch::default()
    })
    .await;
    let a = api.json("/ml/anomalies").await;
    assert_eq!(a["anomalies"].as_array().unwrap().len(), 1);

    // Three hours of history is too little to forecast: 409 with a reason.
    let r = api.get("/ml/forecast").await;
    assert_eq!(r.status(), 409);
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["code"], "insufficient_data");

    // 120 hours of (synthetic) hourly HLP PnL: a forecast with widening 95 % intervals.
    let hlp: Address = crate::support::HLP.parse().unwrap();
    let mut pnl = 60_000_000i64;
    let points: Vec<VaultPoint> = (0..120)
        .map(|h| {
            pnl += ((h * 7919) % 200_001) - 100_000;
            VaultPoint {
                protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
                vault: hlp,
                time: Timestamp(NOW - (120 - h) * Timestamp::HOUR - 3 * Timestamp::HOUR),
                account_value: Decimal::new(300_000_000, 0),
                pnl: Decimal::new(pnl, 0),
            }
        })
        .collect();
    api.commit(&IngestBatch {
        vault_points: points,
        ..IngestBatch::default()
    })
    .await;
    // Back-dated rows reach the market view at its next whole read, in the background.
    let started = std::time::Instant::now();
    while api.get("/ml/forecast?hours=200").await.status() != 200 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let f = api.json("/ml/forecast?hours=200").await;
    let pts = f["points"].as_array().unwrap();
    assert_eq!(pts.len(), 24);
    assert_eq!(f["order"][1], 1);
    for p in pts {
        let (lo, m, hi) = (
            p["lower"].as_f64().unwrap(),
            p["mean"].as_f64().unwrap(),
            p["upper"].as_f64().unwrap(),
        );
        assert!(lo < m && m < hi, "{p}");
    }
    let w0 = pts[0]["upper"].as_f64().unwrap() - pts[0]["lower"].as_f64().unwrap();
    let w23 = pts[23]["upper"].as_f64().unwrap() - pts[23]["lower"].as_f64().unwrap();
    assert!(w23 > w0);
    for bad in ["series=btc", "hours=10", "hours=x"] {
        assert_eq!(
            api.get(&format!("/ml/forecast?{bad}")).await.status(),
            400,
            "{bad}"
        );
    }
}

/// The watched accounts' latest positions, largest first; flat positions left out; the HLP
/// vault marked; filtered by asset.
#[tokio::test]
async fn positions_latest_per_account_and_market() {
    let api = crate::support::seeded().await;
    let p = api.json("/security/positions").await;
    let list = p["positions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{p}");
    assert_eq!(list[0]["asset"], "ETH");
    assert_eq!(
        list[0]["side"], "long",
        "the latest ETH position, not the earlier short"
    );
    assert_eq!(list[0]["notional"], "4000000");
    assert_eq!(list[0]["leverage"], "4");
    assert_eq!(list[0]["is_hlp"], false);
    assert_eq!(list[1]["asset"], "BTC");
    assert_eq!(list[1]["is_hlp"], true);
    let btc = api.json("/security/positions?asset=BTC&limit=1").await;
    assert_eq!(btc["positions"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/security/positions?limit=0").await.status(), 400);
    assert_eq!(api.get("/security/positions?hours=721").await.status(), 400);
}

/// The same detector and asset on two protocols are two incidents; every response names its
/// protocol and `protocol=` filters the lists.
#[tokio::test]
async fn protocols_are_kept_apart_and_filterable() {
    use kamiyo_core_models::{IncidentChange, ProtocolId, Severity, ThreatType};

    use crate::support::{incident, step};
    let api = seeded().await;
    let dydx = ProtocolId::parse("dydx").unwrap();
    let hl = incident(
        900,
        Severity::High,
        ThreatType::OracleDeviation,
        "ETH",
        NOW - 500,
    );
    let mut other = hl.clone();
    other.key = other.key.clone().in_protocol(&dydx);
    other.id = kamiyo_core_models::Incident::derive_id(&other.key, other.first_seen);
    other.protocol = dydx.clone();
    assert_ne!(hl.id, other.id, "same asset, same detector, two incidents");
    api.commit(&IngestBatch {
        updates: vec![
            step(&hl, IncidentChange::Opened, NOW - 500),
            step(&other, IncidentChange::Opened, NOW - 400),
        ],
        ..IngestBatch::default()
    })
    .await;

    let only = api.json("/security/incidents?protocol=dydx").await;
    let list = only["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{only}");
    assert_eq!(list[0]["protocol"], "dydx");
    assert_eq!(list[0]["key"], format!("dydx/{}", hl.key));
    let all = api.json("/security/incidents?limit=500").await;
    assert!(
        all["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["protocol"] == "hyperliquid" || i["protocol"] == "dydx"),
        "{all}"
    );
    let hl_only = api
        .json("/security/incidents?protocol=hyperliquid&limit=500")
        .await;
    assert!(
        hl_only["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["protocol"] == "hyperliquid")
    );
    let ev = api.json("/security/events?protocol=dydx").await;
    let evs = ev["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1, "{ev}");
    assert_eq!(evs[0]["protocol"], "dydx");
    assert_eq!(evs[0]["incident_id"], other.id.as_str());
    let ex = api.json("/exploits?protocol=dydx&hours=24").await;
    let list = ex["exploits"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{ex}");
    assert_eq!(list[0]["protocol"], "dydx", "{ex}");
    assert_eq!(list[0]["id"], other.id.as_str());
    let ex = api.json("/exploits?hours=24").await;
    assert!(
        ex["exploits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == hl.id.as_str() && e["protocol"] == "hyperliquid"),
        "{ex}"
    );
    let none = api.json("/security/events?protocol=gmx").await;
    assert!(none["events"].as_array().unwrap().is_empty());
    for bad in [
        "/security/events?protocol=DYDX!",
        "/security/incidents?protocol=",
    ] {
        let r = api.get(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().starts_with("protocol: "),
            "{body}"
        );
    }
}

/// Market facts name their protocol too: the same market's history on a second protocol is
/// kept apart, every record says whose it is, and `protocol=` filters each market endpoint.
#[tokio::test]
async fn market_endpoints_filter_by_protocol() {
    use kamiyo_core_models::ProtocolId;

    let api = seeded().await;
    let acme = ProtocolId::parse("acme-perps").unwrap();
    let mut theirs = crate::support::history();
    theirs
        .deviations
        .iter_mut()
        .for_each(|r| r.protocol = acme.clone());
    theirs
        .liquidations
        .iter_mut()
        .for_each(|r| r.protocol = acme.clone());
    theirs
        .positions
        .iter_mut()
        .for_each(|r| r.protocol = acme.clone());
    theirs
        .vault_points
        .iter_mut()
        .for_each(|r| r.protocol = acme.clone());
    let ours_liq = api.json("/security/liquidations?hours=24").await["count"]
        .as_u64()
        .unwrap();
    api.commit(&theirs).await;

    // (Another URL than the first read: that body is in the one-second response cache.)
    let all = api.json("/security/liquidations?hours=25").await;
    assert_eq!(all["count"].as_u64().unwrap(), 2 * ours_liq, "{all}");
    for (protocol, n) in [
        ("acme-perps", ours_liq),
        ("hyperliquid", ours_liq),
        ("gmx", 0),
    ] {
        let l = api
            .json(&format!(
                "/security/liquidations?hours=24&protocol={protocol}"
            ))
            .await;
        assert_eq!(l["count"].as_u64().unwrap(), n, "{protocol}: {l}");
        assert!(
            l["liquidations"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["protocol"] == protocol),
            "{l}"
        );
    }
    let d = api
        .json("/security/oracle-deviations?asset=ETH&protocol=acme-perps")
        .await;
    assert!(!d["samples"].as_array().unwrap().is_empty(), "{d}");
    assert!(
        d["latest"]
            .as_array()
            .unwrap()
            .iter()
            .chain(d["samples"].as_array().unwrap())
            .all(|x| x["protocol"] == "acme-perps"),
        "{d}"
    );
    let p = api.json("/security/positions?protocol=acme-perps").await;
    let list = p["positions"].as_array().unwrap();
    assert!(!list.is_empty(), "{p}");
    assert!(list.iter().all(|x| x["protocol"] == "acme-perps"), "{p}");
    let none = api.json("/security/positions?protocol=gmx").await;
    assert!(none["positions"].as_array().unwrap().is_empty(), "{none}");
    let v = api.json("/security/hlp-vault?protocol=gmx").await;
    assert!(v["points"].as_array().unwrap().is_empty(), "{v}");
    let v = api.json("/security/hlp-vault?protocol=hyperliquid").await;
    assert!(!v["points"].as_array().unwrap().is_empty(), "{v}");
    let dash = api.json("/security/dashboard?protocol=acme-perps").await;
    assert_eq!(
        dash["liquidations_24h"]["count"].as_u64().unwrap(),
        ours_liq,
        "{dash}"
    );
    assert!(
        dash["open_incidents"].as_array().unwrap().is_empty(),
        "{dash}"
    );
    assert!(
        dash["recent_events"].as_array().unwrap().is_empty(),
        "{dash}"
    );
    let dash = api.json("/security/dashboard?protocol=hyperliquid").await;
    assert!(
        !dash["recent_events"].as_array().unwrap().is_empty(),
        "{dash}"
    );
    for bad in [
        "/security/dashboard?protocol=x!",
        "/security/liquidations?protocol=Acme",
        "/security/oracle-deviations?protocol=",
        "/security/positions?protocol=a%20b",
        "/security/hlp-vault?protocol=-x",
        "/ml/forecast?protocol=X",
    ] {
        let r = api.get(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

/// A host's resolver picks each caller's stores: two tenants (told apart here by a header a
/// host's middleware would set) see only their own incidents, a cached body of one is never
/// served to the other, and a caller the resolver refuses gets its error.
#[tokio::test]
async fn a_host_resolver_gives_each_caller_its_own_stores() {
    use std::sync::Arc;

    use kamiyo_api::{ApiError, ApiStores, StoreResolver, auth::Principal};
    use kamiyo_core_models::{IncidentChange, Severity, ThreatType};

    use crate::support::{TestApi, config, incident, step};

    struct ByHeader {
        a: ApiStores,
        b: ApiStores,
    }
    impl StoreResolver for ByHeader {
        fn resolve(
            &self,
            _: &Principal,
            req: &actix_web::HttpRequest,
        ) -> Result<ApiStores, ApiError> {
            match req.headers().get("x-tenant").and_then(|v| v.to_str().ok()) {
                Some("a") => Ok(self.a.clone()),
                Some("b") => Ok(self.b.clone()),
                _ => Err(ApiError::Forbidden("unknown tenant".into())),
            }
        }
    }
    let dir_b = tempfile::tempdir().unwrap();
    let store_b = kamiyo_store::Store::open("", dir_b.path(), 2)
        .await
        .unwrap();
    let api = TestApi::start_custom(config(), kamiyo_api::Hub::default(), |state, store_a| {
        let mut a = ApiStores::single(store_a);
        a.partition = Arc::from("tenant-a");
        let mut b = ApiStores::single(&store_b);
        b.partition = Arc::from("tenant-b");
        state.stores = Arc::new(ByHeader { a, b });
        state.responses = kamiyo_api::cache::ResponseCache::new(std::time::Duration::from_secs(60));
    })
    .await;
    let ia = incident(
        1,
        Severity::High,
        ThreatType::OracleDeviation,
        "ETH",
        NOW - 1000,
    );
    let ib = incident(
        2,
        Severity::Critical,
        ThreatType::LargeLiquidation,
        "BTC",
        NOW - 900,
    );
    api.commit(&IngestBatch {
        updates: vec![step(
            &ia,
            kamiyo_core_models::IncidentChange::Opened,
            NOW - 1000,
        )],
        ..IngestBatch::default()
    })
    .await;
    kamiyo_core_models::MarketStore::commit(
        &store_b,
        &IngestBatch {
            updates: vec![step(&ib, IncidentChange::Opened, NOW - 900)],
            ..IngestBatch::default()
        },
    )
    .await
    .unwrap();
    let get = |tenant: &'static str, path: &'static str| {
        let r = api
            .http
            .get(api.url(path))
            .header("x-tenant", tenant)
            .send();
        async move { r.await.unwrap() }
    };
    for _ in 0..2 {
        // Twice: the second answers come from the response cache, still per tenant.
        for (tenant, want, other) in [("a", &ia, &ib), ("b", &ib, &ia)] {
            let page: serde_json::Value = get(tenant, "/security/incidents?limit=500")
                .await
                .json()
                .await
                .unwrap();
            let ids: Vec<&str> = page["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, [want.id.as_str()], "tenant {tenant}: {page}");
            assert!(!ids.contains(&other.id.as_str()));
        }
    }
    let detail = get("b", "/security/incidents/inc_0000000000000000").await;
    assert_eq!(detail.status(), 404);
    let theirs = format!("/security/incidents/{}", ia.id);
    let r = api
        .http
        .get(api.url(&theirs))
        .header("x-tenant", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "tenant b cannot read tenant a's incident");
    let r = get("c", "/security/events").await;
    assert_eq!(r.status(), 403);
}

/// A multi-tenant host: its own key check (an [`kamiyo_api::auth::Authenticator`] attaching the
/// caller's tenant) and a resolver giving each tenant a [`kamiyo_api::ReadScope`] — its
/// protocols, its history, shared facts only. Every read route keeps to it; the operator's
/// routes answer 404; another protocol's or an older incident is 404 by id.
#[tokio::test]
async fn a_read_scope_keeps_a_caller_to_its_protocols_and_history() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use actix_web::HttpMessage as _;
    use kamiyo_api::auth::{Authenticator, Principal};
    use kamiyo_api::{ApiError, ApiStores, ReadScope, StoreResolver};
    use kamiyo_core_models::{IncidentChange, KeyScope, ProtocolId, Severity, ThreatType};

    use crate::support::{TestApi, config, incident, step};

    #[derive(Clone)]
    struct Tenant;
    struct HostKeys(Arc<AtomicBool>);
    #[async_trait::async_trait(?Send)]
    impl Authenticator for HostKeys {
        async fn authenticate(
            &self,
            presented: &str,
            req: &actix_web::dev::ServiceRequest,
        ) -> Result<Option<(String, Principal)>, ApiError> {
            if presented != "host-key-a" || self.0.load(Ordering::SeqCst) {
                return Ok(None);
            }
            req.extensions_mut().insert(Tenant);
            let p = Principal {
                key_id: None,
                name: "tenant a".into(),
                scope: KeyScope::Read,
            };
            Ok(Some(("tenant:a".into(), p)))
        }
        async fn still_valid(&self, presented: &str) -> Result<bool, ApiError> {
            Ok(presented == "host-key-a" && !self.0.load(Ordering::SeqCst))
        }
    }
    struct Scoped(ApiStores);
    impl StoreResolver for Scoped {
        fn resolve(
            &self,
            _: &Principal,
            req: &actix_web::HttpRequest,
        ) -> Result<ApiStores, ApiError> {
            req.extensions()
                .get::<Tenant>()
                .map(|_| self.0.clone())
                .ok_or_else(|| ApiError::Unauthorized("no tenant".into()))
        }
    }
    let acme = ProtocolId::parse("acme-perps").unwrap();
    let revoked = Arc::new(AtomicBool::new(false));
    let keys = HostKeys(revoked.clone());
    let api = TestApi::start_custom(config(), kamiyo_api::Hub::default(), |state, store| {
        let mut s = ApiStores::single(store);
        s.partition = Arc::from("tenant-a");
        s.scope = ReadScope {
            protocols: Some(Arc::from([acme.clone()])),
            history_ms: Some(2 * Timestamp::HOUR),
            facts_only: true,
        };
        state.stores = Arc::new(Scoped(s));
        state.authenticator = Some(Arc::new(keys));
    })
    .await;
    // (protocol, n, severity, threat, asset, last seen)
    let at = |protocol: &ProtocolId, n, sev, threat, asset, t| {
        let mut i = incident(n, sev, threat, asset, t);
        i.protocol = protocol.clone();
        i
    };
    let hl = ProtocolId::HYPERLIQUID;
    let hours_ago = NOW - 3 * Timestamp::HOUR;
    let theirs = at(
        &hl,
        1,
        Severity::Critical,
        ThreatType::OracleDeviation,
        "ETH",
        NOW - 1000,
    );
    let mine = at(
        &acme,
        2,
        Severity::High,
        ThreatType::OracleDeviation,
        "ETH",
        NOW - 900,
    );
    let old = at(
        &acme,
        3,
        Severity::High,
        ThreatType::LargeLiquidation,
        "BTC",
        hours_ago,
    );
    let fresh_anomaly = at(
        &acme,
        4,
        Severity::High,
        ThreatType::MlAnomaly,
        "SOL",
        NOW - 800,
    );
    let stale_anomaly = at(
        &acme,
        5,
        Severity::High,
        ThreatType::MlAnomaly,
        "SOL",
        hours_ago,
    );
    api.commit(&IngestBatch {
        updates: [
            (&theirs, NOW - 1000),
            (&mine, NOW - 900),
            (&old, hours_ago),
            (&fresh_anomaly, NOW - 800),
            (&stale_anomaly, hours_ago),
        ]
        .into_iter()
        .map(|(i, t)| step(i, IncidentChange::Opened, t))
        .collect(),
        ..IngestBatch::default()
    })
    .await;
    let get = |path: String, key: Option<&'static str>| {
        let mut r = api.http.get(api.url(&path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move { r.send().await.unwrap() }
    };
    let json = |path: &'static str| {
        let r = get(path.to_owned(), Some("host-key-a"));
        async move {
            let r = r.await;
            assert_eq!(r.status(), 200, "{path}");
            r.json::<serde_json::Value>().await.unwrap().to_string()
        }
    };
    assert_eq!(get("/security/events".into(), None).await.status(), 401);
    assert_eq!(
        get("/security/events".into(), Some("kmy_other"))
            .await
            .status(),
        401
    );
    for path in [
        "/security/incidents",
        "/security/events",
        "/security/dashboard",
        "/exploits?hours=24",
    ] {
        let body = json(path).await;
        assert!(body.contains(mine.id.as_str()), "{path}: {body}");
        assert!(
            !body.contains(theirs.id.as_str()),
            "{path} shows another protocol's: {body}"
        );
        assert!(
            !body.contains(old.id.as_str()),
            "{path} shows beyond the history: {body}"
        );
    }
    // The anomaly list keeps to the same window.
    let body = json("/ml/anomalies").await;
    assert!(body.contains(fresh_anomaly.id.as_str()), "{body}");
    assert!(
        !body.contains(stale_anomaly.id.as_str()),
        "/ml/anomalies shows beyond the history: {body}"
    );
    for path in [
        "/security/incidents?protocol=hyperliquid".to_owned(),
        "/security/events?protocol=hyperliquid".to_owned(),
        format!("/security/incidents/{}", theirs.id),
        format!("/security/incidents/{}", old.id),
        "/silences".to_owned(),
        "/alerts/deliveries".to_owned(),
    ] {
        assert_eq!(
            get(path.clone(), Some("host-key-a")).await.status(),
            404,
            "{path}"
        );
    }
    let detail: serde_json::Value = get(
        format!("/security/incidents/{}", mine.id),
        Some("host-key-a"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(detail["incident"]["id"], mine.id.as_str());
    assert_eq!(detail["actions"], serde_json::json!([]));
    // Writes: the host gave a read scope, so the gate refuses before anything is touched.
    let r = api
        .http
        .post(api.url(&format!("/security/incidents/{}/acknowledge", mine.id)))
        .bearer_auth("host-key-a")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The host revokes the key: refused at once (no cache in front of a host's check).
    revoked.store(true, Ordering::SeqCst);
    assert_eq!(
        get("/security/events".into(), Some("host-key-a"))
            .await
            .status(),
        401
    );
}

/// `/exploits` with the exploit database: the embedded lists (DeFiLlama's and DeFiHackLabs',
/// merged), filtered and paged; bad filters are a 400.
#[tokio::test]
async fn exploits_query_the_exploit_database() {
    use kamiyo_core_models::ExploitStore;
    let api = crate::support::TestApi::start_custom(
        crate::support::config(),
        kamiyo_api::Hub::default(),
        |state, store| state.exploit_db = Some(std::sync::Arc::new(store.clone())),
    )
    .await;
    let all = kamiyo_aggregators::exploits::embedded().unwrap();
    assert_eq!(api.store.replace_exploits(&all).await.unwrap(), all.len());
    let x = api.json("/exploits").await;
    let db = &x["database"];
    assert_eq!(db["total"], all.len());
    assert_eq!(db["items"].as_array().unwrap().len(), 50);
    assert_eq!(db["items"][0]["id"], all[0].id.as_str());
    // Filters together: every item matches, and the total counts them all.
    let f = api
        .json("/exploits?category=oracle_manipulation&chain=Ethereum&min_amount=1000000&limit=500")
        .await;
    let items = f["database"]["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert_eq!(f["database"]["total"], items.len());
    for e in items {
        assert_eq!(e["category"], "oracle_manipulation", "{e}");
        assert_eq!(e["chain"], "Ethereum", "{e}");
        assert!(e["loss_usd"].as_i64().unwrap() >= 1_000_000, "{e}");
    }
    // By name: Mango Markets' oracle manipulation of October 2022.
    let m = api.json("/exploits?name=mango%20markets").await;
    let items = m["database"]["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|e| e["date"] == "2022-10-11" && e["category"] == "oracle_manipulation"),
        "{items:?}"
    );
    // Pages do not overlap and cover the list in order.
    let p1 = api.json("/exploits?limit=5").await;
    let p2 = api.json("/exploits?limit=5&offset=5").await;
    let ids = |v: &serde_json::Value| {
        v["database"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let expected: Vec<String> = all[..10].iter().map(|e| e.id.clone()).collect();
    assert_eq!([ids(&p1), ids(&p2)].concat(), expected);
    // The window in days, against the API's clock.
    let recent = api.json("/exploits?days=36500").await;
    assert_eq!(recent["database"]["total"], all.len());
    for bad in [
        "category=nope",
        "limit=0",
        "limit=501",
        "offset=-1",
        "days=0",
        "min_amount=lots",
    ] {
        let r = api.get(&format!("/exploits?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}

/// Every log entry and page of `/security/log`, in order, with the head of the first page.
async fn whole_log(
    api: &crate::support::TestApi,
    limit: u32,
) -> (Vec<kamiyo_core_models::ledger::LogEntry>, serde_json::Value) {
    let mut entries = Vec::new();
    let mut path = format!("/security/log?limit={limit}");
    let mut head = None;
    loop {
        let page = api.json(&path).await;
        head.get_or_insert_with(|| page["head"].clone());
        for e in page["entries"].as_array().unwrap() {
            assert_eq!(
                Timestamp::parse(e["logged_at"].as_str().unwrap())
                    .unwrap()
                    .0,
                e["logged_ms"].as_i64().unwrap()
            );
            entries.push(serde_json::from_value(e.clone()).unwrap());
        }
        match page["next_after"].as_i64() {
            Some(after) => path = format!("/security/log?limit={limit}&after={after}"),
            None => break,
        }
    }
    (entries, head.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_chains_the_served_events_and_a_second_implementation_agrees() {
    use kamiyo_core_models::ledger;
    let api = seeded().await;
    let (entries, head) = whole_log(&api, 7).await;
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    ledger::verify(None, &entries).unwrap();
    assert_eq!(head["seq"], 30);
    assert_eq!(head["chain"], entries[29].chain.as_str());
    // Each event as served hashes (keys sorted, no whitespace) to its entry's digest; one
    // changed field does not.
    let events = api.json("/security/events?limit=1000").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 30);
    for ev in events {
        let seq = ev["seq"].as_i64().unwrap();
        let entry = &entries[usize::try_from(seq - 1).unwrap()];
        assert_eq!(
            ledger::sha256_hex(&ledger::canonical_json(ev)),
            entry.digest,
            "{ev}"
        );
        let mut changed = ev.clone();
        changed["severity"] = "low".into();
        assert_ne!(
            ledger::sha256_hex(&ledger::canonical_json(&changed)),
            entry.digest
        );
    }
    // Bad parameters are a 400 naming them.
    for bad in [
        "after=-1",
        "after=x",
        "limit=0",
        "limit=1001",
        "after=99999999999999999999",
        "page=2",
    ] {
        let r = api.get(&format!("/security/log?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // The Python verifier (standard library only, no code shared with kamiyo) agrees, and
    // refuses a head that is not in the chain.
    let kept = format!("17:{}", entries[16].chain);
    let out = kamiyo_testing::verify_event_log_ok(&api.base, &[kept]).await;
    assert!(
        out.starts_with("ok: 30 entries link up to head 30:")
            && out.contains("30 events match their entries")
            && out.contains("1 kept heads found"),
        "{out}"
    );
    let forged = format!("17:{}", entries[15].chain);
    let bad = kamiyo_testing::verify_event_log(&api.base, &[forged]).await;
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("is not in the chain"), "{out}");
}
