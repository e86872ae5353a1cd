//! High availability on one machine: three platform nodes (each a `serve` replica — API and
//! alert workers — and an `ingest` replica, as the Kubernetes Deployments run them) on one
//! PostgreSQL, behind a loopback load balancer that health-checks `/ready`. The loopback
//! exchange replays the ETH-whale scenario; several tenants with webhook channels are alerted
//! while clients read through the balancer, retrying a failed request. Mid-stream the ingest
//! leader and another node's serve replica are killed with SIGKILL (and restarted, as the
//! orchestrator would); then every node is rolled (SIGTERM, wait, start, wait ready). Measured:
//! the ingest takeover (kill → the new leader's first commit), the clients' failures, every
//! alert once per tenant channel.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kamiyo_core_models::{EventQuery, IncidentStore, Order};
use kamiyo_platform::db::{Actor, Change};
use kamiyo_platform::tenancy::{self, TenantId};
use tokio::net::{TcpListener, TcpStream};

use crate::ingest::monitor_config;
use crate::{T0, env};

/// A TCP load balancer on loopback: round robin over the backends that answered their last
/// `/ready` check, passing over one that refuses a connection (as a cloud balancer does).
struct Balancer {
    addr: std::net::SocketAddr,
    healthy: Arc<Vec<AtomicBool>>,
}

