//! `/ws` with a real WebSocket client: live events, resume without gaps or duplicates, and a
//! slow consumer dropped with a reason while the publisher never waits.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode};
use kamiyo_api::Hub;
use kamiyo_core_models::{IncidentChange, IngestBatch, Severity, ThreatType};

use crate::support::{NOW, TestApi, config, incident, step, updates};

type Ws = fastwebsockets::WebSocket<hyper_util_io::Io>;

mod hyper_util_io {
    pub(crate) type Io = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
}

async fn connect(api: &TestApi, query: &str) -> Ws {
    let url = format!("ws://{}/ws{query}", api.addr);
    let mut ws = kamiyo_aggregators::hyperliquid::ws::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    ws
}

enum Got {
    Frame(serde_json::Value),
    Close(u16, String),
}

async fn next(ws: &mut Ws) -> Got {
    loop {
        let f: Frame<'_> = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
            .await
            .expect("a frame within 10 s")
            .expect("a readable frame");
        match f.opcode {
            OpCode::Text => return Got::Frame(serde_json::from_slice(&f.payload).unwrap()),
            OpCode::Close => {
                let p = f.payload.to_vec();
                let code = if p.len() >= 2 {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    0
                };
                return Got::Close(code, String::from_utf8_lossy(&p[2.min(p.len())..]).into());
            }
            _ => {}
        }
    }
}

async fn event_seq(ws: &mut Ws) -> i64 {
    match next(ws).await {
        Got::Frame(v) => {
            assert_eq!(v["type"], "event", "{v}");
            v["event"]["seq"].as_i64().unwrap()
        }
        Got::Close(c, r) => panic!("closed {c} {r}"),
    }
}

async fn hello(ws: &mut Ws) -> serde_json::Value {
    match next(ws).await {
        Got::Frame(v) if v["type"] == "hello" => v,
        _ => panic!("expected hello"),
    }
}

#[tokio::test]
async fn live_events_and_resume_after_reconnect_without_gap_or_duplicate() {
    let api = TestApi::start(config()).await;
    let mut ws = connect(&api, "").await;
    assert_eq!(hello(&mut ws).await["last_event_id"], 0);
    api.commit(&IngestBatch {
        updates: updates(5, 0),
        ..IngestBatch::default()
    })
    .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(event_seq(&mut ws).await);
    }
    assert_eq!(got, [1, 2, 3, 4, 5]);
    drop(ws);

    // Missed while disconnected.
    api.commit(&IngestBatch {
        updates: updates(7, 100),
        ..IngestBatch::default()
    })
    .await;
    let mut ws = connect(&api, "?last_event_id=5").await;
    assert_eq!(hello(&mut ws).await["last_event_id"], 12);
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(event_seq(&mut ws).await);
    }
    assert_eq!(
        got,
        (6..=12).collect::<Vec<_>>(),
        "backlog from the database"
    );
    api.commit(&IngestBatch {
        updates: updates(3, 200),
        ..IngestBatch::default()
    })
    .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(event_seq(&mut ws).await);
    }
    assert_eq!(got, [13, 14, 15], "then live, no duplicates");

    // Feed changes arrive too.
    api.hub.publish_feed(kamiyo_core_models::FeedStatus {
        feed: "binance".into(),
        state: kamiyo_core_models::FeedState::Stale,
        changed_at: kamiyo_core_models::Timestamp(NOW),
        last_data_at: None,
        detail: "no data for 75 s".into(),
    });
    match next(&mut ws).await {
        Got::Frame(v) => {
            assert_eq!(v["type"], "feed");
            assert_eq!(v["feed"]["state"], "STALE");
        }
        Got::Close(..) => panic!("closed"),
    }
    let bad = api.get("/ws?last_event_id=-3").await;
    assert_eq!(bad.status(), 400);
}

