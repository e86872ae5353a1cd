//! One active ingest per protocol across replicas: three `kamiyo-platform ingest` processes on
//! one PostgreSQL and the loopback exchange replaying the ETH-whale scenario. One leads (the
//! advisory lock, fence epoch 1) and the others wait; SIGKILL the leader and another takes over
//! within 10 s (epoch 2, committing); cut the new leader's lock connection and it stops
//! ingesting — its late writes refused by the fence — while a third epoch begins; no incident
//! is opened twice.

use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Integer, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use kamiyo_core_models::IncidentStatus;

use crate::env;

#[derive(QueryableByName, Debug)]
struct Holder {
    #[diesel(sql_type = Text)]
    application_name: String,
    #[diesel(sql_type = Integer)]
    pid: i32,
}

#[derive(QueryableByName, Debug, Clone, Copy, PartialEq, Eq)]
struct Fence {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    commits: i64,
}

/// The process holding the ingest lock: (OS pid from its application name, backend pid).
async fn holder(c: &mut AsyncPgConnection) -> Option<(u32, i32)> {
    let rows: Vec<Holder> = sql_query(
        "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'kamiyo-ingest-%' \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .load(c)
    .await
    .unwrap();
    assert!(rows.len() <= 1, "two holders: {rows:?}");
    <[Holder]>::first(&rows).and_then(|h| {
        h.application_name
            .rsplit('-')
            .next()
            .and_then(|p| p.parse().ok())
            .map(|os| (os, h.pid))
    })
}

async fn fence(c: &mut AsyncPgConnection) -> Option<Fence> {
    sql_query("SELECT epoch, commits FROM writer_fences WHERE name = 'kamiyo-ingest:hyperliquid'")
        .load::<Fence>(c)
        .await
        .unwrap()
        .into_iter()
        .next()
}

/// Waits until `ok` holds for the fence, at most `within`; the time it took.
async fn until(
    c: &mut AsyncPgConnection,
    within: Duration,
    what: &str,
    logs: &std::path::Path,
    ok: impl Fn(Fence) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        if fence(c).await.is_some_and(&ok) {
            return t0.elapsed();
        }
        if t0.elapsed() > within {
            let mut all = String::new();
            for i in 0..3 {
                all.push_str(
                    &std::fs::read_to_string(logs.join(format!("ingest-{i}.log")))
                        .unwrap_or_default(),
                );
            }
            panic!("{what} not within {within:?}: {:?}\n{all}", fence(c).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ingest_leads_takes_over_when_killed_and_stops_when_its_lock_is_cut() {
    let e = env().await;
    let sim = crate::ingest::whale_exchange().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::ingest::monitor_config(dir.path(), &sim.http_url());
    let mut children: Vec<kamiyo_testing::browser::Killed> = (0..3)
        .map(|i| {
            crate::ingest::spawn_ingest(
                &e,
                &["--monitor-config", cfg.to_str().unwrap()],
                &dir.path().join(format!("ingest-{i}.log")),
            )
        })
        .collect();
    sim.set_speed(60.0);
    let mut c = AsyncPgConnection::establish(&e.tdb.url).await.unwrap();
    // One leader, committing at epoch 1.
    until(
        &mut c,
        Duration::from_secs(60),
        "a first leader committing",
        dir.path(),
        |f| f.epoch == 1 && f.commits > 0,
    )
    .await;
    // Until the scenario has opened an incident, so that the next leader has one to carry on.
    let open_before = {
        let t0 = Instant::now();
        loop {
            let found = crate::ingest::incidents_in(&e.facts).await;
            if !found.is_empty() {
                break found;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "no incident within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (first, _) = holder(&mut c).await.unwrap();
    let i = children.iter().position(|ch| ch.id() == first).unwrap();
    // SIGKILL it: another takes over.
    children[i].kill().unwrap();
    children[i].wait().unwrap();
    let takeover = until(
        &mut c,
        Duration::from_secs(10),
        "takeover after SIGKILL",
        dir.path(),
        |f| f.epoch == 2 && f.commits > 0,
    )
    .await;
    let (second, backend) = holder(&mut c).await.unwrap();
    assert_ne!(second, first);
    // Cut the new leader's lock connection: it stops; a third epoch begins, and epoch 2 never
    // commits again.
    sql_query("SELECT pg_terminate_backend($1) IS NOT NULL AS flag")
        .bind::<Integer, _>(backend)
        .execute(&mut c)
        .await
        .unwrap();
    let cut = Instant::now();
    let third = until(
        &mut c,
        Duration::from_secs(10),
        "a new epoch after the cut",
        dir.path(),
        |f| f.epoch == 3 && f.commits > 0,
    )
    .await;
    let j = children.iter().position(|ch| ch.id() == second).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(dir.path().join(format!("ingest-{j}.log"))).unwrap();
        if log.contains("leadership lost") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(log.contains("leadership lost"), "{log}");
    // The third leader keeps the lead (no flapping: still epoch 3, still committing).
    let at = fence(&mut c).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = fence(&mut c).await.unwrap();
    assert_eq!(later.epoch, 3, "{later:?}");
    assert!(later.commits > at.commits, "{at:?} {later:?}");
    for ch in &mut children {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    // No incident opened twice: at most one open incident per key.
    let incidents = crate::ingest::incidents_in(&e.facts).await;
    assert!(incidents.len() >= open_before.len(), "{incidents:?}");
    for before in &open_before {
        assert!(
            incidents.iter().any(|i| i.id == before.id),
            "{} lost",
            before.id
        );
    }
    let mut open = std::collections::BTreeMap::new();
    for inc in incidents
        .iter()
        .filter(|i| i.status == IncidentStatus::Open)
    {
        *open.entry(inc.key.to_string()).or_insert(0) += 1;
    }
    assert!(open.values().all(|n| *n == 1), "{open:?}");
    eprintln!(
        "takeover after SIGKILL {takeover:?}; after the lock connection was cut a new epoch committed in {third:?} ({:?} since the cut); {} incidents",
        cut.elapsed(),
        incidents.len()
    );
}

async fn dydx_fence(c: &mut AsyncPgConnection) -> Option<Fence> {
    sql_query("SELECT epoch, commits FROM writer_fences WHERE name = 'kamiyo-ingest:dydx'")
        .load::<Fence>(c)
        .await
        .unwrap()
        .into_iter()
        .next()
}

async fn count(c: &mut AsyncPgConnection) -> Count {
    sql_query(
        "SELECT count(*) AS n, count(DISTINCT tid) AS distinct_tids FROM liquidations WHERE protocol = 'dydx'",
    )
    .load::<Count>(c)
    .await
    .unwrap()
    .remove(0)
}

#[derive(QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    distinct_tids: i64,
}

/// The gap a takeover leaves in stored events, against what the backfill reaches: two
/// `ingest --protocol dydx` processes on a loopback indexer where a liquidation happens every
/// 50 ms and each page holds the newest 100 (5 s of history). SIGKILL the leader; the next one
/// resumes after the committed trade cursor and its first page covers the gap: every
/// liquidation served is stored exactly once, and the open cascade is carried on, not opened
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_gap_is_filled_by_the_backfill_and_nothing_is_stored_twice() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let e = env().await;
    const EVERY_MS: i64 = 50;
    const PAGE: i64 = 100;
    let started = chrono::Utc::now().timestamp_millis();
    // Liquidations exist up to `frozen` (i64::MAX while running).
    let frozen = Arc::new(AtomicI64::new(i64::MAX));
    let markets = std::fs::read_to_string(format!(
        "{}/testdata/protocols/dydx/REAL-WRAPPED_v4_perpetualMarkets_BTC-ETH-SOL_2025-12-08.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let markets =
        serde_json::from_str::<serde_json::Value>(&markets).unwrap()["result"].to_string();
    let f2 = frozen.clone();
    let script: crate::dydx::Script = Arc::new(move |path, _| {
        if path.ends_with("/perpetualMarkets") {
            return (200, markets.clone(), 0);
        }
        let now = chrono::Utc::now()
            .timestamp_millis()
            .min(AtomicI64::load(&f2, Ordering::SeqCst));
        let n = (now - started) / EVERY_MS;
        let trades: Vec<serde_json::Value> = ((n - PAGE).max(0)..n)
            .rev()
            .map(|k| {
                let at = chrono::DateTime::from_timestamp_millis(started + k * EVERY_MS).unwrap();
                let id = format!("{k:024x}");
                serde_json::json!({"id": id, "side": "SELL", "size": "0.01", "price": "89942",
                    "type": "LIQUIDATED", "createdAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "createdAtHeight": "1"})
            })
            .collect();
        (200, serde_json::json!({"trades": trades}).to_string(), 0)
    });
    let (root, _) = crate::dydx::venue(script).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("platform.toml");
    std::fs::write(
        &config,
        format!(
            "[adapters.dydx]\nbase_urls = [\"{root}/v4\"]\nmarkets = [\"BTC-USD\"]\ntrades_every_ms = 200\ncontexts_every_ms = 1000\n"
        ),
    )
    .unwrap();
    let mut children: Vec<kamiyo_testing::browser::Killed> = (0..2)
        .map(|i| {
            crate::ingest::spawn_ingest(
                &e,
                &["--protocol", "dydx", "--config", config.to_str().unwrap()],
                &dir.path().join(format!("ingest-{i}.log")),
            )
        })
        .collect();
    let mut c = AsyncPgConnection::establish(&e.tdb.url).await.unwrap();
    let t0 = Instant::now();
    while !(dydx_fence(&mut c).await.is_some_and(|f| f.commits > 0) && count(&mut c).await.n > 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no first leader storing liquidations"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (first, _) = holder(&mut c).await.unwrap();
    let i = children.iter().position(|ch| ch.id() == first).unwrap();
    children[i].kill().unwrap();
    children[i].wait().unwrap();
    let killed = Instant::now();
    while !dydx_fence(&mut c)
        .await
        .is_some_and(|f| f.epoch == 2 && f.commits > 0)
    {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no takeover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = killed.elapsed();
    // Run on, then stop the market and let the leader store the rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    frozen.store(chrono::Utc::now().timestamp_millis(), Ordering::SeqCst);
    let expected = (AtomicI64::load(&frozen, Ordering::SeqCst) - started) / EVERY_MS;
    let t1 = Instant::now();
    let stored = loop {
        let k = count(&mut c).await;
        if k.n >= expected || t1.elapsed() > Duration::from_secs(20) {
            break k;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for ch in &mut children {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    let all_logs: String = (0..2)
        .map(|i| {
            std::fs::read_to_string(dir.path().join(format!("ingest-{i}.log"))).unwrap_or_default()
        })
        .collect();
    eprintln!(
        "dYdX takeover after SIGKILL {takeover:?}; backfill reach {} ms (a page of {PAGE} at one liquidation per {EVERY_MS} ms); {expected} liquidations happened, {} stored ({} distinct), {} missing",
        PAGE * EVERY_MS,
        stored.n,
        stored.distinct_tids,
        expected - stored.distinct_tids
    );
    // Every liquidation stored, once: the gap was inside the backfill's reach.
    assert_eq!(stored.distinct_tids, expected, "{all_logs}");
    assert_eq!(stored.n, stored.distinct_tids);
    assert!(
        takeover < Duration::from_millis((PAGE * EVERY_MS) as u64),
        "{takeover:?}"
    );
    assert!(
        all_logs.contains("resuming trades after the committed cursor"),
        "{all_logs}"
    );
    // The cascade the first leader opened is carried on by the second, never opened again.
    let incidents = crate::ingest::incidents_in(&e.facts).await;
    let mut keys = std::collections::BTreeMap::new();
    for i in incidents.iter().filter(|i| i.protocol.as_str() == "dydx") {
        *keys.entry(i.key.to_string()).or_insert(0) += 1;
    }
    assert!(!keys.is_empty(), "no dYdX incident");
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");
}
