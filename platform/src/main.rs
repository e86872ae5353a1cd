//! `kamiyo-platform`: the managed kamiyo.ai service (configuration and wiring only).

mod config;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kamiyo_core_models::ProtocolId;
use kamiyo_platform::db::{Actor, Change, Db, StaffColumn};
use kamiyo_platform::fanout::now_ms;
use kamiyo_platform::tenancy::{self, TenantId};
use kamiyo_platform::tiers::{Tier, TierMatrix};
use kamiyo_platform::web::{self, PlatformState};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "kamiyo-platform",
    version,
    about = "kamiyo.ai managed platform"
)]
struct Cli {
    /// Configuration file (TOML); environment variables KAMIYO_PLATFORM__<SECTION>__<KEY> override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the tier matrix.
    Tiers,
    /// Check the configuration and report every problem.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Run the database migrations (as the owner, database.url) and grant the application role.
    Migrate,
    /// Serve the API (as the application role, database.app_url).
    Serve {
        /// `all`: the API and the alert workers (the tenant router and the delivery loops);
        /// `api`: the API only; `workers`: the workers, with HTTP for probes and /metrics only
        /// in front of them (no Service should route tenants there).
        #[arg(long, value_enum, default_value_t = ServeRole::All)]
        role: ServeRole,
    },
    /// Ingest protocols' shared facts through the pipeline library (as the owner,
    /// database.url): each protocol under its own leadership (one active ingest per protocol
    /// across replicas) and its own supervisor (one failing never delays another).
    /// Hyperliquid runs the open core's sources and engine, configured by `--monitor-config`;
    /// the polled venues are configured by `[adapters.<id>]`, and checked against the
    /// reference venues of the monitor configuration's `[references]` when one is given.
    Ingest {
        /// The monitor's configuration (the self-hosted `kamiyo.toml` format): Hyperliquid's
        /// `[hyperliquid]`, `[references]`, `[monitors]` (its database section is ignored).
        #[arg(long)]
        monitor_config: Option<PathBuf>,
        /// Protocols to ingest (comma-separated or repeated; default `hyperliquid`).
        #[arg(long = "protocol", value_delimiter = ',')]
        protocols: Vec<String>,
        /// An ensemble model file (`train-ensemble`): every protocol's engine also runs the
        /// ensemble detector (its incidents reach plans with advanced ML only).
        #[arg(long)]
        ensemble_model: Option<PathBuf>,
        /// Answer probes here (`/health`: the process runs; `/ready`: the database answers).
        #[arg(long)]
        health_bind: Option<String>,
    },
    /// Train the ensemble on every labelled row of the scenarios and replays and write its
    /// model file (for `ingest --ensemble-model`).
    TrainEnsemble {
        /// The replays' directory (the scenarios are read from `../../scenarios` beside it).
        #[arg(long, default_value = "platform/replays")]
        replays: PathBuf,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Evaluate detection on the multi-protocol replays (Markdown on stdout; no database).
    Evaluate {
        /// `correlation`: the correlator over every replay; `ensemble`: the ensemble against the
        /// single Isolation Forest on the labelled replays, time split.
        what: Evaluation,
        /// The replays' directory.
        #[arg(long, default_value = "platform/replays")]
        replays: PathBuf,
    },
    /// Billing with Stripe (application role, database.app_url; needs `[billing]`).
    Billing {
        #[command(subcommand)]
        what: BillingCommand,
    },
    /// Staff administration (owner connection; every change is audited in the tenant's log).
    Admin {
        /// Who is acting (recorded in the audit log).
        #[arg(long)]
        staff: String,
        #[command(subcommand)]
        what: AdminCommand,
    },
}

/// What a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ServeRole {
    /// The API and the workers.
    All,
    /// The API only.
    Api,
    /// The tenant router and the delivery loops.
    Workers,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Evaluation {
    Correlation,
    Ensemble,
}

#[derive(Debug, Subcommand)]
enum BillingCommand {
    /// Each active tenant's plan, subscription and dunning state as stored.
    Status,
    /// Reconcile every tenant with Stripe now (repairs drift, creates missing customers) and
    /// suspend tenants whose grace has ended; prints each repair.
    Sync,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate.
    Check,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// List tenants.
    Tenants,
    /// Change a tenant's plan.
    Plan {
        /// Tenant id.
        tenant: String,
        /// open_source, cloud_basic, cloud_pro or cloud_enterprise.
        plan: String,
    },
    /// Suspend a tenant (its keys stop working).
    Suspend {
        /// Tenant id.
        tenant: String,
    },
    /// Reinstate a suspended tenant.
    Reinstate {
        /// Tenant id.
        tenant: String,
    },
    /// The monthly SLA report of every tenant whose plan has the SLA (API availability from
    /// the recorded probes, alert-delivery latency), on stdout.
    Sla {
        /// The month, YYYY-MM (default: the last complete month).
        #[arg(long)]
        month: Option<String>,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// A read-only (viewer) key of the tenant for staff, expiring.
    Impersonate {
        /// Tenant id.
        tenant: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Minutes the key lives (1 … 240).
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
}

/// The monitor configuration at `path`, its database pointed at the platform's.
fn monitor_config(
    c: &Config,
    path: &std::path::Path,
) -> anyhow::Result<kamiyo_server::config::Config> {
    let sources = kamiyo_server::config::Sources {
        file: Some(path.to_owned()),
        env: std::collections::BTreeMap::new(),
    };
    let mut mc = kamiyo_server::config::load(&sources).map_err(|problems| {
        anyhow::anyhow!(
            "invalid monitor configuration:\n{}",
            problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    // The shared facts go to the platform's database, whatever the file says.
    mc.database.url.clone_from(&c.database.url);
    Ok(mc)
}

/// Hyperliquid's pipeline: the open core's live sources and engine, following every address a
/// tenant watches (read at start; restart to pick up changes).
async fn hyperliquid(
    c: &Config,
    mut mc: kamiyo_server::config::Config,
) -> anyhow::Result<kamiyo_platform::ingest::Protocol> {
    let owner = Db::connect(&c.database.url, 2).await?;
    for a in owner.watched_by_any().await? {
        let a: kamiyo_core_models::Address = a.parse()?;
        if !mc.hyperliquid.watch.contains(&a) {
            mc.hyperliquid.watch.push(a);
        }
    }
    tracing::info!(addresses = mc.hyperliquid.watch.len(), "watching");
    let mc = std::sync::Arc::new(mc);
    let build: kamiyo_platform::ingest::Build = std::sync::Arc::new(move |fenced, stop| {
        let mc = mc.clone();
        Box::pin(async move {
            let (clock, exchange_clock) = kamiyo_server::run::make_clock(&mc).await;
            // The engine resumes the open incidents and the fills' cursors the previous
            // leader committed.
            let (engine, stream) = kamiyo_server::run::live_inputs(
                &mc,
                &fenced,
                None,
                clock.clone(),
                exchange_clock,
                stop,
            )
            .await?;
            let observer: Box<dyn kamiyo_pipeline::Observer> = Box::new(
                kamiyo_server::run::ServerObserver::new(mc.hyperliquid.hlp_vault),
            );
            Ok((engine, stream, clock, observer))
        })
    });
    Ok(kamiyo_platform::ingest::Protocol {
        id: ProtocolId::HYPERLIQUID,
        build,
    })
}

/// Runs the protocols' pipelines into the shared store until Ctrl-C / SIGTERM.
async fn ingest(
    c: &Config,
    monitor_config_file: Option<&std::path::Path>,
    protocols: &[String],
    ensemble_model: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use kamiyo_platform::adapters::reference::References;
    // The ensemble, fitted once at start from its model file (seeded: the same fit each time).
    let ensemble = match ensemble_model {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
            let f = kamiyo_platform::ensemble::EnsembleFile::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            let live = f
                .fit()
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            tracing::info!(
                features = f.features.len(),
                rows = f.rows.len(),
                "ensemble fitted"
            );
            Some(std::sync::Arc::new(live))
        }
        None => None,
    };
    kamiyo_aggregators::install_crypto_provider();
    let ids: Vec<ProtocolId> = if protocols.is_empty() {
        vec![ProtocolId::HYPERLIQUID]
    } else {
        protocols
            .iter()
            .map(|p| ProtocolId::parse(p))
            .collect::<Result<_, _>>()?
    };
    let registry = std::sync::Arc::new(c.registry()?);
    registry.check_ingested(&ids)?;
    let store = kamiyo_store::Store::connect(&c.database.url, std::path::Path::new("."), 4).await?;
    store.migrate().await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            kamiyo_server::run::shutdown_signal().await;
            shutdown.cancel();
        });
    }
    let clock: std::sync::Arc<dyn kamiyo_core_models::Clock> =
        std::sync::Arc::new(kamiyo_core_models::SystemClock);
    let mc = monitor_config_file
        .map(|f| monitor_config(c, f))
        .transpose()?;
    let references = match &mc {
        Some(mc) => References::new(
            kamiyo_server::run::reference_sources(mc, clock.clone(), &shutdown)?,
            Vec::new(),
            std::time::Duration::from_secs(u64::from(mc.references.interval_secs)),
        ),
        None => References::default(),
    };
    let mut run = Vec::new();
    for id in ids {
        if id == ProtocolId::HYPERLIQUID {
            let Some(mc) = mc.clone() else {
                bail!("ingesting hyperliquid needs --monitor-config");
            };
            run.push(hyperliquid(c, mc).await?);
            continue;
        }
        let settings = c.adapters.get(id.as_str()).cloned().unwrap_or_default();
        let Some(feed) = settings.feed(id.as_str()) else {
            bail!(
                "{id}: no adapter in this build (adapters: hyperliquid, {})",
                kamiyo_platform::ingest::ADAPTERS.join(", ")
            );
        };
        let coins = settings
            .reference_coins
            .unwrap_or_else(|| vec!["BTC".into(), "ETH".into(), "SOL".into()])
            .iter()
            .map(|c| kamiyo_core_models::Coin::new(c))
            .collect::<Result<Vec<_>, _>>()?;
        run.push(kamiyo_platform::ingest::adapter(
            id,
            feed,
            registry.clone(),
            references.for_coins(coins),
            clock.clone(),
        )?);
    }
    if let Some(live) = &ensemble {
        run = run
            .into_iter()
            .map(|p| kamiyo_platform::ingest::with_ensemble(p, live.clone()))
            .collect();
    }
    let target = kamiyo_platform::ingest::Target {
        url: c.database.url.clone(),
        store,
        db: Db::connect(&c.database.url, 2).await?,
        holder: format!(
            "kamiyo-ingest-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id()
        ),
    };
    // The cross-protocol correlator: one replica leads it (its own lock), reading the shared
    // steps of every protocol.
    let correlator = {
        let db = Db::connect(&c.database.url, 2).await?;
        let tiers = c.tiers()?;
        let url = c.database.url.clone();
        // Its own lock connection's name (pg_stat_activity tells the locks apart).
        let holder = target
            .holder
            .replacen("kamiyo-ingest", "kamiyo-correlator", 1);
        let store = target.store.clone();
        let facts = target.store.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let r =
                kamiyo_platform::leader::lead(
                    &url,
                    "correlator",
                    &holder,
                    &store,
                    shutdown,
                    |_, stop| {
                        let (db, tiers, facts) = (db.clone(), tiers.clone(), facts.clone());
                        async move {
                            kamiyo_platform::fanout::correlate(&db, &facts, &tiers, stop).await
                        }
                    },
                )
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "correlator stopped");
            }
        })
    };
    kamiyo_platform::ingest::run(target, run, shutdown).await;
    let _ = correlator.await;
    Ok(())
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Config::load(cli.config.as_deref(), |k| std::env::var(k).ok()).map_err(|problems| {
        anyhow::anyhow!(
            "invalid configuration:\n{}",
            problems
                .iter()
                .map(|(k, m)| format!("  {k}: {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Installs the Prometheus exporter as the global meter provider (once per process) and
/// returns its registry.
fn metrics_registry() -> anyhow::Result<prometheus::Registry> {
    static REGISTRY: std::sync::OnceLock<prometheus::Registry> = std::sync::OnceLock::new();
    if let Some(r) = REGISTRY.get() {
        return Ok(r.clone());
    }
    let (provider, registry) =
        kamiyo_api::metrics::prometheus_provider().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    opentelemetry::global::set_meter_provider(provider);
    Ok(REGISTRY.get_or_init(|| registry).clone())
}

/// Probes for a process without the API (`ingest`): `/health` answers while it runs,
/// `/ready` while the database answers, `/metrics` (its ML latency …) to whoever reaches the
/// port (a pod port no Service exposes; the NetworkPolicy admits only the monitoring namespace).
async fn probes(bind: &str, url: &str) -> anyhow::Result<()> {
    let store = kamiyo_store::Store::connect(url, std::path::Path::new("."), 1).await?;
    let registry = metrics_registry()?;
    let server = actix_web::HttpServer::new(move || {
        let store = store.clone();
        let registry = registry.clone();
        actix_web::App::new()
            .route(
                "/metrics",
                actix_web::web::get().to(move || {
                    let text = kamiyo_api::metrics::render(&registry);
                    async move {
                        actix_web::HttpResponse::Ok()
                            .content_type("text/plain; version=0.0.4; charset=utf-8")
                            .body(text)
                    }
                }),
            )
            .route(
                "/health",
                actix_web::web::get()
                    .to(|| async { actix_web::HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
            )
            .route(
                "/ready",
                actix_web::web::get().to(move || {
                    let store = store.clone();
                    async move {
                        match store.ping().await {
                            Ok(()) => actix_web::HttpResponse::Ok()
                                .json(serde_json::json!({"status": "ready"})),
                            Err(e) => actix_web::HttpResponse::ServiceUnavailable()
                                .json(serde_json::json!({"status": "unavailable", "detail": e.to_string()})),
                        }
                    }
                }),
            )
    })
    .workers(1)
    .bind(bind)
    .with_context(|| format!("binding the probes to {bind}"))?
    .run();
    tokio::spawn(server);
    Ok(())
}

/// Billing over `db`, when `[billing]` is set.
fn billing(
    c: &Config,
    db: &Db,
    mailer: Option<std::sync::Arc<kamiyo_alerts::channels::Smtp>>,
) -> anyhow::Result<Option<kamiyo_platform::billing::Billing>> {
    let Some(settings) = c.billing.settings(&c.platform.public_url)? else {
        return Ok(None);
    };
    kamiyo_aggregators::install_crypto_provider();
    Ok(Some(
        kamiyo_platform::billing::Billing::new(
            settings,
            db.clone(),
            c.tiers()?,
            std::sync::Arc::new(now_ms),
            mailer,
        )
        .map_err(|e| anyhow::anyhow!("billing: {e}"))?,
    ))
}

fn need(url: &str, key: &str) -> anyhow::Result<()> {
    if url.is_empty() {
        bail!("{key} is not set (the platform runs on PostgreSQL only)");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::TrainEnsemble { replays, out: path } => {
            let f = kamiyo_platform::evaluate::ensemble_file(replays)?;
            // Refuse to write a file that would not load.
            f.fit()
                .map_err(|e| anyhow::anyhow!("the ensemble does not fit: {e}"))?;
            std::fs::write(path, serde_json::to_string(&f)?)?;
            writeln!(
                out,
                "wrote {}: features {}; {}",
                path.display(),
                f.features.join(", "),
                f.trained_on
            )?;
        }
        Command::Evaluate { what, replays } => match what {
            Evaluation::Correlation => {
                let registry = load(&cli)?.registry()?;
                kamiyo_platform::evaluate::report(replays, &registry, &mut out)?;
            }
            Evaluation::Ensemble => {
                kamiyo_platform::evaluate::ensemble_report(replays, &mut out)?;
            }
        },
        Command::Tiers => {
            let matrix = TierMatrix::default_matrix()?;
            for t in Tier::ALL {
                let c = matrix.config(t);
                writeln!(
                    out,
                    "{:<17} ${:>8.2}/mo  protocols {:>4}  api/day {:>8}  alerts/day {:>6}  history {:>3} d  features {:?}",
                    t.as_str(),
                    c.price_cents_per_month as f64 / 100.0,
                    c.limits.protocols,
                    c.limits.api_calls_per_day,
                    c.limits.alerts_per_day,
                    c.limits.history_days,
                    c.features
                )?;
            }
        }
        Command::Config {
            what: ConfigCommand::Check,
        } => {
            load(&cli)?;
            writeln!(out, "configuration ok")?;
        }
        Command::Billing { what } => {
            let c = load(&cli)?;
            need(&c.database.app_url, "database.app_url")?;
            let db = Db::connect(&c.database.app_url, 4).await?;
            db.check_app_role().await?;
            let Some(b) = billing(&c, &db, c.smtp.mailer()?.map(std::sync::Arc::new))? else {
                bail!("billing is off: set [billing] secret_key, webhook_secrets and prices");
            };
            match what {
                BillingCommand::Status => {
                    for t in db.billing_due(now_ms(), true).await? {
                        let s = b.status(&t).await?;
                        writeln!(out, "{t}\t{s}")?;
                    }
                }
                BillingCommand::Sync => {
                    let repairs = b.reconcile().await?;
                    for (t, what) in &repairs {
                        writeln!(out, "repaired {t}: {what}")?;
                    }
                    let suspended = b.suspend_due().await?;
                    writeln!(
                        out,
                        "{} repair(s); {suspended} tenant(s) suspended for non-payment",
                        repairs.len()
                    )?;
                }
            }
        }
        Command::Migrate => {
            let c = load(&cli)?;
            need(&c.database.url, "database.url")?;
            // The shared facts (the open core's store, in `public`) first: the grants cover them.
            let shared =
                kamiyo_store::Store::connect(&c.database.url, std::path::Path::new("."), 2).await?;
            let facts = shared.migrate().await?;
            let exploits = kamiyo_server::storage::seed_exploits(&shared).await?;
            let db = Db::connect(&c.database.url, 2).await?;
            let ran = db.migrate(&c.database.app_role).await?;
            writeln!(
                out,
                "{facts} shared-fact and {ran} platform migration(s) applied; {} granted; {exploits} exploits seeded",
                c.database.app_role
            )?;
        }
        Command::Serve { role } => {
            let role = *role;
            let c = load(&cli)?;
            need(&c.database.app_url, "database.app_url")?;
            let db = Db::connect(&c.database.app_url, c.database.max_connections).await?;
            db.check_app_role().await?;
            let protocols = c
                .platform
                .protocols
                .iter()
                .map(|p| ProtocolId::parse(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut platform = PlatformState::new(db, c.tiers()?, protocols);
            platform.registry = std::sync::Arc::new(c.registry()?);
            platform.mailer = c.smtp.mailer()?.map(std::sync::Arc::new);
            platform.public_url = c.platform.public_url.clone();
            platform.loopback_channels = c.platform.allow_loopback_channels;
            platform.sla = c.sla();
            if !c.admin.tokens.is_empty() {
                platform.staff_db = Some(Db::connect(&c.database.url, 2).await?);
                platform.staff_tokens = c.admin.parsed();
            }
            if let Some(b) = billing(&c, &platform.db, platform.mailer.clone())? {
                let b = std::sync::Arc::new(b);
                platform.with_billing(b.clone());
                // Dunning every minute; reconciliation with Stripe every sync interval.
                let every = c.billing.sync_interval_secs.max(60);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                    let mut last_sync: Option<std::time::Instant> = None;
                    loop {
                        tick.tick().await;
                        match b.suspend_due().await {
                            Ok(n) if n > 0 => {
                                tracing::warn!(tenants = n, "suspended for non-payment")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "dunning pass failed"),
                        }
                        if last_sync.is_none_or(|t| t.elapsed().as_secs() >= every) {
                            match b.reconcile().await {
                                Ok(r) => {
                                    last_sync = Some(std::time::Instant::now());
                                    tracing::info!(
                                        repairs = r.len(),
                                        "billing reconciled with Stripe"
                                    );
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "billing reconciliation failed; retried next minute")
                                }
                            }
                        }
                    }
                });
            }
            // The shared facts, read through the application role (SELECT only).
            let shared = kamiyo_store::Store::connect(
                &c.database.app_url,
                std::path::Path::new("."),
                c.database.max_connections,
            )
            .await?;
            let api = web::open_core(
                &shared,
                &platform,
                c.platform.hlp_vault.parse()?,
                std::sync::Arc::new(kamiyo_core_models::SystemClock),
            );
            // The live stream: this replica's `/ws` subscribers get the shared steps as they
            // are stored (by whichever process ingests them).
            let hub = api.hub.clone();
            hub.start_at(kamiyo_platform::fanout::newest_seq(&shared).await?);
            let tail_facts = shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    while let Ok(500) = kamiyo_platform::fanout::tail_once(&tail_facts, &hub).await
                    {
                    }
                }
            });
            // This replica's heartbeats (`api` and/or `workers`): the status page's processes,
            // and a dead worker's delivery claims taken over within seconds.
            let instance = format!(
                "kamiyo-serve-{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
                std::process::id()
            );
            let beats_stop = tokio_util::sync::CancellationToken::new();
            let mut beats = Vec::new();
            for (component, on) in [
                ("api", role != ServeRole::Workers),
                ("workers", role != ServeRole::Api),
            ] {
                if on {
                    beats.push(tokio::spawn(kamiyo_platform::status::beat(
                        platform.db.clone(),
                        component.to_owned(),
                        instance.clone(),
                        move || serde_json::json!({"role": format!("{role:?}").to_lowercase()}),
                        beats_stop.clone(),
                    )));
                }
            }
            // The workers: not in an API-only replica.
            let delivery_stop = tokio_util::sync::CancellationToken::new();
            let mut delivery = None;
            if role != ServeRole::Api {
                // The probes behind the status page and the SLA reports, each minute: the API
                // through its public address, the database, delivery, each protocol's feeds.
                {
                    let db = platform.db.clone();
                    let url = if c.platform.status_probe_url.is_empty() {
                        format!("http://{}", c.server.bind)
                    } else {
                        c.platform.status_probe_url.clone()
                    };
                    let protocols = c.platform.protocols.clone();
                    let every = std::time::Duration::from_secs(c.platform.probe_interval_secs);
                    kamiyo_aggregators::install_crypto_provider();
                    let http = reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()?;
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(every);
                        loop {
                            tick.tick().await;
                            let checks = kamiyo_platform::status::probe_once(
                                &db,
                                &http,
                                Some(&url),
                                &protocols,
                                now_ms(),
                            )
                            .await;
                            for c in checks
                                .iter()
                                .filter(|c| c.state != kamiyo_platform::status::State::Up)
                            {
                                tracing::warn!(component = %c.component, state = c.state.as_str(), detail = %c.detail, "probe");
                            }
                        }
                    });
                }
                // The tenant router: shared steps into each subscribed tenant's outbox.
                let router_db = platform.db.clone();
                let router_tiers = platform.tiers.clone();
                let facts = shared.clone();
                let interval =
                    std::time::Duration::from_millis(c.platform.router_interval_ms.max(50));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    loop {
                        tick.tick().await;
                        let pass = kamiyo_platform::fanout::route_once(
                            &router_db,
                            &facts,
                            &router_tiers,
                            now_ms(),
                            500,
                        )
                        .await;
                        match pass {
                            Ok(p) if p.routed > 0 => tracing::info!(
                                steps = p.steps,
                                tenants = p.routed,
                                sent = p.sent,
                                held = p.held,
                                "alerts routed"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "tenant router pass failed"),
                        }
                    }
                });
                // Delivery workers: the tenants' due rows to their channels (rows are leased, so
                // several replicas share the work).
                let deliver_db = platform.db.clone();
                let deliver_mail = platform.mailer.clone();
                let worker = instance.clone();
                let stop = delivery_stop.clone();
                delivery = Some(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    loop {
                        // A stopping replica finishes the pass it is in, then claims no more.
                        tokio::select! {
                            () = stop.cancelled() => return,
                            _ = tick.tick() => {}
                        }
                        match kamiyo_platform::fanout::deliver_once(
                            &deliver_db,
                            deliver_mail.as_deref(),
                            &worker,
                            now_ms(),
                            100,
                        )
                        .await
                        {
                            Ok(d) if d.delivered + d.retried + d.failed > 0 => tracing::info!(
                                delivered = d.delivered,
                                retried = d.retried,
                                failed = d.failed,
                                "alerts delivered"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "delivery pass failed"),
                        }
                    }
                }));
            }
            // Metrics: the pools and the subscriptions by plan, refreshed every 15 s.
            {
                let (db, staff_db) = (platform.db.clone(), platform.staff_db.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
                    loop {
                        tick.tick().await;
                        let (open, idle) = db.pool_state();
                        kamiyo_platform::metrics::set_pool("app", open, idle);
                        if let Some(s) = &staff_db {
                            let (open, idle) = s.pool_state();
                            kamiyo_platform::metrics::set_pool("staff", open, idle);
                        }
                        match db.subscriptions_by_plan().await {
                            Ok(rows) => {
                                for t in kamiyo_platform::tiers::Tier::ALL {
                                    let n = rows
                                        .iter()
                                        .find(|(p, _)| p == t.as_str())
                                        .map_or(0, |(_, n)| *n);
                                    kamiyo_platform::metrics::set_subscriptions(
                                        t.as_str(),
                                        u64::try_from(n).unwrap_or(0),
                                    );
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "subscription counts failed"),
                        }
                    }
                });
            }
            let mut platform = platform;
            platform.metrics = Some(metrics_registry()?);
            platform.facts = Some(std::sync::Arc::new(shared.clone()));
            let state = actix_web::web::Data::new(platform);
            let mut server = actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(state.clone())
                    .configure(web::routes)
                    .configure(kamiyo_platform::pages::routes)
                    .configure(kamiyo_api::configure(api.clone()))
            });
            if c.server.workers > 0 {
                server = server.workers(c.server.workers);
            }
            // As the open core's server: answers leave when written, not after the client's
            // delayed ACK of the previous one (Nagle's algorithm, actix's default).
            let server = server
                .tcp_nodelay(true)
                .bind(&c.server.bind)
                .with_context(|| format!("binding {}", c.server.bind))?;
            for a in server.addrs() {
                tracing::info!(addr = %a, "kamiyo-platform listening");
                writeln!(out, "listening on http://{a}")?;
            }
            drop(out);
            let served = server.run().await;
            // A clean stop: the delivery pass in flight finishes (its rows are marked, so no
            // other worker sends them again), then this replica leaves the status page.
            delivery_stop.cancel();
            if let Some(d) = delivery
                && tokio::time::timeout(std::time::Duration::from_secs(20), d)
                    .await
                    .is_err()
            {
                tracing::warn!("the delivery pass did not finish within 20 s of the stop");
            }
            beats_stop.cancel();
            for b in beats {
                let _ = b.await;
            }
            served?;
        }
        Command::Ingest {
            monitor_config,
            protocols,
            ensemble_model,
            health_bind,
        } => {
            let c = load(&cli)?;
            need(&c.database.url, "database.url")?;
            if let Some(bind) = health_bind {
                probes(bind, &c.database.url).await?;
            }
            drop(out);
            ingest(
                &c,
                monitor_config.as_deref(),
                protocols,
                ensemble_model.as_deref(),
            )
            .await?;
        }
        Command::Admin { staff, what } => {
            let c = load(&cli)?;
            need(&c.database.url, "database.url")?;
            let staff = tenancy::parse_label("staff", staff, 80)?;
            let db = Db::connect(&c.database.url, 2).await?;
            let who = Actor {
                actor: format!("staff:{staff}"),
                ip: "cli".into(),
                at: now_ms(),
            };
            match what {
                AdminCommand::Tenants => {
                    for t in db.staff_tenants().await? {
                        writeln!(
                            out,
                            "{:<32} {:<17} {:<10} {}",
                            t.tenant_id, t.plan, t.status, t.name
                        )?;
                    }
                }
                AdminCommand::Plan { tenant, plan } => {
                    let t = TenantId::parse(tenant)?;
                    let plan: Tier = plan.parse()?;
                    db.staff_set(&t, StaffColumn::Plan, plan.as_str(), &who)
                        .await?;
                    writeln!(out, "{t}: plan {plan}")?;
                }
                AdminCommand::Suspend { tenant } | AdminCommand::Reinstate { tenant } => {
                    let t = TenantId::parse(tenant)?;
                    let status = if matches!(what, AdminCommand::Suspend { .. }) {
                        "suspended"
                    } else {
                        "active"
                    };
                    db.staff_set(&t, StaffColumn::Status, status, &who).await?;
                    writeln!(out, "{t}: {status}")?;
                }
                AdminCommand::Sla { month, format } => {
                    let month = month
                        .clone()
                        .unwrap_or_else(|| kamiyo_platform::status::previous_month(now_ms()));
                    kamiyo_platform::status::month_bounds(&month).map_err(anyhow::Error::msg)?;
                    let rows =
                        kamiyo_platform::status::sla_reports(&db, &c.tiers()?, &month, c.sla())
                            .await?;
                    match format.as_str() {
                        "csv" => write!(out, "{}", kamiyo_platform::status::sla_csv(&rows))?,
                        "json" => writeln!(
                            out,
                            "{}",
                            serde_json::to_string_pretty(
                                &serde_json::json!({"month": month, "items": rows})
                            )?
                        )?,
                        other => bail!("--format {other}: csv or json"),
                    }
                }
                AdminCommand::Impersonate {
                    tenant,
                    reason,
                    minutes,
                } => {
                    let t = TenantId::parse(tenant)?;
                    if !(1..=240).contains(minutes) {
                        bail!("--minutes: 1 to 240");
                    }
                    let reason = tenancy::parse_label("reason", reason, 200)?;
                    let key = tenancy::generate_key(&t);
                    let expires_at = who.at + minutes * 60_000;
                    db.change(
                        &t,
                        &who,
                        Change::Impersonate {
                            key_id: key.id.clone(),
                            hash: key.hash,
                            reason,
                            expires_at,
                        },
                    )
                    .await?;
                    writeln!(
                        out,
                        "read-only key {} for {t}, valid {minutes} min:\n{}",
                        key.id, key.secret
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KAMIYO_PLATFORM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Every command may read incidents of the platform's own detector.
    if let Err(e) = kamiyo_platform::detectors::declare_threats() {
        tracing::error!(error = %e, "declaring the platform's threat types");
        return std::process::ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