/// `protocol=` narrows a session to one protocol's events, live and in the resumed backlog.
#[tokio::test]
async fn a_session_can_follow_one_protocol() {
    use kamiyo_core_models::ProtocolId;
    let api = TestApi::start(config()).await;
    let dydx = ProtocolId::parse("dydx").unwrap();
    // Events 1–3 Hyperliquid's, 4–5 dydx's, interleaved in one commit order.
    let mut ups = updates(5, 0);
    for u in &mut ups[3..] {
        u.event.protocol = dydx.clone();
        u.incident.protocol = dydx.clone();
    }
    let mut live = connect(&api, "?protocol=dydx").await;
    hello(&mut live).await;
    api.commit(&IngestBatch {
        updates: ups,
        ..IngestBatch::default()
    })
    .await;
    assert_eq!(
        event_seq(&mut live).await,
        4,
        "Hyperliquid's 1-3 are skipped"
    );
    assert_eq!(event_seq(&mut live).await, 5);
    let mut resumed = connect(&api, "?protocol=dydx&last_event_id=0").await;
    hello(&mut resumed).await;
    assert_eq!(
        [event_seq(&mut resumed).await, event_seq(&mut resumed).await],
        [4, 5]
    );
    let mut hl = connect(&api, "?protocol=hyperliquid&last_event_id=0").await;
    hello(&mut hl).await;
    let got: Vec<i64> = [
        event_seq(&mut hl).await,
        event_seq(&mut hl).await,
        event_seq(&mut hl).await,
    ]
    .into();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(api.get("/ws?protocol=DYDX").await.status(), 400);
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_with_a_reason_and_can_resume() {
    let api = TestApi::start_with(config(), Hub::new(16)).await;
    let mut slow = connect(&api, "").await;
    hello(&mut slow).await;
    // A burst far larger than the subscriber's buffer, with large frames, while the client
    // does not read. Publishing never waits for it.
    let big = "x".repeat(8_000);
    let mut total = 0;
    for chunk in 0..6 {
        let batch: Vec<_> = (0..500)
            .map(|k| {
                let n = chunk * 500 + k;
                let mut i = incident(n, Severity::High, ThreatType::OracleDeviation, "ETH", NOW);
                i.title = format!("{n} {big}");
                step(&i, IncidentChange::Opened, NOW + n as i64)
            })
            .collect();
        total += api
            .commit(&IngestBatch {
                updates: batch,
                ..IngestBatch::default()
            })
            .await
            .len();
    }
    assert_eq!(total, 3000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received = 0;
    let (code, reason) = loop {
        match next(&mut slow).await {
            Got::Frame(_) => received += 1,
            Got::Close(c, r) => break (c, r),
        }
    };
    assert_eq!(code, 1008, "policy violation");
    assert!(reason.starts_with("slow consumer"), "{reason}");
    assert!(received < 3000, "it was dropped, not served everything");
    let last: i64 = reason.rsplit('=').next().unwrap().parse().unwrap();
    assert_eq!(
        last,
        i64::from(received),
        "the reason names the last event it got"
    );

    // Reconnecting from there delivers the rest exactly once.
    let mut again = connect(&api, &format!("?last_event_id={last}")).await;
    hello(&mut again).await;
    for want in last + 1..=3000 {
        assert_eq!(event_seq(&mut again).await, want);
    }
}

/// A cursor beyond the newest event (a database reset, a typo) is answered with a close that
/// says so, not a silent stream that never delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_beyond_the_newest_event_is_closed_with_the_reason() {
    let api = TestApi::start(config()).await;
    let mut ws = connect(&api, "?last_event_id=1000000").await;
    let h = hello(&mut ws).await;
    let newest = h["last_event_id"].as_i64().unwrap();
    match next(&mut ws).await {
        Got::Close(code, reason) => {
            assert_eq!(code, 1008);
            assert!(
                reason.contains("beyond the newest event")
                    && reason.contains(&format!("last_event_id={newest}")),
                "{reason}"
            );
        }
        Got::Frame(f) => panic!("expected a close, got {f:?}"),
    }
}

/// Revoking a key closes the `/ws` sessions opened with it, with the reason, within the
/// documented recheck interval — the open stream is not a way around revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_closes_its_sessions_with_the_reason() {
    use kamiyo_core_models::{ApiKeyStore, Timestamp};
    let api = TestApi::start(kamiyo_api::ApiConfig {
        require_keys: true,
        ..config()
    })
    .await;
    let k = kamiyo_api::auth::generate_key("ws", kamiyo_core_models::KeyScope::Read, Timestamp(0));
    api.store.insert_key(&k.record).await.unwrap();
    let other =
        kamiyo_api::auth::generate_key("other", kamiyo_core_models::KeyScope::Read, Timestamp(0));
    api.store.insert_key(&other.record).await.unwrap();
    let mut ws = connect(&api, &format!("?api_key={}", k.secret)).await;
    let mut kept = connect(&api, &format!("?api_key={}", other.secret)).await;
    hello(&mut ws).await;
    hello(&mut kept).await;
    assert!(
        api.store
            .revoke_key(&k.record.id.to_string(), Timestamp(1))
            .await
            .unwrap()
    );
    let revoked_at = std::time::Instant::now();
    match next(&mut ws).await {
        Got::Close(code, reason) => {
            assert_eq!(code, 1008);
            assert!(reason.contains("revoked"), "{reason}");
        }
        Got::Frame(f) => panic!("expected a close, got {f:?}"),
    }
    assert!(
        revoked_at.elapsed() <= kamiyo_api::ws::KEY_RECHECK_INTERVAL + Duration::from_secs(2),
        "closed within the recheck interval: {:?}",
        revoked_at.elapsed()
    );
    // The session of a key still valid stays open: it still receives events.
    api.commit(&IngestBatch {
        updates: updates(1, 0),
        ..IngestBatch::default()
    })
    .await;
    assert!(matches!(next(&mut kept).await, Got::Frame(_)));
}
