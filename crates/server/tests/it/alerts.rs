//! Alerts are never lost: a stored replay with a signed-webhook channel is SIGKILLed while a
//! delivery is in flight, restarted, and every alert of an uninterrupted run reaches the
//! receiver — a repeat only for the one in flight, with the same idempotency key. Also
//! `alerts test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kamiyo_core_models::{DeliveryQuery, OutboxStatus, OutboxStore};
use kamiyo_store::Store;
use kamiyo_testing::receiver::{Receiver, Reply};

use crate::support::{finish, root};

const SCENARIO: &str = "jelly-2025-03-26";

fn binary(data: &Path, hook: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"));
    c.current_dir(root())
        .env_remove("DATABASE_URL")
        .env_remove("KAMIYO_CONFIG")
        .env("KAMIYO_SERVER__DATA_DIR", data)
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "warn")
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__KIND", "webhook")
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__URL", hook)
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__SECRET", "whsec_durability")
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__MIN_SEVERITY", "info")
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__RATE", "[\"1000/1s\"]")
        .env("KAMIYO_ALERTS__COOLDOWN_SECS", "0")
        .env("KAMIYO_SERVER__SHUTDOWN_TIMEOUT_SECS", "60");
    c
}

fn replay(data: &Path, hook: &str) -> Child {
    binary(data, hook)
        .args(["replay", SCENARIO, "--store", "--speed", "max"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kamiyo-hyperliquid")
}

/// Idempotency keys received, with how many times each arrived.
fn keys(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rx.received() {
        let k = r.header("kamiyo-idempotency-key").unwrap().to_owned();
        // Every delivery is signed with the configured secret.
        let sig = r.header("kamiyo-signature").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        kamiyo_alerts::channels::webhook::verify(b"whsec_durability", sig, &r.body, now, 300)
            .unwrap();
        assert_eq!(r.json()["id"], k.as_str());
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

async fn outbox(data: &Path) -> Vec<kamiyo_core_models::OutboxEntry> {
    let store = Store::open("", data, 2).await.unwrap();
    store
        .deliveries(&DeliveryQuery {
            limit: 1000,
            since: Some(kamiyo_core_models::Timestamp(0)),
            ..DeliveryQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_then_restart_delivers_every_alert() {
    let dir = tempfile::tempdir().unwrap();
    let slow = || Reply::new(200, "ok").delay(Duration::from_millis(250));

    // Reference: an uninterrupted run.
    let reference_rx = Receiver::start(move |_, _| slow()).await;
    let reference = dir.path().join("reference");
    finish(replay(&reference, &reference_rx.url("/hook")));
    let expected: BTreeSet<String> = keys(&reference_rx).into_keys().collect();
    assert!(expected.len() >= 6, "only {} alerts", expected.len());
    assert!(
        keys(&reference_rx).values().all(|n| *n == 1),
        "an uninterrupted run sends each alert once"
    );

    // Killed while the third delivery is waiting for its answer.
    let rx = Receiver::start(move |_, _| slow()).await;
    let crashed = dir.path().join("crashed");
    let hook = rx.url("/hook");
    let mut child = replay(&crashed, &hook);
    let deadline = Instant::now() + Duration::from_secs(120);
    while rx.received().len() < 3 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("replay exited ({status}) before it could be killed");
        }
        assert!(Instant::now() < deadline, "no delivery arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL, mid-delivery
    child.wait().unwrap();
    let before = rx.received().len();
    assert!(
        before < expected.len(),
        "everything was delivered before the kill"
    );
    let pending = outbox(&crashed)
        .await
        .iter()
        .filter(|e| e.status == OutboxStatus::Pending)
        .count();
    assert!(pending > 0, "the killed run left nothing pending");

    // Restart: the replay resumes, the outbox drains.
    finish(replay(&crashed, &hook));
    let got = keys(&rx);
    let unique: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(
        unique, expected,
        "every alert of the uninterrupted run arrived"
    );
    let repeats: usize = got.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 1,
        "only the delivery in flight at the kill may repeat (same key); got {repeats}"
    );
    // Every alert delivered; the rest of the log is what the router held back on purpose
    // (inhibited by an open critical on the market, or folded by the cooldown), as in the
    // uninterrupted run.
    let log = outbox(&crashed).await;
    let delivered = log
        .iter()
        .filter(|e| e.status == OutboxStatus::Delivered)
        .count();
    assert_eq!(delivered, expected.len());
    let held = |l: &[kamiyo_core_models::OutboxEntry]| -> BTreeSet<String> {
        l.iter()
            .filter(|e| e.status != OutboxStatus::Delivered)
            .map(|e| {
                assert_eq!(e.status, OutboxStatus::Suppressed, "{e:?}");
                e.id.to_string()
            })
            .collect()
    };
    assert_eq!(held(&log), held(&outbox(&reference).await));

    // A third run sends nothing more.
    finish(replay(&crashed, &hook));
    assert_eq!(rx.received().len(), got.values().sum::<usize>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_reports_success_and_the_exact_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Receiver::start(|_, _| Reply::new(204, "")).await;
    let gone =
        Receiver::start(|_, _| Reply::new(404, r#"{"message": "Unknown Webhook", "code": 10015}"#))
            .await;
    let out = binary(dir.path(), &ok.url("/hook"))
        .env("KAMIYO_ALERTS__CHANNELS__DISCORD__KIND", "discord")
        .env(
            "KAMIYO_ALERTS__CHANNELS__DISCORD__URL",
            gone.url("/api/webhooks/1/secret-token"),
        )
        .args(["alerts", "test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("hook (webhook): delivered"), "{text}");
    assert!(
        text.contains("discord (discord): FAILED")
            && text.contains("HTTP 404")
            && text.contains("Unknown Webhook"),
        "{text}"
    );
    assert!(
        !text.contains("secret-token"),
        "the URL's token is never printed: {text}"
    );
    let r = &ok.received()[0];
    assert_eq!(r.header("kamiyo-event"), Some("test"));
    assert_eq!(r.json()["test"], true);
    assert!(r.json()["headline"].as_str().unwrap().starts_with("[TEST"));

    // One channel only; an unknown name is an error that lists the configured ones.
    let out = binary(dir.path(), &ok.url("/hook"))
        .args(["alerts", "test", "--channel", "hook"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = binary(dir.path(), &ok.url("/hook"))
        .args(["alerts", "test", "--channel", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configured: hook"));

    // A misspelt channel key is a configuration error with its path.
    let out = binary(dir.path(), &ok.url("/hook"))
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__URLL", "x")
        .args(["config", "check"])
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("alerts.channels.hook"), "{err}");
}
