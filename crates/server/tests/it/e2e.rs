//! The whole self-hosted product, end to end: `kamiyo-hyperliquid run` follows the loopback
//! exchange simulator replaying the ETH-whale scenario at 60× through its real REST and
//! WebSocket wire formats. The backstop takeover must show up in `/security/events`, on `/ws`,
//! on the dashboard in headless Chromium and at a loopback webhook receiver; the latency from
//! the simulator handing out the frame to the webhook receiving the alert is measured (and
//! written to `target/e2e/latency.json`). `/metrics` must carry the pipeline's series, spans
//! must reach a loopback OTLP/HTTP collector, and SIGTERM must shut the server down cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fastwebsockets::OpCode;
use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::Timestamp;
use kamiyo_testing::receiver::{Receiver, Reply};

use crate::support::{Driver, Killed, free_port, get_json, get_text, root};

const SCENARIO: &str = "eth-whale-2025-03-12";
const SPEED: f64 = 60.0;

fn is_takeover(v: &serde_json::Value) -> bool {
    v["threat_type"] == "large_liquidation" && v["severity"] == "critical" && v["asset"] == "ETH"
}

fn config(sim: &str, hook: &str, otlp: &str, port: u16, data: &std::path::Path) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
data_dir = "{data}"
shutdown_timeout_secs = 10

[database]
batch_max_delay_ms = 100

[hyperliquid]
rest_url = "{sim}"
ws_url = "{ws}/ws"
coins = ["BTC", "ETH", "SOL"]
clock = "exchange"
exchange_clock_speed = {SPEED}
whale_interval_secs = 2
vault_interval_secs = 5
hlp_positions_interval_secs = 5
market_interval_secs = 5

[references]
interval_secs = 2

[references.binance]
url = "{sim}"

[references.coinbase]
url = "{sim}"

# The scenario has Binance and Coinbase quotes only (the other venues' clients are tested
# against the simulator in kamiyo-simulator's venue tests).
[references.okx]
enabled = false

[references.bybit]
enabled = false

[references.kraken]
enabled = false

[references.kucoin]
enabled = false

[references.gate]
enabled = false

[references.mexc]
enabled = false

[alerts.channels.e2e-hook]
kind = "webhook"
url = "{hook}"
secret = "e2e test secret"
min_severity = "info"

[telemetry]
log_level = "info"
otlp_endpoint = "{otlp}"
"#,
        data = data.display(),
        ws = sim.replacen("http://", "ws://", 1),
    )
}

