//! `kamiyo-hyperliquid`: the self-hosted Hyperliquid security monitor.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kamiyo_server::commands;
use kamiyo_server::config::{self, Config, Sources};

#[derive(Debug, Parser)]
#[command(
    name = "kamiyo-hyperliquid",
    version,
    about = "Hyperliquid security monitor: HLP vault, oracle, liquidations, manipulation, whales"
)]
struct Cli {
    /// Configuration file (default: $KAMIYO_CONFIG, else ./kamiyo.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Monitor Hyperliquid live and serve the API and dashboard (the default).
    Run,
    /// Run a scenario through the engine and compare with its ground truth.
    Backtest {
        /// Scenario directory or name (e.g. eth-whale-2025-03-12).
        scenario: String,
        /// Where to write the report and the SVG plot.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Stream a scenario through the engine, printing incidents as they happen.
    Replay {
        /// Scenario directory or name.
        scenario: String,
        /// realtime, max, or a factor such as 60x.
        #[arg(long, default_value = "max")]
        speed: String,
        /// Also write the expanded, time-ordered events as JSON lines.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Write incidents and observations to the configured database (resumes after a crash).
        #[arg(long)]
        store: bool,
        /// Serve the API, /ws and the dashboard on the replay's clock while replaying (implies
        /// --store), and keep serving afterwards until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// With --serve: start the replay only once a viewer (the dashboard, a /ws client) is
        /// connected.
        #[arg(long, requires = "serve")]
        wait_for_viewer: bool,
    },
    /// Run pending database migrations and report the schema version.
    Migrate,
    /// Probe a running server (exit 0 when healthy): for container health checks.
    Health {
        /// URL to probe (default: /health at the configured server.bind).
        #[arg(long)]
        url: Option<String>,
        /// Probe /ready (database reachable) instead of /health.
        #[arg(long)]
        ready: bool,
    },
    /// API keys: hashed at rest, shown once.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The exploit database (`/exploits`): DeFiLlama's and DeFiHackLabs' lists, merged.
    Exploits {
        #[command(subcommand)]
        action: ExploitsAction,
    },
    /// The anomaly model and the risk forecast.
    Ml {
        #[command(subcommand)]
        action: MlAction,
    },
    /// The event log: the hash chain over every stored event (docs/EVENT-LOG.md).
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
    /// Alert channels.
    Alerts {
        #[command(subcommand)]
        action: AlertsAction,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum LogAction {
    /// Print the newest entry as SEQ:CHAIN: keep it, and a later `log verify --head` proves
    /// nothing before it was changed.
    Head,
    /// Check every link of the chain and every stored event against its entry (exit 1 on the
    /// first fault).
    Verify {
        /// A head kept earlier (SEQ:CHAIN, from `log head`, `/security/log` or an alert's
        /// `log`); it must still be in the chain. Repeatable.
        #[arg(long)]
        head: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MlAction {
    /// Train the Isolation Forest and write the model file: `--interval 5m` on the Hyperliquid
    /// BTC and ETH 5m candles (2025-03-14 .. 2025-05-31); `--interval 1h` on BTC, ETH and SOL
    /// 1h candles with the Binance USD-M + Coinbase reference (2025-01-01 .. 2025-05-31).
    ///
    /// With `--from-store`: on the bars the engine recorded in the configured database
    /// (`ml.record_bar_secs`), which carry open interest, the outside reference, liquidations
    /// and HLP — the deployment's own history.
    Train {
        /// Market-data directory (layout of testdata/market).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Bar interval: 5m or 1h for the candle files; any recorded length (5m, 1h, 300s)
        /// with --from-store.
        #[arg(long, default_value = "5m")]
        interval: String,
        /// Train on the bars recorded in the configured database instead of candle files.
        #[arg(long)]
        from_store: bool,
        /// With --from-store: first bar time (RFC 3339 or YYYY-MM-DD; default: all).
        #[arg(long)]
        since: Option<String>,
        /// With --from-store: bars opening before this time (default: all).
        #[arg(long)]
        until: Option<String>,
        /// With --from-store: only these markets (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        coins: Vec<String>,
        /// Model file (default: <data_dir>/models/anomaly.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Training-score quantile used as the alert threshold.
        #[arg(long, default_value_t = 0.999)]
        quantile: f64,
    },
    /// Evaluate the model (false alerts per day on the calm fortnight, labelled incidents,
    /// lead time) and the 24h forecast (rolling origin), as Markdown tables.
    Evaluate {
        /// Market-data directory.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Model file (default: <data_dir>/models/anomaly.json).
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AlertsAction {
    /// Send a clearly marked test message to every enabled channel (or one) and report the
    /// destination's answer or the exact failure.
    Test {
        /// Only this channel (also when disabled).
        #[arg(long)]
        channel: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ExploitsAction {
    /// How many, and the newest.
    Status,
    /// Replace the database from files (DeFiLlama: the API's JSON or the CSV export;
    /// DeFiHackLabs: its README Markdown or the CSV form); a list left out is the embedded one.
    Import {
        /// DeFiLlama's list.
        #[arg(long)]
        defillama: Option<PathBuf>,
        /// DeFiHackLabs' list.
        #[arg(long)]
        defihacklabs: Option<PathBuf>,
    },
    /// Replace the database from the public sources (needs internet); left as it was if either
    /// fails.
    Refresh {
        /// DeFiLlama's hacks API.
        #[arg(long, default_value = kamiyo_aggregators::exploits::DEFILLAMA_URL)]
        defillama_url: String,
        /// DeFiHackLabs' raw repository (README.md, past/YYYY/README.md).
        #[arg(long, default_value = kamiyo_aggregators::exploits::DEFIHACKLABS_BASE)]
        defihacklabs_base: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Create a key and print it (once).
    Create {
        /// Who or what uses the key.
        #[arg(long)]
        name: String,
        /// `read` (every GET route) or `write` (also acknowledge, resolve, notes and silences).
        #[arg(long, default_value = "read")]
        scope: String,
    },
    /// List keys (prefix, state, scope, creation time, name; never the secret).
    List,
    /// Revoke a key by its prefix (kmy_xxxxxxxx) or id.
    Revoke {
        /// Prefix or id.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Report every unknown key and invalid value; exit 1 when there is any.
    Check,
    /// Print the effective configuration (secrets masked).
    Show,
    /// Print the default configuration file with every key documented.
    Default,
    /// Print the configuration reference (Markdown).
    Docs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            // Once: a JSON log event when the log is JSON lines, else one `error:` line.
            if kamiyo_server::telemetry::logs_as_json() {
                tracing::error!(error = format!("{e:#}"), "kamiyo-hyperliquid failed");
            } else {
                let _ = writeln!(std::io::stderr(), "error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, ExitCode> {
    match config::load(&Sources::from_process(cli.config.as_deref())) {
        Ok(c) => Ok(c),
        Err(problems) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "invalid configuration ({} problem{}):",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in &problems {
                let _ = writeln!(err, "  - {p}");
            }
            let _ = writeln!(
                err,
                "see docs/CONFIGURATION.md or `kamiyo-hyperliquid config default`"
            );
            Err(ExitCode::from(1))
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if let Some(Command::Config { action }) = &cli.command {
        match action {
            ConfigAction::Default => write!(out, "{}", config::render_default_toml())?,
            ConfigAction::Docs => write!(out, "{}", config::render_markdown())?,
            ConfigAction::Check => {
                return Ok(match load_config(&cli) {
                    Ok(c) => {
                        writeln!(out, "configuration OK")?;
                        for w in c.warnings() {
                            writeln!(out, "warning: {w}")?;
                        }
                        ExitCode::SUCCESS
                    }
                    Err(code) => code,
                });
            }
            ConfigAction::Show => match load_config(&cli) {
                Ok(c) => write!(out, "{}", c.redacted_toml())?,
                Err(code) => return Ok(code),
            },
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    // A health probe runs every few seconds under a container runtime: no logging, no trace
    // exporter, no async runtime.
    if let Some(Command::Health { url, ready }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| {
            format!(
                "http://{}/{}",
                commands::health::probe_addr(cfg.server.bind),
                if *ready { "ready" } else { "health" }
            )
        });
        return Ok(if commands::health::run(&url, &mut out)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    // Every TLS client (the OTLP exporter's included) uses ring.
    kamiyo_aggregators::install_crypto_provider();
    let _telemetry = kamiyo_server::telemetry::init_logging(&cfg.telemetry);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        None | Some(Command::Run) => rt
            .block_on(kamiyo_server::run::run(cfg))
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Backtest { scenario, out_dir }) => {
            let passed = commands::backtest::run(&scenario, out_dir, &cfg.monitors)?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Some(Command::Replay {
            scenario,
            speed,
            dump,
            store,
            serve,
            wait_for_viewer,
        }) => rt
            .block_on(async {
                let target = if store || serve {
                    Some(commands::replay::StoreTarget {
                        store: kamiyo_server::storage::open_store(&cfg).await?,
                        batch_max_rows: cfg.database.batch_max_rows as usize,
                        batch_max_delay: std::time::Duration::from_millis(u64::from(
                            cfg.database.batch_max_delay_ms,
                        )),
                        serve: serve.then(|| cfg.clone()),
                        alerts: Some(cfg.clone()),
                        wait_for_viewer,
                    })
                } else {
                    None
                };
                commands::replay::run(&scenario, &speed, dump, &cfg, target).await
            })
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Keys { action }) => rt.block_on(async {
            let store = kamiyo_server::storage::open_store(&cfg).await?;
            let ok = match action {
                KeysAction::Create { name, scope } => {
                    commands::keys::create(&store, &name, &scope, &mut out).await?;
                    true
                }
                KeysAction::List => {
                    commands::keys::list(&store, &mut out).await?;
                    true
                }
                KeysAction::Revoke { key } => {
                    commands::keys::revoke(&store, &key, &mut out).await?
                }
            };
            anyhow::Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }),
        Some(Command::Log { action }) => rt.block_on(async {
            let store = kamiyo_server::storage::open_store(&cfg).await?;
            let ok = match action {
                LogAction::Head => {
                    commands::log::head(&store, &mut out).await?;
                    true
                }
                LogAction::Verify { head } => {
                    let kept = head
                        .iter()
                        .map(|h| commands::log::parse_head(h))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    commands::log::verify(&store, &kept, &mut out).await?
                }
            };
            anyhow::Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }),
        Some(Command::Exploits { action }) => rt.block_on(async {
            use kamiyo_server::commands::exploits;
            let store = kamiyo_server::storage::open_store(&cfg).await?;
            match action {
                ExploitsAction::Status => exploits::status(&store, &mut out).await?,
                ExploitsAction::Import {
                    defillama,
                    defihacklabs,
                } => {
                    exploits::import(
                        &store,
                        defillama.as_deref(),
                        defihacklabs.as_deref(),
                        &mut out,
                    )
                    .await?;
                }
                ExploitsAction::Refresh {
                    defillama_url,
                    defihacklabs_base,
                } => {
                    use kamiyo_core_models::Clock;
                    let src = kamiyo_aggregators::exploits::PublicSources {
                        defillama_url,
                        defihacklabs_base,
                        ..kamiyo_aggregators::exploits::PublicSources::public(
                            kamiyo_core_models::SystemClock.now(),
                        )
                    };
                    exploits::refresh(&store, &src, &mut out).await?;
                }
            }
            anyhow::Ok(ExitCode::SUCCESS)
        }),
        Some(Command::Ml { action }) => {
            let default_model = cfg.server.data_dir.join("models/anomaly.json");
            match action {
                MlAction::Train {
                    data,
                    interval,
                    from_store,
                    since,
                    until,
                    coins,
                    out: path,
                    quantile,
                } => {
                    let path = path.unwrap_or(default_model);
                    if from_store {
                        let span = (
                            commands::ml::parse_time(since.as_deref(), i64::MIN)?,
                            commands::ml::parse_time(until.as_deref(), i64::MAX)?,
                        );
                        let coins = coins
                            .iter()
                            .map(|c| kamiyo_core_models::Coin::new(c.trim()))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| anyhow::anyhow!("--coins: {e}"))?;
                        rt.block_on(async {
                            let store = kamiyo_server::storage::open_store(&cfg).await?;
                            commands::ml::train_from_store(
                                &store, &interval, &coins, span, &path, quantile, &mut out,
                            )
                            .await
                        })
                    } else {
                        if since.is_some() || until.is_some() || !coins.is_empty() {
                            anyhow::bail!("--since, --until and --coins apply to --from-store");
                        }
                        commands::ml::train(data.as_deref(), &interval, &path, quantile, &mut out)
                    }
                    .map(|()| ExitCode::SUCCESS)
                }
                MlAction::Evaluate { data, model } => commands::ml::evaluate(
                    data.as_deref(),
                    model.as_deref().unwrap_or(&default_model),
                    &mut out,
                )
                .map(|()| ExitCode::SUCCESS),
            }
        }
        Some(Command::Alerts {
            action: AlertsAction::Test { channel },
        }) => rt.block_on(async {
            let ok = commands::alerts::test(&cfg, channel.as_deref(), &mut out).await?;
            anyhow::Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }),
        Some(Command::Health { .. }) => Ok(ExitCode::SUCCESS),
        Some(Command::Migrate) => rt
            .block_on(async {
                let store = kamiyo_server::storage::connect(&cfg).await?;
                let ran = store.migrate().await?;
                writeln!(
                    out,
                    "{}: {ran} migration{} applied; schema up to date",
                    store.location(),
                    if ran == 1 { "" } else { "s" }
                )?;
                anyhow::Ok(())
            })
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Config { .. }) => Ok(ExitCode::SUCCESS),
    }
}
