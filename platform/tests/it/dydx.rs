//! The dYdX v4 indexer adapter against the recorded indexer answers (2025-12-08), decoded
//! directly and served by a loopback indexer that also fails, stalls and answers garbage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use kamiyo_core_models::{FeedState, MarketEvent, Side, Timestamp};
use kamiyo_platform::adapters::dydx;
use kamiyo_platform::adapters::poll::{self, PollConfig};
use tokio_util::sync::CancellationToken;

/// The venue's body of a recorded answer (`.result` of the recorder's envelope).
fn recorded(name: &str) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/testdata/protocols/dydx/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["result"].to_string()
}

fn markets() -> String {
    recorded("REAL-WRAPPED_v4_perpetualMarkets_BTC-ETH-SOL_2025-12-08.json")
}

fn trades() -> String {
    recorded("REAL-WRAPPED_v4_trades_BTC-USD_2025-12-08.json")
}

#[test]
fn the_recorded_answers_decode() {
    let ctxs = dydx::decode_markets(&markets(), Timestamp(1)).unwrap();
    let coins: Vec<&str> = ctxs.iter().map(|c| c.coin.as_str()).collect();
    assert_eq!(coins, ["BTC", "ETH", "SOL"]);
    let btc = &ctxs[0];
    assert_eq!(btc.oracle_px.to_string(), "89919.2");
    assert_eq!(btc.mark_px, btc.oracle_px);
    assert_eq!(btc.open_interest.to_string(), "381.7348");
    assert_eq!(btc.funding.to_string(), "0.00000254545454545455");
    assert_eq!(btc.day_ntl_vlm.to_string(), "247500844.6834");
    let t = dydx::decode_trades(&trades(), "BTC-USD").unwrap();
    assert_eq!(t.len(), 3);
    // Oldest first; ids kept; distinct stable trade ids.
    assert!(t.windows(2).all(|w| w[0].1.time <= w[1].1.time));
    assert_eq!(t[2].0, "03f89a550000000200000002");
    assert_eq!(
        Some(t[2].1.time),
        Timestamp::parse("2025-12-08T16:11:30.590Z")
    );
    assert_eq!(
        (t[2].1.side, t[2].1.px.to_string()),
        (Side::Buy, "89942".into())
    );
    let tids: std::collections::BTreeSet<u64> = t.iter().map(|x| x.1.tid).collect();
    assert_eq!(tids.len(), 3);
    assert!(
        t.iter().all(|x| x.2.is_none()),
        "recorded trades are LIMIT/MARKET"
    );
    // The indexer's forced trades (the recorded trade with its `type` changed here, in the test).
    for (kind, forced) in [
        ("LIQUIDATED", poll::Forced::Liquidation),
        ("DELEVERAGED", poll::Forced::Deleveraging),
    ] {
        let body = trades().replacen("\"type\":\"LIMIT\"", &format!("\"type\":\"{kind}\""), 1);
        let t = dydx::decode_trades(&body, "BTC-USD").unwrap();
        assert_eq!(
            t.iter().filter(|x| x.2 == Some(forced)).count(),
            1,
            "{kind}"
        );
    }
    // Garbage is an error, never a panic.
    for bad in [
        "",
        "{",
        "[]",
        r#"{"markets":5}"#,
        r#"{"trades":[{"id":"x"}]}"#,
    ] {
        assert!(dydx::decode_markets(bad, Timestamp(0)).is_err() || bad.contains("trades"));
        assert!(dydx::decode_trades(bad, "BTC-USD").is_err());
    }
    assert!(dydx::decode_trades(&trades(), "BTCUSD").is_err());
    // The book: five levels a side; with the latest context, its mid against the oracle.
    let book = dydx::decode_book(
        &recorded("REAL-WRAPPED_v4_orderbooks_BTC-USD_2025-12-08.json"),
        "BTC-USD",
        Timestamp(5),
    )
    .unwrap();
    assert_eq!((book.bids.len(), book.asks.len()), (5, 5));
    assert_eq!(
        (book.bids[0].px.to_string(), book.asks[0].px.to_string()),
        ("89947".into(), "89958".into())
    );
    let mut last = poll::Latest::default();
    let _ = last.contexts(ctxs.clone());
    let with_mid = last.with_mid(&book, Timestamp(5)).unwrap();
    assert_eq!(
        with_mid.mid_px.map(|m| m.to_string()),
        Some("89952.5".into())
    );
    assert_eq!(with_mid.oracle_px, btc.oracle_px);
    assert!(dydx::decode_book("{\"bids\": 1}", "BTC-USD", Timestamp(0)).is_err());
}

