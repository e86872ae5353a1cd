//! `cargo xtask`: maintainer automation. Every task lives here; no Makefiles, no script sprawl.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use xtask::{export, release, testcmd, tidy};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  tidy                 check the architecture invariants (also run by `cargo test -p xtask`)
  export-oss <dir>     write the open-source tree (without the private tree) into <dir>
  test [args…]         start the local PostgreSQL if needed, then run every test and doctest
  release <version>    bump the published crates, update CHANGELOG.md from the commits, run tidy,
                       the tests, export-oss and `cargo publish --dry-run` in dependency order,
                       and build the release binary with checksums into dist/
  publish [--dry-run]  `cargo publish` every published crate in dependency order (never a
                       publish = false crate)
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
        Some("release") => {
            let version = args.get(1).context("release needs a version, e.g. 0.2.0")?;
            let date = std::process::Command::new("date")
                .args(["-u", "+%F"])
                .output()
                .context("date")?;
            let date = String::from_utf8_lossy(&date.stdout).trim().to_owned();
            release::release(&root, version, &date)?;
            writeln!(
                out,
                "release {version}: versions bumped, CHANGELOG.md updated, checks passed, dist/ written; review, commit, tag v{version}, then `cargo xtask publish`"
            )?;
        }
        Some("publish") => {
            let dry_run = match args.get(1).map(String::as_str) {
                None => false,
                Some("--dry-run") => true,
                Some(other) => bail!("publish: unknown argument {other:?}"),
            };
            let order = release::publish(&root, dry_run)?;
            writeln!(
                out,
                "publish{}: {}",
                if dry_run { " --dry-run" } else { "" },
                order.join(" → ")
            )?;
        }
        _ => {
            write!(out, "{USAGE}")?;
            if !args.is_empty() {
                bail!("unknown task {:?}", args[0]);
            }
        }
    }
    Ok(())
}
