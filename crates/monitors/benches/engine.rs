//! Engine throughput: events per second through parse + every detector, one core.
//!
//! `cargo bench -p kamiyo-monitors --bench engine`
//!
//! Input: the four scenarios' events (calm fortnight, ETH whale, JELLY, XPL; about 300k events:
//! asset contexts, reference quotes, mids, vault and position snapshots, fills), serialized as
//! normalized JSON lines (the scenario overlay format). Measured in the same run: parsing with
//! serde alone (baseline), parsing with `decode_event_json`, detectors only (events already in
//! memory), and parse + detectors. Each line: best and median of `KAMIYO_BENCH_PASSES` (9).

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
    let passes: usize = std::env::var("KAMIYO_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    // For profiling: `KAMIYO_BENCH_ONLY=combined` runs only parse + detectors,
    // `KAMIYO_BENCH_ONLY=detectors` only the detectors.
    let only = std::env::var("KAMIYO_BENCH_ONLY").unwrap_or_default();
    let only_combined = only == "combined";
    let only_detectors = only == "detectors";
    let mut report = |name: &str, times: &mut Vec<f64>, note: String| {
        times.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "{name:<44} {:>10.0} events/s  median {:>10.0}  ({} passes){note}",
            total as f64 / times[0],
            total as f64 / times[times.len() / 2],
            times.len()
        );
    };
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };

    if !only_combined && !only_detectors {
        let mut times: Vec<f64> = (0..passes)
            .map(|_| {
                time(&mut || {
                    for l in lines.iter().flatten() {
                        black_box(serde_json::from_str::<MarketEvent>(l).ok());
                    }
                })
            })
            .collect();
        report(
            "baseline: parse with serde alone",
            &mut times,
            String::new(),
        );

        let mut times: Vec<f64> = (0..passes)
            .map(|_| {
                time(&mut || {
                    for l in lines.iter().flatten() {
                        black_box(kamiyo_aggregators::replay::decode_event_json(l).ok());
                    }
                })
            })
            .collect();
        report("parse (decode_event_json)", &mut times, String::new());
    }
    if !only_combined {
        let mut steps = 0usize;
        let mut times: Vec<f64> = (0..passes)
            .map(|_| {
                time(&mut || {
                    steps = 0;
                    for (_, events, stale) in &runs {
                        let mut e = Engine::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
                        e.state_mut().set_reference_max_age_ms(*stale);
                        for ev in events {
                            steps += e.process(ev).updates.len();
                        }
                    }
                })
            })
            .collect();
        report(
            "detectors only (all, events in memory)",
            &mut times,
            format!("  {steps} incident steps"),
        );
        // What `run` adds when it records bars for training (ml.record_bar_secs = 300).
        let mut bars = 0usize;
        let mut times: Vec<f64> = (0..passes)
            .map(|_| {
                time(&mut || {
                    bars = 0;
                    for (_, events, stale) in &runs {
                        let mut e = Engine::new(&cfg)
                            .unwrap_or_else(|e| panic!("{e}"))
                            .with_detector(Box::new(
                                kamiyo_monitors::detectors::bars::BarRecorder::new(300_000),
                            ));
                        e.state_mut().set_reference_max_age_ms(*stale);
                        for ev in events {
                            bars += e.process(ev).observations.bars.len();
                        }
                    }
                })
            })
            .collect();
        report(
            "detectors + 5m bar recorder (events in memory)",
            &mut times,
            format!("  {bars} bars"),
        );
    }

    if only_detectors {
        return;
    }
    let mut times: Vec<f64> = (0..passes)
        .map(|_| {
            time(&mut || {
                for ((_, _, stale), ls) in runs.iter().zip(&lines) {
                    let mut e = Engine::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
                    e.state_mut().set_reference_max_age_ms(*stale);
                    for l in ls {
                        if let Ok(ev) = kamiyo_aggregators::replay::decode_event_json(l) {
                            black_box(e.process(&ev));
                        }
                    }
                }
            })
        })
        .collect();
    report("parse + detectors", &mut times, String::new());
}
