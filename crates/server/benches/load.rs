//! Load benchmark of the API on loopback (bench binary; bounded in time).
//!
//! ```text
//! cargo bench -p kamiyo-server --bench load
//! KAMIYO_BENCH_SECS=5 KAMIYO_BENCH_WS=1000,5000 cargo bench -p kamiyo-server --bench load
//! ```
//!
//! Serves the real application (the same `Application`, gate and store as `run`; rate limit
//! off) over a SQLite store seeded with 24 hours of synthetic one-minute history for 10 assets
//! and 2,000 incident steps, then:
//! 1. For `/health` (baseline: no database work), `/security/events?limit=50` and
//!    `/security/dashboard`: at 1, 64 and 1000 concurrent keep-alive connections, each sending
//!    requests back to back for `KAMIYO_BENCH_SECS` seconds: requests/s, p50, p99.
//! 2. `/ws`: N subscribers connect; 200 events are committed and published at 20/s; every
//!    subscriber's receive time minus the publish time gives the delivery latency (p50, p99)
//!    and the count of deliveries.
//!
//! The load generator runs on the same 2-core machine as the server, so the figures are a
//! floor for a dedicated host.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and stops on broken setup"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use kamiyo_core_models::{
    Address, Coin, Decimal, DeviationKind, DeviationSample, Evidence, Incident, IncidentChange,
    IncidentKey, IncidentStatus, IncidentUpdate, IngestBatch, LiquidationMethod, LiquidationRecord,
    ManualClock, MarketStore, SecurityEvent, Severity, Side, ThreatType, Timestamp, VaultPoint,
};
use kamiyo_store::Store;

const NOW: i64 = 1_743_004_800_000;
const ASSETS: [&str; 10] = [
    "BTC", "ETH", "SOL", "HYPE", "XRP", "DOGE", "SUI", "AVAX", "LINK", "JELLY",
];

fn step(n: i64, t: i64) -> IncidentUpdate {
    let asset = ASSETS[(n % 10) as usize];
    let threat = [
        ThreatType::OracleDeviation,
        ThreatType::LargeLiquidation,
        ThreatType::HlpLoss,
    ][(n % 3) as usize];
    let key = IncidentKey::parse(&format!("{}:{asset}:{}", threat.as_str(), n % 200)).unwrap();
    let sev = [Severity::Medium, Severity::High, Severity::Critical][(n % 3) as usize];
    let i = Incident {
        protocol: Default::default(),
        id: Incident::derive_id(&key, Timestamp(NOW)),
        key,
        detector: "bench".into(),
        threat_type: threat,
        severity: sev,
        peak_severity: sev,
        asset: Some(Coin::new(asset).unwrap()),
        status: if n % 4 == 0 {
            IncidentStatus::Open
        } else {
            IncidentStatus::Resolved
        },
        title: format!("{asset} synthetic incident {n}"),
        indicators: vec!["synthetic".into()],
        evidence: Evidence::new()
            .with("notional_usd", Decimal::new(2_500_000 + n, 0))
            .with("deviation_pct", Decimal::new(125, 2)),
        first_seen: Timestamp(NOW - Timestamp::DAY),
        last_seen: Timestamp(t),
        resolved_at: None,
        detections: 3,
    };
    IncidentUpdate {
        event: SecurityEvent::from_incident(&i, IncidentChange::Updated, Timestamp(t)),
        incident: i,
    }
}