/// What the loopback indexer does with the n-th request of an endpoint.
pub(crate) type Script = Arc<dyn Fn(&str, usize) -> (u16, String, u64) + Send + Sync>;

async fn indexer(script: Script) -> (String, Arc<Mutex<Vec<(String, std::time::Instant)>>>) {
    let (root, log) = venue(script).await;
    (format!("{root}/v4"), log)
}

/// A loopback venue answering every path by `script`; its root URL and the request log.
pub(crate) async fn venue(
    script: Script,
) -> (String, Arc<Mutex<Vec<(String, std::time::Instant)>>>) {
    let log: Arc<Mutex<Vec<(String, std::time::Instant)>>> = Arc::default();
    let counts: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    let (l2, c2) = (log.clone(), counts.clone());
    let server = HttpServer::new(move || {
        let (log, counts, script) = (l2.clone(), c2.clone(), script.clone());
        App::new().default_service(web::to(move |req: HttpRequest| {
            let (log, counts, script) = (log.clone(), counts.clone(), script.clone());
            async move {
                let path = req.path().to_owned();
                log.lock()
                    .unwrap()
                    .push((path.clone(), std::time::Instant::now()));
                let n = {
                    let mut c = counts.lock().unwrap();
                    let n = c.entry(path.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let (status, body, delay_ms) = script(&path, n);
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .workers(1)
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    (url, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_survives_failures_stalls_and_garbage_and_emits_each_trade_once() {
    kamiyo_aggregators::install_crypto_provider();
    let (m, t) = (markets(), trades());
    let book = recorded("REAL-WRAPPED_v4_orderbooks_BTC-USD_2025-12-08.json");
    let script: Script = Arc::new(move |path, n| {
        if path.contains("/orderbooks/") {
            (200, book.clone(), 0)
        } else if path.ends_with("/perpetualMarkets") {
            match n {
                2 => (503, "upstream down".into(), 0),
                3 => (200, "{\"markets\": [garbage".into(), 0),
                _ => (200, m.clone(), 0),
            }
        } else {
            match n {
                // A stall longer than the client's timeout, then the same page over and over.
                2 => (200, t.clone(), 1_500),
                _ => (200, t.clone(), 0),
            }
        }
    });
    let (url, log) = indexer(script).await;
    let cfg = PollConfig {
        base_urls: vec![url],
        markets: vec!["BTC-USD".into()],
        contexts_every: Duration::from_millis(100),
        trades_every: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        requests_per_10s: 100,
        resume_after: None,
    };
    let stop = CancellationToken::new();
    let mut s = poll::stream(
        dydx::Dydx::default(),
        cfg,
        reqwest::Client::new(),
        Arc::new(|| 1_765_210_000_000),
        stop.clone(),
    );
    let (mut trades_seen, mut ctx_rounds, mut feed) = (Vec::new(), 0, Vec::new());
    let mut mids = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), s.next()).await else {
            break;
        };
        match e {
            MarketEvent::Trade(t) => trades_seen.push(t.tid),
            MarketEvent::AssetCtx(c) if c.coin.as_str() == "BTC" => {
                ctx_rounds += 1;
                mids += usize::from(c.mid_px.is_some());
            }
            MarketEvent::Feed(f) => feed.push(f.state),
            _ => {}
        }
        if ctx_rounds >= 4 && feed.len() >= 3 {
            break;
        }
    }
    stop.cancel();
    // Three recorded trades, each once, however often the page was served.
    assert_eq!(trades_seen.len(), 3, "{trades_seen:?}");
    let trade_polls = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.contains("/trades/"))
        .count();
    assert!(trade_polls >= 3, "{trade_polls}");
    // Live, down on the 503 and the stall, live again.
    assert_eq!(feed.first(), Some(&FeedState::Live), "{feed:?}");
    assert!(feed.contains(&FeedState::Down), "{feed:?}");
    assert_eq!(feed.last(), Some(&FeedState::Live), "{feed:?}");
    assert!(ctx_rounds >= 4, "{ctx_rounds}");
    // The book's mid rides on the latest context (the mid-versus-oracle rule).
    assert!(mids >= 1, "{mids}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_keeps_to_its_request_budget() {
    kamiyo_aggregators::install_crypto_provider();
    let (m, t) = (markets(), trades());
    let script: Script = Arc::new(move |path, _| {
        (
            200,
            if path.contains("/trades/") {
                t.clone()
            } else {
                m.clone()
            },
            0,
        )
    });
    let (url, log) = indexer(script).await;
    let cfg = PollConfig {
        base_urls: vec![url],
        markets: vec!["BTC-USD".into(), "ETH-USD".into(), "SOL-USD".into()],
        contexts_every: Duration::from_millis(1),
        trades_every: Duration::from_millis(1),
        timeout: Duration::from_millis(500),
        requests_per_10s: 10,
        resume_after: None,
    };
    let stop = CancellationToken::new();
    let mut s = poll::stream(
        dydx::Dydx::default(),
        cfg,
        reqwest::Client::new(),
        Arc::new(|| 0),
        stop.clone(),
    );
    let started = std::time::Instant::now();
    let drain = tokio::spawn(async move { while s.next().await.is_some() {} });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let _ = drain.await;
    // A full bucket of 10, then one per second: at most 10 + 3 in three seconds.
    let n = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| at.duration_since(started) <= Duration::from_secs(3))
        .count();
    assert!(
        (10..=13).contains(&n),
        "{n} requests in 3 s with a budget of 10 per 10 s"
    );
    // Nothing but the documented endpoints was asked for. (A request the poller had written
    // before the stop may still reach the venue after it; the budget counts arrival times.)
    for (path, _) in log.lock().unwrap().iter() {
        assert!(
            [
                "/v4/perpetualMarkets",
                "/v4/trades/perpetualMarket/",
                "/v4/orderbooks/perpetualMarket/"
            ]
            .iter()
            .any(|p| path.starts_with(p)),
            "{path}"
        );
    }
}

/// `kamiyo-platform ingest --protocol dydx,gmx` (`[adapters.*]` at loopback venues): two
/// adapters in one process, each with a protocol-generic engine and its own pipeline under its
/// own leadership, commit their facts into the shared store. the adapter, a protocol-generic engine and the
/// pipeline, under the protocol's leadership, commit dYdX's facts into the shared store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_runs_dydx_into_the_shared_store() {
    use diesel::sql_query;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let e = crate::env().await;
    let (m, t) = (markets(), trades());
    let script: Script = Arc::new(move |path, _| {
        (
            200,
            if path.contains("/trades/") {
                t.clone()
            } else {
                m.clone()
            },
            0,
        )
    });
    let (url, _log) = indexer(script).await;
    let gmx_answers = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/testdata/protocols/gmx/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let (tokens, gmx_markets, tickers) = (
        gmx_answers("REAL_arbitrum_tokens_2026-07.json"),
        gmx_answers("REAL_arbitrum_markets_2026-07.json"),
        gmx_answers("REAL_arbitrum_prices_tickers_2026-07-06.json"),
    );
    let (gmx_url, _) = venue(Arc::new(move |path, _| {
        let body = match path {
            "/tokens" => tokens.clone(),
            "/markets" => gmx_markets.clone(),
            _ => tickers.clone(),
        };
        (200, body, 0)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("platform.toml");
    std::fs::write(
        &config,
        format!(
            "[adapters.dydx]\nbase_urls = [\"{url}\"]\nmarkets = [\"BTC-USD\"]\n\n[adapters.gmx]\nbase_urls = [\"{gmx_url}\"]\n"
        ),
    )
    .unwrap();
    let mut child = crate::ingest::spawn_ingest(
        &e,
        &[
            "--protocol",
            "dydx,gmx",
            "--config",
            config.to_str().unwrap(),
        ],
        &dir.path().join("ingest.log"),
    );
    let mut c = AsyncPgConnection::establish(&e.tdb.url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let commits = loop {
        let n: Vec<N> = sql_query(
            "SELECT count(*) AS n FROM writer_fences WHERE name IN ('kamiyo-ingest:dydx', 'kamiyo-ingest:gmx') AND epoch = 1 AND commits > 0",
        )
        .load(&mut c)
        .await
        .unwrap();
        if n[0].n == 2 {
            break n[0].n;
        }
        assert!(
            std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "no dYdX and GMX commits within 60 s: {}",
            std::fs::read_to_string(dir.path().join("ingest.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("ingest.log")).unwrap();
    assert!(
        log.contains("leading the ingest") && log.contains("protocol=dydx"),
        "{log}"
    );
    assert!(log.contains("protocol=gmx"), "{log}");
    assert_eq!(commits, 2);
}
