//! `kamiyo-hyperliquid`: the self-hosted Hyperliquid security monitor.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let bind = match cli.command {
        Some(Command::Run { bind }) => bind,
        None => "127.0.0.1:8080".parse()?,
    };
    let app = kamiyo_server::Application::build(bind)?;
    tracing::info!(http.addr = %app.addr(), "serving /health");
    tracing::warn!(
        "monitors are not wired yet: this build serves /health only and monitors nothing"
    );
    app.run().await
}
