//! Fault isolation across protocols in one ingest process: a protocol whose adapter panics in a
//! loop, and one whose adapter stalls, never delay another protocol's detections. Paradex's
//! real adapter polls a loopback venue that starts serving liquidations; the time from the
//! first served liquidation to the tenant's webhook is measured alone, then with the two
//! failing neighbours in the same process, against one PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kamiyo_core_models::{EventStream, ProtocolId};
use kamiyo_platform::adapters::paradex;
use kamiyo_platform::adapters::poll::PollConfig;
use kamiyo_platform::adapters::reference::References;
use kamiyo_platform::ingest::{self, Build, Protocol, Target};
use kamiyo_platform::registry::Registry;
use kamiyo_testing::receiver::{Receiver, Reply};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::dydx::{Script, venue};
use crate::{call, env, signup};

fn recorded(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/testdata/protocols/paradex/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A loopback Paradex: the recorded summary, and for `market` an empty trades page until `go`,
/// then five liquidations of 1 contract each made at the moment (the recorded trade with its
/// id, market, size, type and time changed here) — $338k on BTC at the recorded price, over
/// Paradex's `large_usd` of $50k.
async fn paradex_venue(market: &'static str, go: Arc<AtomicBool>) -> String {
    let summary = recorded("REAL-ccxt_markets_summary_BTC-USD-PERP_2024-06-14.json");
    let template: serde_json::Value = serde_json::from_str(&recorded(
        "REAL-ccxt_trades_BTC-USD-PERP_page_size1_2024-06-14.json",
    ))
    .unwrap();
    let at = Arc::new(std::sync::Mutex::new(None::<i64>));
    let script: Script = Arc::new(move |path, _| {
        if path.ends_with("/markets/summary") {
            // The recorded summary, stamped now.
            return (
                200,
                summary.replace("1718377962698", &now_ms().to_string()),
                0,
            );
        }
        if !go.load(Ordering::SeqCst) {
            return (200, r#"{"next":null,"prev":null,"results":[]}"#.into(), 0);
        }
        let t = *at.lock().unwrap().get_or_insert_with(now_ms);
        let results: Vec<serde_json::Value> = (0..5)
            .map(|i| {
                let mut r = template["results"][0].clone();
                r["id"] = json!(format!("{t}{i:04}"));
                r["market"] = json!(market);
                r["size"] = json!("1");
                r["side"] = json!("SELL");
                r["trade_type"] = json!("LIQUIDATION");
                r["created_at"] = json!(t + i);
                r
            })
            .collect();
        (
            200,
            json!({"next": null, "prev": null, "results": results}).to_string(),
            0,
        )
    });
    let (root, _) = venue(script).await;
    format!("{root}/v1")
}

fn paradex_protocol(url: String, market: &str, registry: &Arc<Registry>) -> Protocol {
    ingest::adapter(
        ProtocolId::parse("paradex").unwrap(),
        ingest::Feed::Poll(PollConfig {
            base_urls: vec![url],
            markets: vec![market.into()],
            contexts_every: Duration::from_millis(500),
            trades_every: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            ..paradex::default_config()
        }),
        registry.clone(),
        References::default(),
        Arc::new(kamiyo_core_models::SystemClock),
    )
    .unwrap()
}

/// A protocol with the registry's engine whose adapter is `stream()`.
fn with_stream(
    id: &str,
    registry: &Arc<Registry>,
    stream: impl Fn() -> EventStream + Send + Sync + 'static,
) -> Protocol {
    let id = ProtocolId::parse(id).unwrap();
    let (bid, registry, stream) = (id.clone(), registry.clone(), Arc::new(stream));
    let build: Build = Arc::new(move |_, _| {
        let (id, registry, stream) = (bid.clone(), registry.clone(), stream.clone());
        Box::pin(async move {
            let engine = ingest::engine(&registry, &id)?;
            let clock: Arc<dyn kamiyo_core_models::Clock> =
                Arc::new(kamiyo_core_models::SystemClock);
            Ok((
                engine,
                stream(),
                clock,
                Box::new(kamiyo_pipeline::NoObserver) as Box<dyn kamiyo_pipeline::Observer>,
            ))
        })
    });
    Protocol { id, build }
}

/// A protocol whose adapter panics the moment its stream is polled, counting its panics.
fn panicking(id: &str, registry: &Arc<Registry>, panics: Arc<AtomicUsize>) -> Protocol {
    with_stream(id, registry, move || {
        let panics = panics.clone();
        Box::pin(futures_util::stream::poll_fn(move |_| {
            panics.fetch_add(1, Ordering::SeqCst);
            panic!("adapter bug (injected by the test)")
        }))
    })
}

/// A protocol whose adapter never yields anything.
fn stalled(id: &str, registry: &Arc<Registry>) -> Protocol {
    with_stream(id, registry, || Box::pin(futures_util::stream::pending()))
}

/// True for a delivery of a liquidation incident on `coin`.
fn liquidation_alert(body: &[u8], coin: &str) -> bool {
    let b = String::from_utf8_lossy(body);
    b.contains(&format!("\"asset\":\"{coin}\"")) && b.contains("\"detector\":\"liquidations\"")
}

/// Runs `protocols` in one ingest until the tenant's webhook has a liquidation alert on
/// `coin`, routing and delivering every 50 ms as `serve` does; the latency from `go` to it.
async fn latency(
    e: &crate::Env,
    protocols: Vec<Protocol>,
    go: &AtomicBool,
    rx: &Receiver,
    coin: &str,
) -> Duration {
    let stop = CancellationToken::new();
    let target = Target {
        url: e.tdb.url.clone(),
        store: e.facts.clone(),
        holder: "isolation-test".into(),
        db: e.owner.clone(),
    };
    let running = tokio::spawn(ingest::run(target, protocols, stop.clone()));
    // Let every protocol start (and the failing ones fail a few times) before the incident.
    tokio::time::sleep(Duration::from_secs(3)).await;
    go.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let tiers = kamiyo_platform::tiers::TierMatrix::default_matrix().unwrap();
    let took = loop {
        let now = now_ms();
        kamiyo_platform::fanout::route_once(&e.app, &e.facts_app, &tiers, now, 100)
            .await
            .unwrap();
        kamiyo_platform::fanout::deliver_once(&e.app, None, "test", now, 50)
            .await
            .unwrap();
        if rx
            .received()
            .iter()
            .any(|r| liquidation_alert(&r.body, coin))
        {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no delivery within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), running).await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_and_a_stalled_adapter_never_delay_another_protocols_alerts() {
    kamiyo_aggregators::install_crypto_provider();
    let e = env().await;
    e.clock.store(now_ms(), Ordering::SeqCst);
    let svc = e.service().await;
    let k = signup(&svc, "isolated").await;
    let (s, _, v) = call(&svc, "put", "/api/v1/subscriptions/paradex", Some(&k), None).await;
    assert!(s.is_success(), "{v}");
    let rx = Receiver::start(|_, _| Reply::new(200, "{}")).await;
    let who = kamiyo_platform::db::Actor {
        actor: "staff:test".into(),
        ip: "cli".into(),
        at: now_ms(),
    };
    // A loopback webhook (the API asks https of tenants; staff tooling writes what it is given).
    e.app
        .change(
            &kamiyo_platform::tenancy::TenantId::parse("isolated").unwrap(),
            &who,
            kamiyo_platform::db::Change::AddChannel {
                channel_id: kamiyo_platform::tenancy::new_id("chn"),
                name: "ops".into(),
                kind: "webhook".into(),
                url: rx.url("/hook"),
                secret: Some("hook secret".into()),
                min_severity: "info".into(),
            },
        )
        .await
        .unwrap();
    let registry = Arc::new(Registry::embedded().unwrap());

    // Alone.
    let go = Arc::new(AtomicBool::new(false));
    let url = paradex_venue("BTC-USD-PERP", go.clone()).await;
    let alone = latency(
        &e,
        vec![paradex_protocol(url, "BTC-USD-PERP", &registry)],
        &go,
        &rx,
        "BTC",
    )
    .await;

    // Beside an adapter that panics in a loop and one that stalls, in the same process.
    let go = Arc::new(AtomicBool::new(false));
    let url = paradex_venue("ETH-USD-PERP", go.clone()).await;
    let panics = Arc::new(AtomicUsize::new(0));
    let neighbours_at = Instant::now();
    let beside = latency(
        &e,
        vec![
            panicking("gmx", &registry, panics.clone()),
            stalled("drift", &registry),
            paradex_protocol(url, "ETH-USD-PERP", &registry),
        ],
        &go,
        &rx,
        "ETH",
    )
    .await;
    let panicked = panics.load(Ordering::SeqCst);
    eprintln!(
        "liquidation served → webhook: alone {alone:?}; beside a panicking and a stalled adapter {beside:?} ({panicked} panics in {:?})",
        neighbours_at.elapsed()
    );
    // The neighbour kept panicking (restarted each time) throughout.
    assert!(panicked >= 3, "{panicked} panics");
    // Its usual latency: no more than the latency alone plus one poll round and a commit.
    assert!(
        beside <= alone + Duration::from_millis(1500),
        "alone {alone:?}, beside failing neighbours {beside:?}"
    );
    // The deliveries name Paradex's incidents (liquidations on both markets, and the recorded
    // summary's funding — 0.75 % per 8 h — as an extreme); nothing from the failing ones.
    let bodies: Vec<String> = rx
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(bodies.iter().all(|b| b.contains("paradex")), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("ETH")), "{bodies:?}");
    let stored = crate::ingest::incidents_in(&e.facts).await;
    assert!(
        stored.iter().all(|i| i.protocol.as_str() == "paradex"),
        "{:?}",
        stored
            .iter()
            .map(|i| i.protocol.as_str())
            .collect::<Vec<_>>()
    );
}
