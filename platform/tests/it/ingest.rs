//! `kamiyo-platform ingest`: the open core's Hyperliquid pipeline (the pipeline library) writing
//! the shared facts into the platform's database, from the loopback exchange replaying the
//! ETH-whale scenario; a tenant then reads them through the open core's routes and the router
//! fans them out to its outbox.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::{IncidentQuery, IncidentStore, Timestamp};
use serde_json::json;

use crate::{call, env, signup};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_writes_shared_facts_that_tenants_read_and_are_alerted_on() {
    let e = env().await;
    let sim = whale_exchange().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = monitor_config(dir.path(), &sim.http_url());
    // A tenant before anything happens (its alerts start after sign-up), with a channel.
    let svc = e.service().await;
    let k = signup(&svc, "watcher").await;
    let (s, _, v) = call(&svc, "post", "/api/v1/channels", Some(&k), Some(json!({"name": "ops", "kind": "webhook", "url": "https://hooks.example/ops", "min_severity": "info"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // An address it watches: ingest follows every tenant's watched addresses.
    let (s, _, v) = call(
        &svc,
        "put",
        "/api/v1/watched-addresses/0x00000000000000000000000000000000000000ab",
        Some(&k),
        Some(json!({"label": "desk"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Probes on a port of its own (as its Kubernetes Deployment asks for them).
    let probes = format!("127.0.0.1:{}", kamiyo_testing::browser::free_port());
    let mut child = spawn_ingest(
        &e,
        &[
            "--monitor-config",
            cfg.to_str().unwrap(),
            "--health-bind",
            &probes,
        ],
        &dir.path().join("ingest.log"),
    );
    sim.set_speed(60.0);
    kamiyo_aggregators::install_crypto_provider();
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    for path in ["/health", "/ready"] {
        loop {
            match http.get(format!("http://{probes}{path}")).send().await {
                Ok(r) if r.status() == 200 => break,
                other => assert!(t0.elapsed() < Duration::from_secs(30), "{path}: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The scenario's incidents arrive in the shared store through the pipeline.
    let deadline = Instant::now() + Duration::from_secs(90);
    let incidents = loop {
        let found = incidents_in(&e.facts).await;
        if !found.is_empty() {
            break found;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest exited: {}",
            std::fs::read_to_string(dir.path().join("ingest.log")).unwrap()
        );
        assert!(
            Instant::now() < deadline,
            "no incident within 90 s: {}",
            std::fs::read_to_string(dir.path().join("ingest.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("ingest.log")).unwrap();
    assert!(log.contains("addresses=1"), "{log}");
    // The tenant reads them through the open core's routes (its protocol, its history: the
    // test clock stands at the scenario's day plus a little, within a basic plan's 30 days).
    let newest = incidents.iter().map(|i| i.last_seen.0).max().unwrap();
    e.clock
        .store(newest + 60_000, std::sync::atomic::Ordering::SeqCst);
    let (s, _, v) = call(&svc, "get", "/security/incidents", Some(&k), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let first = incidents[0].id.to_string();
    assert!(v.to_string().contains(&first), "{v}");
    // And the router fans them out to the tenant's outbox.
    let tiers = kamiyo_platform::tiers::TierMatrix::default_matrix().unwrap();
    let pass =
        kamiyo_platform::fanout::route_once(&e.app, &e.facts_app, &tiers, newest + 60_000, 1000)
            .await
            .unwrap();
    assert!(pass.sent > 0, "{pass:?}");
    let (_, _, rows) = call(&svc, "get", "/api/v1/alerts", Some(&k), None).await;
    assert!(!rows["items"].as_array().unwrap().is_empty(), "{rows}");
}

/// A monitor configuration for `kamiyo-platform ingest` against the loopback exchange at
/// `http` (the scenario's three markets, the reference venues it serves, the others off).
pub(crate) fn monitor_config(dir: &std::path::Path, http: &str) -> std::path::PathBuf {
    let cfg = dir.join("monitor.toml");
    let venues_off: String = ["okx", "bybit", "kraken", "kucoin", "gate", "mexc"]
        .iter()
        .map(|v| format!("[references.{v}]\nenabled = false\n"))
        .collect();
    std::fs::write(
        &cfg,
        format!(
            r#"
[database]
batch_max_delay_ms = 100

[hyperliquid]
rest_url = "{http}"
ws_url = "{ws}/ws"
coins = ["BTC", "ETH", "SOL"]
clock = "exchange"
exchange_clock_speed = 60
whale_interval_secs = 2
vault_interval_secs = 5
hlp_positions_interval_secs = 5
market_interval_secs = 5

[references]
interval_secs = 2

[references.binance]
url = "{http}"

[references.coinbase]
url = "{http}"

{venues_off}
"#,
            ws = http.replacen("http://", "ws://", 1),
        ),
    )
    .unwrap();
    cfg
}

/// The loopback exchange serving the ETH-whale scenario from 13:00, paused (`set_speed` starts
/// it).
pub(crate) async fn whale_exchange() -> kamiyo_simulator::SimHandle {
    let scenario = Scenario::load(&root().join("scenarios/eth-whale-2025-03-12")).unwrap();
    kamiyo_simulator::start_scenario(
        scenario,
        kamiyo_simulator::SimOptions {
            speed: 0.0,
            start_at: Timestamp::parse("2025-03-12T13:00:00Z"),
            ..kamiyo_simulator::SimOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Every incident in the shared store (up to 1,000), newest first.
pub(crate) async fn incidents_in(facts: &kamiyo_store::Store) -> Vec<kamiyo_core_models::Incident> {
    facts
        .incidents(&IncidentQuery {
            limit: 1000,
            ..IncidentQuery::default()
        })
        .await
        .unwrap()
}

/// `kamiyo-platform ingest <args>` on `e`'s database, its log (info) in `log`.
pub(crate) fn spawn_ingest(
    e: &crate::Env,
    args: &[&str],
    log: &std::path::Path,
) -> kamiyo_testing::browser::Killed {
    kamiyo_testing::browser::Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .arg("ingest")
            .args(args)
            .env("KAMIYO_PLATFORM__DATABASE__URL", &e.tdb.url)
            .env("KAMIYO_PLATFORM_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}
