//! The platform at 1,000 tenants × 5 keys on PostgreSQL: the fan-out of one shared incident to
//! every tenant's outbox (time to commit), and the tenant-scoped `/security/events` served by
//! the release binary at 1, 64 and 1,000 connections — each with row-level security on and
//! then off in the same run, so its cost is a ratio measured here, not assumed.
//!
//! `cargo bench -p kamiyo-platform --bench tenancy` (PostgreSQL as for the tests: the roles
//! `cargo xtask test` creates; `KAMIYO_TEST_PG_URL` to point elsewhere).
//! `KAMIYO_BENCH_TENANTS` (default 1000), `KAMIYO_BENCH_SECS` (default 5) per cell. The
//! server is pinned to core 0 and this load generator to core 1 (`taskset`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and stops on broken setup"
)]

use std::time::Instant;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use kamiyo_core_models::{
    Coin, Evidence, Incident, IncidentChange, IncidentKey, IncidentStatus, IncidentUpdate,
    IngestBatch, MarketStore, ProtocolId, SecurityEvent, Severity, ThreatType, Timestamp,
};
use kamiyo_platform::db::{Actor, Change, Db};
use kamiyo_platform::fanout::route_once;
use kamiyo_platform::tenancy::{self, TenantId};
use kamiyo_platform::tiers::TierMatrix;
use kamiyo_testing::load::http_load;

