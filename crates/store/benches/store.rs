//! Store benchmark: batched insert throughput and dashboard query latency, on SQLite and
//! PostgreSQL, in one run.
//!
//! ```text
//! cargo bench -p kamiyo-store --bench store                      # both backends, 365 days
//! KAMIYO_BENCH_DAYS=30 KAMIYO_BENCH_BACKENDS=sqlite cargo bench -p kamiyo-store --bench store
//! ```
//!
//! 1. Insert: security events (incident lifecycle steps) committed one per transaction (the
//!    baseline: what an unbatched writer does) and 500 per transaction (the server's writer).
//! 2. History: one-minute samples for 10 assets over `KAMIYO_BENCH_DAYS` days (deviation samples
//!    for every asset, the HLP vault's history, one liquidation per asset every 10 minutes and
//!    an incident step per asset every hour), written through the same batched commit; rows/s.
//! 3. Dashboard queries against that history: p50/p99 over 300 runs each, at random times.
//!
//! The data is synthetic (a deterministic generator), labelled as such in docs/PERFORMANCE.md.
//! PostgreSQL comes from `KAMIYO_TEST_PG_URL` (default: the test server `cargo xtask test` starts).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and stops on broken setup"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use kamiyo_core_models::{
    Address, Coin, Decimal, DeviationKind, DeviationSample, EventQuery, Evidence, Incident,
    IncidentChange, IncidentKey, IncidentQuery, IncidentStatus, IncidentStore, IncidentUpdate,
    IngestBatch, LiquidationMethod, LiquidationRecord, MarketStore, SecurityEvent, Severity, Side,
    ThreatType, Timestamp, VaultPoint,
};
use kamiyo_store::Store;

const ASSETS: [&str; 10] = [
    "BTC", "ETH", "SOL", "HYPE", "XRP", "DOGE", "SUI", "AVAX", "LINK", "XPL",
];
const HLP: &str = "0xdfc24b077bc1425ad1dea75bcb6f8158e10df303";
const T0: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const MIN: i64 = Timestamp::MINUTE;

/// A small deterministic generator (xorshift64*), so both backends get the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dec(units: i64, scale: u32) -> Decimal {
    Decimal::new(units, scale)
}

fn coin(i: usize) -> Coin {
    Coin::new(ASSETS[i % ASSETS.len()]).unwrap()
}

fn step(asset: usize, n: i64, t: i64) -> IncidentUpdate {
    let threat = [
        ThreatType::OracleDeviation,
        ThreatType::LargeLiquidation,
        ThreatType::MarkManipulation,
    ][(n % 3) as usize];
    let key = IncidentKey::parse(&format!("{}:{}:{n}", threat.as_str(), ASSETS[asset])).unwrap();
    let sev = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ][(n % 4) as usize];
    let incident = Incident {
        protocol: Default::default(),
        id: Incident::derive_id(&key, Timestamp(t)),
        key,
        detector: "bench".into(),
        threat_type: threat,
        severity: sev,
        peak_severity: sev,
        asset: Some(coin(asset)),
        status: if n % 5 == 0 {
            IncidentStatus::Open
        } else {
            IncidentStatus::Resolved
        },
        title: format!("{} synthetic incident {n}", ASSETS[asset]),
        indicators: vec!["synthetic".into()],
        evidence: Evidence::new()
            .with("deviation_pct", dec(n % 300, 2))
            .with("venue", "binance"),
        first_seen: Timestamp(t),
        last_seen: Timestamp(t),
        resolved_at: None,
        detections: 1,
    };
    IncidentUpdate {
        event: SecurityEvent::from_incident(&incident, IncidentChange::Opened, Timestamp(t)),
        incident,
    }
}

fn deviation(asset: usize, t: i64, rng: &mut Rng) -> DeviationSample {
    let reference = dec(100_000 + rng.below(1000) as i64, 2);
    let bp = rng.below(200) as i64 - 100;
    DeviationSample {
        protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
        coin: coin(asset),
        time: Timestamp(t),
        kind: DeviationKind::OracleVsReference,
        venue: None,
        value: reference + dec(bp, 2),
        reference,
        deviation_pct: dec(bp, 4),
    }
}

fn liquidation(asset: usize, t: i64, tid: u64, rng: &mut Rng) -> LiquidationRecord {
    let mut user = [0u8; 20];
    user[..8].copy_from_slice(&rng.next().to_be_bytes());
    LiquidationRecord {
        protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
        time: Timestamp(t),
        coin: coin(asset),
        user: Address::from_bytes(user),
        liquidated_user: None,
        side: if tid.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        px: dec(100_000, 2),
        sz: dec(rng.below(10_000) as i64, 2),
        notional: dec(rng.below(10_000_000) as i64, 2),
        method: Some(LiquidationMethod::Market),
        is_adl: tid.is_multiple_of(50),
        tid,
    }
}

