//! Replays a scenario through the library API and collects incidents in memory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kamiyo_aggregators::replay::{ReplaySource, Scenario, Speed};
use kamiyo_core_models::{Incident, ManualClock, MarketDataStream, StableId, Timestamp};
use kamiyo_monitors::{Engine, MonitorsConfig, runner};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/jelly-2025-03-26"),
        PathBuf::from,
    );
    let scenario = Scenario::load(&dir)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} ({}): {} events",
        scenario.manifest.scenario.name,
        scenario.manifest.scenario.provenance.label(),
        scenario.events.len()
    )?;

    // The engine the server runs, with default thresholds.
    let mut engine = Engine::new(&MonitorsConfig::default())?;
    engine
        .state_mut()
        .set_reference_max_age_ms(scenario.stale_after_ms());

    // Event time drives everything: the replay advances this clock to each event's time.
    let clock = Arc::new(ManualClock::new(Timestamp(0)));
    let source = Box::new(ReplaySource::from_scenario(
        &scenario,
        Speed::AsFastAsPossible,
        clock.clone(),
    ));
    let (tx, mut rx) = mpsc::channel(1024);
    let engine_task = tokio::spawn(runner::run(
        engine,
        source.into_stream(),
        clock,
        Duration::from_secs(1),
        false,
        tx,
        None,
        CancellationToken::new(),
    ));

    // Collect: the latest state of every incident, by id.
    let mut incidents: BTreeMap<StableId, Incident> = BTreeMap::new();
    while let Some(item) = rx.recv().await {
        for u in item.output.updates {
            incidents.insert(u.incident.id.clone(), u.incident);
        }
    }
    engine_task.await?;

    writeln!(out, "{} incidents:", incidents.len())?;
    let mut by_time: Vec<&Incident> = incidents.values().collect();
    by_time.sort_by_key(|i| (i.first_seen, i.id.clone()));
    for i in &by_time {
        // The peak severity with the title it had then would need the step history; the
        // latest title is labelled as such, so the two are never read as one.
        writeln!(
            out,
            "  {}  peak {:<8}  {:<24}  latest: {}",
            i.first_seen,
            i.peak_severity.as_str(),
            i.threat_type.as_str(),
            i.title
        )?;
    }

    // Against the ground truth.
    for t in &scenario.truth.incident {
        for e in &t.expect {
            // Early is good; late only within the allowance; never before `not_before`.
            let deadline = match (e.before_start, e.within_secs) {
                (true, _) => t.start,
                (false, Some(s)) => t.start.plus_millis(s * 1000),
                (false, None) => t.end,
            };
            let hit = by_time.iter().find(|i| {
                e.threat_types.contains(&i.threat_type)
                    && i.peak_severity >= e.min_severity
                    && e.not_before.is_none_or(|nb| i.first_seen >= nb)
                    && i.first_seen <= deadline
                    && (t.asset.is_none() || i.asset == t.asset)
            });
            match hit {
                Some(i) => writeln!(
                    out,
                    "truth {}: {} {} — first alert {:+} s from the incident start",
                    t.id,
                    e.min_severity.as_str(),
                    i.threat_type.as_str(),
                    i.first_seen.millis_since(t.start) / 1000
                )?,
                None => writeln!(
                    out,
                    "truth {}: MISSED ({:?} at {})",
                    t.id,
                    e.threat_types
                        .iter()
                        .map(|x| x.as_str())
                        .collect::<Vec<_>>(),
                    e.min_severity.as_str()
                )?,
            }
        }
    }
    Ok(())
}
