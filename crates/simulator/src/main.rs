//! `kamiyo-sim`: serve a scenario on 127.0.0.1 in the real exchange wire formats.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::Timestamp;

#[derive(Debug, Parser)]
#[command(
    name = "kamiyo-sim",
    version,
    about = "Loopback Hyperliquid/Binance/Coinbase simulator serving a kamiyo scenario"
)]
struct Cli {
    /// Scenario directory (e.g. scenarios/eth-whale-2025-03-12).
    scenario: PathBuf,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9010")]
    bind: SocketAddr,
    /// Scenario seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start at this scenario time (RFC 3339); defaults to the scenario start.
    #[arg(long)]
    start_at: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let s = Scenario::load(&cli.scenario)?;
    let start_at = match &cli.start_at {
        Some(t) => Some(
            Timestamp::parse(t).ok_or_else(|| anyhow::anyhow!("--start-at: invalid time {t:?}"))?,
        ),
        None => None,
    };
    let n = s.events.len();
    let (name, label) = (
        s.manifest.scenario.name.clone(),
        s.manifest.scenario.provenance.label(),
    );
    let opts = kamiyo_simulator::SimOptions {
        bind: cli.bind,
        speed: cli.speed,
        start_at,
        greeting: true,
    };
    let h = kamiyo_simulator::start_scenario(s, opts).await?;
    writeln!(
        std::io::stdout(),
        "kamiyo-sim: serving {name} ({n} events, {label}) on {} — REST {} , WS {}",
        h.addr(),
        h.http_url(),
        h.ws_url()
    )?;
    tokio::signal::ctrl_c().await?;
    h.shutdown();
    Ok(())
}
