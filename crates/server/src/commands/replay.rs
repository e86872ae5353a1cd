//! `kamiyo-hyperliquid replay <scenario>`: streams the scenario through the engine at a chosen
//! speed, printing each incident step as it happens — the live pipeline on recorded data.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures_util::StreamExt;
use kamiyo_aggregators::replay::{ReplaySource, Scenario, Speed};
use kamiyo_core_models::{
    Clock, Coin, IncidentChange, ManualClock, MarketDataStream, MarketEvent, MarketStore, Timestamp,
};

use super::{resolve_scenario, write_file};

/// Where a replay's output goes.
#[derive(Debug)]
pub struct StoreTarget {
    /// The open, migrated store.
    pub store: kamiyo_store::Store,
    /// Rows per transaction.
    pub batch_max_rows: usize,
    /// Longest a row waits before commit.
    pub batch_max_delay: std::time::Duration,
    /// Also serve the API, `/ws` and the dashboard (on the replay's clock) with this
    /// configuration, and keep serving after the replay until SIGINT/SIGTERM.
    pub serve: Option<crate::config::Config>,
    /// Deliver alerts for the stored incident steps through the channels of this
    /// configuration (when it has any), and wait for the outbox to drain before returning.
    pub alerts: Option<crate::config::Config>,
    /// When serving, start the replay only once a viewer (a `/ws` client, such as an open
    /// dashboard) is connected, so nobody misses its beginning.
    pub wait_for_viewer: bool,
}

/// The cursor a stored replay of `scenario` resumes from: the number of events whose output is
/// committed.
pub fn cursor_name(scenario: &str) -> String {
    format!("replay:{scenario}")
}

