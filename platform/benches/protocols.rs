//! Seven protocols in one process, as `kamiyo-platform ingest --protocol …` runs them: each
//! protocol's engine (its registry thresholds; Hyperliquid's with every built-in detector) in
//! its own task, fed over its own bounded channel by a generator of that protocol's markets at
//! realistic rates (synthetic events: a random walk per market, contexts on each venue's own
//! cadence, trades, and in the cascade phase forced fills). Reports events/s through all
//! engines, process CPU (user + system, from /proc) and RSS, against a baseline of Hyperliquid
//! alone at the same rates in the same run.
//!
//! `cargo bench -p kamiyo-platform --bench protocols` (`KAMIYO_BENCH_SECS`, default 10, per
//! real-time phase).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "a benchmark binary reports on stdout and stops on broken setup"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kamiyo_core_models::{
    Address, AssetCtx, Coin, Decimal, Fill, FillDir, LiquidationInfo, LiquidationMethod,
    MarketEvent, ProtocolId, Side, Timestamp, Trade,
};
use kamiyo_platform::registry::Registry;

/// One protocol's shape: markets, seconds between two contexts of a market, and trades and
/// forced fills per second, calm and in a cascade.
#[derive(Debug, Clone, Copy)]
struct Shape {
    id: &'static str,
    markets: usize,
    ctx_every_s: u64,
    calm_trades: u32,
    cascade_trades: u32,
    cascade_forced: u32,
}

/// Market counts: Hyperliquid 239 perpetuals (research: Dwellir, "239+ perps"); GMX 113 listed
/// index tokens (the recorded `/markets`); the others are round estimates of their listings in
/// 2025–26 (not recorded). Calm trade rates: Hyperliquid's estimated 15–30 trades/s (research
/// §4.1), the others scaled to their volume; cascade: the 10 Oct 2025 rate of about 285 forced
/// fills/s on BTC and SOL alone for Hyperliquid, a third of it elsewhere.
const SHAPES: [Shape; 7] = [
    Shape {
        id: "hyperliquid",
        markets: 239,
        ctx_every_s: 1,
        calm_trades: 30,
        cascade_trades: 600,
        cascade_forced: 300,
    },
    Shape {
        id: "dydx",
        markets: 250,
        ctx_every_s: 5,
        calm_trades: 10,
        cascade_trades: 200,
        cascade_forced: 100,
    },
    Shape {
        id: "gmx",
        markets: 113,
        ctx_every_s: 2,
        calm_trades: 0,
        cascade_trades: 0,
        cascade_forced: 0,
    },
    Shape {
        id: "paradex",
        markets: 100,
        ctx_every_s: 3,
        calm_trades: 5,
        cascade_trades: 200,
        cascade_forced: 100,
    },
    Shape {
        id: "drift",
        markets: 70,
        ctx_every_s: 5,
        calm_trades: 5,
        cascade_trades: 200,
        cascade_forced: 100,
    },
    Shape {
        id: "lighter",
        markets: 100,
        ctx_every_s: 1,
        calm_trades: 20,
        cascade_trades: 200,
        cascade_forced: 100,
    },
    Shape {
        id: "binance-futures",
        markets: 500,
        ctx_every_s: 1,
        calm_trades: 1,
        cascade_trades: 100,
        cascade_forced: 100,
    },
];

/// A protocol's synthetic market.
struct Gen {
    shape: Shape,
    coins: Vec<Coin>,
    px: Vec<f64>,
    rng: u64,
    tid: u64,
}

