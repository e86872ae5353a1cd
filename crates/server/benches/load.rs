//! Load benchmark of the API on loopback, side by side with a reference Python server (bench
//! binary; bounded in time).
//!
//! ```text
//! cargo bench -p kamiyo-server --bench load
//! KAMIYO_BENCH_SECS=5 KAMIYO_BENCH_PG_URL=postgres://kamiyo:kamiyo@127.0.0.1/kamiyo_bench \
//!     cargo bench -p kamiyo-server --bench load
//! ```
//!
//! One database is seeded with 24 hours of synthetic one-minute history for 10 assets and 2,000
//! incident steps (SQLite; and PostgreSQL when `KAMIYO_BENCH_PG_URL` names an empty database).
//! Each server runs as its own process pinned to core 0 (`taskset -c 0`): kamiyo (the real
//! `Application`: same gate, store and routes as `run`; rate limit off, response cache **off**,
//! one HTTP worker per core it has) over SQLite, over PostgreSQL, and the reference Python server
//! of `benches/peer` (FastAPI under uvicorn with uvloop and httptools, 2 workers, reading the same
//! SQLite file; installed from PyPI into a virtual environment on first use, or taken from
//! `KAMIYO_BENCH_PEER_VENV`). The load generator is this process, pinned to core 1. For each
//! read path and 1, 64 and 1,000 keep-alive connections it measures:
//! - **closed loop**: every connection sends back to back for `KAMIYO_BENCH_SECS` seconds
//!   (default 5): requests/s and the service-time percentiles (one connection busy-polls its
//!   socket, see `kamiyo_testing::load::http_load`; the bench first prints the loopback round
//!   trip of a one-byte echo, the ceiling of any one-connection cell);
//! - **paced** (64 and 1,000 connections): requests offered at a constant 50 % and 80 % of that
//!   throughput (`KAMIYO_BENCH_PACE`, fractions, default `0.5,0.8`), each one's latency
//!   counted from when it *should* have been sent, so a stalled server cannot hide its queue
//!   (coordinated omission, as wrk2 corrects it).
//!
//! Before and after the cells it prints how steady each core was over 5 s, twice: a fixed
//! piece of arithmetic, then copies streamed from memory, each timed back to back. A host that
//! slows a vCPU, or its memory, for a few hundred ms shows there, and at 80 % load such a dip
//! is what builds a paced cell's queue.
//!
//! `/health` (no data, no database) is the floor of each HTTP stack. It prints each cell and
//! kamiyo's throughput as a multiple of the Python server's. Then, in
//! one process as before, the `/ws` fan-out (`KAMIYO_BENCH_WS`, default `1000,5000`
//! subscribers). `KAMIYO_BENCH_PATHS` and `KAMIYO_BENCH_CONNS` (comma-separated) narrow the read
//! paths and connection counts.

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
    // Every seventh step an anomaly-model incident, so `/ml/anomalies` serves data too.
    let threat = if n % 7 == 0 {
        ThreatType::MlAnomaly
    } else {
        [
            ThreatType::OracleDeviation,
            ThreatType::LargeLiquidation,
            ThreatType::HlpLoss,
        ][(n % 3) as usize]
    };
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

use kamiyo_testing::load::{http_load, pct};

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

/// The API as `run` builds it over `store`, response cache `cache_ms`, on a free loopback port.
fn build_app(
    store: &Store,
    hub: kamiyo_api::Hub,
    cache_ms: u32,
    workers: usize,
) -> kamiyo_server::Application {
    let mut cfg = kamiyo_server::config::Config::default();
    cfg.server.bind = "127.0.0.1:0".parse().unwrap();
    cfg.server.rate_limit_per_minute = 0;
    cfg.server.response_cache_ms = cache_ms;
    let clock = Arc::new(ManualClock::new(Timestamp(NOW)));
    let (_provider, registry) = kamiyo_server::telemetry::init_metrics().unwrap();
    let state = kamiyo_server::storage::api_state(&cfg, store, hub, clock, Some(registry), None);
    kamiyo_server::Application::build(cfg.server.bind, workers, state).unwrap()
}

