//! The backend-independent store suite.

use kamiyo_core_models::ledger;
use kamiyo_core_models::{
    Address, Alert, ApiKeyRecord, ApiKeyStore, AuditEntry, AuditStore, Coin, DeliveryQuery,
    DeviationKind, DeviationSample, EventQuery, Evidence, Incident, IncidentChange, IncidentKey,
    IncidentQuery, IncidentStatus, IncidentStore, IncidentUpdate, IngestBatch, LiquidationMethod,
    LiquidationRecord, MarketBar, MarketStore, OperatorStore, Order, OutboxEntry, OutboxStatus,
    OutboxStore, PositionRecord, ProtocolId, SecurityEvent, Severity, Side, StableId, StoreError,
    ThreatType, Timestamp, VaultPoint,
};
use kamiyo_store::Store;
use kamiyo_store::retention::Retention;

const DAY: i64 = Timestamp::DAY;
const T0: i64 = 1_750_000_000_000;

fn wall_ms() -> i64 {
    kamiyo_core_models::Clock::now(&kamiyo_core_models::SystemClock).0
}

fn incident(
    key: &str,
    sev: Severity,
    t: i64,
    status: IncidentStatus,
    asset: Option<&str>,
    threat: ThreatType,
) -> Incident {
    let key = IncidentKey::parse(key).unwrap();
    Incident {
        protocol: Default::default(),
        id: Incident::derive_id(&key, Timestamp(T0)),
        key,
        detector: "test".into(),
        threat_type: threat,
        severity: sev,
        peak_severity: sev,
        asset: asset.map(|a| Coin::new(a).unwrap()),
        status,
        title: format!("{sev} at {t}"),
        indicators: vec!["x".into()],
        evidence: Evidence::new()
            .with(
                "value",
                "1.25".parse::<kamiyo_core_models::Decimal>().unwrap(),
            )
            .with("venue", "binance"),
        first_seen: Timestamp(T0),
        last_seen: Timestamp(t),
        resolved_at: (status == IncidentStatus::Resolved).then_some(Timestamp(t)),
        detections: 3,
    }
}

fn update(i: &Incident, change: IncidentChange, t: i64) -> IncidentUpdate {
    IncidentUpdate {
        event: SecurityEvent::from_incident(i, change, Timestamp(t)),
        incident: i.clone(),
    }
}

/// A critical liquidation incident on XPL, opened after [`sample_updates`].
fn xpl_liquidation() -> Incident {
    incident(
        "large_liquidation:XPL",
        Severity::Critical,
        T0 + 90_000,
        IncidentStatus::Open,
        Some("XPL"),
        ThreatType::LargeLiquidation,
    )
}

fn sample_updates() -> Vec<IncidentUpdate> {
    let a = incident(
        "oracle_deviation:ETH",
        Severity::High,
        T0,
        IncidentStatus::Open,
        Some("ETH"),
        ThreatType::OracleDeviation,
    );
    let mut a2 = a.clone();
    a2.severity = Severity::Critical;
    a2.peak_severity = Severity::Critical;
    a2.last_seen = Timestamp(T0 + 60_000);
    let b = incident(
        "hlp_loss:0xdfc2",
        Severity::Medium,
        T0 + 30_000,
        IncidentStatus::Open,
        None,
        ThreatType::HlpLoss,
    );
    vec![
        update(&a, IncidentChange::Opened, T0),
        update(&b, IncidentChange::Opened, T0 + 30_000),
        update(&a2, IncidentChange::Escalated, T0 + 60_000),
    ]
}

pub(crate) async fn migrations_are_idempotent(s: &Store) {
    assert_eq!(
        s.migrate().await.unwrap(),
        0,
        "open() already migrated; a second run applies nothing"
    );
    s.ping().await.unwrap();
    let counts = s.counts().await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 0), "{counts:?}");
}

pub(crate) async fn events_get_dense_sequence_numbers_and_duplicates_are_ignored(s: &Store) {
    let stored = s.record_updates(&sample_updates()).await.unwrap();
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let again = s.record_updates(&sample_updates()).await.unwrap();
    assert!(again.is_empty(), "the same events are not stored twice");
    let all = s.all_events().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].event, sample_updates()[2].event, "round trip");
    let more = xpl_liquidation();
    let stored = s
        .record_updates(&[update(&more, IncidentChange::Opened, T0 + 90_000)])
        .await
        .unwrap();
    assert_eq!(stored[0].seq, 4);
}

pub(crate) async fn event_filters_and_cursor_pagination(s: &Store) {
    s.record_updates(&sample_updates()).await.unwrap();
    let q = |f: &dyn Fn(&mut EventQuery)| {
        let mut q = EventQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = s.events(&q(&|_| {})).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 2, 1],
        "newest first"
    );
    let high = s
        .events(&q(&|q| q.min_severity = Some(Severity::High)))
        .await
        .unwrap();
    assert_eq!(high.len(), 2);
    let hlp = s
        .events(&q(&|q| q.threat_type = Some(ThreatType::HlpLoss)))
        .await
        .unwrap();
    assert_eq!(hlp.len(), 1);
    let eth = s
        .events(&q(&|q| q.asset = Some(Coin::new("ETH").unwrap())))
        .await
        .unwrap();
    assert_eq!(eth.len(), 2);
    let late = s
        .events(&q(&|q| q.since = Some(Timestamp(T0 + 30_000))))
        .await
        .unwrap();
    assert_eq!(late.len(), 2);
    let page1 = s.events(&q(&|q| q.limit = 2)).await.unwrap();
    let page2 = s
        .events(&q(&|q| {
            q.limit = 2;
            q.before_seq = Some(2);
        }))
        .await
        .unwrap();
    assert_eq!((page1.len(), page2.len(), page2[0].seq), (2, 1, 1));
    let resume = s
        .events(&q(&|q| {
            q.after_seq = Some(1);
            q.order = Order::Asc;
        }))
        .await
        .unwrap();
    assert_eq!(
        resume.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3],
        "stream resume is oldest first"
    );
}

