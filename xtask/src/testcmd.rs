//! `cargo xtask test`: makes sure the local PostgreSQL the store tests need is up (starting
//! the Debian cluster and creating the test role when run as root), then runs the whole test
//! suite (cargo-nextest when installed, else `cargo test`) and the doctests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The URL the tests use unless `KAMIYO_TEST_PG_URL` says otherwise.
pub const DEFAULT_PG_URL: &str = "postgres://kamiyo:kamiyo@127.0.0.1:5432/kamiyo_test";

fn ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pg_ready() -> bool {
    ok(Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", "5432"]))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn pg_version() -> Option<String> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    versions.sort_unstable();
    versions.last().map(u32::to_string)
}

/// Starts the local cluster if needed and creates the default test role and database.
pub fn ensure_postgres(url: &str) -> anyhow::Result<()> {
    let root = is_root();
    if !pg_ready() {
        let Some(ver) = pg_version() else {
            bail!(
                "PostgreSQL is not reachable on 127.0.0.1:5432 and no server is installed; install postgresql or set KAMIYO_TEST_PG_URL"
            );
        };
        if !root {
            bail!(
                "PostgreSQL {ver} is installed but not running; start it (as root: pg_ctlcluster {ver} main start) or set KAMIYO_TEST_PG_URL"
            );
        }
        let listed = Command::new("pg_lsclusters")
            .arg("-h")
            .output()
            .context("pg_lsclusters")?;
        if !String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.split_whitespace().take(2).eq([ver.as_str(), "main"]))
        {
            run(Command::new("pg_createcluster").args([ver.as_str(), "main"]))?;
        }
        run(Command::new("pg_ctlcluster").args([ver.as_str(), "main", "start"]))?;
        let start = Instant::now();
        while !pg_ready() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("PostgreSQL did not become ready within 30 s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if root && url == DEFAULT_PG_URL {
        #[allow(unused_mut, reason = "the private tree adds to it")]
        let mut sql = String::from(
            "DO $$ BEGIN \
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kamiyo') THEN \
                CREATE ROLE kamiyo LOGIN CREATEDB PASSWORD 'kamiyo'; \
              END IF; END $$;\n\
            SELECT 'CREATE DATABASE kamiyo_test OWNER kamiyo' \
              WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kamiyo_test')\\gexec\n",
        );
        // kamiyo:private-begin
        // The platform serves as an application role that owns nothing and bypasses nothing,
        // so its tests prove row-level security binds it.
        sql.push_str(
            "DO $$ BEGIN \
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kamiyo_app') THEN \
                CREATE ROLE kamiyo_app LOGIN PASSWORD 'kamiyo_app' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
              END IF; END $$;\n",
        );
        // kamiyo:private-end
        let mut child = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .current_dir("/")
            .stdin(Stdio::piped())
            .spawn()
            .context("running psql as postgres")?;
        if let Some(stdin) = child.stdin.as_mut() {
            use std::io::Write;
            stdin.write_all(sql.as_bytes())?;
        }
        drop(child.stdin.take());
        if !child.wait()?.success() {
            bail!("creating the kamiyo test role and database failed");
        }
    }
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs the suite in `root` with `extra` arguments passed to the test runner.
pub fn test(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    let url = std::env::var("KAMIYO_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    ensure_postgres(&url)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let nextest = ok(Command::new(&cargo).args(["nextest", "--version"]));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root).env("KAMIYO_TEST_PG_URL", &url);
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra);
    run(&mut cmd)?;
    if nextest {
        run(Command::new(&cargo)
            .current_dir(root)
            .args(["test", "--workspace", "--doc"]))?;
    }
    Ok(())
}
