//! ML speed against scikit-learn and statsmodels, same data, same machine, same run.
//!
//! ```text
//! cargo bench -p kamiyo-ml --bench ml
//! KAMIYO_BENCH_PYTHON=/tmp/mlvenv/bin/python cargo bench -p kamiyo-ml --bench ml   # + baselines
//! ```
//!
//! Data: 100,000 × 12 standard-normal rows with 1 % shifted outliers (synthetic, seed 42) for
//! the forest; the last 720 hourly ETH log closes (real, Hyperliquid) for ARIMA. The Python
//! side (`reference/bench_baseline.py`) reads the very same files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and stops on broken setup"
)]

use std::io::Write;
use std::time::Instant;

use kamiyo_ml::arima::Arima;
use kamiyo_ml::iforest::{IsolationForest, Params};
use rand::{Rng, SeedableRng};

fn normal(rng: &mut rand::rngs::SmallRng) -> f64 {
    // Box–Muller.
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let rows: Vec<Vec<f64>> = (0..100_000)
        .map(|i| {
            let shift = if i % 100 == 0 { 6.0 } else { 0.0 };
            (0..12)
                .map(|_| normal(&mut rng) + shift * normal(&mut rng))
                .collect()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&data).unwrap());
        for r in &rows {
            let s: Vec<String> = r.iter().map(|v| format!("{v:?}")).collect();
            writeln!(f, "{}", s.join(",")).unwrap();
        }
    }
    let eth = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/market/hyperliquid/candles_1h/hl_perp_ETH_1h.csv"),
    )
    .unwrap();
    let bars = kamiyo_ml::features::parse_candles(&eth).unwrap();
    let series: Vec<f64> = bars[bars.len() - 720..]
        .iter()
        .map(|b| b.close.ln())
        .collect();
    let series_path = dir.path().join("y.csv");
    std::fs::write(
        &series_path,
        series
            .iter()
            .map(|v| format!("{v:?}\n"))
            .collect::<String>(),
    )
    .unwrap();

    println!("kamiyo-ml (Rust)");
    let mut fits = Vec::new();
    let mut forest = None;
    for _ in 0..5 {
        let t = Instant::now();
        let f = IsolationForest::fit(&rows, Params::default()).unwrap();
        fits.push(t.elapsed().as_secs_f64() * 1000.0);
        forest = Some(f);
    }
    let forest = forest.unwrap();
    println!(
        "  IsolationForest fit 100k x 12, 100 trees: median {:.2} ms",
        pct(&mut fits, 0.5)
    );
    let mut lat = Vec::with_capacity(20_000);
    let mut sink = 0.0;
    for r in rows.iter().take(20_000) {
        let t = Instant::now();
        sink += forest.score(r);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "  score one row: median {:.2} µs, p99 {:.2} µs (checksum {sink:.3})",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    let t = Instant::now();
    let all: f64 = rows.iter().map(|r| forest.score(r)).sum();
    println!(
        "  score all 100k rows: {:.1} ms (checksum {all:.1})",
        t.elapsed().as_secs_f64() * 1000.0
    );
    for (threads, label) in [(2, "both cores"), (1, "one core")] {
        let mut grid = Vec::new();
        let mut chosen = None;
        for _ in 0..5 {
            let t = Instant::now();
            let m = Arima::select_on(&series, 3, 1, 3, threads).unwrap();
            let f = m.forecast(24, 0.95);
            grid.push(t.elapsed().as_secs_f64() * 1000.0);
            chosen = Some((m.p, m.d, m.q, f.mean[23]));
        }
        println!(
            "  ARIMA order search p,q in 0..=3, d=1, 720 hourly points, + 24-step forecast, {label}: median {:.1} ms, best {:.1} ms; chose {:?}",
            pct(&mut grid, 0.5),
            pct(&mut grid, 0.0),
            chosen.unwrap()
        );
    }
    if let Ok(py) = std::env::var("KAMIYO_BENCH_PYTHON") {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/bench_baseline.py");
        let out = std::process::Command::new(py)
            .arg(script)
            .arg(&data)
            .arg(&series_path)
            .output()
            .unwrap();
        println!("scikit-learn / statsmodels (same data, same run)");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            print!("{}", String::from_utf8_lossy(&out.stderr));
        }
    } else {
        println!(
            "(set KAMIYO_BENCH_PYTHON to a python with scikit-learn and statsmodels for the baseline)"
        );
    }
}