fn opened(n: i64, t: i64, severity: Severity) -> IncidentUpdate {
    let asset = ["BTC", "ETH", "SOL", "HYPE"][(n % 4) as usize];
    let key = IncidentKey::parse(&format!("oracle_deviation:{asset}:{n}")).unwrap();
    let i = Incident {
        protocol: ProtocolId::HYPERLIQUID,
        id: Incident::derive_id(&key, Timestamp(t)),
        key,
        detector: "oracle".into(),
        threat_type: ThreatType::OracleDeviation,
        severity,
        peak_severity: severity,
        asset: Some(Coin::new(asset).unwrap()),
        status: IncidentStatus::Open,
        title: format!("{asset} oracle deviation {n}"),
        indicators: vec!["bench".into()],
        evidence: Evidence::new(),
        first_seen: Timestamp(t),
        last_seen: Timestamp(t),
        resolved_at: None,
        detections: 1,
    };
    IncidentUpdate {
        event: SecurityEvent::from_incident(&i, IncidentChange::Opened, Timestamp(t)),
        incident: i,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn row_security(owner_url: &str, on: bool) {
    let mut c = AsyncPgConnection::establish(owner_url).await.unwrap();
    let sql: String = kamiyo_platform::db::ISOLATED_TABLES
        .iter()
        .map(|t| {
            if on {
                format!("ALTER TABLE platform.{t} ENABLE ROW LEVEL SECURITY; ALTER TABLE platform.{t} FORCE ROW LEVEL SECURITY;")
            } else {
                format!("ALTER TABLE platform.{t} NO FORCE ROW LEVEL SECURITY; ALTER TABLE platform.{t} DISABLE ROW LEVEL SECURITY;")
            }
        })
        .collect();
    c.batch_execute(&sql).await.unwrap();
}

/// The release binary serving as the application role, pinned to core 0.
struct Server {
    addr: std::net::SocketAddr,
    child: std::process::Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(owner_url: &str, app_url: &str) -> Server {
    let (child, addr) = kamiyo_testing::load::spawn_pinned(
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .arg("serve")
            .env("KAMIYO_PLATFORM__DATABASE__URL", owner_url)
            .env("KAMIYO_PLATFORM__DATABASE__APP_URL", app_url)
            .env("KAMIYO_PLATFORM__DATABASE__MAX_CONNECTIONS", "16")
            .env("KAMIYO_PLATFORM__SERVER__BIND", "127.0.0.1:0")
            .env("KAMIYO_PLATFORM_LOG", "warn"),
        "0",
        "listening on http://",
    );
    Server { addr, child }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tenants: usize = std::env::var("KAMIYO_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("KAMIYO_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tdb = kamiyo_testing::TestDatabase::new().await;
        let here = std::path::Path::new(".");
        let facts = kamiyo_store::Store::connect(&tdb.url, here, 4).await.unwrap();
        facts.migrate().await.unwrap();
        let owner = Db::connect(&tdb.url, 4).await.unwrap();
        owner.migrate("kamiyo_app").await.unwrap();
        let (scheme, rest) = tdb.url.split_once("://").unwrap();
        let app_url = format!(
            "{scheme}://kamiyo_app:kamiyo_app@{}",
            rest.rsplit_once('@').map_or(rest, |(_, h)| h)
        );
        let app = Db::connect(&app_url, 16).await.unwrap();
        let facts_app = kamiyo_store::Store::connect(&app_url, here, 4).await.unwrap();
        // Shared facts: 2,000 steps for the events page.
        let t0 = now_ms() - 3_600_000;
        let seed: Vec<IncidentUpdate> = (0..2000)
            .map(|n| opened(n, t0 + n * 1000, Severity::Medium))
            .collect();
        facts
            .commit(&IngestBatch {
                updates: seed,
                ..IngestBatch::default()
            })
            .await
            .unwrap();
        // The router passes the seeded steps before anyone follows them.
        let tiers = TierMatrix::default_matrix().unwrap();
        while route_once(&app, &facts_app, &tiers, now_ms(), 1000)
            .await
            .unwrap()
            .steps
            > 0
        {}
        // Tenants: an owner and its key at sign-up, four more keys, one channel each.
        let started = Instant::now();
        let hash = tenancy::hash_password("a bench password for all").unwrap();
        let mut keys = Vec::with_capacity(tenants * 5);
        for i in 0..tenants {
            let t = TenantId::parse(&format!("tenant-{i:05}")).unwrap();
            let first = tenancy::generate_key(&t);
            let who = Actor {
                actor: "bench".into(),
                ip: "127.0.0.1".into(),
                at: now_ms(),
            };
            app.create_tenant(
                &t,
                "bench",
                "cloud_enterprise",
                &format!("owner@{t}.example"),
                &hash,
                (&first.id, &first.hash),
                "hyperliquid",
                &who,
            )
            .await
            .unwrap();
            keys.push(first.secret);
            for k in 0..4 {
                let key = tenancy::generate_key(&t);
                app.change(
                    &t,
                    &who,
                    Change::AddKey {
                        key_id: key.id,
                        name: format!("k{k}"),
                        hash: key.hash,
                        role: "viewer".into(),
                        created_by: "bench".into(),
                    },
                )
                .await
                .unwrap();
                keys.push(key.secret);
            }
            app.change(
                &t,
                &who,
                Change::AddChannel {
                    channel_id: tenancy::new_id("chn"),
                    name: "ops".into(),
                    kind: "webhook".into(),
                    url: "https://hooks.example/x".into(),
                    secret: None,
                    min_severity: "info".into(),
                },
            )
            .await
            .unwrap();
        }
        println!(
            "kamiyo-platform on PostgreSQL: {tenants} tenants × 5 keys and a channel each, created in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // Fan-out: one new critical incident, routed to every tenant's outbox.
        let mut n = 10_000;
        let mut fan = |label: &'static str| {
            n += 1;
            let step = opened(n, now_ms(), Severity::Critical);
            let facts = &facts;
            let (app, facts_app, tiers) = (&app, &facts_app, &tiers);
            async move {
                facts
                    .commit(&IngestBatch {
                        updates: vec![step],
                        ..IngestBatch::default()
                    })
                    .await
                    .unwrap();
                let t = Instant::now();
                let pass = route_once(app, facts_app, tiers, now_ms(), 10).await.unwrap();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(pass.routed, tenants, "{pass:?}");
                println!(
                    "  fan-out, row security {label}: one incident to {} outboxes committed in {ms:.0} ms ({:.0} µs per tenant)",
                    pass.routed,
                    ms * 1000.0 / pass.routed as f64
                );
                ms
            }
        };
        let mut on = Vec::new();
        let mut off = Vec::new();
        for _ in 0..3 {
            on.push(fan("on ").await);
        }
        row_security(&tdb.url, false).await;
        for _ in 0..3 {
            off.push(fan("off").await);
        }
        row_security(&tdb.url, true).await;
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "  fan-out ratio, on / off (best of 3): {:.2}",
            best(&on) / best(&off)
        );
        // HTTP: the release binary, tenant-scoped events, keys spread over every tenant.
        let server = serve(&tdb.url, &app_url);
        assert!(
            kamiyo_testing::load::pin_self("1"),
            "taskset could not pin the load generator"
        );
        println!(
            "GET /security/events?limit=50 (tenant-scoped; each connection a different tenant's key), server on core 0, generator on core 1, {secs} s per cell"
        );
        let path = "/security/events?limit=50";
        for conns in [1, 64, 1000] {
            let mut rates = Vec::new();
            for (label, rls) in [("on ", true), ("off", false)] {
                row_security(&tdb.url, rls).await;
                let c = http_load(server.addr, path, conns, secs, None, &keys).await;
                println!(
                    "  {conns:>5} conns  row security {label}: {:>8.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
                    c.rate, c.p50, c.p99, c.errors
                );
                rates.push(c.rate);
            }
            println!(
                "  ratio on / off at {conns} conns: {:.2}",
                rates[0] / rates[1].max(1e-9)
            );
        }
        row_security(&tdb.url, true).await;
        drop(server);
    });
}
