//! `kamiyo-hyperliquid replay <scenario>`: streams the scenario through the engine at a chosen
//! speed, printing each incident step as it happens — the live pipeline on recorded data.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;
use kamiyo_aggregators::replay::{ReplaySource, Scenario, Speed};
use kamiyo_core_models::{Clock, Coin, IncidentChange, ManualClock, MarketDataStream, Timestamp};
use kamiyo_monitors::{Engine, MonitorsConfig};

use super::{resolve_scenario, write_file};

/// Runs the replay.
pub async fn run(
    scenario: &str,
    speed: &str,
    dump: Option<PathBuf>,
    config: &MonitorsConfig,
) -> anyhow::Result<()> {
    let dir = resolve_scenario(scenario)?;
    let s = Scenario::load(&dir).with_context(|| format!("loading scenario {}", dir.display()))?;
    let speed = Speed::parse(speed).with_context(|| {
        format!("--speed {speed:?}: expected realtime, max, or a factor such as 60x")
    })?;
    if let Some(path) = dump {
        let mut text = String::with_capacity(s.events.len() * 160);
        for e in &s.events {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
        write_file(&path, &text)?;
    }
    let mut engine = Engine::new(config)?;
    engine
        .state_mut()
        .set_reference_max_age_ms(s.stale_after_ms());
    let clock = Arc::new(ManualClock::new(s.manifest.scenario.start));
    let mut stream = Box::new(ReplaySource::from_scenario(&s, speed, clock.clone())).into_stream();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "replaying {} [{}], {} events",
        s.manifest.scenario.name,
        s.manifest.scenario.provenance.label(),
        s.events.len()
    )?;
    let mut steps = 0;
    while let Some(e) = stream.next().await {
        for u in engine.process(&e).updates {
            if u.event.change != IncidentChange::Updated {
                steps += 1;
                writeln!(
                    out,
                    "{}  {:<9} {:<8} {:<24} {:<7} {}",
                    u.event.time,
                    u.event.change.as_str(),
                    u.event.severity.as_str(),
                    u.event.threat_type.as_str(),
                    u.event.asset.as_ref().map_or("-", Coin::as_str),
                    u.event.title
                )?;
            }
        }
    }
    let end: Timestamp = s.manifest.scenario.end;
    for u in engine.finish(end).updates {
        steps += 1;
        writeln!(
            out,
            "{}  {:<9} {:<8} {:<24} {:<7} {}",
            u.event.time,
            u.event.change.as_str(),
            u.event.severity.as_str(),
            u.event.threat_type.as_str(),
            u.event.asset.as_ref().map_or("-", Coin::as_str),
            u.event.title
        )?;
    }
    writeln!(out, "{steps} incident steps; clock at {}", clock.now())?;
    Ok(())
}