async fn seed(store: &Store) {
    let hlp: Address = "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303"
        .parse()
        .unwrap();
    for chunk in 0..6i64 {
        let mut b = IngestBatch::default();
        for m in chunk * 240..(chunk + 1) * 240 {
            let t = NOW - (1440 - m) * Timestamp::MINUTE;
            for (a, name) in ASSETS.iter().enumerate() {
                b.deviations.push(DeviationSample {
                    protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
                    coin: Coin::new(name).unwrap(),
                    time: Timestamp(t),
                    kind: DeviationKind::OracleVsReference,
                    venue: None,
                    value: Decimal::new(100_000 + m, 2),
                    reference: Decimal::new(100_000, 2),
                    deviation_pct: Decimal::new(m % 50, 3),
                });
                b.liquidations.push(LiquidationRecord {
                    protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
                    time: Timestamp(t),
                    coin: Coin::new(name).unwrap(),
                    user: hlp,
                    liquidated_user: None,
                    side: Side::Sell,
                    px: Decimal::new(1000, 0),
                    sz: Decimal::new(10 + a as i64, 0),
                    notional: Decimal::new(10_000, 0),
                    method: Some(LiquidationMethod::Market),
                    is_adl: false,
                    tid: (m * 10 + a as i64) as u64,
                });
            }
            b.vault_points.push(VaultPoint {
                protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
                vault: hlp,
                time: Timestamp(t),
                account_value: Decimal::new(300_000_000, 0),
                pnl: Decimal::new(60_000_000 - m * 100, 0),
            });
        }
        store.commit(&b).await.unwrap();
    }
    let updates: Vec<_> = (0..2000)
        .map(|n| step(n, NOW - 2000 * 1000 + n * 1000))
        .collect();
    for c in updates.chunks(500) {
        store
            .commit(&IngestBatch {
                updates: c.to_vec(),
                ..IngestBatch::default()
            })
            .await
            .unwrap();
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// One keep-alive connection sending requests back to back until `stop`; latencies in µs.
async fn client(
    addr: SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) -> (Vec<u64>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0;
    'outer: while !stop.load(Ordering::Relaxed) {
        let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let Ok((mut tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let req = hyper::Request::get(path)
                .header(hyper::header::HOST, addr.to_string())
                .body(Empty::<Bytes>::new())
                .unwrap();
            let t = Instant::now();
            match tx.send_request(req).await {
                Ok(res) => {
                    let ok = res.status().is_success();
                    if res.into_body().collect().await.is_err() || !ok {
                        errors += 1;
                        continue 'outer;
                    }
                    // Only requests completed within the measured window count.
                    if Instant::now() <= deadline {
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                }
                Err(_) => {
                    errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    (lat, errors)
}

async fn http_load(addr: SocketAddr, path: &'static str, conns: usize, secs: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(client(addr, path, stop.clone(), deadline)))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    println!(
        "  {path:<28} {conns:>5} conns  {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {errors}",
        all.len() as f64 / secs as f64,
        pct(&all, 0.5),
        pct(&all, 0.99),
    );
}

async fn ws_load(addr: SocketAddr, store: &Store, hub: &kamiyo_api::Hub, subs: usize, offset: i64) {
    let sent: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let lat: Arc<Mutex<Vec<u64>>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("ws://{addr}/ws");
    let mut tasks = Vec::new();
    let mut connected = 0;
    for _ in 0..subs {
        let Ok(mut ws) =
            kamiyo_aggregators::hyperliquid::ws::connect(&url, Duration::from_secs(10)).await
        else {
            continue;
        };
        connected += 1;
        ws.set_auto_pong(true);
        let (sent, lat, received, stop) =
            (sent.clone(), lat.clone(), received.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(f)) =
                    tokio::time::timeout(Duration::from_millis(500), ws.read_frame()).await
                else {
                    continue;
                };
                match f.opcode {
                    fastwebsockets::OpCode::Text => {}
                    fastwebsockets::OpCode::Close => break,
                    _ => continue,
                }
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap_or_default();
                if let Some(seq) = v["event"]["seq"].as_i64()
                    && let Some(t0) = sent.lock().unwrap().get(&seq)
                {
                    lat.lock()
                        .unwrap()
                        .push(now.duration_since(*t0).as_micros() as u64);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = hub.subscribers();
    let events = 200;
    for n in 0..events {
        let stored = store
            .commit(&IngestBatch {
                updates: vec![step(offset + n, NOW + offset + n)],
                ..IngestBatch::default()
            })
            .await
            .unwrap();
        {
            let mut s = sent.lock().unwrap();
            for e in &stored {
                s.insert(e.seq, Instant::now());
            }
        }
        hub.publish_events(&stored);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut l = lat.lock().unwrap().clone();
    l.sort_unstable();
    let expected = connected as u64 * events as u64;
    println!(
        "  /ws {subs:>6} subscribers: {connected} connected, {held} held by the hub; {events} events at 20/s: {} of {expected} deliveries, p50 {:.2} ms, p99 {:.2} ms",
        received.load(Ordering::Relaxed),
        pct(&l, 0.5),
        pct(&l, 0.99),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("KAMIYO_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let ws_counts: Vec<usize> = std::env::var("KAMIYO_BENCH_WS")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        kamiyo_aggregators::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("", dir.path(), 4).await.unwrap();
        seed(&store).await;
        let hub = kamiyo_api::Hub::new(4096);
        let (_provider, registry) = kamiyo_server::telemetry::init_metrics().unwrap();
        let serve = |cache_ms: u32| {
            let mut cfg = kamiyo_server::config::Config::default();
            cfg.server.bind = "127.0.0.1:0".parse().unwrap();
            cfg.server.rate_limit_per_minute = 0;
            cfg.server.response_cache_ms = cache_ms;
            let clock = Arc::new(ManualClock::new(Timestamp(NOW)));
            let state = kamiyo_server::storage::api_state(
                &cfg,
                &store,
                hub.clone(),
                clock,
                Some(registry.clone()),
                None,
            );
            let app = kamiyo_server::Application::build(
                cfg.server.bind,
                cfg.server.workers as usize,
                state,
            )
            .unwrap();
            let addr = app.addr();
            tokio::spawn(app.run());
            addr
        };
        let uncached = serve(0);
        let addr = serve(1000);
        println!(
            "API load ({secs} s per cell; server: 2 HTTP workers, SQLite; same machine as the load)"
        );
        println!(" response cache off (every request queries the database):");
        for path in [
            "/health",
            "/security/events?limit=50",
            "/security/dashboard",
        ] {
            for conns in [1, 64, 1000] {
                http_load(uncached, path, conns, secs).await;
            }
        }
        println!(" response cache on (default, 1 s, invalidated by new events):");
        for path in ["/security/events?limit=50", "/security/dashboard"] {
            for conns in [1, 64, 1000] {
                http_load(addr, path, conns, secs).await;
            }
        }
        for (i, n) in ws_counts.iter().enumerate() {
            ws_load(addr, &store, &hub, *n, 10_000 * (i as i64 + 1)).await;
        }
    });
}
