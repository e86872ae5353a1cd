//! `kamiyo-platform`: the managed kamiyo.ai service.

use std::io::Write;

use clap::{Parser, Subcommand};
use kamiyo_platform::tiers::{Tier, TierMatrix};

#[derive(Debug, Parser)]
#[command(
    name = "kamiyo-platform",
    version,
    about = "kamiyo.ai managed platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the tier matrix.
    Tiers,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Tiers => {
            let matrix = TierMatrix::default_matrix()?;
            let mut out = std::io::stdout().lock();
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
    }
    Ok(())
}
