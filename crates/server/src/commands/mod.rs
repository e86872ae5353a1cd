//! One module per subcommand.

pub mod alerts;
pub mod backtest;
pub mod exploits;
pub mod health;
pub mod keys;
pub mod log;
pub mod ml;
pub mod replay;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Resolves a scenario argument: a directory with a `scenario.toml`, or the name of a scenario
/// under `$KAMIYO_SCENARIOS`, `./scenarios` or the source tree's `scenarios/`.
pub fn resolve_scenario(arg: &str) -> anyhow::Result<PathBuf> {
    let direct = PathBuf::from(arg);
    if direct.join("scenario.toml").is_file() {
        return Ok(direct);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(r) = std::env::var("KAMIYO_SCENARIOS") {
        roots.push(r.into());
    }
    roots.push("scenarios".into());
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios"));
    for r in &roots {
        let p = r.join(arg);
        if p.join("scenario.toml").is_file() {
            return Ok(p);
        }
    }
    bail!(
        "no scenario {arg:?}: give a directory containing scenario.toml, or one of the names under ./scenarios (calm-2025-06-01-14, eth-whale-2025-03-12, jelly-2025-03-26, xpl-2025-08-26); KAMIYO_SCENARIOS may point at another scenario root"
    )
}

/// A progress bar on stderr when stderr is a terminal; silent otherwise (CI logs stay clean).
#[derive(Debug)]
pub struct Progress {
    label: String,
    tty: bool,
    last_pct: i64,
}

impl Progress {
    /// A bar labelled `label`.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            tty: std::io::stderr().is_terminal(),
            last_pct: -1,
        }
    }

    /// Shows `done` of `total`.
    pub fn update(&mut self, done: usize, total: usize) {
        if !self.tty || total == 0 {
            return;
        }
        let pct = (done * 100 / total) as i64;
        if pct == self.last_pct {
            return;
        }
        self.last_pct = pct;
        let filled = (pct / 4) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {pct:>3}% {done}/{total} events",
            self.label,
            "#".repeat(filled),
            "-".repeat(25 - filled)
        );
        if done >= total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// Writes `text` to `path`, creating parent directories.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
