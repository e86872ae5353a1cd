//! Opening the configured store and the background retention job.

use std::time::Duration;

use kamiyo_core_models::Clock;
use kamiyo_store::Store;
use kamiyo_store::retention::Retention;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Connects to the configured database (PostgreSQL at `database.url`, else the SQLite file in
/// `server.data_dir`) and runs pending migrations.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let store = connect(cfg).await?;
    let ran = store.migrate().await?;
    tracing::info!(store.backend = ?store.backend(), store.location = store.location(), migrations.applied = ran, "store ready");
    if cfg.database.url.is_empty() && kamiyo_store::world_accessible(&cfg.server.data_dir) {
        tracing::warn!(
            data_dir = %cfg.server.data_dir.display(),
            "the data directory can be read by other users of this machine (chmod 700 it, or choose another server.data_dir); kamiyo does not change the mode of a directory it did not create"
        );
    }
    seed_exploits(&store).await?;
    Ok(store)
}

/// Fills an empty exploit database from the lists embedded in this build (DeFiLlama's and
/// DeFiHackLabs', merged); `exploits refresh` replaces them with the public sources' current
/// lists. Returns how many rows it wrote (none when the database already has some).
pub async fn seed_exploits(store: &Store) -> anyhow::Result<usize> {
    use kamiyo_core_models::{ExploitQuery, ExploitStore};
    let have = store
        .exploits(&ExploitQuery {
            limit: 1,
            ..ExploitQuery::default()
        })
        .await?;
    if have.total > 0 {
        return Ok(0);
    }
    let all = kamiyo_aggregators::exploits::embedded()?;
    let n = store.replace_exploits(&all).await?;
    tracing::info!(
        exploits = n,
        "exploit database seeded from the embedded lists"
    );
    Ok(n)
}

/// Connects without migrating.
pub async fn connect(cfg: &Config) -> anyhow::Result<Store> {
    let d = &cfg.database;
    Ok(Store::connect(&d.url, &cfg.server.data_dir, d.max_connections).await?)
}

/// The retention settings of the configuration.
pub fn retention(cfg: &Config) -> Retention {
    Retention {
        days: cfg.database.retention_days,
        overrides: cfg.database.retention_overrides.clone(),
    }
}

/// Every `interval`, deletes expired rows slice by slice, pausing between slices so ingest
/// (which shares the write lock) never waits for more than one slice.
pub async fn retention_job(
    store: Store,
    r: Retention,
    clock: std::sync::Arc<dyn Clock>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        let mut deleted = 0usize;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match store.retention_pass(&r, clock.now()).await {
                Ok(pass) => {
                    let n: usize = pass.iter().map(|(_, n)| n).sum();
                    deleted += n;
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; retrying next interval");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if deleted > 0 {
            tracing::info!(rows.deleted = deleted, "retention");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Database readiness for `/ready`.
#[derive(Debug, Clone)]
pub struct StoreProbe(pub Store);

#[async_trait::async_trait]
impl kamiyo_api::Probe for StoreProbe {
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "database ping failed");
            "the database does not answer".to_owned()
        })
    }
}

/// The hosts the API answers to: the configured list, else the loopback names on a loopback
/// bind (with the bind address itself), else any host.
fn allowed_hosts(server: &crate::config::ServerSection) -> Option<Vec<String>> {
    if !server.allowed_hosts.is_empty() {
        return Some(server.allowed_hosts.clone());
    }
    if !server.bind.ip().is_loopback() {
        return None;
    }
    let mut hosts: Vec<String> = kamiyo_api::auth::LOOPBACK_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    hosts.push(server.bind.ip().to_string());
    Some(hosts)
}