impl Gen {
    fn new(shape: Shape, seed: u64) -> Self {
        let coins = (0..shape.markets)
            .map(|i| Coin::new(&format!("C{i}")).unwrap())
            .collect();
        Self {
            shape,
            coins,
            px: (0..shape.markets).map(|i| 10.0 + i as f64).collect(),
            rng: seed | 1,
            tid: seed << 32,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn d(x: f64) -> Decimal {
        Decimal::from_f64_retain(x)
            .unwrap_or(Decimal::ONE)
            .round_dp(6)
    }

    /// The events of simulated second `s` (ms `t0`), calm or in a cascade.
    fn second(&mut self, s: u64, t0: i64, cascade: bool, out: &mut Vec<MarketEvent>) {
        let sh = self.shape;
        for i in 0..sh.markets {
            if !(s + i as u64).is_multiple_of(sh.ctx_every_s) {
                continue;
            }
            let drift = if cascade { -0.002 } else { 0.0 };
            self.px[i] *= 1.0 + drift + (self.unit() - 0.5) * 0.002;
            let px = self.px[i];
            out.push(MarketEvent::AssetCtx(AssetCtx {
                coin: self.coins[i].clone(),
                time: Timestamp(t0 + i as i64 % 1000),
                oracle_px: Self::d(px),
                mark_px: Self::d(px * (1.0 + (self.unit() - 0.5) * 0.001)),
                mid_px: None,
                open_interest: Self::d(1_000_000.0 / px),
                funding: Self::d(0.00001),
                day_ntl_vlm: Self::d(50_000_000.0),
                prev_day_px: None,
                premium: None,
                impact_pxs: None,
            }));
        }
        let (trades, forced) = if cascade {
            (sh.cascade_trades, sh.cascade_forced)
        } else {
            (sh.calm_trades, 0)
        };
        for k in 0..trades + forced {
            // Trades concentrate on the first markets (the majors), as volume does.
            let i = ((self.unit() * self.unit()) * sh.markets as f64) as usize % sh.markets.max(1);
            self.tid += 1;
            let t = Trade {
                coin: self.coins[i].clone(),
                side: if self.next().is_multiple_of(2) {
                    Side::Buy
                } else {
                    Side::Sell
                },
                px: Self::d(self.px[i]),
                sz: Self::d(1.0 + self.unit() * 100.0),
                time: Timestamp(t0 + i64::from(k) % 1000),
                tid: self.tid,
                users: None,
            };
            if k >= trades {
                out.push(MarketEvent::Fill(Fill {
                    user: Address::from_bytes([(self.tid % 251) as u8; 20]),
                    coin: t.coin.clone(),
                    px: t.px,
                    sz: t.sz,
                    side: t.side,
                    time: t.time,
                    dir: FillDir::Liquidated("Liquidated Cross Long".into()),
                    closed_pnl: Decimal::ZERO,
                    start_position: None,
                    tid: Some(t.tid),
                    oid: 0,
                    fee: Decimal::ZERO,
                    hash: None,
                    liquidation: Some(LiquidationInfo {
                        liquidated_user: None,
                        mark_px: t.px,
                        method: LiquidationMethod::Market,
                    }),
                }));
            } else {
                out.push(MarketEvent::Trade(t));
            }
        }
    }
}

fn engine(registry: &Registry, id: &str) -> kamiyo_monitors::Engine {
    let pid = ProtocolId::parse(id).unwrap();
    if pid == ProtocolId::HYPERLIQUID {
        kamiyo_monitors::Engine::new(&kamiyo_monitors::MonitorsConfig::default()).unwrap()
    } else {
        kamiyo_platform::ingest::engine(registry, &pid).unwrap()
    }
}

/// Process CPU seconds (user + system) and RSS / peak RSS (KiB), from /proc.
fn usage() -> (f64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command; 100 ticks/s.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kib("VmRSS:"), kib("VmHWM:"))
}

struct Report {
    events: u64,
    detections: u64,
    wall: Duration,
    cpu: f64,
    rss_kib: u64,
}

/// Runs `shapes`, each protocol's engine in its own task fed over its own channel: `secs`
/// simulated seconds, paced in real time (`paced`) or as fast as the engines take them.
async fn run(shapes: &[Shape], secs: u64, cascade: bool, paced: bool) -> Report {
    let registry = Arc::new(Registry::embedded().unwrap());
    let (cpu0, _, _) = usage();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, sh) in shapes.iter().copied().enumerate() {
        let registry = registry.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<MarketEvent>>(64);
        let consumer = tokio::spawn(async move {
            let mut e = engine(&registry, sh.id);
            let (mut events, mut detections) = (0u64, 0u64);
            let mut last_tick = i64::MIN;
            while let Some(batch) = rx.recv().await {
                for ev in &batch {
                    let out = e.process(ev);
                    detections += out.updates.len() as u64;
                    events += 1;
                    let t = ev.time().0;
                    if t / 1000 > last_tick / 1000 {
                        last_tick = t;
                        detections += e.tick(ev.time()).updates.len() as u64;
                    }
                }
            }
            (events, detections)
        });
        let producer = tokio::spawn(async move {
            let mut g = Gen::new(sh, 0x9e37_79b9 + n as u64);
            let t0 = 1_760_000_000_000_i64;
            let begun = tokio::time::Instant::now();
            for s in 0..secs {
                let mut batch = Vec::new();
                g.second(s, t0 + (s as i64) * 1000, cascade, &mut batch);
                // A venue's second arrives in ten slices, as frames do.
                let per = batch.len().div_ceil(10).max(1);
                let mut it = batch.into_iter().peekable();
                let mut slice = 0;
                while it.peek().is_some() {
                    let chunk: Vec<MarketEvent> = it.by_ref().take(per).collect();
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                    slice += 1;
                    if paced {
                        tokio::time::sleep_until(
                            begun + Duration::from_millis(s * 1000 + slice * 100),
                        )
                        .await;
                    }
                }
                if paced {
                    tokio::time::sleep_until(begun + Duration::from_secs(s + 1)).await;
                }
            }
        });
        tasks.push((producer, consumer));
    }
    let (mut events, mut detections) = (0, 0);
    for (p, c) in tasks {
        p.await.unwrap();
        let (e, d) = c.await.unwrap();
        events += e;
        detections += d;
    }
    let wall = started.elapsed();
    let (cpu1, rss, _) = usage();
    Report {
        events,
        detections,
        wall,
        cpu: cpu1 - cpu0,
        rss_kib: rss,
    }
}

