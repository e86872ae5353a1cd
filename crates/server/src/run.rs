//! `kamiyo-hyperliquid run`: the live pipeline — sources → engine → (store, alerts, API) — with
//! graceful shutdown on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use kamiyo_aggregators::aggregate::Staleness;
use kamiyo_aggregators::clock::ExchangeClock;
use kamiyo_aggregators::hyperliquid::budget::WeightBudget;
use kamiyo_aggregators::hyperliquid::rest::InfoClient;
use kamiyo_aggregators::live::{LiveConfig, LiveSource};
use kamiyo_core_models::{Clock, IncidentChange, MarketDataStream, PriceSource, SystemClock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The reference venues the configuration enables (`[references]`), each as a price source
/// (its socket with REST as the fallback where configured); sockets run until `cancel`.
pub fn reference_sources(
    cfg: &Config,
    clock: Arc<dyn Clock>,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<Arc<dyn PriceSource>>> {
    let timeout = Duration::from_secs(10);
    let mut refs: Vec<Arc<dyn PriceSource>> = Vec::new();
    for (name, v) in cfg.references.venues() {
        if !v.enabled {
            continue;
        }
        let ep = kamiyo_aggregators::sources::VenueEndpoints {
            rest_url: v.url.clone(),
            ws_url: v.websocket.then(|| v.ws_url.clone()),
            timeout,
        };
        match kamiyo_aggregators::sources::reference_source(name, &ep, clock.clone(), cancel) {
            Some(src) => refs.push(src?),
            None => tracing::warn!(
                venue = name,
                "this build has no client for the venue (cargo feature off); skipped"
            ),
        }
    }
    Ok(refs)
}

/// Builds the live source from the configuration.
pub fn live_source(
    cfg: &Config,
    clock: Arc<dyn Clock>,
    exchange_clock: Option<Arc<ExchangeClock>>,
    resume_from: std::collections::BTreeMap<
        kamiyo_core_models::Address,
        kamiyo_core_models::Timestamp,
    >,
    cancel: CancellationToken,
) -> anyhow::Result<LiveSource> {
    let h = &cfg.hyperliquid;
    let mut lc = LiveConfig::new(&h.rest_url, &h.ws_url, h.coins.clone(), h.hlp_vault);
    let refs = reference_sources(cfg, clock.clone(), &cancel)?;
    lc.references = refs;
    lc.reference_interval = Duration::from_secs(u64::from(cfg.references.interval_secs));
    lc.vault_interval = Duration::from_secs(u64::from(h.vault_interval_secs));
    lc.hlp_positions_interval = Duration::from_secs(u64::from(h.hlp_positions_interval_secs));
    lc.market_interval = Duration::from_secs(u64::from(h.market_interval_secs));
    lc.whale_interval = Duration::from_secs(u64::from(h.whale_interval_secs));
    lc.whale_count = h.whale_count as usize;
    lc.watch = h.watch.clone();
    lc.staleness = Staleness {
        stale_after_ms: i64::from(h.stale_after_secs) * 1000,
        down_after_ms: i64::from(h.down_after_secs) * 1000,
    };
    lc.reference_staleness = Staleness {
        stale_after_ms: i64::from(cfg.monitors.oracle.reference_max_age_secs) * 1000,
        down_after_ms: i64::from(h.down_after_secs) * 1000,
    };
    lc.budget = Arc::new(WeightBudget::new(
        h.weight_per_minute,
        60_000,
        Duration::from_secs(30),
    ));
    lc.exchange_clock = exchange_clock;
    lc.resume_from = resume_from;
    Ok(LiveSource::new(lc, clock, cancel))
}

/// What a live pipeline runs: the engine with the incidents the store left open, and the live
/// stream resuming fills from the stored cursors.
pub async fn live_inputs(
    cfg: &Config,
    store: &kamiyo_store::Store,
    model: Option<&Arc<kamiyo_ml::AnomalyModelFile>>,
    clock: Arc<dyn Clock>,
    exchange_clock: Option<Arc<ExchangeClock>>,
    cancel: CancellationToken,
) -> anyhow::Result<(kamiyo_monitors::Engine, kamiyo_core_models::EventStream)> {
    let mut engine = crate::storage::engine(cfg, model)?;
    restore_open_incidents(store, &mut engine, clock.now()).await?;
    let resume = crate::writer::fill_resume_points(store).await?;
    if !resume.is_empty() {
        tracing::info!(
            users = resume.len(),
            "resuming fills from the stored cursors"
        );
    }
    let stream = Box::new(live_source(cfg, clock, exchange_clock, resume, cancel)?).into_stream();
    Ok((engine, stream))
}

/// The clock of the run: the wall clock, or the exchange's reported time (read once at start
/// from `clearinghouseState.time`, then fed by every timestamp the exchange sends).
pub async fn make_clock(cfg: &Config) -> (Arc<dyn Clock>, Option<Arc<ExchangeClock>>) {
    if cfg.hyperliquid.clock != "exchange" {
        return (Arc::new(SystemClock), None);
    }
    let budget = Arc::new(WeightBudget::hyperliquid(Duration::from_secs(5)));
    let mut start = None;
    if let Ok(c) = InfoClient::new(&cfg.hyperliquid.rest_url, budget, Duration::from_secs(5)) {
        for attempt in 0..30u32 {
            match c
                .clearinghouse_state(cfg.hyperliquid.hlp_vault, SystemClock.now())
                .await
            {
                Ok(s) => {
                    start = Some(s.time);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "waiting for the exchange to report its time");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
    let start = start.unwrap_or_else(|| {
        tracing::warn!(
            "the exchange did not report its time; starting the exchange clock at wall time"
        );
        SystemClock.now()
    });
    tracing::info!(clock.start = %start, clock.speed = cfg.hyperliquid.exchange_clock_speed, "using the exchange clock");
    let c = Arc::new(ExchangeClock::new(
        start,
        cfg.hyperliquid.exchange_clock_speed,
        2_000.0,
    ));
    (c.clone(), Some(c))
}

/// Continues the incidents a previous run left open (one per key across restarts; copies left
/// by older runs are resolved and stored as such).
pub async fn restore_open_incidents(
    store: &kamiyo_store::Store,
    engine: &mut kamiyo_monitors::Engine,
    now: kamiyo_core_models::Timestamp,
) -> anyhow::Result<()> {
    use kamiyo_core_models::{IncidentQuery, IncidentStatus, IncidentStore};
    let open = store
        .incidents(&IncidentQuery {
            protocol: Some(engine.protocol().clone()),
            status: Some(IncidentStatus::Open),
            asset: None,
            seen_since: None,
            limit: 100_000,
        })
        .await?;
    let n = open.len();
    let closed = engine.restore_incidents(open, now);
    if !closed.is_empty() {
        store.record_updates(&closed).await?;
    }
    if n > 0 {
        tracing::info!(
            restored = n - closed.len(),
            duplicates_resolved = closed.len(),
            "open incidents of the previous run restored"
        );
    }
    Ok(())
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    kamiyo_aggregators::install_crypto_provider();
    let cancel = CancellationToken::new();
    let (_meter_provider, registry) = crate::telemetry::init_metrics()?;
    let store = crate::storage::open_store(&cfg).await?;
    crate::telemetry::pipeline::watch_pool(store.clone());
    crate::storage::check_key_policy(&cfg, &store).await?;
    let (clock, exchange_clock) = make_clock(&cfg).await;
    let hub = kamiyo_api::Hub::new(cfg.server.ws_buffer as usize);
    let model = crate::storage::anomaly_model(&cfg)?;
    let state = crate::storage::api_state(
        &cfg,
        &store,
        hub.clone(),
        clock.clone(),
        Some(registry),
        model.clone(),
    );
    let app =
        crate::Application::build(cfg.server.bind, cfg.server.workers as usize, state.clone())?;
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    tracing::info!(http.addr = %app.addr(), hyperliquid.rest = %cfg.hyperliquid.rest_url, hyperliquid.ws = %cfg.hyperliquid.ws_url, coins = cfg.hyperliquid.coins.len(), "kamiyo-hyperliquid starting");
    let (engine, stream) = live_inputs(
        &cfg,
        &store,
        model.as_ref(),
        clock.clone(),
        exchange_clock,
        cancel.clone(),
    )
    .await?;
    let alerts = crate::storage::start_alerts(&cfg, &store).await?;
    let wake = alerts.as_ref().map(|a| a.handle.clone());
    let ctx = pipeline_context(
        &cfg,
        &store,
        &hub,
        wake.clone(),
        clock.clone(),
        cancel.clone(),
    );
    let running = kamiyo_pipeline::spawn(
        &ctx,
        engine,
        stream,
        Box::new(ServerObserver::new(cfg.hyperliquid.hlp_vault)),
    )?;
    let _ = state.hooks.set(std::sync::Arc::new(PipelineHooks {
        forget: Some(running.forgetter()),
        alerts: wake,
    }));
    let retention = tokio::spawn(crate::storage::retention_job(
        store.clone(),
        crate::storage::retention(&cfg),
        clock.clone(),
        Duration::from_secs(u64::from(cfg.database.retention_interval_secs)),
        cancel.clone(),
    ));
    let kamiyo_pipeline::Running {
        runner, consumer, ..
    } = running;
    let handle = app.handle();
    let server = tokio::spawn(app.run());
    let mut runner = runner;
    // The feed tasks restart themselves (supervised); if the pipeline as a whole stops, the
    // process must not go on serving stale data: it shuts down cleanly and exits non-zero so
    // the service manager restarts it.
    let failure = tokio::select! {
        () = shutdown_signal() => None,
        r = &mut runner => Some(match r {
            Ok(_) => "the market-data stream ended".to_owned(),
            Err(e) => format!("the engine task failed: {e}"),
        }),
    };
    match &failure {
        None => tracing::info!("shutting down"),
        Some(why) => tracing::error!(reason = %why, "pipeline stopped; shutting down"),
    }
    cancel.cancel();
    handle.stop(true).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(u64::from(cfg.server.shutdown_timeout_secs)),
        async {
            if failure.is_none() {
                let _ = runner.await;
            }
            let _ = consumer.await;
            let _ = retention.await;
        },
    )
    .await;
    if let Some(a) = alerts {
        a.shutdown(Duration::from_secs(u64::from(
            cfg.server.shutdown_timeout_secs,
        )))
        .await;
    }
    let _ = server.await;
    match failure {
        None => Ok(()),
        Some(why) => Err(anyhow::anyhow!("{why}")),
    }
}

/// What an operator's change to an incident sets off: the engine forgets an incident resolved
/// by hand, and the alert router routes the steps the API committed.
#[derive(Debug)]
pub struct PipelineHooks {
    /// To the engine's runner (none when no engine runs, e.g. serving a stored replay).
    pub forget: Option<mpsc::UnboundedSender<kamiyo_core_models::StableId>>,
    /// The alert service.
    pub alerts: Option<kamiyo_alerts::AlertHandle>,
}

impl kamiyo_api::operator::IncidentHooks for PipelineHooks {
    fn recorded(&self) {
        if let Some(a) = &self.alerts {
            a.wake();
        }
    }

    fn resolved(&self, id: &kamiyo_core_models::StableId) {
        if let Some(f) = &self.forget {
            let _ = f.send(id.clone());
        }
    }
}

/// The pipeline context of the self-hosted server: its store, the `/ws` hub and the alert
/// service as outputs, and the configured batching.
pub fn pipeline_context(
    cfg: &Config,
    store: &kamiyo_store::Store,
    hub: &kamiyo_api::Hub,
    alerts: Option<kamiyo_alerts::AlertHandle>,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> kamiyo_pipeline::PipelineContext {
    let mut ctx = kamiyo_pipeline::PipelineContext::new(
        kamiyo_core_models::ProtocolId::HYPERLIQUID,
        clock,
        Arc::new(store.clone()),
        cancel,
    )
    .with_output(Arc::new(HubOutput(hub.clone())));
    if let Some(a) = alerts {
        ctx = ctx.with_output(Arc::new(a));
    }
    ctx.batch = kamiyo_pipeline::BatchPolicy {
        max_rows: cfg.database.batch_max_rows as usize,
        max_delay: Duration::from_millis(u64::from(cfg.database.batch_max_delay_ms)),
    };
    ctx
}

/// The `/ws` hub as a pipeline output: committed events and feed statuses go to subscribers.
#[derive(Debug)]
pub struct HubOutput(pub kamiyo_api::Hub);

impl kamiyo_pipeline::Output for HubOutput {
    fn committed(&self, stored: &[kamiyo_core_models::StoredEvent]) {
        self.0.publish_events(stored);
    }

    fn feed(&self, status: &kamiyo_core_models::FeedStatus) {
        self.0.publish_feed(status.clone());
    }
}

/// The server's view of the pipeline: logs of incident steps and feed changes, the incident
/// and market gauges, the commit metrics.
pub struct ServerObserver {
    gauge: crate::telemetry::pipeline::IncidentGauge,
    market: crate::telemetry::market::MarketGauges,
    feed_states: std::collections::HashMap<String, kamiyo_core_models::FeedState>,
}

impl ServerObserver {
    /// An observer exporting the market gauges of the HLP vault `hlp`.
    pub fn new(hlp: kamiyo_core_models::Address) -> Self {
        Self {
            gauge: crate::telemetry::pipeline::IncidentGauge::default(),
            market: crate::telemetry::market::MarketGauges::new(hlp),
            feed_states: std::collections::HashMap::new(),
        }
    }
}

impl kamiyo_pipeline::Observer for ServerObserver {
    fn event(&mut self, e: &kamiyo_core_models::MarketEvent) {
        self.market.event(e);
        if let kamiyo_core_models::MarketEvent::Feed(f) = e {
            // Logged on a change of state, not on the periodic data-time refresh.
            if self.feed_states.insert(f.feed.clone(), f.state) != Some(f.state) {
                log_feed(f);
            }
        }
    }

    fn output(&mut self, o: &kamiyo_monitors::EngineOutput) {
        log_steps(&o.updates);
        self.gauge.record(&o.updates);
        self.market.output(o);
    }

    fn commit(&mut self, elapsed: Duration, rows: usize, ok: bool) {
        crate::telemetry::pipeline::commit(elapsed, rows, ok);
    }
}

/// A feed coming (back) to LIVE; STALE and DOWN are logged as feed-health incidents.
fn log_feed(f: &kamiyo_core_models::FeedStatus) {
    if f.state == kamiyo_core_models::FeedState::Live {
        tracing::info!(feed = %f.feed, "feed LIVE");
    }
}

fn log_steps(updates: &[kamiyo_core_models::IncidentUpdate]) {
    for u in updates {
        if u.event.change != IncidentChange::Updated {
            tracing::warn!(
                incident.id = %u.incident.id,
                incident.change = u.event.change.as_str(),
                alert.severity = u.event.severity.as_str(),
                threat.type = u.event.threat_type.as_str(),
                asset = u.event.asset.as_ref().map_or("-", |c| c.as_str()),
                "{}", u.event.title
            );
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