fn rate(rows: usize, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

async fn insert_events(store: &Store, batch: usize, total: usize, offset: i64) -> f64 {
    let updates: Vec<IncidentUpdate> = (0..total)
        .map(|i| {
            step(
                i % 10,
                offset + i as i64,
                T0 - 400 * Timestamp::DAY + i as i64 * 1000,
            )
        })
        .collect();
    let start = Instant::now();
    for chunk in updates.chunks(batch) {
        let b = IngestBatch {
            updates: chunk.to_vec(),
            cursors: vec![("bench".into(), offset.to_string())],
            ..IngestBatch::default()
        };
        store.commit(&b).await.unwrap();
    }
    rate(total, start.elapsed())
}

/// Writes the history; returns rows written and rows/s.
async fn populate(store: &Store, days: i64) -> (usize, f64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let hlp: Address = HLP.parse().unwrap();
    let minutes = days * 1440;
    let mut rows = 0usize;
    let mut tid = 1u64;
    let start = Instant::now();
    let chunk_minutes = 240; // 10 assets x 240 min = 2,400 deviation rows per transaction
    let mut m = 0;
    while m < minutes {
        let mut b = IngestBatch::default();
        for mm in m..(m + chunk_minutes).min(minutes) {
            let t = T0 + mm * MIN;
            for a in 0..ASSETS.len() {
                b.deviations.push(deviation(a, t, &mut rng));
                if mm % 10 == 0 {
                    b.liquidations.push(liquidation(a, t, tid, &mut rng));
                    tid += 1;
                }
                if mm % 60 == 0 {
                    b.updates.push(step(a, mm / 60, t));
                }
            }
            b.vault_points.push(VaultPoint {
                protocol: kamiyo_core_models::ProtocolId::HYPERLIQUID,
                vault: hlp,
                time: Timestamp(t),
                account_value: dec(38_000_000_000 + rng.below(100_000_000) as i64, 2),
                pnl: dec(rng.below(1_000_000_000) as i64, 2),
            });
        }
        rows += b.deviations.len() + b.liquidations.len() + b.updates.len() + b.vault_points.len();
        b.cursors.push(("bench".into(), m.to_string()));
        store.commit(&b).await.unwrap();
        m += chunk_minutes;
    }
    (rows, rate(rows, start.elapsed()))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn queries(store: &Store, days: i64) {
    let mut rng = Rng(42);
    let hlp: Address = HLP.parse().unwrap();
    let span = days * Timestamp::DAY;
    let runs = 300;
    macro_rules! measure {
        ($name:expr, |$r:ident| $body:expr) => {{
            let mut times = Vec::with_capacity(runs);
            let mut got = 0usize;
            for _ in 0..runs {
                let $r = &mut rng;
                let s = Instant::now();
                let n = $body;
                times.push(s.elapsed());
                got += n;
            }
            times.sort();
            println!(
                "  {:<44} p50 {:>8.2} ms  p99 {:>8.2} ms  ({} rows/query)",
                $name,
                pct(&times, 0.5).as_secs_f64() * 1e3,
                pct(&times, 0.99).as_secs_f64() * 1e3,
                got / runs
            );
        }};
    }
    let at = |r: &mut Rng, back: i64| Timestamp(T0 + (r.below((span - back).max(1) as u64) as i64));
    measure!("deviations, one asset, 24 h (1,440 points)", |r| {
        let c = coin(r.below(10) as usize);
        let since = at(r, Timestamp::DAY);
        store
            .deviations(None, Some(&c), since, 1440)
            .await
            .unwrap()
            .len()
    });
    measure!("vault history, 24 h (1,440 points)", |r| {
        let since = at(r, Timestamp::DAY);
        store
            .vault_points(None, Some(hlp), since, 1440)
            .await
            .unwrap()
            .len()
    });
    measure!("liquidations, one asset, since, 200 newest", |r| {
        let c = coin(r.below(10) as usize);
        let since = at(r, Timestamp::DAY);
        store
            .liquidations(None, Some(&c), since, 200)
            .await
            .unwrap()
            .len()
    });
    measure!("events, newest 50", |_r| {
        store
            .events(&EventQuery {
                limit: 50,
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .len()
    });
    measure!("events, severity >= high, newest 50", |_r| {
        store
            .events(&EventQuery {
                limit: 50,
                min_severity: Some(Severity::High),
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .len()
    });
    measure!("events, one asset, newest 50", |r| {
        store
            .events(&EventQuery {
                limit: 50,
                asset: Some(coin(r.below(10) as usize)),
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .len()
    });
    measure!("events, one threat type, newest 50", |_r| {
        store
            .events(&EventQuery {
                limit: 50,
                threat_type: Some(ThreatType::MarkManipulation),
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .len()
    });
    measure!("incidents, open, 50 most recent", |_r| {
        store
            .incidents(&IncidentQuery {
                protocol: Default::default(),
                status: Some(IncidentStatus::Open),
                asset: None,
                seen_since: None,
                limit: 50,
            })
            .await
            .unwrap()
            .len()
    });
}

async fn bench(name: &str, store: Store, days: i64) {
    println!("{name} ({})", store.location());
    let one = insert_events(&store, 1, 2_000, 0).await;
    let batched = insert_events(&store, 500, 50_000, 1_000_000).await;
    println!(
        "  event insert: {one:>9.0} rows/s one per transaction (baseline), {batched:>9.0} rows/s in batches of 500 ({:.1}x)",
        batched / one
    );
    let (rows, r) = populate(&store, days).await;
    println!("  history: {rows} rows ({days} days x 10 assets, 1-minute) at {r:.0} rows/s");
    queries(&store, days).await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too: only run when asked.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let days: i64 = std::env::var("KAMIYO_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(365);
    let backends =
        std::env::var("KAMIYO_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if backends.contains("sqlite") {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open("", dir.path(), 4).await.unwrap();
            bench("SQLite", store, days).await;
            let size = std::fs::metadata(kamiyo_store::sqlite_path(dir.path()))
                .map(|m| m.len())
                .unwrap_or(0);
            println!("  file size: {:.0} MB", size as f64 / 1e6);
        }
        if backends.contains("postgres") {
            let db = kamiyo_testing::TestDatabase::new().await;
            let store = Store::open(&db.url, Path::new("unused"), 4).await.unwrap();
            bench("PostgreSQL", store, days).await;
        }
    });
}