/// Child mode: `--serve <database url or ""> <data dir>`: serve kamiyo's API (response cache
/// off) on the cores this process may use, print `ADDR <addr>`, run until stdin closes.
fn serve_child(url: &str, dir: &str) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(url, std::path::Path::new(dir), 8)
            .await
            .unwrap();
        let app = build_app(&store, kamiyo_api::Hub::new(4096), 0, cores);
        println!("ADDR {}", app.addr());
        let handle = app.handle();
        let task = tokio::spawn(app.run());
        // The parent closes our stdin to stop us.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
        handle.stop(true).await;
        let _ = task.await;
    });
}

/// A server process pinned to core 0; stopped when dropped.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    child: std::process::Child,
}

impl Drop for Server {
    /// Asked to stop first (stdin closed and SIGTERM): uvicorn's supervisor stops its workers
    /// only when it is let go cleanly — killed outright, it leaves them serving, holding the
    /// port and this process's stdout. Killed after 10 s.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(10) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both cores' [`kamiyo_testing::load::steadiness`] over the same 5 s, each measured by a child
/// process pinned to the core: arithmetic, then memory copies.
fn steadiness() -> String {
    ["arithmetic", "memory"]
        .map(|probe| format!("{probe}: {}", steadiness_of(probe)))
        .join(" | ")
}

fn steadiness_of(probe: &str) -> String {
    let spin = |core: &str| {
        std::process::Command::new("taskset")
            .args(["-c", core])
            .arg(std::env::current_exe().unwrap())
            .args(["--spin", "5", probe])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("taskset (util-linux) pins the steadiness probe")
    };
    let children = [spin("0"), spin("1")];
    let lines: Vec<String> = children
        .into_iter()
        .enumerate()
        .map(|(core, c)| {
            let out = c.wait_with_output().map(|o| o.stdout).unwrap_or_default();
            format!("core {core}: {}", String::from_utf8_lossy(&out).trim())
        })
        .collect();
    lines.join("; ")
}

/// What else ran on the two cores during a cell: time the hypervisor stole from each, and the
/// time each core ran a task other than its own process (the server's process tree on core 0,
/// this generator on core 1): the database server, the kernel's threads, anything else in the
/// guest. A long paced p99 with neither is the server's or the generator's own — or the host
/// slowing the vCPU without descheduling it, which no counter in the guest shows.
struct Interference {
    cores: kamiyo_testing::load::Cores,
    server: u32,
    server_ms: u64,
    own_ms: u64,
}

impl Interference {
    fn start(server: u32) -> Self {
        Self {
            cores: kamiyo_testing::load::cores(),
            server,
            server_ms: kamiyo_testing::load::tree_cpu_ms(server),
            own_ms: kamiyo_testing::load::own_cpu_ms(),
        }
    }

    fn end(self) -> String {
        let now = kamiyo_testing::load::cores();
        let server = kamiyo_testing::load::tree_cpu_ms(self.server).saturating_sub(self.server_ms);
        let own = kamiyo_testing::load::own_cpu_ms().saturating_sub(self.own_ms);
        let busy = |i: usize| now.busy[i].saturating_sub(self.cores.busy[i]);
        let steal = |i: usize| now.steal[i].saturating_sub(self.cores.steal[i]);
        format!(
            "steal {}/{} ms  other {}/{} ms",
            steal(0),
            steal(1),
            busy(0).saturating_sub(server),
            busy(1).saturating_sub(own)
        )
    }
}

fn kamiyo_server(name: &'static str, url: &str, dir: &std::path::Path) -> Server {
    let exe = std::env::current_exe().unwrap();
    let (child, addr) = kamiyo_testing::load::spawn_pinned(
        std::process::Command::new(exe)
            .args(["--serve", url])
            .arg(dir),
        "0",
        "ADDR ",
    );
    Server { name, addr, child }
}

/// The reference Python server's virtual environment: `KAMIYO_BENCH_PEER_VENV`, or one created
/// under the target directory and filled from PyPI with `benches/peer/requirements.txt`.
fn peer_venv() -> std::path::PathBuf {
    if let Ok(v) = std::env::var("KAMIYO_BENCH_PEER_VENV") {
        return v.into();
    }
    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let venv = target.join("bench-peer-venv");
    let reqs =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/requirements.txt");
    let stamp = venv.join("installed.txt");
    let wanted = std::fs::read_to_string(&reqs).unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(&wanted) {
        println!(
            "installing the reference Python server into {}",
            venv.display()
        );
        let ok = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(&reqs)
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "could not install {} from PyPI", reqs.display());
        std::fs::write(&stamp, wanted).unwrap();
    }
    venv
}