impl Balancer {
    async fn start(backends: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy: Arc<Vec<AtomicBool>> =
            Arc::new(backends.iter().map(|_| AtomicBool::new(false)).collect());
        let backends = Arc::new(backends);
        // Health checks every 250 ms.
        {
            let (backends, healthy) = (backends.clone(), healthy.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_millis(500))
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                loop {
                    for (i, b) in backends.iter().enumerate() {
                        let ok = matches!(http.get(format!("http://{b}/ready")).send().await, Ok(r) if r.status().is_success());
                        healthy[i].store(ok, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }
        let next = Arc::new(AtomicUsize::new(0));
        {
            let healthy = healthy.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    let (backends, healthy, next) =
                        (backends.clone(), healthy.clone(), next.clone());
                    tokio::spawn(async move {
                        let n = backends.len();
                        let first = next.fetch_add(1, Ordering::SeqCst);
                        for k in 0..n {
                            let i = (first + k) % n;
                            if !healthy[i].load(Ordering::SeqCst) {
                                continue;
                            }
                            match tokio::time::timeout(
                                Duration::from_secs(1),
                                TcpStream::connect(&backends[i]),
                            )
                            .await
                            {
                                Ok(Ok(mut upstream)) => {
                                    let _ =
                                        tokio::io::copy_bidirectional(&mut client, &mut upstream)
                                            .await;
                                    return;
                                }
                                _ => healthy[i].store(false, Ordering::SeqCst),
                            }
                        }
                        // No backend: the client's connection is closed (it retries).
                    });
                }
            });
        }
        Self { addr, healthy }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn healthy(&self) -> usize {
        self.healthy
            .iter()
            .filter(|h| h.load(Ordering::SeqCst))
            .count()
    }
}

/// One node: its serve and ingest processes and their addresses.
struct Node {
    bind: String,
    probes: String,
    serve: Child,
    ingest: Child,
}

/// A failed assertion unwinds through here: the node's processes are killed with it, or they
/// would outlive the test holding database connections and a core (and fail the next run).
impl Drop for Node {
    fn drop(&mut self) {
        for p in [&mut self.serve, &mut self.ingest] {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

struct Cluster<'a> {
    e: &'a crate::Env,
    dir: std::path::PathBuf,
    serve_cfg: std::path::PathBuf,
    monitor_cfg: std::path::PathBuf,
    nodes: Vec<Node>,
    starts: usize,
}

impl Cluster<'_> {
    fn log(&mut self, what: &str) -> std::fs::File {
        self.starts += 1;
        std::fs::File::create(self.dir.join(format!("{what}-{}.log", self.starts))).unwrap()
    }

    fn spawn_serve(&mut self, bind: &str) -> Child {
        let log = self.log("serve");
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .args([
                "--config",
                self.serve_cfg.to_str().unwrap(),
                "serve",
                "--role",
                "all",
            ])
            .env("KAMIYO_PLATFORM__DATABASE__URL", &self.e.tdb.url)
            .env("KAMIYO_PLATFORM__DATABASE__APP_URL", &self.e.app_url)
            .env("KAMIYO_PLATFORM__SERVER__BIND", bind)
            .env("KAMIYO_PLATFORM_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn spawn_ingest(&mut self, probes: &str) -> Child {
        let log = self.log("ingest");
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .args([
                "ingest",
                "--monitor-config",
                self.monitor_cfg.to_str().unwrap(),
                "--health-bind",
                probes,
            ])
            .env("KAMIYO_PLATFORM__DATABASE__URL", &self.e.tdb.url)
            .env("KAMIYO_PLATFORM_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!(
                "--- {}\n{}\n",
                entry.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }

    /// Every line any process logged at ERROR level, by log file (what a failed request
    /// left behind).
    fn errors(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("ERROR")) {
                out.push_str(&format!("{}: {line}\n", entry.path().display()));
            }
        }
        out
    }
}

/// SIGTERM, then wait for the process to finish its graceful stop.
fn terminate(c: &mut Child) {
    let pid = i32::try_from(c.id()).unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while c.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "pid {pid} did not stop within 40 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_ok(http: &reqwest::Client, url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} ({url}) not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ingest leader's instance and its last commit, from its heartbeat.
async fn leader(e: &crate::Env) -> Option<(String, i64, Option<i64>)> {
    let now = kamiyo_platform::fanout::now_ms();
    e.owner
        .heartbeats(now - kamiyo_platform::status::ALIVE_MS)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.component == "ingest:hyperliquid")
        .map(|b| {
            let d: serde_json::Value = serde_json::from_str(&b.detail).unwrap();
            (
                b.instance,
                d["epoch"].as_i64().unwrap_or(0),
                d["last_commit_ms"].as_i64(),
            )
        })
}

/// Waits for a leader other than `old` that has committed after `since` (epoch ms); the time
/// from `since` to its first commit as seen (heartbeats come every 2 s, so this is an upper
/// bound by up to one beat).
async fn takeover(e: &crate::Env, old: &str, since: i64, t0: Instant) -> (String, Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((who, _, Some(commit))) = leader(e).await
            && who != old
            && commit > since
        {
            return (who, t0.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no new ingest leader committed within 60 s of losing {old}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clients reading through the balancer: each request retried (up to 8 times, 100 ms apart)
/// on a connection error or a 502/503; counts of requests, retried requests and failures.
#[derive(Default)]
struct Clients {
    requests: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

async fn client_loop(
    base: String,
    keys: Vec<String>,
    stats: Arc<Clients>,
    stop: Arc<AtomicBool>,
    me: usize,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let paths = [
        "/api/v1/alerts?limit=20",
        "/security/incidents?limit=20",
        "/api/v1/tenant",
    ];
    let mut n = me;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = &keys[n % keys.len()];
        let path = paths[n % paths.len()];
        let mut ok = false;
        for attempt in 0..8 {
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    ok = true;
                    break;
                }
                Ok(r) if r.status().as_u16() != 502 && r.status().as_u16() != 503 => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    stats
                        .errors
                        .lock()
                        .unwrap()
                        .push(format!("{path}: {status} {body}"));
                    break;
                }
                other => {
                    if attempt == 0 {
                        stats.retried.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Err(e) = other {
                        stats
                            .errors
                            .lock()
                            .unwrap()
                            .push(format!("{path} (retried): {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        stats.requests.fetch_add(1, Ordering::SeqCst);
        if !ok {
            stats.failed.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shared steps stored so far.
async fn steps(e: &crate::Env) -> Vec<kamiyo_core_models::StoredEvent> {
    e.facts
        .events(&EventQuery {
            order: Order::Asc,
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_killed_leader_and_replica_and_a_rolling_restart() {
    let e = env().await;
    kamiyo_aggregators::install_crypto_provider();
    // The ETH-whale scenario from 12:30 (before the margin withdrawal) at 120× real time: the
    // warning, the takeover at 13:17:30 and what follows until 16:30 arrive over about two
    // minutes, across the kill and the rolling restart.
    let scenario = kamiyo_aggregators::replay::Scenario::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/eth-whale-2025-03-12"),
    )
    .unwrap();
    let sim = kamiyo_simulator::start_scenario(
        scenario,
        kamiyo_simulator::SimOptions {
            speed: 0.0,
            start_at: kamiyo_core_models::Timestamp::parse("2025-03-12T12:30:00Z"),
            ..kamiyo_simulator::SimOptions::default()
        },
    )
    .await
    .unwrap();
    let end = kamiyo_core_models::Timestamp::parse("2025-03-12T16:30:00Z").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let monitor_cfg = monitor_config(dir.path(), &sim.http_url());
    let text = std::fs::read_to_string(&monitor_cfg).unwrap();
    // Twice the speed of the shared config: its 5 s polls cover 600 s of exchange time, so the
    // quiet period doubles too — a poll must fit into it twice, or its incidents would resolve
    // between polls (the config refuses it).
    let text = text.replace("exchange_clock_speed = 60", "exchange_clock_speed = 120")
        + "\n[monitors.incidents]\nresolve_after_secs = 1200\n";
    std::fs::write(&monitor_cfg, text).unwrap();
    // Four tenants on plans with alerts, each with a webhook channel to the receiver.
    let hook = kamiyo_testing::receiver::Receiver::start(|_, _| {
        kamiyo_testing::receiver::Reply::new(204, "")
    })
    .await;
    let who = Actor {
        actor: "test".into(),
        ip: "127.0.0.1".into(),
        at: T0,
    };
    let hash = tenancy::hash_password("a long enough password").unwrap();
    let mut keys = Vec::new();
    let mut channels = BTreeMap::new();
    for (i, plan) in [
        "cloud_enterprise",
        "cloud_pro",
        "cloud_enterprise",
        "cloud_basic",
    ]
    .iter()
    .enumerate()
    {
        let t = TenantId::parse(&format!("ha-{i}")).unwrap();
        let k = tenancy::generate_key(&t);
        e.app
            .create_tenant(
                &t,
                "k",
                plan,
                &format!("o@{t}.example"),
                &hash,
                (&k.id, &k.hash),
                "hyperliquid",
                &who,
            )
            .await
            .unwrap();
        let channel_id = tenancy::new_id("chn");
        e.app
            .change(
                &t,
                &who,
                Change::AddChannel {
                    channel_id: channel_id.clone(),
                    name: "hook".into(),
                    kind: "webhook".into(),
                    url: hook.url(&format!("/{t}")),
                    secret: None,
                    min_severity: "info".into(),
                },
            )
            .await
            .unwrap();
        keys.push(k.secret);
        channels.insert(t, channel_id);
    }
    let ports: Vec<(String, String)> = (0..3)
        .map(|_| {
            (
                format!("127.0.0.1:{}", kamiyo_testing::browser::free_port()),
                format!("127.0.0.1:{}", kamiyo_testing::browser::free_port()),
            )
        })
        .collect();
    let lb = Balancer::start(ports.iter().map(|(b, _)| b.clone()).collect()).await;
    let serve_cfg = dir.path().join("platform.toml");
    std::fs::write(
        &serve_cfg,
        format!(
            "[platform]\nprotocols = [\"hyperliquid\"]\nallow_loopback_channels = true\nrouter_interval_ms = 200\nstatus_probe_url = \"{}\"\nprobe_interval_secs = 5\n",
            lb.url()
        ),
    )
    .unwrap();
    let mut c = Cluster {
        e: &e,
        dir: dir.path().join("logs"),
        serve_cfg,
        monitor_cfg,
        nodes: Vec::new(),
        starts: 0,
    };
    std::fs::create_dir_all(&c.dir).unwrap();
    for (bind, probes) in &ports {
        let serve = c.spawn_serve(bind);
        let ingest = c.spawn_ingest(probes);
        c.nodes.push(Node {
            bind: bind.clone(),
            probes: probes.clone(),
            serve,
            ingest,
        });
    }
    let http = reqwest::Client::new();
    for n in &c.nodes {
        wait_ok(&http, &format!("http://{}/ready", n.bind), "serve").await;
        wait_ok(&http, &format!("http://{}/ready", n.probes), "ingest").await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while lb.healthy() < 3 {
        assert!(
            Instant::now() < deadline,
            "the balancer never saw three ready replicas"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Clients through the balancer, then the replay.
    let stats = Arc::new(Clients::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(client_loop(
                lb.url(),
                keys.clone(),
                stats.clone(),
                stop.clone(),
                i,
            ))
        })
        .collect();
    sim.set_speed(120.0);
    let started = Instant::now();
    // Mid-stream: once the first steps have reached the tenants.
    let deadline = Instant::now() + Duration::from_secs(120);
    while hook.received().len() < 4 || steps(&e).await.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no alert within 120 s:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before_kill = steps(&e).await.len();
    let (old, epoch, _) = leader(&e).await.expect("a leader beats");
    let lead_node = c
        .nodes
        .iter()
        .position(|n| old.ends_with(&format!("-{}", n.ingest.id())))
        .expect("the leader is one of the nodes");
    let other = (lead_node + 1) % 3;
    eprintln!(
        "{:.1} s: {before_kill} steps stored; SIGKILL ingest leader (node {lead_node}, epoch {epoch}) and node {other}'s serve",
        started.elapsed().as_secs_f64()
    );
    let killed_at = kamiyo_platform::fanout::now_ms();
    let t_kill = Instant::now();
    c.nodes[lead_node].ingest.kill().unwrap();
    c.nodes[other].serve.kill().unwrap();
    c.nodes[lead_node].ingest.wait().unwrap();
    c.nodes[other].serve.wait().unwrap();
    let (new_leader, took) = takeover(&e, &old, killed_at, t_kill).await;
    eprintln!(
        "ingest takeover after SIGKILL: {:.2} s (to {new_leader})",
        took.as_secs_f64()
    );
    assert!(took <= Duration::from_secs(10), "takeover took {took:?}");
    let mut takeovers = vec![took];
    // The orchestrator restarts what was killed.
    let probes = c.nodes[lead_node].probes.clone();
    c.nodes[lead_node].ingest = c.spawn_ingest(&probes);
    let bind = c.nodes[other].bind.clone();
    c.nodes[other].serve = c.spawn_serve(&bind);
    wait_ok(&http, &format!("http://{bind}/ready"), "restarted serve").await;
    wait_ok(&http, &format!("http://{probes}/ready"), "restarted ingest").await;
    // Rolling restart of every node: SIGTERM (graceful), start, ready, next.
    for i in 0..3 {
        // Spread over the stream: two more steps stored before each node is rolled.
        let had = steps(&e).await.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while steps(&e).await.len() < had + 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let current = leader(&e).await.map(|l| l.0);
        let (bind, probes) = (c.nodes[i].bind.clone(), c.nodes[i].probes.clone());
        let led = current
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!("-{}", c.nodes[i].ingest.id())));
        let since = kamiyo_platform::fanout::now_ms();
        let t = Instant::now();
        terminate(&mut c.nodes[i].serve);
        terminate(&mut c.nodes[i].ingest);
        c.nodes[i].serve = c.spawn_serve(&bind);
        c.nodes[i].ingest = c.spawn_ingest(&probes);
        if led && let Some(old) = &current {
            let (to, took) = takeover(&e, old, since, t).await;
            eprintln!(
                "roll of node {i}: leader handed over in {:.2} s (to {to})",
                took.as_secs_f64()
            );
            takeovers.push(took);
        }
        wait_ok(&http, &format!("http://{bind}/ready"), "rolled serve").await;
        wait_ok(&http, &format!("http://{probes}/ready"), "rolled ingest").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while lb.healthy() < 3 {
            assert!(
                Instant::now() < deadline,
                "node {i} not back behind the balancer"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{:.1} s: node {i} rolled ({} steps stored)",
            started.elapsed().as_secs_f64(),
            steps(&e).await.len()
        );
    }
    // The replay goes on to its end on the rolled cluster.
    let rolled_at = steps(&e).await.len();
    let deadline = Instant::now() + Duration::from_secs(180);
    while sim.now() < end {
        assert!(
            Instant::now() < deadline,
            "the replay did not reach its end within 180 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The last commits of the leader (its batches wait at most 100 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "{:.1} s: replay at its end; {rolled_at} steps were stored when the roll ended",
        started.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::SeqCst);
    for cl in clients {
        cl.await.unwrap();
    }
    sim.set_speed(0.0);
    // Every alerting step reaches every tenant's channel once: outbox rows per (step, channel)
    // and every row delivered, its idempotency key received.
    let all = steps(&e).await;
    for s in &all {
        eprintln!(
            "  step {} {} {} {} {}",
            s.seq,
            s.event.time,
            s.event.change.as_str(),
            s.event.severity.as_str(),
            s.event.title
        );
    }
    let alerting: BTreeSet<i64> = all
        .iter()
        .filter(|s| kamiyo_platform::fanout::alerting(s.event.change))
        .map(|s| s.seq)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rows = BTreeMap::new();
    loop {
        let mut done = true;
        for t in channels.keys() {
            let r = e.app.tenant_outbox(t, 100_000).await.unwrap();
            done &= r.iter().all(|r| r.status == "delivered")
                && r.iter().map(|r| r.event_seq).collect::<BTreeSet<_>>() == alerting;
            rows.insert(t.clone(), r);
        }
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every alert delivered within 60 s:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = hook.received();
    let mut keys_seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &received {
        let key = r
            .header("kamiyo-idempotency-key")
            .unwrap_or_default()
            .to_owned();
        *keys_seen.entry((r.path.clone(), key)).or_default() += 1;
    }
    let duplicates: usize = keys_seen.values().map(|n| n - 1).sum();
    for (t, r) in &rows {
        assert_eq!(r.len(), alerting.len(), "{t}: one row per alerting step");
        for row in r {
            let alert: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
            let key = alert["idempotency_key"].as_str().unwrap().to_owned();
            assert!(
                keys_seen.contains_key(&(format!("/{t}"), key)),
                "{t}: {} never received",
                row.outbox_id
            );
        }
    }
    let distinct = keys_seen.len();
    assert_eq!(
        distinct,
        alerting.len() * channels.len(),
        "each tenant channel receives each alert's key"
    );
    let (requests, retried, failed) = (
        stats.requests.load(Ordering::SeqCst),
        stats.retried.load(Ordering::SeqCst),
        stats.failed.load(Ordering::SeqCst),
    );
    eprintln!(
        "{:.1} s in all: {} steps ({} alerting) × {} tenants = {distinct} alerts, every one delivered; {duplicates} repeated delivery(ies) of a key; clients: {requests} requests, {retried} retried, {failed} failed; takeovers {:?}",
        started.elapsed().as_secs_f64(),
        all.len(),
        alerting.len(),
        channels.len(),
        takeovers
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    let errors = stats.errors.lock().unwrap().clone();
    assert_eq!(
        failed,
        0,
        "client requests failed after retries: {errors:?}\n{}",
        c.errors()
    );
    assert!(errors.iter().all(|e| e.contains("(retried)")), "{errors:?}");
    // Retries only around the disruptions: four clients, a kill and three rolls.
    assert!(
        retried <= 4 * 4 * 2,
        "{retried} retried requests: {errors:?}"
    );
    // The status page through the balancer: three API replicas, three workers, one leader.
    let status: serde_json::Value = http
        .get(format!("{}/api/v1/status", lb.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let procs = status["processes"].as_array().unwrap();
    let count = |c: &str| procs.iter().filter(|p| p["component"] == c).count();
    assert_eq!(
        (count("api"), count("workers"), count("ingest:hyperliquid")),
        (3, 3, 1),
        "{status}"
    );
    // The nodes' processes are stopped as they drop.
}
