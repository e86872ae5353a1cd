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

#[test]
fn backtest_output_is_byte_identical_across_runs() {
    let a = run("xpl-2025-08-26");
    let b = run("xpl-2025-08-26");
    assert_eq!(a.render_text(), b.render_text());
    assert_eq!(a.render_svg(), b.render_svg());
}

#[test]
fn print_reports_for_inspection() {
    for n in [
        "eth-whale-2025-03-12",
        "jelly-2025-03-26",
        "xpl-2025-08-26",
        "calm-2025-06-01-14",
    ] {
        println!("{}", run(n).render_text());
    }
}
