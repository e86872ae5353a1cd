//! The pipeline as a library: a stream in, incident steps committed to the store, outputs told
//! only after the commit, feed statuses passed on, and two protocols kept apart in one store.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kamiyo_core_models::testing::{MemoryStore, VecStream};
use kamiyo_core_models::{
    AssetCtx, Coin, Decimal, EventQuery, FeedState, FeedStatus, IncidentStore, ManualClock,
    MarketDataStream, MarketEvent, ProtocolId, ReferenceQuote, StoredEvent, Timestamp, Venue,
};
use kamiyo_monitors::{DetectorRegistry, Engine, MonitorsConfig};
use kamiyo_pipeline::{BatchPolicy, NoObserver, Output, PipelineContext};
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_750_000_000_000;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The oracle 1.5 % above a single Binance reference for two minutes, then a feed going stale.
fn events() -> Vec<MarketEvent> {
    let mut v = Vec::new();
    for s in 0..=120 {
        let time = Timestamp(T0 + s * 1000);
        v.push(MarketEvent::Reference(ReferenceQuote {
            venue: Venue::new("binance").unwrap(),
            coin: Coin::new("BTC").unwrap(),
            price: d("100"),
            bid: None,
            ask: None,
            time,
        }));
        let ctx: AssetCtx = serde_json::from_value(serde_json::json!({
            "coin": "BTC", "time": time.0, "oracle_px": "101.5", "mark_px": "101.5",
            "open_interest": "1000", "funding": "0", "day_ntl_vlm": "1000000000"
        }))
        .unwrap();
        v.push(MarketEvent::AssetCtx(ctx));
    }
    v.push(MarketEvent::Feed(FeedStatus {
        feed: "binance".into(),
        state: FeedState::Stale,
        changed_at: Timestamp(T0 + 121_000),
        last_data_at: Some(Timestamp(T0 + 120_000)),
        detail: "test".into(),
    }));
    v
}

/// Records what it is told, and checks that every event it hears of is already stored.
struct Probe {
    store: MemoryStore,
    committed: Mutex<Vec<StoredEvent>>,
    feeds: Mutex<Vec<FeedStatus>>,
    unseen: Mutex<usize>,
}

impl Output for Probe {
    fn committed(&self, stored: &[StoredEvent]) {
        let store = self.store.clone();
        let ids: Vec<_> = stored.iter().map(|e| e.event.incident_id.clone()).collect();
        // The store already holds each incident the events belong to.
        let missing = futures_executor_block(async move {
            let mut n = 0;
            for id in ids {
                if store.incident(&id).await.unwrap().is_none() {
                    n += 1;
                }
            }
            n
        });
        *self.unseen.lock().unwrap() += missing;
        self.committed.lock().unwrap().extend_from_slice(stored);
    }

    fn feed(&self, status: &FeedStatus) {
        self.feeds.lock().unwrap().push(status.clone());
    }
}

/// Runs a future to completion on a fresh current-thread runtime (the output is called from
/// inside the pipeline's runtime, so it cannot block on it).
fn futures_executor_block<F: std::future::Future<Output = usize> + Send + 'static>(f: F) -> usize {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

fn context(protocol: ProtocolId, store: &MemoryStore, probe: Arc<Probe>) -> PipelineContext {
    let mut ctx = PipelineContext::new(
        protocol,
        Arc::new(ManualClock::new(Timestamp(T0))),
        Arc::new(store.clone()),
        CancellationToken::new(),
    )
    .with_output(probe);
    ctx.batch = BatchPolicy {
        max_rows: 50,
        max_delay: Duration::from_millis(20),
    };
    ctx
}

async fn run(protocol: ProtocolId, store: &MemoryStore) -> Arc<Probe> {
    let probe = Arc::new(Probe {
        store: store.clone(),
        committed: Mutex::default(),
        feeds: Mutex::default(),
        unseen: Mutex::default(),
    });
    let ctx = context(protocol.clone(), store, probe.clone());
    let engine = Engine::for_protocol(
        protocol,
        &DetectorRegistry::builtin(),
        None,
        &MonitorsConfig::default(),
    )
    .unwrap();
    let stream = Box::new(VecStream::new("test", events())).into_stream();
    let running = kamiyo_pipeline::spawn(&ctx, engine, stream, Box::new(NoObserver)).unwrap();
    let engine = running.runner.await.unwrap();
    running.consumer.await.unwrap();
    assert!(engine.events_processed() > 240);
    probe
}

#[tokio::test]
async fn a_stream_through_the_pipeline_is_stored_then_published() {
    let store = MemoryStore::new();
    let probe = run(ProtocolId::HYPERLIQUID, &store).await;
    let stored = store
        .events(&EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(
        !stored.is_empty(),
        "the oracle deviation was detected and stored"
    );
    assert_eq!(
        probe.committed.lock().unwrap().len(),
        stored.len(),
        "every stored event reached the output"
    );
    assert_eq!(*probe.unseen.lock().unwrap(), 0, "never before the commit");
    let feeds = probe.feeds.lock().unwrap();
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0].state, FeedState::Stale);
}

