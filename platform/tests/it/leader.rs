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
         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'kamiyo-ingest-%'",
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
    let mut children: Vec<std::process::Child> = (0..3)
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
