//! The delivery service over a real SQLite store and loopback receivers: lifecycle routing,
//! retries, 429 handling, permanent failures, rate budgets, and no repeat after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kamiyo_alerts::{AlertService, AlertsConfig, ChannelConfig, ChannelKind, Secret};
use kamiyo_core_models::{
    DeliveryQuery, IncidentChange, IngestBatch, MarketStore, OutboxStatus, OutboxStore, Severity,
    SystemClock,
};
use kamiyo_store::Store;
use kamiyo_testing::receiver::{Receiver, Reply};
use tokio::sync::watch;

use crate::support::{T_OPEN, update};

struct Running {
    store: Store,
    handle: kamiyo_alerts::AlertHandle,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(store: &Store, cfg: &AlertsConfig) -> Running {
    kamiyo_aggregators::install_crypto_provider();
    let (svc, problems) = AlertService::new(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        cfg,
        Some("https://kamiyo.example".into()),
    );
    assert!(problems.is_empty(), "{problems:?}");
    let handle = svc.handle();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(svc.run(rx));
    assert!(handle.wait_idle(Duration::from_secs(5)).await);
    Running {
        store: store.clone(),
        handle,
        stop,
        task,
    }
}

impl Running {
    async fn commit(&self, updates: Vec<kamiyo_core_models::IncidentUpdate>) {
        self.store
            .commit(&IngestBatch {
                updates,
                ..IngestBatch::default()
            })
            .await
            .unwrap();
        self.handle.wake();
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

fn channel(kind: ChannelKind, url: String) -> ChannelConfig {
    let mut c = ChannelConfig::new(kind);
    c.url = Secret::new(url);
    c.min_severity = Severity::Medium;
    c
}

fn config(channels: Vec<(&str, ChannelConfig)>) -> AlertsConfig {
    AlertsConfig {
        initial_backoff_ms: 100,
        max_attempts: 4,
        // One message per incident step here; grouping has its own test.
        group_interval_secs: 0,
        channels: channels
            .into_iter()
            .map(|(n, c)| (n.to_owned(), c))
            .collect(),
        ..AlertsConfig::default()
    }
}

async fn open_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Store::open("", dir.path(), 4).await.unwrap(), dir)
}

#[tokio::test]
async fn one_message_per_lifecycle_step_and_none_repeated_after_a_restart() {
    let (store, _dir) = open_store().await;
    let rx = Receiver::start(|_, _| Reply::new(204, "")).await;
    let cfg = config(vec![("hook", channel(ChannelKind::Webhook, rx.url("/in")))]);
    let svc = start(&store, &cfg).await;
    let m = 60_000;
    let mut steps = vec![update(1, IncidentChange::Opened, Severity::High, T_OPEN)];
    for k in 1..=5 {
        steps.push(update(
            1,
            IncidentChange::Updated,
            Severity::High,
            T_OPEN + k * m,
        ));
    }
    steps.push(update(
        1,
        IncidentChange::Escalated,
        Severity::Critical,
        T_OPEN + 6 * m,
    ));
    steps.push(update(
        1,
        IncidentChange::Resolved,
        Severity::Critical,
        T_OPEN + 9 * m,
    ));
    svc.commit(steps).await;
    assert!(svc.handle.wait_idle(Duration::from_secs(10)).await);
    let kinds = event_kinds(&rx);
    assert_eq!(
        kinds,
        ["incident.opened", "incident.escalated", "incident.resolved"]
    );
    let log = store
        .deliveries(&DeliveryQuery {
            limit: 100,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|e| e.status == OutboxStatus::Delivered && e.attempts == 1)
    );
    // Each alert carries its step's entry of the event log, as stored: the receiver can hash
    // the event it got and later find its chain in the published log.
    let entries = kamiyo_core_models::IncidentStore::event_log(&store, 0, 100)
        .await
        .unwrap();
    assert_eq!(entries.len(), 8, "every step is logged, alerted or not");
    for got in rx.received() {
        let body = got.json();
        let entry: kamiyo_core_models::ledger::LogEntry =
            serde_json::from_value(body["log"].clone()).unwrap();
        assert_eq!(entries.iter().find(|e| e.seq == entry.seq), Some(&entry));
        let event: kamiyo_core_models::SecurityEvent =
            serde_json::from_value(body["event"].clone()).unwrap();
        assert_eq!(
            kamiyo_core_models::ledger::digest(entry.seq, &event),
            entry.digest
        );
    }
    svc.stop().await;

    // A restart routes nothing again and sends nothing again. The negative is proven by a
    // positive control: a new step committed after the restart is delivered, and the outbox is
    // worked in order, so anything re-sent would have arrived before it.
    let svc = start(&store, &cfg).await;
    svc.commit(vec![update(
        7,
        IncidentChange::Opened,
        Severity::Critical,
        T_OPEN + 10 * m,
    )])
    .await;
    assert!(svc.handle.wait_idle(Duration::from_secs(10)).await);
    let kinds = event_kinds(&rx);
    assert_eq!(
        kinds,
        [
            "incident.opened",
            "incident.escalated",
            "incident.resolved",
            "incident.opened"
        ],
        "only the new step after the restart"
    );
    svc.stop().await;
}

#[tokio::test]
async fn retry_after_transient_errors_and_permanent_failures_are_recorded() {
    let (store, _dir) = open_store().await;
    let flaky = Receiver::start(|n, _| match n {
        0 => Reply::new(429, "slow down").header("Retry-After", "1"),
        1 => Reply::new(502, "bad gateway"),
        _ => Reply::new(200, "ok"),
    })
    .await;
    let gone = Receiver::start(|_, _| Reply::new(404, "no_service")).await;
    let cfg = config(vec![
        (
            "flaky",
            channel(ChannelKind::Slack, flaky.url("/services/a")),
        ),
        ("gone", channel(ChannelKind::Slack, gone.url("/services/b"))),
    ]);
    let svc = start(&store, &cfg).await;
    let t0 = Instant::now();
    svc.commit(vec![update(
        2,
        IncidentChange::Opened,
        Severity::Critical,
        T_OPEN,
    )])
    .await;
    assert!(svc.handle.wait_idle(Duration::from_secs(15)).await);
    let f = flaky.received();
    assert_eq!(f.len(), 3);
    assert!(
        f[1].at.duration_since(f[0].at) >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        f[1].at.duration_since(f[0].at)
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(gone.received().len(), 1, "a 404 is not retried");
    let log = store
        .deliveries(&DeliveryQuery {
            limit: 10,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    let by = |c: &str| log.iter().find(|e| e.channel == c).unwrap().clone();
    let ok = by("flaky");
    assert_eq!((ok.status, ok.attempts), (OutboxStatus::Delivered, 3));
    let bad = by("gone");
    assert_eq!((bad.status, bad.attempts), (OutboxStatus::Failed, 1));
    assert!(bad.last_error.unwrap().contains("HTTP 404: no_service"));
    svc.stop().await;
}

#[tokio::test]
async fn discord_budget_spaces_a_burst_and_flapping_is_suppressed() {
    let (store, _dir) = open_store().await;
    let rx = Receiver::start(|_, _| Reply::new(200, r#"{"id":"1"}"#)).await;
    let cfg = config(vec![(
        "discord",
        channel(ChannelKind::Discord, rx.url("/api/webhooks/1/t")),
    )]);
    let svc = start(&store, &cfg).await;
    let burst: Vec<_> = (10..17)
        .map(|n| update(n, IncidentChange::Opened, Severity::Critical, T_OPEN))
        .collect();
    svc.commit(burst).await;
    let got = rx.wait_for(7, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 7);
    let first = got[0].at;
    assert!(got[4].at.duration_since(first) < Duration::from_millis(500));
    assert!(
        got[5].at.duration_since(first) >= Duration::from_millis(1950),
        "the 6th waits for the 5-per-2-s window: {:?}",
        got[5].at.duration_since(first)
    );

    // One incident flapping: open, resolve, re-open at the same severity within the cooldown
    // (critical: a lower severity would be inhibited by the burst's open criticals on JELLY).
    let m = 60_000;
    svc.commit(vec![
        update(30, IncidentChange::Opened, Severity::Critical, T_OPEN),
        update(30, IncidentChange::Resolved, Severity::Critical, T_OPEN + m),
        update(
            30,
            IncidentChange::Opened,
            Severity::Critical,
            T_OPEN + 2 * m,
        ),
        update(
            30,
            IncidentChange::Resolved,
            Severity::Critical,
            T_OPEN + 3 * m,
        ),
    ])
    .await;
    assert!(svc.handle.wait_idle(Duration::from_secs(15)).await);
    let suppressed = store
        .deliveries(&DeliveryQuery {
            status: Some(OutboxStatus::Suppressed),
            limit: 10,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(suppressed.len(), 2);
    assert!(
        suppressed[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("cooldown")
    );
    assert_eq!(rx.received().len(), 9);
    svc.stop().await;
}

/// The `kamiyo-event` header of every request the receiver got, in order.
/// The delivery log's suppressed rows (silenced, grouped, inhibited, folded), newest first.
async fn suppressed(store: &Store) -> Vec<kamiyo_core_models::OutboxEntry> {
    store
        .deliveries(&DeliveryQuery {
            status: Some(OutboxStatus::Suppressed),
            limit: 100,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap()
}

fn event_kinds(rx: &Receiver) -> Vec<String> {
    rx.received()
        .iter()
        .map(|r| r.header("kamiyo-event").unwrap().to_owned())
        .collect()
}

/// A silence mutes matching steps at or below its severity: they are recorded as suppressed
/// with the silence named, never sent; a critical step of the same market goes through, and a
/// step after the silence ends is sent as news.
#[tokio::test]
async fn silences_mute_matching_steps_and_never_a_critical() {
    use kamiyo_core_models::{Coin, OperatorStore, Silence, SilenceMatchers, StableId, Timestamp};
    let (store, _dir) = open_store().await;
    let h = 3_600_000;
    store
        .insert_silence(&Silence {
            id: StableId::parse("sil_jelly").unwrap(),
            matchers: SilenceMatchers {
                asset: Some(Coin::new("jelly").unwrap()),
                severity: Some(Severity::High),
                ..SilenceMatchers::default()
            },
            starts_at: Timestamp(T_OPEN - h),
            ends_at: Timestamp(T_OPEN + h),
            created_by: "local".into(),
            comment: "JELLY delisting".into(),
            created_at: Timestamp(T_OPEN - h),
            expired_at: None,
        })
        .await
        .unwrap();
    let rx = Receiver::start(|_, _| Reply::new(204, "")).await;
    let cfg = config(vec![("hook", channel(ChannelKind::Webhook, rx.url("/in")))]);
    let svc = start(&store, &cfg).await;
    let m = 60_000;
    svc.commit(vec![
        update(1, IncidentChange::Opened, Severity::High, T_OPEN),
        update(2, IncidentChange::Opened, Severity::High, T_OPEN),
        update(2, IncidentChange::Resolved, Severity::High, T_OPEN + 9 * m),
        update(
            1,
            IncidentChange::Escalated,
            Severity::Critical,
            T_OPEN + 6 * m,
        ),
        // Resolved before the next opening, which an open critical on JELLY would inhibit.
        update(
            1,
            IncidentChange::Resolved,
            Severity::Critical,
            T_OPEN + 60 * m,
        ),
        update(3, IncidentChange::Opened, Severity::High, T_OPEN + 2 * h),
    ])
    .await;
    assert!(svc.handle.wait_idle(Duration::from_secs(10)).await);
    assert_eq!(
        event_kinds(&rx),
        ["incident.escalated", "incident.resolved", "incident.opened"],
        "the critical escalation, its resolution, and the step after the silence"
    );
    let log = suppressed(&store).await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|e| e.last_error.as_deref().is_some_and(|r| {
        r.starts_with("silenced by sil_jelly until") && r.contains("JELLY delisting")
    })));
    svc.stop().await;
}

/// Incidents on one market share a notification thread: the first is announced, the next ones
/// are recorded as grouped and reported together in one group update (at once when they raise
/// the thread's severity, else after the group interval); the first's resolution goes out, and
/// the thread's last update says where the others stand.
#[tokio::test]
async fn incidents_on_one_market_share_one_thread() {
    let (store, _dir) = open_store().await;
    let rx = Receiver::start(|_, _| Reply::new(204, "")).await;
    let mut cfg = config(vec![("hook", channel(ChannelKind::Webhook, rx.url("/in")))]);
    cfg.group_interval_secs = 120;
    let svc = start(&store, &cfg).await;
    let m = 60_000;
    // The JELLY squeeze: five incidents on one market within minutes.
    svc.commit(vec![
        update(1, IncidentChange::Opened, Severity::High, T_OPEN),
        update(2, IncidentChange::Opened, Severity::High, T_OPEN + m),
        update(3, IncidentChange::Opened, Severity::High, T_OPEN + 2 * m),
        update(
            4,
            IncidentChange::Opened,
            Severity::Critical,
            T_OPEN + 3 * m,
        ),
        update(5, IncidentChange::Opened, Severity::High, T_OPEN + 4 * m),
    ])
    .await;
    assert!(svc.handle.wait_idle(Duration::from_secs(10)).await);
    let got = rx.received();
    let kinds: Vec<String> = event_kinds(&rx);
    // The first incident, then one group update at once (the critical raised the thread), not
    // five pages.
    assert_eq!(kinds[0], "incident.opened");
    assert!(
        kinds[1..].iter().all(|k| k == "incident.group_update"),
        "{kinds:?}"
    );
    assert!(kinds.len() <= 3, "{kinds:?}");
    let last = got.last().unwrap().json();
    let related = last["related"].as_array().unwrap();
    assert!(related.len() >= 3, "{last}");
    assert!(
        last["headline"]
            .as_str()
            .unwrap()
            .starts_with("[CRITICAL] Group update · "),
        "{last}"
    );
    // It carries its lead's last step's log entry.
    let lead_seq = last["log"]["seq"].as_i64().unwrap();
    let entry = kamiyo_core_models::IncidentStore::event_log(&store, lead_seq - 1, 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last["log"]["chain"], entry.chain.as_str(), "{last}");
    let log = suppressed(&store).await;
    assert_eq!(log.len(), 4, "every grouped step is in the log");
    assert!(log.iter().all(|e| {
        e.last_error
            .as_deref()
            .is_some_and(|r| r.starts_with("grouped with incident "))
    }));
    svc.stop().await;
}

/// Two consumers of one store follow the event sequence independently, each with its own
/// cursor: both deliver every step, and a restart of one resumes from its own cursor.
#[tokio::test]
async fn consumers_follow_the_event_sequence_independently() {
    let (store, _dir) = open_store().await;
    let rx_a = Receiver::start(|_, _| Reply::new(204, "")).await;
    let rx_b = Receiver::start(|_, _| Reply::new(204, "")).await;
    let cfg_a = config(vec![(
        "hook-a",
        channel(ChannelKind::Webhook, rx_a.url("/a")),
    )]);
    let cfg_b = config(vec![(
        "hook-b",
        channel(ChannelKind::Webhook, rx_b.url("/b")),
    )]);
    let start_as = |cfg: AlertsConfig, consumer: Option<&'static str>| {
        let store = store.clone();
        async move {
            kamiyo_aggregators::install_crypto_provider();
            let (svc, _) =
                AlertService::new(Arc::new(store.clone()), Arc::new(SystemClock), &cfg, None);
            let svc = match consumer {
                Some(c) => svc.with_consumer(c),
                None => svc,
            };
            let handle = svc.handle();
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(svc.run(rx));
            assert!(handle.wait_idle(Duration::from_secs(5)).await);
            Running {
                store,
                handle,
                stop,
                task,
            }
        }
    };
    let a = start_as(cfg_a.clone(), None).await;
    let b = start_as(cfg_b.clone(), Some("tenant-b")).await;
    a.commit(vec![update(
        1,
        IncidentChange::Opened,
        Severity::High,
        T_OPEN,
    )])
    .await;
    b.handle.wake();
    assert!(a.handle.wait_idle(Duration::from_secs(10)).await);
    assert!(b.handle.wait_idle(Duration::from_secs(10)).await);
    assert_eq!(rx_a.received().len(), 1);
    assert_eq!(rx_b.received().len(), 1);
    // B stops; A goes on; B restarts and catches up from its own cursor.
    b.stop().await;
    a.commit(vec![update(
        1,
        IncidentChange::Resolved,
        Severity::High,
        T_OPEN + 600_000,
    )])
    .await;
    assert!(a.handle.wait_idle(Duration::from_secs(10)).await);
    assert_eq!(rx_a.received().len(), 2);
    assert_eq!(rx_b.received().len(), 1);
    let b = start_as(cfg_b, Some("tenant-b")).await;
    assert!(b.handle.wait_idle(Duration::from_secs(10)).await);
    assert_eq!(rx_b.received().len(), 2, "B routed what it missed");
    let cursors: Vec<String> = ["alerts:routed", "alerts:routed:tenant-b"]
        .into_iter()
        .map(String::from)
        .collect();
    for c in &cursors {
        assert!(store.cursor(c).await.unwrap().is_some(), "{c}");
    }
    a.stop().await;
    b.stop().await;
}