#[tokio::test]
async fn two_protocols_in_one_store_stay_apart() {
    let store = MemoryStore::new();
    run(ProtocolId::HYPERLIQUID, &store).await;
    let other = ProtocolId::parse("acme-perps").unwrap();
    run(other.clone(), &store).await;
    let all = store
        .events(&EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let (hl, acme): (Vec<_>, Vec<_>) = all.iter().partition(|e| e.event.protocol.is_default());
    assert!(!hl.is_empty() && hl.len() == acme.len(), "{all:?}");
    assert!(
        acme.iter().all(|e| e.event.protocol == other
            && e.event.incident_key.as_str().starts_with("acme-perps/"))
    );
    let only = store
        .events(&EventQuery {
            protocol: Some(other),
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(only.len(), acme.len());
}

#[tokio::test]
async fn an_engine_of_another_protocol_is_refused() {
    let store = MemoryStore::new();
    let probe = Arc::new(Probe {
        store: store.clone(),
        committed: Mutex::default(),
        feeds: Mutex::default(),
        unseen: Mutex::default(),
    });
    let ctx = context(ProtocolId::parse("acme-perps").unwrap(), &store, probe);
    let engine = Engine::new(&MonitorsConfig::default()).unwrap();
    let stream = Box::new(VecStream::new("test", Vec::new())).into_stream();
    let err = kamiyo_pipeline::spawn(&ctx, engine, stream, Box::new(NoObserver)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the engine watches hyperliquid but the pipeline context is for acme-perps"
    );
}

fn engine(protocol: ProtocolId) -> Engine {
    Engine::for_protocol(
        protocol,
        &DetectorRegistry::builtin(),
        None,
        &MonitorsConfig::default(),
    )
    .unwrap()
}

/// Everything a replay stored: events (without their store-assigned sequence), deviation
/// samples and its cursor.
async fn stored_by(store: &MemoryStore) -> (Vec<String>, usize, Option<String>) {
    use kamiyo_core_models::MarketStore;
    let events = store
        .events(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let samples = store
        .deviations(None, None, Timestamp(0), 10_000)
        .await
        .unwrap();
    (
        events
            .iter()
            .map(|e| serde_json::to_string(&e.event).unwrap())
            .collect(),
        samples.len(),
        store.cursor("replay:test").await.unwrap(),
    )
}

/// A replay interrupted half-way and resumed (warming the engine on what was committed) stores
/// exactly what an uninterrupted one does, with its position as the cursor; the evaluation
/// path (nothing stored) sees the same incident steps.
#[tokio::test]
async fn a_replay_resumed_after_an_interruption_stores_the_same() {
    use kamiyo_pipeline::{Committer, Replay};
    let events = events();
    let end = Timestamp(T0 + 200_000);
    let committing = |store: &MemoryStore| {
        let probe = Arc::new(Probe {
            store: store.clone(),
            committed: Mutex::default(),
            feeds: Mutex::default(),
            unseen: Mutex::default(),
        });
        let ctx = context(ProtocolId::HYPERLIQUID, store, probe);
        Replay::new(engine(ProtocolId::HYPERLIQUID)).committing(
            Committer::new(&ctx, Box::new(NoObserver)),
            "replay:test".into(),
        )
    };

    let whole = MemoryStore::new();
    let mut r = committing(&whole);
    let mut steps = Vec::new();
    for e in &events {
        steps.extend(r.step(e).await.unwrap());
    }
    steps.extend(r.finish(end).await.unwrap());
    let expected = stored_by(&whole).await;
    assert!(!expected.0.is_empty() && expected.1 > 0, "{expected:?}");
    assert_eq!(expected.2, Some((events.len() + 1).to_string()), "finished");

    let split = MemoryStore::new();
    let half = events.len() / 2;
    let mut first = committing(&split);
    for e in &events[..half] {
        first.step(e).await.unwrap();
    }
    first.commit().await.unwrap();
    drop(first);
    assert_eq!(stored_by(&split).await.2, Some(half.to_string()));
    let mut second = committing(&split);
    second.warm(&events[..half]);
    for e in &events[half..] {
        second.step(e).await.unwrap();
    }
    second.finish(end).await.unwrap();
    assert_eq!(stored_by(&split).await, expected, "resumed = uninterrupted");

    let mut eval = Replay::new(engine(ProtocolId::HYPERLIQUID));
    let mut seen = Vec::new();
    for e in &events {
        seen.extend(eval.advance(e));
    }
    seen.extend(eval.finish_batch(end));
    assert_eq!(
        seen, steps,
        "the evaluation path sees what the stored replay saw"
    );
    assert_eq!(eval.position(), events.len());
}