pub(crate) async fn incidents_are_upserted_with_their_latest_state(s: &Store) {
    let u = sample_updates();
    s.record_updates(&u).await.unwrap();
    let id = &u[0].incident.id;
    let i = s.incident(id).await.unwrap().unwrap();
    assert_eq!(i.severity, Severity::Critical, "latest state wins");
    assert_eq!(i.last_seen, Timestamp(T0 + 60_000));
    assert_eq!(i.evidence, u[2].incident.evidence);
    assert!(
        s.incident(&StableId::parse("inc_missing").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let open = s
        .incidents(&IncidentQuery {
            status: Some(IncidentStatus::Open),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].id, *id, "most recently seen first");
    let mut resolved = u[2].incident.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.resolved_at = Some(Timestamp(T0 + 700_000));
    s.record_updates(&[update(&resolved, IncidentChange::Resolved, T0 + 700_000)])
        .await
        .unwrap();
    let open = s
        .incidents(&IncidentQuery {
            status: Some(IncidentStatus::Open),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    let events = s.incident_events(id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.event.change).collect::<Vec<_>>(),
        [
            IncidentChange::Opened,
            IncidentChange::Escalated,
            IncidentChange::Resolved
        ]
    );
}

fn vault(t: i64, pnl: &str) -> VaultPoint {
    VaultPoint {
        protocol: ProtocolId::HYPERLIQUID,
        vault: Address::from_bytes([0xdf; 20]),
        time: Timestamp(t),
        account_value: "487145121.9079".parse().unwrap(),
        pnl: pnl.parse().unwrap(),
    }
}

fn liq(t: i64, tid: u64, user: u8) -> LiquidationRecord {
    LiquidationRecord {
        protocol: ProtocolId::HYPERLIQUID,
        time: Timestamp(t),
        coin: Coin::new("ETH").unwrap(),
        user: Address::from_bytes([user; 20]),
        liquidated_user: Some(Address::from_bytes([0xf3; 20])),
        side: Side::Buy,
        px: "1915".parse().unwrap(),
        sz: "160234.18".parse().unwrap(),
        notional: "306848454.7".parse().unwrap(),
        method: Some(LiquidationMethod::Backstop),
        is_adl: false,
        tid,
    }
}

fn dev(t: i64, coin: &str) -> DeviationSample {
    DeviationSample {
        protocol: ProtocolId::HYPERLIQUID,
        coin: Coin::new(coin).unwrap(),
        time: Timestamp(t),
        kind: DeviationKind::MarkVsOracle,
        venue: None,
        value: "0.0107".parse().unwrap(),
        reference: "0.0095".parse().unwrap(),
        deviation_pct: "12.6316".parse().unwrap(),
    }
}

fn pos(t: i64, user: u8, coin: &str, value: &str) -> PositionRecord {
    PositionRecord {
        protocol: ProtocolId::HYPERLIQUID,
        user: Address::from_bytes([user; 20]),
        time: Timestamp(t),
        coin: Coin::new(coin).unwrap(),
        szi: "-398000000".parse().unwrap(),
        position_value: value.parse().unwrap(),
        liquidation_px: None,
        account_value: "25000000".parse().unwrap(),
    }
}

fn bar(coin: &str, interval_ms: i64, t: i64, known: bool) -> MarketBar {
    let d = |s: &str| s.parse().unwrap();
    MarketBar {
        protocol: ProtocolId::HYPERLIQUID,
        coin: Coin::new(coin).unwrap(),
        interval_ms,
        time: Timestamp(t),
        open: d("0.0512"),
        high: d("0.0749"),
        low: d("0.05"),
        close: d("0.0736"),
        volume: d("91234567.5"),
        funding: d("-0.000123"),
        ref_px: known.then(|| d("0.0402")),
        open_interest: known.then(|| d("130000000")),
        liq_notional: known.then(|| d("0")),
        hlp_pnl: known.then(|| d("-13500000.25")),
        hlp_equity: known.then(|| d("230000000")),
    }
}

pub(crate) async fn market_history_dedups_and_cursors_commit_with_the_batch(s: &Store) {
    let batch = IngestBatch {
        vault_points: vec![vault(T0, "64100000"), vault(T0 + 60_000, "64050000.123456")],
        deviations: vec![dev(T0, "JELLY"), dev(T0 + 1, "JELLY"), dev(T0, "XPL")],
        liquidations: vec![liq(T0, 7, 0x2e), liq(T0, 7, 0xf3), liq(T0 + 1, 8, 0x2e)],
        positions: vec![
            pos(T0, 0x2e, "JELLY", "3781000"),
            pos(T0 + 60_000, 0x2e, "JELLY", "14941723"),
            pos(T0, 0x2e, "ETH", "100"),
        ],
        bars: vec![
            bar("JELLY", 300_000, T0, true),
            bar("JELLY", 300_000, T0 + 300_000, false),
            bar("JELLY", 3_600_000, T0, true),
            bar("BTC", 300_000, T0, false),
        ],
        updates: sample_updates(),
        outbox: vec![
            outbox("alr_batch1", "ops", T0),
            outbox("alr_batch2", "ops", T0 + 1),
        ],
        actions: vec![],
        cursors: vec![
            ("hyperliquid.fills:0x2e3d".into(), "1750000000000".into()),
            ("replay:test".into(), "42".into()),
        ],
    };
    s.commit(&batch).await.unwrap();
    s.commit(&batch).await.unwrap();
    let due = s
        .due("alerts:routed", Timestamp(T0 + 10), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2, "outbox entries commit with the batch, once");
    let v = s.vault_points(None, None, Timestamp(0), 100).await.unwrap();
    assert_eq!(v.len(), 2, "no duplicates");
    assert_eq!(
        v[1].pnl.to_string(),
        "64050000.123456",
        "decimals are exact"
    );
    assert_eq!(
        s.deviations(None, Some(&Coin::new("JELLY").unwrap()), Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        2
    );
    let l = s.liquidations(None, None, Timestamp(0), 100).await.unwrap();
    assert_eq!(
        l.len(),
        3,
        "two sides of one trade are two rows; the repeat is not"
    );
    assert_eq!(l[0].time, Timestamp(T0 + 1), "newest first");
    assert_eq!(l[1].method, Some(LiquidationMethod::Backstop));
    let p = s.positions(None, None, Timestamp(0), 10).await.unwrap();
    assert_eq!(p.len(), 2, "latest per (user, coin)");
    assert_eq!(p[0].position_value.to_string(), "14941723");
    assert_eq!(
        s.cursor("replay:test").await.unwrap().as_deref(),
        Some("42")
    );
    assert_eq!(s.cursor("nope").await.unwrap(), None);
    s.set_cursor("replay:test", "43", Timestamp(T0))
        .await
        .unwrap();
    assert_eq!(
        s.cursor("replay:test").await.unwrap().as_deref(),
        Some("43")
    );
    assert_eq!(s.all_events().await.unwrap().len(), 3);
    // Bars: one per (coin, interval, open time), exact decimals, unknown inputs stay unknown,
    // read by interval and half-open time range, by coin then time.
    let b = s
        .bars(
            None,
            None,
            300_000,
            Timestamp(T0),
            Timestamp(T0 + 600_000),
            100,
        )
        .await
        .unwrap();
    assert_eq!(b.len(), 3, "{b:?}");
    assert_eq!(b[0].coin.as_str(), "BTC");
    assert_eq!(b[1], bar("JELLY", 300_000, T0, true));
    assert_eq!(b[2], bar("JELLY", 300_000, T0 + 300_000, false));
    let jelly = Coin::new("JELLY").unwrap();
    let h = s
        .bars(
            None,
            Some(&jelly),
            3_600_000,
            Timestamp(0),
            Timestamp(T0 + 1),
            100,
        )
        .await
        .unwrap();
    assert_eq!(h, vec![bar("JELLY", 3_600_000, T0, true)]);
    assert!(
        s.bars(
            None,
            Some(&jelly),
            300_000,
            Timestamp(T0 + 1),
            Timestamp(T0 + 300_000),
            100
        )
        .await
        .unwrap()
        .is_empty(),
        "the range is half-open"
    );
    // Settling after the load (statistics, reclaimed space, the WAL folded in) keeps every row.
    let before = s.counts().await.unwrap();
    s.settle().await.unwrap();
    assert_eq!(s.counts().await.unwrap(), before);
}

fn outbox(id: &str, channel: &str, created: i64) -> OutboxEntry {
    let u = sample_updates().remove(0);
    let mut alert = Alert::new(u, channel, Some("http://127.0.0.1:8080"));
    alert.idempotency_key = StableId::parse(id).unwrap();
    OutboxEntry {
        id: StableId::parse(id).unwrap(),
        channel: channel.into(),
        alert,
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: Timestamp(created),
        created_at: Timestamp(created),
        delivered_at: None,
        last_error: None,
        consumer: "alerts:routed".into(),
    }
}

pub(crate) async fn outbox_lifecycle_and_delivery_log(s: &Store) {
    // A consumer's routing cursor and its rows commit together; each consumer has its own.
    assert_eq!(s.routed_cursor("alerts:routed:t1").await.unwrap(), None);
    let mut routed = outbox("alr_r1", "t1-hook", T0);
    routed.consumer = "alerts:routed:t1".into();
    s.commit_routed("alerts:routed:t1", vec![routed.clone()], Some(41))
        .await
        .unwrap();
    assert_eq!(s.routed_cursor("alerts:routed:t1").await.unwrap(), Some(41));
    assert_eq!(s.routed_cursor("alerts:routed:t2").await.unwrap(), None);
    assert_eq!(
        s.due("alerts:routed:t1", Timestamp(T0), 10).await.unwrap(),
        vec![routed.clone()]
    );
    s.commit_routed("alerts:routed:t1", Vec::new(), None)
        .await
        .unwrap();
    assert_eq!(s.routed_cursor("alerts:routed:t1").await.unwrap(), Some(41));
    s.mark_delivered(&routed.id, 1, Timestamp(T0 + 1))
        .await
        .unwrap();
    s.commit(&IngestBatch {
        cursors: vec![("alerts:routed:t3".into(), "not-a-number".into())],
        ..IngestBatch::default()
    })
    .await
    .unwrap();
    let err = s.routed_cursor("alerts:routed:t3").await.unwrap_err();
    assert!(err.to_string().contains("alerts:routed:t3"), "{err}");
    let entries = vec![
        outbox("alr_1", "discord", T0),
        outbox("alr_2", "slack", T0 + 1),
        outbox("alr_3", "discord", T0 + 2),
    ];
    assert_eq!(s.enqueue(&entries).await.unwrap(), 3);
    assert_eq!(s.enqueue(&entries).await.unwrap(), 0, "idempotent");
    let due = s.due("alerts:routed", Timestamp(T0 + 1), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["alr_1", "alr_2"]
    );
    assert_eq!(due[0].alert, entries[0].alert, "the payload round-trips");
    let mut theirs = outbox("alr_4", "tenant-hook", T0);
    theirs.consumer = "alerts:routed:tenant-b".into();
    assert_eq!(s.enqueue(&[theirs.clone()]).await.unwrap(), 1);
    assert!(
        s.due("alerts:routed", Timestamp(T0 + 1), 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.consumer == "alerts:routed"),
        "a consumer sees only its own rows"
    );
    let their_due = s
        .due("alerts:routed:tenant-b", Timestamp(T0 + 1), 10)
        .await
        .unwrap();
    assert_eq!(their_due, vec![theirs.clone()]);
    s.mark_delivered(&theirs.id, 1, Timestamp(T0 + 2))
        .await
        .unwrap();
    s.mark_delivered(&due[0].id, 1, Timestamp(T0 + 5))
        .await
        .unwrap();
    s.mark_retry(&due[1].id, 1, Timestamp(T0 + 60_000), "HTTP 503")
        .await
        .unwrap();
    s.mark_failed(&entries[2].id, 1, "HTTP 404: unknown webhook")
        .await
        .unwrap();
    assert!(
        s.due("alerts:routed", Timestamp(T0 + 10), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.due("alerts:routed", Timestamp(T0 + 60_000), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let log = s
        .deliveries(&DeliveryQuery {
            channel: Some("discord".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].status, OutboxStatus::Failed);
    assert_eq!(log[1].delivered_at, Some(Timestamp(T0 + 5)));
    let failed = s
        .deliveries(&DeliveryQuery {
            status: Some(OutboxStatus::Failed),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("HTTP 404: unknown webhook")
    );
}

pub(crate) async fn api_keys_and_audit_log(s: &Store) {
    let k = ApiKeyRecord {
        id: StableId::parse("key_1").unwrap(),
        name: "grafana".into(),
        prefix: "kmy_abcd".into(),
        hash: "0".repeat(64),
        created_at: Timestamp(T0),
        revoked_at: None,
        scope: kamiyo_core_models::KeyScope::Write,
    };
    s.insert_key(&k).await.unwrap();
    assert_eq!(s.keys_by_prefix("kmy_abcd").await.unwrap(), vec![k.clone()]);
    assert!(s.revoke_key("kmy_abcd", Timestamp(T0 + 1)).await.unwrap());
    assert!(
        !s.revoke_key("kmy_abcd", Timestamp(T0 + 2)).await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        s.keys().await.unwrap()[0].revoked_at,
        Some(Timestamp(T0 + 1))
    );
    let e = AuditEntry {
        time: Timestamp(T0),
        actor: "cli".into(),
        action: "api_key.create".into(),
        detail: "key_1 grafana".into(),
    };
    s.audit(&e).await.unwrap();
    s.audit(&e).await.unwrap();
    assert_eq!(
        s.audit_log(10).await.unwrap(),
        vec![e],
        "an identical entry is recorded once"
    );
}

pub(crate) async fn retention_deletes_old_rows_only(s: &Store) {
    let now = T0 + 100 * DAY;
    let old = T0;
    let recent = now - DAY;
    let open_old = incident(
        "old_open",
        Severity::High,
        old,
        IncidentStatus::Open,
        None,
        ThreatType::FeedHealth,
    );
    let resolved_old = incident(
        "old_resolved",
        Severity::High,
        old,
        IncidentStatus::Resolved,
        None,
        ThreatType::FeedHealth,
    );
    let batch = IngestBatch {
        vault_points: (0..5)
            .map(|i| vault(old + i * 3_600_000, "1"))
            .chain([vault(recent, "2")])
            .collect(),
        deviations: vec![dev(old, "BTC"), dev(recent, "BTC")],
        liquidations: vec![liq(old, 1, 1), liq(recent, 2, 1)],
        positions: vec![pos(old, 1, "ETH", "1"), pos(recent, 1, "ETH", "2")],
        bars: vec![
            bar("ETH", 300_000, old, true),
            bar("ETH", 300_000, recent, true),
        ],
        updates: vec![
            update(&open_old, IncidentChange::Opened, old),
            update(&resolved_old, IncidentChange::Resolved, old),
        ],
        outbox: vec![],
        actions: vec![],
        cursors: vec![],
    };
    s.commit(&batch).await.unwrap();
    s.enqueue(&[outbox("alr_old_pending", "webhook", old)])
        .await
        .unwrap();
    let mut delivered = outbox("alr_old_done", "webhook", old);
    delivered.status = OutboxStatus::Delivered;
    s.enqueue(&[delivered]).await.unwrap();
    // People's actions on both old incidents; an old silence and a current one.
    use kamiyo_core_models::{ActionKind, IncidentAction, Silence, SilenceMatchers};
    for i in [&open_old, &resolved_old] {
        s.record_action(&IncidentAction::new(
            &i.id,
            ActionKind::Note,
            "local",
            "seen",
            Timestamp(old),
            1,
        ))
        .await
        .unwrap();
    }
    for (id, ends) in [("sil_old", old + DAY), ("sil_now", now + DAY)] {
        s.insert_silence(&Silence {
            id: StableId::parse(id).unwrap(),
            matchers: SilenceMatchers {
                detector: Some("feeds".into()),
                ..SilenceMatchers::default()
            },
            starts_at: Timestamp(old),
            ends_at: Timestamp(ends),
            created_by: "local".into(),
            comment: "maintenance".into(),
            created_at: Timestamp(old),
            expired_at: None,
        })
        .await
        .unwrap();
    }
    let r = Retention {
        days: 90,
        overrides: [("positions".to_owned(), 200)].into_iter().collect(),
    };
    let deleted = s.enforce_retention(&r, Timestamp(now)).await.unwrap();
    assert_eq!(deleted["vault_points"], 5, "{deleted:?}");
    assert_eq!(deleted["market_bars"], 1, "{deleted:?}");
    assert_eq!(
        deleted["positions"], 0,
        "per-table override keeps positions for 200 days"
    );
    assert_eq!(
        s.vault_points(None, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.deviations(None, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.liquidations(None, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let incidents = s
        .incidents(&IncidentQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(incidents.len(), 1, "open incidents are never deleted");
    assert_eq!(incidents[0].key.as_str(), "old_open");
    assert_eq!(deleted["incident_actions"], 1, "{deleted:?}");
    let kept = s
        .incident_actions(&[open_old.id.clone(), resolved_old.id.clone()])
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "the open incident keeps its history");
    assert_eq!(kept[0].incident_id, open_old.id);
    assert_eq!(deleted["silences"], 1, "{deleted:?}");
    let left: Vec<String> = s
        .silences(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id.to_string())
        .collect();
    assert_eq!(left, ["sil_now"]);
    let outbox_left = s
        .deliveries(&DeliveryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        outbox_left
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["alr_old_pending"],
        "pending alerts are never deleted"
    );
}

pub(crate) async fn concurrent_commits_keep_sequence_numbers_unique(s: &Store) {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let inc = incident(
                    &format!("k{w}_{i}"),
                    Severity::Low,
                    T0 + i,
                    IncidentStatus::Open,
                    None,
                    ThreatType::FeedHealth,
                );
                s.record_updates(&[update(&inc, IncidentChange::Opened, T0 + i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seqs: Vec<i64> = s
        .all_events()
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    // One chain through all four writers' events.
    let log = s.event_log(0, 100).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    ledger::verify(None, &log).unwrap();
}

/// Every stored event gets its entry in the event log in the same commit; the chain verifies,
/// pages, ignores repeated events, and outlives the events retention deletes.
pub(crate) async fn the_event_log_chains_every_event_and_outlives_retention(s: &Store) {
    assert_eq!(s.event_log_head().await.unwrap(), None);
    assert!(s.event_log(0, 10).await.unwrap().is_empty());
    let before = wall_ms();
    s.record_updates(&sample_updates()).await.unwrap();
    assert!(
        s.record_updates(&sample_updates())
            .await
            .unwrap()
            .is_empty()
    );
    let more = xpl_liquidation();
    s.record_updates(&[update(&more, IncidentChange::Opened, T0 + 90_000)])
        .await
        .unwrap();
    let log = s.event_log(0, 100).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    ledger::verify(None, &log).unwrap();
    let events = s.all_events().await.unwrap();
    ledger::verify_events(&log, &events).unwrap();
    // Logged at the commit's wall-clock time, not at the event's (replayed) time.
    assert!(
        log.iter()
            .all(|e| e.logged_ms >= before && e.logged_ms <= wall_ms())
    );
    assert_eq!(s.event_log_head().await.unwrap().as_ref(), log.last());
    assert_eq!(s.event_log(2, 1).await.unwrap(), log[2..3]);
    assert!(s.event_log(4, 10).await.unwrap().is_empty());
    // Retention deletes the events (all older than 90 days here), never their entries.
    let r = Retention {
        days: 90,
        overrides: Default::default(),
    };
    let now = T0 + 200 * DAY;
    let deleted = s.enforce_retention(&r, Timestamp(now)).await.unwrap();
    assert_eq!(deleted["security_events"], 4, "{deleted:?}");
    assert!(s.all_events().await.unwrap().is_empty());
    assert_eq!(s.event_log(0, 100).await.unwrap(), log);
    // The chain goes on from the head.
    let later = incident(
        "hlp_loss:0xdfc2",
        Severity::High,
        now,
        IncidentStatus::Open,
        None,
        ThreatType::HlpLoss,
    );
    let stored = s
        .record_updates(&[update(&later, IncidentChange::Opened, now)])
        .await
        .unwrap();
    let whole = s.event_log(0, 100).await.unwrap();
    assert_eq!(whole.len(), 5);
    // An event's entry found by its seq, past the entries of the deleted events.
    let of = s.event_log_of(&stored).await.unwrap();
    assert_eq!(of.len(), 1);
    assert_eq!(of.get(&5), whole.get(4));
    ledger::verify(None, &whole).unwrap();
    ledger::verify(log.last(), &whole[4..]).unwrap();
}

/// Operator actions commit with a resolution step; a resolved incident is not re-opened by a
/// late update of the engine; silences are listed, matched and ended; the delivery log is
/// filtered by incident.
pub(crate) async fn operator_actions_silences_and_the_resolved_guard(s: &Store) {
    use kamiyo_core_models::{
        ActionKind, IncidentAction, Silence, SilenceMatchers, acknowledgement, operator_resolution,
    };
    let open = incident(
        "operator_test:ETH",
        Severity::High,
        T0 + 60_000,
        IncidentStatus::Open,
        Some("ETH"),
        ThreatType::OracleDeviation,
    );
    s.record_updates(&[update(&open, IncidentChange::Opened, T0)])
        .await
        .unwrap();
    let ack = IncidentAction::new(
        &open.id,
        ActionKind::Acknowledge,
        "local",
        "",
        Timestamp(T0 + 1),
        7,
    );
    s.record_action(&ack).await.unwrap();
    s.record_action(&ack).await.unwrap();
    let acts = s
        .incident_actions(std::slice::from_ref(&open.id))
        .await
        .unwrap();
    assert_eq!(acts, vec![ack.clone()], "stored once");
    assert!(acknowledgement(&acts).is_some());

    let at = Timestamp(T0 + 120_000);
    let resolution = operator_resolution(&open, "local", "false positive: venue maintenance", at);
    let note = IncidentAction::new(
        &open.id,
        ActionKind::Resolve,
        "local",
        "false positive: venue maintenance",
        at,
        7,
    );
    s.commit(&IngestBatch {
        updates: vec![resolution],
        actions: vec![note.clone()],
        ..IngestBatch::default()
    })
    .await
    .unwrap();
    // The engine, not yet told, updates the incident it still tracks: the row stays resolved.
    let mut late = open.clone();
    late.last_seen = Timestamp(T0 + 130_000);
    late.detections += 1;
    s.record_updates(&[update(&late, IncidentChange::Updated, T0 + 130_000)])
        .await
        .unwrap();
    let stored = s.incident(&open.id).await.unwrap().unwrap();
    assert_eq!(stored.status, IncidentStatus::Resolved);
    assert_eq!(stored.resolved_at, Some(at));
    let steps = s.incident_events(&open.id).await.unwrap();
    assert!(
        steps
            .iter()
            .any(|e| e.event.change == IncidentChange::Resolved
                && e.event.title.contains("false positive"))
    );
    let acts = s
        .incident_actions(std::slice::from_ref(&open.id))
        .await
        .unwrap();
    assert_eq!(acts.last(), Some(&note));

    let sil = Silence {
        id: StableId::parse("sil_1").unwrap(),
        matchers: SilenceMatchers {
            asset: Some(Coin::new("ETH").unwrap()),
            severity: Some(Severity::High),
            ..SilenceMatchers::default()
        },
        starts_at: Timestamp(T0),
        ends_at: Timestamp(T0 + 3_600_000),
        created_by: "local".into(),
        comment: "ETH maintenance".into(),
        created_at: Timestamp(T0),
        expired_at: None,
    };
    s.insert_silence(&sil).await.unwrap();
    let ev = SecurityEvent::from_incident(&open, IncidentChange::Opened, Timestamp(T0 + 5));
    assert!(sil.mutes(&ev));
    let mut crit = ev.clone();
    crit.severity = Severity::Critical;
    assert!(
        !sil.mutes(&crit),
        "a silence for high never mutes a critical"
    );
    assert_eq!(
        s.silences(Some(Timestamp(T0 + 10)), 10).await.unwrap(),
        vec![sil.clone()]
    );
    assert!(
        s.silences(Some(Timestamp(T0 + 3_600_000)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.expire_silence(&sil.id, Timestamp(T0 + 60)).await.unwrap());
    assert!(
        !s.expire_silence(&sil.id, Timestamp(T0 + 61)).await.unwrap(),
        "once"
    );
    assert!(
        s.silences(Some(Timestamp(T0 + 61)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.silences(None, 10).await.unwrap()[0].expired_at,
        Some(Timestamp(T0 + 60))
    );

    let mut o = outbox("alr_inc", "ops", T0);
    o.alert.update.incident = open.clone();
    s.enqueue(&[o, outbox("alr_other", "ops", T0)])
        .await
        .unwrap();
    let mine = s
        .deliveries(&DeliveryQuery {
            incident: Some(open.id.clone()),
            limit: 10,
            ..DeliveryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id.as_str(), "alr_inc");
}

/// Every kind of market fact, once per protocol given.
fn facts_of(protocols: &[&ProtocolId]) -> IngestBatch {
    let mut b = IngestBatch::default();
    for p in protocols {
        let mut one = IngestBatch {
            vault_points: vec![vault(T0, "64100000")],
            deviations: vec![dev(T0, "ETH")],
            liquidations: vec![liq(T0, 7, 0x2e)],
            positions: vec![pos(T0, 0x2e, "ETH", "100")],
            bars: vec![bar("ETH", 300_000, T0, true)],
            ..IngestBatch::default()
        };
        one.vault_points
            .iter_mut()
            .for_each(|r| r.protocol = (*p).clone());
        one.deviations
            .iter_mut()
            .for_each(|r| r.protocol = (*p).clone());
        one.liquidations
            .iter_mut()
            .for_each(|r| r.protocol = (*p).clone());
        one.positions
            .iter_mut()
            .for_each(|r| r.protocol = (*p).clone());
        one.bars.iter_mut().for_each(|r| r.protocol = (*p).clone());
        b.vault_points.append(&mut one.vault_points);
        b.deviations.append(&mut one.deviations);
        b.liquidations.append(&mut one.liquidations);
        b.positions.append(&mut one.positions);
        b.bars.append(&mut one.bars);
    }
    b
}

/// Each read of market facts for `protocol` (or all): rows per table.
async fn fact_counts(s: &Store, protocol: Option<&ProtocolId>) -> [usize; 5] {
    let far = Timestamp(T0 + DAY);
    [
        s.vault_points(protocol, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        s.deviations(protocol, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        s.liquidations(protocol, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        s.positions(protocol, None, Timestamp(0), 100)
            .await
            .unwrap()
            .len(),
        s.bars(protocol, None, 300_000, Timestamp(0), far, 100)
            .await
            .unwrap()
            .len(),
    ]
}

pub(crate) async fn market_facts_are_kept_apart_by_protocol(s: &Store) {
    let hl = ProtocolId::HYPERLIQUID;
    let acme = ProtocolId::parse("acme-perps").unwrap();
    // The same coin, account, trade id and time on two protocols: two rows each, never one.
    let batch = facts_of(&[&hl, &acme]);
    s.commit(&batch).await.unwrap();
    s.commit(&batch).await.unwrap();
    assert_eq!(fact_counts(s, None).await, [2; 5], "one row per protocol");
    assert_eq!(fact_counts(s, Some(&hl)).await, [1; 5]);
    assert_eq!(fact_counts(s, Some(&acme)).await, [1; 5]);
    let other = ProtocolId::parse("nobody").unwrap();
    assert_eq!(fact_counts(s, Some(&other)).await, [0; 5]);
    let d = s
        .deviations(Some(&acme), None, Timestamp(0), 10)
        .await
        .unwrap();
    assert_eq!(d[0].protocol, acme, "the protocol is read back");
    assert_eq!(d[0], facts_of(&[&acme]).deviations[0]);
}

/// The migration that put the protocol into the market tables' keys carries every existing row
/// over as Hyperliquid's, and its revert keeps Hyperliquid's rows.
pub(crate) async fn the_market_protocol_migration_keeps_existing_rows(s: &Store) {
    let hl = ProtocolId::HYPERLIQUID;
    let acme = ProtocolId::parse("acme-perps").unwrap();
    s.commit(&facts_of(&[&hl, &acme])).await.unwrap();
    let before = s.bars(
        Some(&hl),
        None,
        300_000,
        Timestamp(0),
        Timestamp(T0 + DAY),
        10,
    );
    let before = before.await.unwrap();
    // The protocol migration and the ones after it (writer fences, exploits, event log)
    // reverted.
    assert_eq!(s.revert_migrations(4).await.unwrap(), 4);
    // Back on the protocol-less keys, then forward again: the rows come back as Hyperliquid's.
    assert_eq!(s.migrate().await.unwrap(), 4);
    assert_eq!(
        fact_counts(s, Some(&hl)).await,
        [1; 5],
        "every table's row kept"
    );
    assert_eq!(
        fact_counts(s, Some(&acme)).await,
        [0; 5],
        "the revert drops what the old keys cannot hold"
    );
    let after = s.bars(
        Some(&hl),
        None,
        300_000,
        Timestamp(0),
        Timestamp(T0 + DAY),
        10,
    );
    assert_eq!(
        after.await.unwrap(),
        before,
        "values exact after the rebuild"
    );
    s.commit(&facts_of(&[&acme])).await.unwrap();
    assert_eq!(
        fact_counts(s, None).await,
        [2; 5],
        "the new keys work again"
    );
}

/// Writer fences: the writer that took the newest epoch commits; a writer whose epoch was
/// superseded (a deposed ingest leader's late batch) is refused and writes nothing; an
/// unfenced store is not affected.
pub(crate) async fn a_superseded_writer_is_refused_and_writes_nothing(s: &Store) {
    let updates = sample_updates();
    let batch = |i: usize| IngestBatch {
        updates: vec![updates[i].clone()],
        ..IngestBatch::default()
    };
    assert_eq!(s.advance_fence("ingest:hyperliquid").await.unwrap(), 1);
    let old = s.fenced("ingest:hyperliquid", 1);
    assert_eq!(old.commit(&batch(0)).await.unwrap().len(), 1);
    // A new writer takes the fence: epoch 2.
    assert_eq!(s.advance_fence("ingest:hyperliquid").await.unwrap(), 2);
    let new = s.fenced("ingest:hyperliquid", 2);
    let before = s.events(&EventQuery::default()).await.unwrap().len();
    let err = old.commit(&batch(1)).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::Fenced {
            name: "ingest:hyperliquid".into(),
            epoch: 1
        }
    );
    assert_eq!(
        s.events(&EventQuery::default()).await.unwrap().len(),
        before
    );
    assert_eq!(new.commit(&batch(1)).await.unwrap().len(), 1);
    // Another fence, and the unfenced store, are independent.
    assert_eq!(s.advance_fence("ingest:dydx").await.unwrap(), 1);
    assert_eq!(s.commit(&batch(2)).await.unwrap().len(), 1);
    // A fence never taken refuses its writer.
    assert!(matches!(
        s.fenced("ingest:nosuch", 1).commit(&batch(0)).await,
        Err(StoreError::Fenced { .. })
    ));
}

fn exploit(
    day: i64,
    protocol: &str,
    category: kamiyo_core_models::ExploitCategory,
    loss: Option<i64>,
    chain: Option<&str>,
) -> kamiyo_core_models::Exploit {
    let date = Timestamp(T0 + day * DAY);
    kamiyo_core_models::Exploit {
        id: kamiyo_core_models::Exploit::id_of(date, protocol),
        date,
        protocol: protocol.into(),
        chain: chain.map(Into::into),
        category,
        technique: "t".into(),
        loss_usd: loss,
        loss_text: loss.map(|l| format!("~{l} USDC")),
        sources: vec!["defillama".into(), "defihacklabs".into()],
        links: vec!["https://a.example/1".into(), "https://b.example/2".into()],
    }
}

pub(crate) async fn the_exploit_database_is_replaced_whole_and_queried(s: &Store) {
    use kamiyo_core_models::{ExploitCategory as C, ExploitQuery, ExploitStore};
    let all = vec![
        exploit(
            3,
            "Euler Finance",
            C::FlashLoan,
            Some(197_000_000),
            Some("Ethereum"),
        ),
        exploit(
            2,
            "Mango Markets",
            C::OracleManipulation,
            Some(114_000_000),
            Some("Solana"),
        ),
        exploit(1, "Tiny", C::LogicFlaw, None, None),
        exploit(
            0,
            "Ronin Bridge",
            C::Bridge,
            Some(624_000_000),
            Some("Ethereum"),
        ),
    ];
    assert_eq!(s.replace_exploits(&all).await.unwrap(), 4);
    let q = |f: fn(&mut ExploitQuery)| {
        let mut q = ExploitQuery {
            limit: 10,
            ..ExploitQuery::default()
        };
        f(&mut q);
        q
    };
    // Newest first, round-tripped exactly.
    let page = s.exploits(&q(|_| {})).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.items, all);
    // Filters, alone and together; the count follows them.
    let names = |p: kamiyo_core_models::ExploitPage| {
        (
            p.total,
            p.items.into_iter().map(|e| e.protocol).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        names(
            s.exploits(&q(|q| q.chain = Some("Ethereum".into())))
                .await
                .unwrap()
        ),
        (2, vec!["Euler Finance".into(), "Ronin Bridge".into()])
    );
    assert_eq!(
        names(
            s.exploits(&q(|q| q.category = Some(C::OracleManipulation)))
                .await
                .unwrap()
        ),
        (1, vec!["Mango Markets".into()])
    );
    assert_eq!(
        names(
            s.exploits(&q(|q| q.min_loss_usd = Some(150_000_000)))
                .await
                .unwrap()
        ),
        (2, vec!["Euler Finance".into(), "Ronin Bridge".into()])
    );
    // The protocol filter matches folded names ("euler" finds "Euler Finance").
    assert_eq!(
        names(
            s.exploits(&q(|q| q.protocol = Some("EULER".into())))
                .await
                .unwrap()
        ),
        (1, vec!["Euler Finance".into()])
    );
    assert_eq!(
        names(
            s.exploits(&q(|q| {
                q.from = Some(Timestamp(T0 + DAY));
                q.to = Some(Timestamp(T0 + 3 * DAY));
            }))
            .await
            .unwrap()
        ),
        (2, vec!["Mango Markets".into(), "Tiny".into()])
    );
    // Pages: two at a time, the total unchanged.
    let p2 = s
        .exploits(&q(|q| {
            q.limit = 2;
            q.offset = 2;
        }))
        .await
        .unwrap();
    assert_eq!(names(p2), (4, vec!["Tiny".into(), "Ronin Bridge".into()]));
    // A refresh replaces the whole set.
    assert_eq!(s.replace_exploits(&all[..1]).await.unwrap(), 1);
    assert_eq!(s.exploits(&q(|_| {})).await.unwrap().total, 1);
}