fn line(name: &str, r: &Report) {
    println!(
        "{name:<44} {:>10} events {:>8.2} s {:>11.0} events/s  CPU {:>6.2} s ({:>5.1} % of one core)  RSS {:>6.1} MiB  incident steps {}",
        r.events,
        r.wall.as_secs_f64(),
        r.events as f64 / r.wall.as_secs_f64(),
        r.cpu,
        100.0 * r.cpu / r.wall.as_secs_f64(),
        r.rss_kib as f64 / 1024.0,
        r.detections
    );
}

/// The cross-protocol correlator over a shared stream of incident steps: 7 protocols, 100
/// assets, the threat types the detectors emit, one step every 10 ms of event time (far above a
/// real stream's rate, so the window holds many members); against a baseline of one protocol
/// (nothing ever correlates) in the same run.
fn correlator_throughput() {
    use kamiyo_platform::correlator::{Correlator, Member};
    const THREATS: [&str; 6] = [
        "oracle_deviation",
        "mark_manipulation",
        "liquidation_cascade",
        "large_liquidation",
        "thin_market_manipulation",
        "open_interest_jump",
    ];
    let run = |protocols: usize| {
        let ids: Vec<ProtocolId> = SHAPES[..protocols]
            .iter()
            .map(|s| ProtocolId::parse(s.id).unwrap())
            .collect();
        let n = 300_000u64;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                protocol: ids[(i as usize * 3 + 1) % protocols].clone(),
                incident: kamiyo_core_models::StableId::parse(&format!("inc_{i:016x}")).unwrap(),
                threat: THREATS[(i as usize * 13) % THREATS.len()].into(),
                severity: kamiyo_core_models::Severity::High,
                asset: Some(format!("C{}", (i * 31) % 100)),
                addresses: Vec::new(),
                oracle: None,
                time: Timestamp(1_760_000_000_000 + i as i64 * 10),
                title: String::new(),
                resolved: false,
            })
            .collect();
        let mut c = Correlator::default();
        let t = Instant::now();
        let mut changes = 0usize;
        for m in members {
            changes += c.observe(m).len();
        }
        let wall = t.elapsed();
        (n, wall, changes)
    };
    for (name, p) in [("baseline: one protocol", 1), ("7 protocols", 7)] {
        let (n, wall, changes) = run(p);
        println!(
            "correlator, {name:<24} {n} steps {:>8.3} s {:>11.0} steps/s  {changes} opened or grown",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64()
        );
    }
}

