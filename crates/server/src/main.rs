//! `kamiyo-hyperliquid`: the self-hosted Hyperliquid security monitor.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kamiyo_monitors::MonitorsConfig;
use kamiyo_server::commands;

#[derive(Debug, Parser)]
#[command(
    name = "kamiyo-hyperliquid",
    version,
    about = "Hyperliquid security monitor"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (default).
    Run {
        /// Address to listen on.
        #[arg(long, env = "KAMIYO_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
    },
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
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "kamiyo-hyperliquid failed");
            let _ =
                std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("error: {e:#}\n"));
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let monitors = MonitorsConfig::default();
    match cli.command {
        None => rt
            .block_on(run("127.0.0.1:8080".parse()?))
            .map(|()| ExitCode::SUCCESS),
        Some(Command::Run { bind }) => rt.block_on(run(bind)).map(|()| ExitCode::SUCCESS),
        Some(Command::Backtest { scenario, out_dir }) => {
            let passed = commands::backtest::run(&scenario, out_dir, &monitors)?;
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
        }) => rt
            .block_on(commands::replay::run(&scenario, &speed, dump, &monitors))
            .map(|()| ExitCode::SUCCESS),
    }
}

async fn run(bind: SocketAddr) -> anyhow::Result<()> {
    let app = kamiyo_server::Application::build(bind)?;
    tracing::info!(http.addr = %app.addr(), "serving /health");
    tracing::warn!(
        "monitors are not wired into `run` yet: this build serves /health only and monitors nothing"
    );
    app.run().await
}
