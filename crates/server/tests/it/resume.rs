//! A stored replay killed with SIGKILL mid-way and restarted ends with exactly the rows of an
//! uninterrupted run — on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kamiyo_core_models::MarketStore;
use kamiyo_store::Store;
use kamiyo_testing::TestDatabase;

use crate::support::{finish, root};

const SCENARIO: &str = "jelly-2025-03-26";

/// Where one run keeps its data: a SQLite data directory or a PostgreSQL URL.
#[derive(Clone)]
enum Target {
    Sqlite(PathBuf),
    Pg(String),
}

impl Target {
    async fn open(&self) -> Store {
        match self {
            Self::Sqlite(dir) => Store::open("", dir, 2).await.unwrap(),
            Self::Pg(url) => Store::open(url, Path::new("unused"), 2).await.unwrap(),
        }
    }
}

fn replay(target: &Target, speed: &str) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"));
    c.current_dir(root())
        .args(["replay", SCENARIO, "--store", "--speed", speed])
        .env_remove("DATABASE_URL")
        .env_remove("KAMIYO_CONFIG")
        .env("KAMIYO_DATABASE__BATCH_MAX_ROWS", "64")
        .env("KAMIYO_DATABASE__BATCH_MAX_DELAY_MS", "20")
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match target {
        Target::Sqlite(dir) => c.env("KAMIYO_SERVER__DATA_DIR", dir),
        Target::Pg(url) => c.env("DATABASE_URL", url),
    };
    c.spawn().expect("spawning kamiyo-hyperliquid")
}

async fn committed(store: &Store) -> usize {
    store
        .cursor(&format!("replay:{SCENARIO}"))
        .await
        .unwrap()
        .map_or(0, |v| v.parse().unwrap())
}

/// Runs a paced replay and SIGKILLs it once its committed cursor passes `from` events; returns
/// the cursor seen after the kill.
async fn kill_after(target: &Target, from: usize) -> usize {
    // Open (and migrate) first so the child and the observer agree on the schema.
    let store = target.open().await;
    let mut child = replay(target, "1500x");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("replay exited ({status}) before it could be killed");
        }
        if committed(&store).await >= from {
            break;
        }
        assert!(Instant::now() < deadline, "replay made no progress");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to flush
    child.wait().unwrap();
    committed(&store).await
}

async fn check(full: Target, crashed: Target) {
    finish(replay(&full, "max"));
    let expected = full.open().await.dump().await.unwrap();
    assert!(
        expected.security_events.len() > 10 && !expected.deviation_samples.is_empty(),
        "the reference run stored too little to compare"
    );

    let first = kill_after(&crashed, 3_000).await;
    let second = kill_after(&crashed, first + 3_000).await;
    assert!(
        first >= 3_000 && second > first && second < 15_654,
        "kills landed mid-replay: {first}, {second}"
    );
    let partial = crashed.open().await.dump().await.unwrap();
    assert!(
        partial.security_events.len() < expected.security_events.len()
            || partial.deviation_samples.len() < expected.deviation_samples.len(),
        "the killed run had already stored everything; the test proves nothing"
    );
    finish(replay(&crashed, "max"));
    let got = crashed.open().await.dump().await.unwrap();
    assert_eq!(got.security_events.len(), expected.security_events.len());
    assert_eq!(
        got.deviation_samples.len(),
        expected.deviation_samples.len()
    );
    assert!(
        got == expected,
        "resumed store differs from the uninterrupted run"
    );

    // A third run is a no-op.
    finish(replay(&crashed, "max"));
    assert!(crashed.open().await.dump().await.unwrap() == expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_replay_then_resume_equals_uninterrupted_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(
        Target::Sqlite(dir.path().join("full")),
        Target::Sqlite(dir.path().join("crashed")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_replay_then_resume_equals_uninterrupted_postgres() {
    let full = TestDatabase::new().await;
    let crashed = TestDatabase::new().await;
    check(
        Target::Pg(full.url.clone()),
        Target::Pg(crashed.url.clone()),
    )
    .await;
}