/// The ensemble's cost per event: one row scored at a time (as the live detector would), the
/// single Isolation Forest (the open core's model) as the baseline in the same run; fitted on
/// the 4,072 rows of the validation set (real calm-fortnight features, synthetic outliers).
fn ensemble_latency() {
    use kamiyo_platform::ensemble::{Ensemble, OneClassSvm, Settings};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/ml/reference/iforest_validation.csv");
    let text = std::fs::read_to_string(path).unwrap();
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let mut v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        labels.push(v.pop().unwrap() == 1.0);
        rows.push(v);
    }
    let t = Instant::now();
    let e = Ensemble::fit(&rows, &labels, Settings::default()).unwrap();
    println!(
        "ensemble fit: {} rows x {} features, {:.2} s (100 + 100 trees, SVM on {} rows)",
        rows.len(),
        rows[0].len(),
        t.elapsed().as_secs_f64(),
        rows.len().min(kamiyo_platform::ensemble::SVM_MAX_ROWS)
    );
    let scaler = kamiyo_ml::model::Scaler::fit(&rows);
    let scaled: Vec<Vec<f64>> = rows.iter().map(|r| scaler.apply(r)).collect();
    let forest =
        kamiyo_ml::iforest::IsolationForest::fit(&scaled, kamiyo_ml::iforest::Params::default())
            .unwrap();
    let svm = OneClassSvm::fit(&scaled, 0.05, None, 1e-3).unwrap();
    let time = |name: &str, f: &dyn Fn(&[f64]) -> f64| {
        let reps = 5;
        let t = Instant::now();
        let mut acc = 0.0;
        for _ in 0..reps {
            for r in &rows {
                acc += f(r);
            }
        }
        let per = t.elapsed().as_secs_f64() / (reps * rows.len()) as f64;
        println!(
            "score one event, {name:<44} {:>8.2} µs  {:>9.0} events/s per core  (checksum {acc:.1})",
            per * 1e6,
            1.0 / per
        );
    };
    time("baseline: Isolation Forest alone (scaled)", &|r| {
        forest.score(&scaler.apply(r))
    });
    time(
        &format!("One-Class SVM ({} support vectors)", svm.support_vectors()),
        &|r| svm.decision(&scaler.apply(r)),
    );
    time("ensemble (IF + SVM + RF, calibrated, vote)", &|r| {
        e.score(r).confidence
    });
}

fn main() {
    if std::env::args().any(|a| a == "ensemble") {
        ensemble_latency();
        return;
    }
    let secs: u64 = std::env::var("KAMIYO_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    kamiyo_platform::detectors::declare_threats().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let markets: usize = SHAPES.iter().map(|s| s.markets).sum();
        println!(
            "7 protocols, {markets} markets; {} threads; {secs} s per real-time phase",
            2
        );
        for s in SHAPES {
            println!(
                "  {:<16} {:>4} markets, context every {} s, calm {} trades/s, cascade {} trades/s + {} forced fills/s",
                s.id, s.markets, s.ctx_every_s, s.calm_trades, s.cascade_trades, s.cascade_forced
            );
        }
        let (_, _, hwm0) = usage();
        println!("RSS before the engines: {:.1} MiB", hwm0 as f64 / 1024.0);
        let hl = &SHAPES[..1];
        line("baseline: hyperliquid alone, calm, paced", &run(hl, secs, false, true).await);
        line("7 protocols, calm, paced", &run(&SHAPES, secs, false, true).await);
        line("baseline: hyperliquid alone, cascade, paced", &run(hl, secs, true, true).await);
        line("7 protocols, cascade, paced", &run(&SHAPES, secs, true, true).await);
        // Capacity: the same simulated minutes as fast as the engines take them.
        line("capacity: hyperliquid alone, cascade", &run(hl, 120, true, false).await);
        line("capacity: 7 protocols, cascade", &run(&SHAPES, 120, true, false).await);
        let (_, _, hwm) = usage();
        println!("peak RSS: {:.1} MiB", hwm as f64 / 1024.0);
        correlator_throughput();
    });
    ensemble_latency();
}