async fn ws_events(url: String, tx: tokio::sync::mpsc::UnboundedSender<serde_json::Value>) {
    let mut ws = kamiyo_aggregators::hyperliquid::ws::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    ws.set_auto_pong(true);
    while let Ok(f) = ws.read_frame().await {
        match f.opcode {
            OpCode::Text => {
                let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
                if tx.send(v).is_err() {
                    return;
                }
            }
            OpCode::Close => return,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_the_simulator_and_alerts_everywhere_with_measured_latency() {
    kamiyo_aggregators::install_crypto_provider();
    let hook = Receiver::start(|_, _| Reply::new(200, "ok")).await;
    let otlp = Receiver::start(|_, _| {
        Reply::new(200, "").header("content-type", "application/x-protobuf")
    })
    .await;

    // Browser first: it takes the longest to start.
    let (_chromedriver, browser) = Driver::start().await;

    // The exchange: the ETH-whale scenario from 13:00 UTC (the takeover is at 13:17:30).
    let scenario = Scenario::load(&root().join("scenarios").join(SCENARIO)).unwrap();
    let sim = kamiyo_simulator::start_scenario(
        scenario,
        kamiyo_simulator::SimOptions {
            // Paused until the subscribers are ready: no race against the takeover.
            speed: 0.0,
            start_at: Timestamp::parse("2025-03-12T13:00:00Z"),
            ..kamiyo_simulator::SimOptions::default()
        },
    )
    .await
    .unwrap();

    // The server, as a user runs it: a config file and `run`.
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = data.path().join("kamiyo.toml");
    std::fs::write(
        &cfg,
        config(
            &sim.http_url(),
            &hook.url("/kamiyo"),
            &otlp.url(""),
            port,
            &data.path().join("data"),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(data.path().join("server.log")).unwrap();
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"))
            .current_dir(root())
            .args(["--config", cfg.to_str().unwrap(), "run"])
            .env_remove("DATABASE_URL")
            .env_remove("KAMIYO_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "the server exited: {}",
            std::fs::read_to_string(data.path().join("server.log")).unwrap()
        );
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Subscribers: a /ws client and the dashboard, both before the takeover.
    let (ws_tx, mut ws_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(ws_events(format!("ws://127.0.0.1:{port}/ws"), ws_tx));
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for(
            "the dashboard's live stream",
            "return document.getElementById('ws-status').dataset.state === 'live'",
            Duration::from_secs(30),
        )
        .await;
    // The exchange's clock has not moved while everything started; from here it runs.
    assert_eq!(sim.now(), Timestamp::parse("2025-03-12T13:00:00Z").unwrap());
    sim.set_speed(SPEED);

    // The webhook receives the critical takeover alert.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (alert, received_at) = loop {
        if let Some(r) = hook
            .received()
            .into_iter()
            .find(|r| is_takeover(&r.json()["event"]))
        {
            break (r.json(), r.at);
        }
        assert!(
            Instant::now() < deadline,
            "no takeover alert at the webhook; got {:?}; server log:\n{}",
            hook.received()
                .iter()
                .map(|r| r.json()["event"]["title"].clone())
                .collect::<Vec<_>>(),
            std::fs::read_to_string(data.path().join("server.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(alert["type"], "incident.opened", "{alert}");
    // Feed health shows data times advancing while a feed stays LIVE (not the time it turned
    // LIVE): two reads over more than the refresh period.
    let ws_data_at = |v: serde_json::Value| {
        v["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feed"] == "hyperliquid.ws" && f["state"] == "LIVE")
            .and_then(|f| f["last_data_at"].as_str().map(str::to_owned))
    };
    let first = ws_data_at(get_json(&http, &format!("{base}/feeds")).await);
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    let second = ws_data_at(get_json(&http, &format!("{base}/feeds")).await);
    assert!(
        first.is_some() && second > first,
        "hyperliquid.ws data time did not advance: {first:?} then {second:?}"
    );
    let t = &alert["event"]["time"];
    let event_time = t
        .as_i64()
        .map(Timestamp)
        .or_else(|| t.as_str().and_then(Timestamp::parse))
        .unwrap_or_else(|| panic!("event time {t}"));
    let released = sim
        .released_at(event_time)
        .expect("the takeover's frame was released by the simulator");
    let latency = received_at.saturating_duration_since(released);
    let incident_id = alert["event"]["incident_id"].as_str().unwrap().to_owned();

    // /security/events has it.
    let events = get_json(
        &http,
        &format!("{base}/security/events?threat_type=large_liquidation"),
    )
    .await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["incident_id"] == incident_id.as_str() && is_takeover(e)),
        "{events}"
    );

    // /ws delivered it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            ws_rx.recv(),
        )
        .await
        .expect("the takeover on /ws")
        .expect("the /ws stream stays open");
        if v["type"] == "event" && is_takeover(&v["event"]) {
            assert_eq!(v["event"]["incident_id"], incident_id.as_str());
            break;
        }
    }

    // The dashboard shows it without a reload.
    let row = browser
        .wait_for(
            "the takeover on the dashboard",
            "const r = [...document.querySelectorAll('#events tr')].find(r => r.innerText.includes('large_liquidation')); return r ? r.innerText : ''",
            Duration::from_secs(30),
        )
        .await;
    assert!(row.as_str().unwrap().contains("ETH"), "{row}");
    browser.quit().await;

    // /metrics carries the pipeline's series.
    let metrics = get_text(&http, &format!("{base}/metrics")).await;
    for series in [
        "kamiyo_ingest_frames_total{feed=\"hyperliquid.ws\"}",
        "kamiyo_ingest_events_total{feed=\"hyperliquid.ws\"}",
        "kamiyo_ingest_lag_seconds_bucket{feed=\"hyperliquid.ws\"",
        "kamiyo_ingest_frames_total{feed=\"binance\"}",
        "kamiyo_feed_state{feed=\"hyperliquid.ws\"}",
        "kamiyo_security_events_total{change=\"opened\",detector=\"liquidations\",severity=\"critical\",threat_type=\"large_liquidation\"}",
        "kamiyo_incidents_open{",
        "kamiyo_alert_deliveries_total{channel=\"e2e-hook\",kind=\"webhook\",outcome=\"delivered\"}",
        "kamiyo_api_requests_total{",
        "kamiyo_api_request_duration_seconds_bucket{",
        "kamiyo_db_pool_connections{state=\"max\"}",
        "kamiyo_db_commit_duration_seconds_bucket{",
        "kamiyo_db_committed_rows_total",
        // The market, not only kamiyo's health.
        "kamiyo_hlp_account_value_usd ",
        "kamiyo_hlp_pnl_usd ",
        "kamiyo_hlp_drawdown_percent ",
        "kamiyo_price_deviation_percent{asset=\"ETH\",kind=\"oracle_vs_reference\"}",
        "kamiyo_price_deviation_percent{asset=\"ETH\",kind=\"mark_vs_oracle\"}",
        "kamiyo_open_interest_usd{asset=\"ETH\"}",
        "kamiyo_liquidation_fills_total{asset=\"ETH\",kind=\"liquidation\"}",
        "kamiyo_liquidated_notional_usd_total{asset=\"ETH\",kind=\"liquidation\"}",
        "kamiyo_incidents_open_by_asset{asset=\"ETH\",severity=\"critical\"}",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from /metrics:\n{metrics}"
        );
    }

    // Every series the shipped Grafana dashboard and Prometheus rules query exists, except
    // those that only appear once their event happened (none did in this run).
    let only_after_first_event = [
        "kamiyo_ingest_duplicates_total", // a reconnect backfill overlapping the stream
        "kamiyo_task_restarts_total",     // a crashed task
        "kamiyo_ws_dropped_clients_total", // a slow /ws client
        "kamiyo_db_commit_failures_total", // a failed commit
        "kamiyo_ml_score_duration_seconds_bucket", // an anomaly model is loaded (none here)
    ];
    for file in [
        "deploy/grafana/dashboards/kamiyo.json",
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/market-rules.yml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let missing = kamiyo_testing::metrics::unexported(
            &metrics,
            &text,
            "kamiyo_",
            &only_after_first_event,
        );
        assert!(
            missing.is_empty(),
            "{file} queries {missing:?}, which /metrics does not export"
        );
    }

    // The health probe a container or service manager runs.
    for extra in [&[][..], &["--ready"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"))
            .args(["--config", cfg.to_str().unwrap(), "health"])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "health {extra:?}: {text}");
        assert!(text.contains(": 200 healthy"), "{text}");
    }

    // SIGTERM: a clean exit.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(data.path().join("server.log")).unwrap();
    assert!(status.success(), "exit {status}; log:\n{log}");
    assert!(log.contains("shutting down"), "{log}");

    // Spans reached the OTLP collector (flushed at exit at the latest).
    let traces: Vec<_> = otlp
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/traces")
        .collect();
    assert!(!traces.is_empty(), "no OTLP export; log:\n{log}");
    assert_eq!(
        traces[0].header("content-type"),
        Some("application/x-protobuf")
    );
    let all: Vec<u8> = traces.iter().flat_map(|r| r.body.clone()).collect();
    for span in [
        "store.commit",
        "alert.deliver",
        "http.request",
        "kamiyo-hyperliquid",
    ] {
        assert!(
            all.windows(span.len()).any(|w| w == span.as_bytes()),
            "span or resource {span} not exported"
        );
    }

    let out = root().join("target/e2e");
    std::fs::create_dir_all(&out).unwrap();
    let report = serde_json::json!({
        "scenario": SCENARIO,
        "speed": SPEED,
        "incident": alert["event"]["title"],
        "event_time": event_time.to_rfc3339(),
        "frame_to_webhook_ms": latency.as_secs_f64() * 1000.0,
    });
    std::fs::write(out.join("latency.json"), format!("{report:#}\n")).unwrap();
    println!("end-to-end: simulator frame → webhook {latency:?} ({report})");
    sim.shutdown();
}
