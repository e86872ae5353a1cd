//! `kamiyo-hyperliquid backtest <scenario>`: the scenario through the real engine, compared with
//! its ground truth; prints the report and writes it with an SVG plot.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use kamiyo_aggregators::replay::Scenario;
use kamiyo_monitors::{MonitorsConfig, backtest};

use super::{Progress, resolve_scenario, write_file};

/// Runs the backtest. Returns whether the ground truth was met.
pub fn run(
    scenario: &str,
    out_dir: Option<PathBuf>,
    config: &MonitorsConfig,
) -> anyhow::Result<bool> {
    let dir = resolve_scenario(scenario)?;
    let s = Scenario::load(&dir).with_context(|| format!("loading scenario {}", dir.display()))?;
    let mut bar = Progress::new(&s.manifest.scenario.name);
    let report = backtest::run(&s, config, |done, total| bar.update(done, total))?;
    let text = report.render_text();
    let out_dir = out_dir.unwrap_or_else(|| PathBuf::from("backtest-out"));
    let txt = out_dir.join(format!("{}.txt", report.scenario));
    let svg = out_dir.join(format!("{}.svg", report.scenario));
    write_file(&txt, &text)?;
    write_file(&svg, &report.render_svg())?;
    let mut out = std::io::stdout().lock();
    write!(out, "{text}")?;
    writeln!(out, "wrote {} and {}", txt.display(), svg.display())?;
    Ok(report.passed())
}
