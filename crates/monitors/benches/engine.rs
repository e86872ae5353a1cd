//! Engine throughput: events per second through parse + every detector, one core.
//!
//! `cargo bench -p kamiyo-monitors --bench engine`
//!
//! Input: the four scenarios' events (calm fortnight, ETH whale, JELLY, XPL; about 300k events:
//! asset contexts, reference quotes, mids, vault and position snapshots, fills), serialized as
//! normalized JSON lines (the scenario overlay format). Measured in the same run: parse only,
//! detectors only (events already in memory), and parse + detectors.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::MarketEvent;
use kamiyo_monitors::{Engine, MonitorsConfig};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut runs: Vec<(String, Vec<MarketEvent>, i64)> = Vec::new();
    for name in [
        "calm-2025-06-01-14",
        "eth-whale-2025-03-12",
        "jelly-2025-03-26",
        "xpl-2025-08-26",
    ] {
        let s = Scenario::load(&root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stale = s.stale_after_ms();
        runs.push((name.to_owned(), s.events, stale));
    }
    let total: usize = runs.iter().map(|r| r.1.len()).sum();
    let lines: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            r.1.iter()
                .map(|e| serde_json::to_string(e).unwrap_or_default())
                .collect()
        })
        .collect();
    let bytes: usize = lines.iter().flatten().map(String::len).sum();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{total} events, {bytes} bytes of JSON lines, 4 scenarios"
    );
    let cfg = MonitorsConfig::default();
    let reps = 5;

    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        for l in lines.iter().flatten() {
            black_box(kamiyo_aggregators::replay::decode_event_json(l).ok());
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let _ = writeln!(
        out,
        "{:<40} {:>12.0} events/s",
        "parse only (baseline)",
        total as f64 / best
    );

    let mut best = f64::INFINITY;
    let mut steps = 0usize;
    for _ in 0..reps {
        let t = Instant::now();
        steps = 0;
        for (_, events, stale) in &runs {
            let mut e = Engine::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
            e.state_mut().set_reference_max_age_ms(*stale);
            for ev in events {
                steps += e.process(ev).updates.len();
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let _ = writeln!(
        out,
        "{:<40} {:>12.0} events/s  ({steps} incident steps)",
        "detectors only (all, in memory)",
        total as f64 / best
    );

    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        for ((_, _, stale), ls) in runs.iter().zip(&lines) {
            let mut e = Engine::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
            e.state_mut().set_reference_max_age_ms(*stale);
            for l in ls {
                if let Ok(ev) = kamiyo_aggregators::replay::decode_event_json(l) {
                    black_box(e.process(&ev));
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let _ = writeln!(
        out,
        "{:<40} {:>12.0} events/s",
        "parse + detectors",
        total as f64 / best
    );
}
