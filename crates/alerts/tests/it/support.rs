//! A fixed alert (the JELLY squeeze's mark-manipulation incident) and snapshot helpers.

use std::path::PathBuf;

use kamiyo_core_models::{
    Alert, Coin, Decimal, Evidence, Incident, IncidentChange, IncidentKey, IncidentStatus,
    IncidentUpdate, SecurityEvent, Severity, ThreatType, Timestamp,
};

/// 2025-03-26T15:01:20Z.
pub(crate) const T_OPEN: i64 = 1_743_001_280_000;

pub(crate) fn incident(n: usize, sev: Severity, t: i64) -> Incident {
    let key = IncidentKey::parse(&format!("mark_manipulation:JELLY:{n}")).unwrap();
    Incident {
        protocol: Default::default(),
        id: Incident::derive_id(&key, Timestamp(T_OPEN)),
        key,
        detector: "oracle".into(),
        threat_type: ThreatType::MarkManipulation,
        severity: sev,
        peak_severity: sev,
        asset: Some(Coin::new("JELLY").unwrap()),
        status: IncidentStatus::Open,
        title: "JELLY mark 5.6075% above the oracle for 2770 s <script>&".into(),
        indicators: vec!["mark_vs_oracle".into(), "thin_book".into()],
        evidence: Evidence::new()
            .with("deviation_pct", Decimal::new(56075, 4))
            .with("mark_px", Decimal::new(339, 4))
            .with("oracle_px", Decimal::new(321, 4))
            .with("open_interest_usd", Decimal::new(1_748_400_000, 2))
            .with("sustained_ms", 2_770_000i64)
            .with("venues", "binance,bybit")
            .with("user", "0xf3f496c9486be5924a93d67e98298733bb47057c"),
        first_seen: Timestamp(T_OPEN),
        last_seen: Timestamp(t),
        resolved_at: None,
        detections: 272,
    }
}

pub(crate) fn update(n: usize, change: IncidentChange, sev: Severity, t: i64) -> IncidentUpdate {
    let i = incident(n, sev, t);
    IncidentUpdate {
        event: SecurityEvent::from_incident(&i, change, Timestamp(t)),
        incident: i,
    }
}

/// The alert of an incident's opening, stored as event 42 (its log entry the first of the log,
/// logged 1.2 s after the step).
pub(crate) fn alert(channel: &str) -> Alert {
    let upd = update(0, IncidentChange::Opened, Severity::Critical, T_OPEN);
    let stored = kamiyo_core_models::StoredEvent {
        seq: 42,
        event: upd.event.clone(),
    };
    let mut a = Alert::new(upd, channel, Some("https://kamiyo.example"));
    a.log = kamiyo_core_models::ledger::append(None, &[stored], Timestamp(T_OPEN + 1_200)).pop();
    a
}

/// Compares `actual` with `snapshots/<name>`; `KAMIYO_BLESS=1` rewrites it.
pub(crate) fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/snapshots")
        .join(name);
    if std::env::var_os("KAMIYO_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {name}; run with KAMIYO_BLESS=1"));
    assert_eq!(
        actual, expected,
        "{name} changed; review and run with KAMIYO_BLESS=1 if intended"
    );
}

pub(crate) fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}