/// Runs the replay. With a store, every incident step and observation is written in batches
/// committed together with the replay cursor; a rerun after a crash warms the engine on the
/// already-committed prefix (writing nothing) and continues from the cursor, so the stored
/// result equals an uninterrupted run's.
pub async fn run(
    scenario: &str,
    speed: &str,
    dump: Option<PathBuf>,
    config: &crate::config::Config,
    target: Option<StoreTarget>,
) -> anyhow::Result<()> {
    let dir = resolve_scenario(scenario)?;
    let s = Scenario::load(&dir).with_context(|| format!("loading scenario {}", dir.display()))?;
    let speed = Speed::parse(speed).with_context(|| {
        format!("--speed {speed:?}: expected realtime, max, or a factor such as 60x")
    })?;
    let mut events = s.events.clone();
    events.sort_by_key(MarketEvent::time);
    if let Some(path) = dump {
        let mut text = String::with_capacity(events.len() * 160);
        for e in &events {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
        write_file(&path, &text)?;
    }
    let name = s.manifest.scenario.name.clone();
    let cursor = cursor_name(&name);
    let total = events.len();
    // The same engine as `run`: the rules, plus the anomaly model and the risk forecast when
    // configured.
    let model = crate::storage::anomaly_model(config)?;
    let mut engine = crate::storage::engine(config, model.as_ref())?;
    engine
        .state_mut()
        .set_reference_max_age_ms(s.stale_after_ms());
    let mut replay = kamiyo_pipeline::Replay::new(engine);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "replaying {name} [{}], {total} events",
        s.manifest.scenario.provenance.label(),
    )?;
    let hub = kamiyo_api::Hub::default();
    let mut serve_cfg = None;
    let target_waits = target.as_ref().is_some_and(|t| t.wait_for_viewer);
    let mut complete = false;
    let mut done = 0usize;
    let mut alerts = None;
    if let Some(t) = target {
        if let Some(cfg) = &t.alerts {
            alerts = crate::storage::start_alerts(cfg, &t.store)
                .await?
                .map(|a| (a, cfg.server.shutdown_timeout_secs));
        }
        let committed = t.store.cursor(&cursor).await?;
        done = match committed.as_deref() {
            None => 0,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= total + 1)
                .with_context(|| format!("cursor {cursor} holds {v:?}, not an event count"))?,
        };
        if done > total {
            if t.serve.is_none() {
                writeln!(out, "already stored completely in {}", t.store.location())?;
                drain_alerts(&mut out, alerts).await?;
                return Ok(());
            }
            // Serve what is stored rather than exit: the dashboard and the API read the store.
            writeln!(
                out,
                "already stored completely in {}; serving what is stored (remove the data directory to replay afresh)",
                t.store.location()
            )?;
            complete = true;
        }
        if done > 0 && !complete {
            writeln!(
                out,
                "resuming after {done} committed events (warming the engine)"
            )?;
            replay.warm(&events[..done]);
        }
        // The same store → outputs path as `run`: the /ws hub and the alert service hear of
        // each commit only after it.
        let mut ctx = kamiyo_pipeline::PipelineContext::new(
            replay.engine().protocol().clone(),
            Arc::new(ManualClock::new(s.manifest.scenario.start)),
            Arc::new(t.store.clone()),
            tokio_util::sync::CancellationToken::new(),
        )
        .with_output(Arc::new(crate::run::HubOutput(hub.clone())));
        if let Some((a, _)) = &alerts {
            ctx = ctx.with_output(Arc::new(a.handle.clone()));
        }
        ctx.batch = kamiyo_pipeline::BatchPolicy {
            max_rows: t.batch_max_rows,
            max_delay: t.batch_max_delay,
        };
        // Served replays export the market gauges too (on the replay's clock).
        let observer = ReplayObserver {
            market: t
                .serve
                .is_some()
                .then(|| crate::telemetry::market::MarketGauges::new(config.hyperliquid.hlp_vault)),
        };
        let committer = kamiyo_pipeline::Committer::new(&ctx, Box::new(observer));
        replay = replay.committing(committer, cursor.clone());
        serve_cfg = t.serve.map(|c| (c, t.store));
    }
    let start = if complete {
        s.manifest.scenario.end
    } else {
        events
            .get(done)
            .map_or(s.manifest.scenario.start, MarketEvent::time)
    };
    let clock = Arc::new(ManualClock::new(start));
    // Incidents an operator resolves from the served API: the engine forgets them.
    let (forget_tx, mut forget_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = match serve_cfg {
        None => None,
        Some((cfg, store)) => {
            crate::storage::check_key_policy(&cfg, &store).await?;
            let (provider, registry) = crate::telemetry::init_metrics()?;
            let state = crate::storage::api_state(
                &cfg,
                &store,
                hub.clone(),
                clock.clone(),
                Some(registry),
                None,
            );
            let _ = state.hooks.set(Arc::new(crate::run::PipelineHooks {
                forget: (!complete).then(|| forget_tx.clone()),
                alerts: alerts.as_ref().map(|(a, _)| a.handle.clone()),
            }));
            let app =
                crate::Application::build(cfg.server.bind, cfg.server.workers as usize, state)?;
            writeln!(out, "serving the dashboard at http://{}/", app.addr())?;
            out.flush()?;
            let handle = app.handle();
            Some((tokio::spawn(app.run()), handle, provider))
        }
    };
    // One Ctrl-C (or SIGTERM) stops everything: the replay (its progress committed, so the
    // next `replay` resumes), the HTTP server and the alert service.
    let signal = crate::run::shutdown_signal();
    tokio::pin!(signal);
    let mut interrupted = false;
    let wait = server.is_some() && target_waits && !complete;
    if wait {
        writeln!(
            out,
            "waiting for a viewer: open the dashboard (or connect to /ws) to start the replay"
        )?;
        out.flush()?;
        let viewer = async {
            while hub.subscribers() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        tokio::select! {
            () = viewer => {
                writeln!(out, "viewer connected; replaying")?;
                out.flush()?;
            }
            () = &mut signal => interrupted = true,
        }
    }
    // The replay is this run's only feed: report it like one.
    let feed = |state, detail: String| kamiyo_core_models::FeedStatus {
        feed: format!("replay:{name}"),
        state,
        changed_at: clock.now(),
        last_data_at: Some(clock.now()),
        detail,
    };
    hub.publish_feed(feed(
        kamiyo_core_models::FeedState::Live,
        format!("{} scenario", s.manifest.scenario.provenance.label()),
    ));
    let rest: Vec<MarketEvent> = if complete {
        Vec::new()
    } else {
        events.split_off(done)
    };
    let mut stream = Box::new(ReplaySource::new(&name, rest, speed, clock.clone())).into_stream();
    let mut steps = 0;
    while !interrupted {
        let e = tokio::select! {
            biased;
            () = &mut signal => {
                interrupted = true;
                break;
            }
            e = stream.next() => e,
        };
        let Some(e) = e else { break };
        while let Ok(id) = forget_rx.try_recv() {
            replay.forget_incident(&id);
        }
        let updates = replay.step(&e).await?;
        steps += print_steps(&mut out, &updates, false)?;
    }
    let end: Timestamp = s.manifest.scenario.end;
    if interrupted {
        replay.commit().await?;
        writeln!(
            out,
            "interrupted after {} of {total} events{}",
            replay.position(),
            if replay.is_committing() {
                "; progress is stored and the next `replay` of this scenario resumes"
            } else {
                ""
            }
        )?;
    } else if !complete {
        let updates = replay.finish(end).await?;
        steps += print_steps(&mut out, &updates, true)?;
    }
    hub.publish_feed(feed(
        kamiyo_core_models::FeedState::Stale,
        "replay finished".to_owned(),
    ));
    writeln!(out, "{steps} incident steps; clock at {}", clock.now())?;
    drain_alerts(&mut out, alerts).await?;
    if let Some((task, handle, _provider)) = server {
        if !interrupted {
            writeln!(out, "replay done; still serving (Ctrl-C to stop)")?;
            out.flush()?;
            (&mut signal).await;
        }
        handle.stop(true).await;
        let _ = task.await;
    }
    Ok(())
}

/// What a replay exports while it runs: commit metrics, and the market gauges when served.
struct ReplayObserver {
    market: Option<crate::telemetry::market::MarketGauges>,
}

impl kamiyo_pipeline::Observer for ReplayObserver {
    fn event(&mut self, e: &MarketEvent) {
        if let Some(m) = self.market.as_mut() {
            m.event(e);
        }
    }

    fn output(&mut self, o: &kamiyo_monitors::EngineOutput) {
        if let Some(m) = self.market.as_mut() {
            m.output(o);
        }
    }

    fn commit(&mut self, elapsed: std::time::Duration, rows: usize, ok: bool) {
        crate::telemetry::pipeline::commit(elapsed, rows, ok);
    }
}

/// Waits for every alert of the stored steps to be delivered (or the shutdown timeout), then
/// stops the alert service; undelivered alerts stay in the outbox for the next run.
async fn drain_alerts(
    out: &mut impl Write,
    alerts: Option<(crate::storage::Alerts, u32)>,
) -> anyhow::Result<()> {
    let Some((a, timeout_secs)) = alerts else {
        return Ok(());
    };
    let timeout = std::time::Duration::from_secs(u64::from(timeout_secs.max(1)));
    let idle = a.handle.wait_idle(timeout).await;
    writeln!(
        out,
        "alerts: {} (channels: {})",
        if idle {
            "all delivered or recorded"
        } else {
            "some still pending; they stay in the outbox for the next run"
        },
        a.channels.join(", ")
    )?;
    a.shutdown(timeout).await;
    Ok(())
}

fn print_steps(
    out: &mut impl Write,
    updates: &[kamiyo_core_models::IncidentUpdate],
    all: bool,
) -> std::io::Result<usize> {
    let mut n = 0;
    for u in updates {
        if all || u.event.change != IncidentChange::Updated {
            n += 1;
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
    Ok(n)
}
