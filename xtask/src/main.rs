//! `cargo xtask`: maintainer automation. Every task lives here; no Makefiles, no script sprawl.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use xtask::{export, testcmd, tidy};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  tidy                 check the architecture invariants (also run by `cargo test -p xtask`)
  export-oss <dir>     write the open-source tree (without the private tree) into <dir>
  test [args…]         start the local PostgreSQL if needed, then run every test and doctest
";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root();
    let mut out = std::io::stdout().lock();
    match args.first().map(String::as_str) {
        Some("tidy") => {
            let v = tidy::run(&root)?;
            if v.is_empty() {
                writeln!(out, "tidy: all invariants hold")?;
            } else {
                for x in &v {
                    writeln!(out, "{x}")?;
                }
                bail!("tidy: {} violation(s)", v.len());
            }
        }
        Some("export-oss") => {
            let dest = args
                .get(1)
                .context("export-oss needs a destination directory")?;
            let n = export::export(&root, Path::new(dest))?;
            writeln!(out, "export-oss: wrote {n} files to {dest}")?;
        }
        Some("test") => testcmd::test(&root, &args[1..])?,
        _ => {
            write!(out, "{USAGE}")?;
            if !args.is_empty() {
                bail!("unknown task {:?}", args[0]);
            }
        }
    }
    Ok(())
}
