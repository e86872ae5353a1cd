//! Test helpers shared by the integration tests (a path dev-dependency only; never published).
//!
//! [`TestDatabase`] creates a fresh PostgreSQL database per test from the server named by
//! `KAMIYO_TEST_PG_URL` (default `postgres://kamiyo:kamiyo@127.0.0.1:5432/kamiyo_test`) and drops
//! it afterwards, so PostgreSQL tests run in parallel. When PostgreSQL is unreachable the test
//! **fails** with instructions; it never skips.

pub mod browser;
pub mod load;
pub mod metrics;
pub mod receiver;
pub mod smtp;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use rand::Rng;

/// Default server for the tests (what `cargo xtask test` starts and creates).
pub const DEFAULT_PG_URL: &str = "postgres://kamiyo:kamiyo@127.0.0.1:5432/kamiyo_test";

/// Runs `cmd`, fails the test with its output unless it exits successfully, and returns its
/// standard output.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    succeeded(&format!("{cmd:?}"), &out)
}

/// The standard output of a finished `what`; fails the test with its output unless it exited
/// successfully.
fn succeeded(what: &str, out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the independent event-log verifier (`python3 docs/verify-event-log.py`, standard
/// library only) against the API at `base` with the kept `heads` (`SEQ:CHAIN`), off the async
/// runtime (the API under test may be served by the caller's), and returns its output.
pub async fn verify_event_log(base: &str, heads: &[String]) -> std::process::Output {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/verify-event-log.py"
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).arg(base);
    for h in heads {
        cmd.args(["--head", h]);
    }
    tokio::task::spawn_blocking(move || {
        cmd.output()
            .unwrap_or_else(|e| panic!("python3 runs the verifier (CI installs it): {e}"))
    })
    .await
    .unwrap_or_else(|e| panic!("the verifier's task: {e}"))
}

/// [`verify_event_log`] that must succeed: fails the test with the verifier's output otherwise,
/// and returns its standard output (`ok: …`).
pub async fn verify_event_log_ok(base: &str, heads: &[String]) -> String {
    succeeded(
        "the event-log verifier",
        &verify_event_log(base, heads).await,
    )
}

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var("KAMIYO_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => format!("{url}/{db}"),
    }
}

/// A database that exists for the life of the value.
#[derive(Debug)]
pub struct TestDatabase {
    /// URL of the fresh database.
    pub url: String,
    name: String,
    admin: String,
}

impl TestDatabase {
    /// Creates an empty database. Panics (failing the test) when PostgreSQL is unreachable.
    pub async fn new() -> Self {
        let admin = admin_url();
        let mut conn = match AsyncPgConnection::establish(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL is required by this test and is not reachable at {admin:?}: {e}.\n\
                 Run the suite with `cargo xtask test` (it starts the local cluster), or set KAMIYO_TEST_PG_URL."
            ),
        };
        let name = format!(
            "kamiyo_t_{:016x}",
            <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng().random::<u64>()
        );
        if let Err(e) = conn.batch_execute(&format!("CREATE DATABASE {name}")).await {
            panic!("creating test database {name}: {e}");
        }
        Self {
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop from a thread with its own runtime: Drop cannot await, and the test's runtime
        // may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = AsyncPgConnection::establish(&admin).await {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