fn python_server(db: &std::path::Path) -> Server {
    let venv = peer_venv();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(venv.join("bin/uvicorn"))
        .args(["app:app", "--app-dir"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--workers", "2", "--loop", "uvloop", "--http", "httptools"])
        .args(["--no-access-log", "--log-level", "warning"])
        .env("KAMIYO_PEER_DB", db)
        .env("KAMIYO_PEER_NOW_MS", NOW.to_string())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the Python server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        name: "python (FastAPI)",
        addr,
        child,
    }
}

const PATHS: [&str; 6] = [
    "/health",
    "/security/events?limit=50",
    "/security/incidents?limit=50",
    "/security/dashboard",
    "/feeds",
    "/ml/anomalies?limit=50",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve_child(&args[2], &args[3]);
    }
    if args.get(1).map(String::as_str) == Some("--echo") {
        return kamiyo_testing::load::echo_server();
    }
    if args.get(1).map(String::as_str) == Some("--spin") {
        let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
        let probe = match args.get(3).map(String::as_str) {
            Some("memory") => kamiyo_testing::load::Probe::Memory,
            _ => kamiyo_testing::load::Probe::Arithmetic,
        };
        let s = kamiyo_testing::load::steadiness(Duration::from_secs(secs), probe);
        println!(
            "median {:.1} us a chunk, {} of {} 100-ms windows > 10 % slower (worst +{:.0} %), longest hold-up {:.1} ms",
            s.median_us, s.slow_windows, s.windows, s.worst_window_pct, s.worst_ms
        );
        return;
    }
    let secs: u64 = std::env::var("KAMIYO_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let ws_counts: Vec<usize> = std::env::var("KAMIYO_BENCH_WS")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let paths: Vec<String> = std::env::var("KAMIYO_BENCH_PATHS").map_or_else(
        |_| PATHS.iter().map(|p| (*p).to_owned()).collect(),
        |v| v.split(',').map(str::to_owned).collect(),
    );
    let paces: Vec<f64> = std::env::var("KAMIYO_BENCH_PACE")
        .unwrap_or_else(|_| "0.5,0.8".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|f| *f > 0.0 && *f <= 1.0)
        .collect();
    let conn_counts: Vec<usize> = std::env::var("KAMIYO_BENCH_CONNS")
        .unwrap_or_else(|_| "1,64,1000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let pg = std::env::var("KAMIYO_BENCH_PG_URL").ok();
    // One core for the generator: a current-thread runtime, the leanest tokio has.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        kamiyo_aggregators::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("", dir.path(), 4).await.unwrap();
        seed(&store).await;
        // Measured in a steady state: the seed's statistics and dead rows dealt with now, not
        // by the database's background workers during the first cells.
        store.settle().await.unwrap();
        let mut servers = vec![kamiyo_server("kamiyo (SQLite)", "", dir.path())];
        if let Some(url) = &pg {
            let pg_store = Store::open(url, dir.path(), 4).await.unwrap();
            seed(&pg_store).await;
            pg_store.settle().await.unwrap();
            servers.push(kamiyo_server("kamiyo (PostgreSQL)", url, dir.path()));
        }
        let db = kamiyo_store::sqlite_path(dir.path());
        assert!(db.exists(), "the SQLite file is {}", db.display());
        servers.push(python_server(&db));
        assert!(
            kamiyo_testing::load::pin_self("1"),
            "taskset could not pin the load generator"
        );
        println!(
            "API load, response cache off: servers pinned to core 0, this load generator to core 1; {secs} s per cell"
        );
        println!(" host steadiness before the cells: {}", steadiness());
        // The ceiling of one connection on this machine: a one-byte echo pinned like the
        // servers, no HTTP, no work.
        let (mut echo, echo_addr) = kamiyo_testing::load::spawn_pinned(
            std::process::Command::new(std::env::current_exe().unwrap()).arg("--echo"),
            "0",
            "ADDR ",
        );
        let parked = kamiyo_testing::load::round_trips(echo_addr, 2.0, false);
        let polled = kamiyo_testing::load::round_trips(echo_addr, 2.0, true);
        let _ = echo.kill();
        let _ = echo.wait();
        println!(
            " loopback round trip core 1 -> core 0, one-byte echo: {:.0}/s ({:.1} us) waiting parked, {:.0}/s ({:.1} us) busy-polled (the 1-connection cells busy-poll)",
            parked,
            1e6 / parked.max(1e-9),
            polled,
            1e6 / polled.max(1e-9)
        );
        let mut best: HashMap<(String, usize, &'static str), f64> = HashMap::new();
        for path in &paths {
            // What each server answers, so the cells compare like with like.
            let sizes: Vec<String> = servers
                .iter()
                .map(|s| match kamiyo_testing::load::fetch(s.addr, path) {
                    Some((status, len)) => format!("{} {status}, {len} B", s.name),
                    None => format!("{} no response", s.name),
                })
                .collect();
            println!(" {path}  ({})", sizes.join("; "));
            for &conns in &conn_counts {
                for s in &servers {
                    let closed = http_load(s.addr, path, conns, secs, None, &[]).await;
                    best.insert((path.clone(), conns, s.name), closed.rate);
                    println!(
                        "  {:<20} {conns:>5} conns  {:>8.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
                        s.name, closed.rate, closed.p50, closed.p99, closed.errors
                    );
                    // One connection is measured closed-loop only.
                    let paces = if conns > 1 && closed.rate > 0.0 { &paces[..] } else { &[] };
                    for &f in paces {
                        let before = Interference::start(s.child.id());
                        let rate = closed.rate * f;
                        let r = http_load(s.addr, path, conns, secs, Some(rate), &[]).await;
                        println!(
                            "  {:<20} {conns:>5} conns  paced {:>3.0} % at {rate:>7.0}/s (done {:>7.0}/s): p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}  {}",
                            s.name,
                            f * 100.0,
                            r.rate,
                            r.p50,
                            r.p99,
                            r.errors,
                            before.end()
                        );
                    }
                }
                let py = best[&(path.clone(), conns, "python (FastAPI)")];
                for s in servers.iter().filter(|s| s.name.starts_with("kamiyo")) {
                    println!(
                        "  ratio {} / python at {conns} conns: {:.1}x",
                        s.name,
                        best[&(path.clone(), conns, s.name)] / py.max(1e-9)
                    );
                }
            }
        }
        drop(servers);
        println!(" host steadiness after the cells: {}", steadiness());
        if !ws_counts.is_empty() {
            println!("/ws fan-out (server and subscribers in this process, core 1)");
            let hub = kamiyo_api::Hub::new(4096);
            let app = build_app(&store, hub.clone(), 1000, 1);
            let addr = app.addr();
            tokio::spawn(app.run());
            for (i, n) in ws_counts.iter().enumerate() {
                ws_load(addr, &store, &hub, *n, 10_000 * (i as i64 + 1)).await;
            }
        }
    });
}
