//! Each scenario through the real engine against its ground truth (docs/DETECTION.md).

use std::path::PathBuf;

use kamiyo_aggregators::replay::Scenario;
use kamiyo_monitors::MonitorsConfig;
use kamiyo_monitors::backtest::{self, BacktestReport};

fn run(name: &str) -> BacktestReport {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(name);
    let s = Scenario::load(&dir).unwrap();
    backtest::run(&s, &MonitorsConfig::default(), |_, _| {}).unwrap()
}

fn assert_passed(r: &BacktestReport) {
    assert!(r.passed(), "\n{}", r.render_text());
}

#[test]
fn eth_whale_high_before_takeover_and_critical_within_60s() {
    let r = run("eth-whale-2025-03-12");
    assert_passed(&r);
    let t = &r.truth[0];
    assert!(t.expectations[0].hit.as_ref().unwrap().lead_secs < 0);
    assert!(t.expectations[1].hit.as_ref().unwrap().lead_secs <= 60);
}

#[test]
fn jelly_critical_within_5_minutes() {
    let r = run("jelly-2025-03-26");
    assert_passed(&r);
    assert!(r.truth[0].expectations[0].hit.as_ref().unwrap().lead_secs <= 300);
}

#[test]
fn xpl_critical_within_2_minutes() {
    let r = run("xpl-2025-08-26");
    assert_passed(&r);
    assert!(r.truth[0].expectations[0].hit.as_ref().unwrap().lead_secs <= 120);
}

#[test]
fn calm_fortnight_zero_critical_at_most_three_high() {
    let r = run("calm-2025-06-01-14");
    assert_passed(&r);
    let q = r.quiet.as_ref().unwrap();
    assert_eq!(q.critical, 0);
    assert!(q.high <= 3);
}

/// Six outside venues at one resolution over the calm fortnight: the venue-disagreement and
/// oracle rules see real venue prices and stay within the quiet budget.
#[test]
fn calm_fortnight_with_six_venues_zero_critical_at_most_three_high() {
    let r = run("calm-venues-2025-06-01-14");
    assert_passed(&r);
    let q = r.quiet.as_ref().unwrap();
    assert_eq!(q.critical, 0);
    assert!(q.high <= 3);
    assert!(r.events > 80_000, "{} events", r.events);
}

#[test]
fn backtest_output_is_byte_identical_across_runs() {
    let a = run("xpl-2025-08-26");
    let b = run("xpl-2025-08-26");
    assert_eq!(a.render_text(), b.render_text());
    assert_eq!(a.render_svg(), b.render_svg());
}

/// The reports committed under docs/backtests are exactly what the engine produces now: a
/// detection change that moves any figure fails here until the reports are regenerated
/// (`KAMIYO_BLESS=1 cargo test -p kamiyo-monitors --test it committed`) and reviewed.
#[test]
fn committed_reports_are_byte_identical_to_a_fresh_run() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/backtests");
    let bless = std::env::var_os("KAMIYO_BLESS").is_some();
    let mut stale = Vec::new();
    for n in [
        "eth-whale-2025-03-12",
        "jelly-2025-03-26",
        "xpl-2025-08-26",
        "calm-2025-06-01-14",
        "calm-venues-2025-06-01-14",
        "synthetic-venue-dislocation",
    ] {
        let r = run(n);
        for (ext, fresh) in [("txt", r.render_text()), ("svg", r.render_svg())] {
            let path = docs.join(format!("{n}.{ext}"));
            if bless {
                std::fs::write(&path, &fresh).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != fresh {
                stale.push(format!("{}\n--- fresh ---\n{fresh}", path.display()));
            }
        }
    }
    assert!(stale.is_empty(), "stale reports:\n{}", stale.join("\n"));
}
