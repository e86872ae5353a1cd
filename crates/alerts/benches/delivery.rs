//! Engine-to-receiver latency of alerts under a burst (bench binary).
//!
//! ```text
//! cargo bench -p kamiyo-alerts --bench delivery
//! ```
//!
//! A burst of 1,000 incidents (one `Opened` step each) is committed to a SQLite store in one
//! transaction, as the writer commits an engine batch; the alert service (router → durable
//! outbox → channel worker) delivers each to a signed webhook on a loopback receiver. Latency
//! is from the start of the commit to the receiver's arrival time, per alert. Cells: no budget
//! (the pipeline's own cost) and the webhook's default budget (50/s), which dominates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and stops on broken setup"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kamiyo_alerts::{AlertService, AlertsConfig, ChannelConfig, ChannelKind, Secret};
use kamiyo_core_models::{
    Coin, Decimal, Evidence, Incident, IncidentChange, IncidentKey, IncidentStatus, IncidentUpdate,
    IngestBatch, MarketStore, SecurityEvent, Severity, SystemClock, ThreatType, Timestamp,
};
use kamiyo_store::Store;
use kamiyo_testing::receiver::{Receiver, Reply};

fn burst(n: usize, offset: usize) -> Vec<IncidentUpdate> {
    let now = Timestamp(1_743_004_800_000);
    (0..n)
        .map(|k| {
            let key = IncidentKey::parse(&format!("large_liquidation:ETH:{}", k + offset)).unwrap();
            let i = Incident {
                protocol: Default::default(),
                id: Incident::derive_id(&key, now),
                key,
                detector: "liquidations".into(),
                threat_type: ThreatType::LargeLiquidation,
                severity: Severity::Critical,
                peak_severity: Severity::Critical,
                asset: Some(Coin::new("ETH").unwrap()),
                status: IncidentStatus::Open,
                title: format!("synthetic burst incident {k}"),
                indicators: vec!["synthetic".into()],
                evidence: Evidence::new().with("notional_usd", Decimal::new(2_500_000, 0)),
                first_seen: now,
                last_seen: now,
                resolved_at: None,
                detections: 1,
            };
            IncidentUpdate {
                event: SecurityEvent::from_incident(&i, IncidentChange::Opened, now),
                incident: i,
            }
        })
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn cell(label: &str, rate: Vec<String>, n: usize, offset: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("", dir.path(), 4).await.unwrap();
    let rx = Receiver::start(|_, _| Reply::new(204, "")).await;
    let mut c = ChannelConfig::new(ChannelKind::Webhook);
    c.url = Secret::new(rx.url("/hook"));
    c.secret = Secret::new("bench");
    c.min_severity = Severity::Info;
    c.rate = rate;
    let cfg = AlertsConfig {
        channels: [("hook".to_owned(), c)].into_iter().collect(),
        ..AlertsConfig::default()
    };
    let (mut svc, problems) =
        AlertService::new(Arc::new(store.clone()), Arc::new(SystemClock), &cfg, None);
    assert!(problems.is_empty());
    svc.init().await.unwrap();
    let handle = svc.handle();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(svc.run(stop_rx));
    let updates = burst(n, offset);
    let t0 = Instant::now();
    store
        .commit(&IngestBatch {
            updates,
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let committed = t0.elapsed();
    handle.wake();
    let got = rx.wait_for(n, Duration::from_secs(600)).await;
    let total = t0.elapsed();
    let mut lat: Vec<f64> = got
        .iter()
        .map(|r| r.at.duration_since(t0).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "  {label:<34} {:>5} of {n} delivered in {:>7.2} s ({:>6.0}/s); commit {:>6.1} ms; first {:>7.1} ms, p50 {:>8.1} ms, p99 {:>8.1} ms, max {:>8.1} ms",
        got.len(),
        total.as_secs_f64(),
        got.len() as f64 / total.as_secs_f64(),
        committed.as_secs_f64() * 1000.0,
        lat[0],
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1],
    );
    let _ = stop.send(true);
    let _ = task.await;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        kamiyo_alerts::http::client().unwrap();
        println!(
            "Alert burst, engine commit → loopback webhook receiver (SQLite outbox, signed webhook)"
        );
        cell(
            "single incident, no budget",
            vec!["1000000/1s".into()],
            1,
            0,
        )
        .await;
        cell(
            "1,000 incidents, no budget",
            vec!["1000000/1s".into()],
            1000,
            10_000,
        )
        .await;
        cell(
            "1,000 incidents, default 50/s budget",
            Vec::new(),
            1000,
            20_000,
        )
        .await;
    });
}