/// The API's state over the store.
pub fn api_state(
    cfg: &Config,
    store: &Store,
    hub: kamiyo_api::Hub,
    clock: std::sync::Arc<dyn Clock>,
    registry: Option<prometheus::Registry>,
    anomaly_model: Option<std::sync::Arc<kamiyo_ml::AnomalyModelFile>>,
) -> actix_web::web::Data<kamiyo_api::ApiState> {
    use std::sync::Arc;
    let mut state = kamiyo_api::ApiState::new(
        kamiyo_api::ApiStores::single(store),
        Arc::new(StoreProbe(store.clone())),
        hub,
        clock,
        kamiyo_api::ApiConfig {
            require_keys: kamiyo_api::auth::keys_required_for(cfg.server.bind),
            rate_limit_per_minute: cfg.server.rate_limit_per_minute,
            cors_origins: cfg.server.cors_origins.clone(),
            allowed_hosts: allowed_hosts(&cfg.server),
            max_body_bytes: cfg.server.max_body_bytes as usize,
            hlp_vault: cfg.hyperliquid.hlp_vault,
        },
    );
    state.registry = registry;
    state.anomaly_model = anomaly_model;
    state.exploit_db = Some(Arc::new(store.clone()));
    state.auth_failures = kamiyo_api::auth::RateLimiter::new(cfg.server.failed_auth_per_minute);
    state.responses = kamiyo_api::cache::ResponseCache::new(std::time::Duration::from_millis(
        u64::from(cfg.server.response_cache_ms),
    ));
    state.shared()
}

/// Refuses to serve beyond loopback without an active API key.
pub async fn check_key_policy(cfg: &Config, store: &Store) -> anyhow::Result<()> {
    use kamiyo_core_models::ApiKeyStore;
    if !kamiyo_api::auth::keys_required_for(cfg.server.bind) {
        return Ok(());
    }
    let active = store
        .keys()
        .await?
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .count();
    if active == 0 {
        anyhow::bail!(
            "server.bind = {} is not a loopback address, so API keys are required, and no active key exists: create one with `kamiyo-hyperliquid keys create --name <who>` (or bind to 127.0.0.1)",
            cfg.server.bind
        );
    }
    tracing::info!(
        keys.active = active,
        "API keys required (bound beyond loopback)"
    );
    Ok(())
}

/// The running alert service.
#[derive(Debug)]
pub struct Alerts {
    /// Wake it after a commit; wait until idle.
    pub handle: kamiyo_alerts::AlertHandle,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// Configured channel names.
    pub channels: Vec<String>,
}

impl Alerts {
    /// Stops taking new work and waits up to `timeout` for deliveries in flight; what is still
    /// pending stays in the outbox for the next start.
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::warn!("alert deliveries still in flight at shutdown; they stay in the outbox");
        }
    }
}

/// Starts the alert service when alerts are enabled and at least one channel is configured.
/// Its routing cursor is fixed before this returns, so nothing committed afterwards is missed.
pub async fn start_alerts(cfg: &Config, store: &Store) -> anyhow::Result<Option<Alerts>> {
    if !cfg.alerts.enabled || cfg.alerts.channels.values().all(|c| !c.enabled) {
        return Ok(None);
    }
    let base = (!cfg.server.public_url.is_empty()).then(|| cfg.server.public_url.clone());
    let (mut svc, problems) = kamiyo_alerts::AlertService::new(
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(kamiyo_core_models::SystemClock),
        &cfg.alerts,
        base,
    );
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .iter()
            .map(|(c, m)| format!("alerts.channels.{c}: {m}"))
            .collect();
        anyhow::bail!("cannot start alert channels: {}", list.join("; "));
    }
    svc.init()
        .await
        .map_err(|e| anyhow::anyhow!("alert service: {e}"))?;
    let channels = svc.channel_names();
    tracing::info!(channels = ?channels, "alert delivery started");
    let handle = svc.handle();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(svc.run(rx));
    Ok(Some(Alerts {
        handle,
        stop,
        task,
        channels,
    }))
}

/// The configured anomaly model: `Ok(None)` when ML is off or no model file exists; an error
/// when a configured or present file cannot be used (wrong feature set, unreadable).
pub fn anomaly_model(
    cfg: &Config,
) -> anyhow::Result<Option<std::sync::Arc<kamiyo_ml::AnomalyModelFile>>> {
    if !cfg.ml.enabled {
        return Ok(None);
    }
    let path = if cfg.ml.anomaly_model.is_empty() {
        let p = cfg.server.data_dir.join("models/anomaly.json");
        if !p.is_file() {
            tracing::info!(path = %p.display(), "no anomaly model; train one with `kamiyo-hyperliquid ml train`");
            return Ok(None);
        }
        p
    } else {
        std::path::PathBuf::from(&cfg.ml.anomaly_model)
    };
    let model = crate::commands::ml::read_model(&path)?;
    let pinned = i64::from(cfg.ml.bar_secs) * 1000;
    if pinned != 0 && pinned != model.bar_ms {
        anyhow::bail!(
            "{}: the model scores {} s bars but ml.bar_secs = {}; set ml.bar_secs = 0 (take the model's) or {}",
            path.display(),
            model.bar_ms / 1000,
            cfg.ml.bar_secs,
            model.bar_ms / 1000
        );
    }
    tracing::info!(path = %path.display(), trained_on = %model.trained_on, rows = model.rows, threshold = model.threshold, "anomaly model loaded");
    Ok(Some(std::sync::Arc::new(model)))
}

/// The detectors of the self-hosted monitor: the built-in set, then — as configured — the
/// 24 h risk forecast, the anomaly model and the bar recorder, registered by name.
pub fn detector_registry(
    cfg: &Config,
    model: Option<&std::sync::Arc<kamiyo_ml::AnomalyModelFile>>,
) -> anyhow::Result<kamiyo_monitors::DetectorRegistry> {
    use kamiyo_monitors::Detector;
    let mut r = kamiyo_monitors::DetectorRegistry::builtin();
    if cfg.ml.enabled && cfg.ml.forecast_loss_usd > 0 {
        use kamiyo_monitors::detectors::forecast::{ForecastDetector, ForecastSettings};
        let loss_usd = cfg.ml.forecast_loss_usd as f64;
        r.register("risk_forecast", move |_| {
            Ok(Some(Box::new(ForecastDetector::new(ForecastSettings {
                loss_usd,
                ..ForecastSettings::default()
            })) as Box<dyn Detector>))
        })?;
    }
    if let Some(m) = model {
        let (cfg, m) = (cfg.clone(), m.clone());
        r.register("ml_anomaly", move |_| Ok(Some(anomaly_detector(&cfg, &m))))?;
    }
    if cfg.ml.record_bar_secs > 0 {
        let bar_ms = i64::from(cfg.ml.record_bar_secs) * 1000;
        r.register("bar_recorder", move |_| {
            Ok(Some(
                Box::new(kamiyo_monitors::detectors::bars::BarRecorder::new(bar_ms))
                    as Box<dyn Detector>,
            ))
        })?;
    }
    Ok(r)
}

/// The engine of `run` and `replay`: Hyperliquid, every detector of [`detector_registry`].
pub fn engine(
    cfg: &Config,
    model: Option<&std::sync::Arc<kamiyo_ml::AnomalyModelFile>>,
) -> anyhow::Result<kamiyo_monitors::Engine> {
    Ok(kamiyo_monitors::Engine::for_protocol(
        kamiyo_core_models::ProtocolId::HYPERLIQUID,
        &detector_registry(cfg, model)?,
        None,
        &cfg.monitors,
    )?)
}

/// The `ml_anomaly` detector with `model` (which sets the bar length) and `cfg.ml`'s severity
/// threshold (the engine of `run`/`replay`, and `ml evaluate`'s scenario replays).
pub fn anomaly_detector(
    cfg: &Config,
    model: &std::sync::Arc<kamiyo_ml::AnomalyModelFile>,
) -> Box<dyn kamiyo_monitors::Detector> {
    Box::new(kamiyo_monitors::detectors::anomaly::AnomalyDetector::new(
        std::sync::Arc::new(crate::telemetry::pipeline::TimedModel(model.clone())),
        kamiyo_monitors::detectors::anomaly::AnomalySettings {
            high_score: cfg.ml.high_score,
        },
    ))
}
