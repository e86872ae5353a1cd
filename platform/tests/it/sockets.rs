//! The socket adapters — Binance USDⓈ-M futures and Lighter — against their documented and
//! captured frames (testdata/protocols/{binance,lighter}), decoded directly and streamed from a
//! loopback venue (hyper + fastwebsockets on 127.0.0.1) that closes connections, goes silent,
//! sends garbage and fails its REST bootstrap.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use kamiyo_core_models::{FeedState, MarketEvent, Side, Timestamp};
use kamiyo_platform::adapters::binance;
use kamiyo_platform::adapters::lighter::Lighter;
use kamiyo_platform::adapters::poll::Item;
use kamiyo_platform::adapters::socket::{self, Socket, SocketConfig};
use tokio_util::sync::CancellationToken;

fn recorded(dir: &str, name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/testdata/protocols/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn compact(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .unwrap()
        .to_string()
}

fn events(items: Vec<Item>) -> Vec<MarketEvent> {
    items
        .into_iter()
        .flat_map(|i| match i {
            Item::Event(e) => vec![e],
            Item::Once { events, .. } => events,
        })
        .collect()
}

#[test]
fn binance_documented_frames_decode() {
    let mark = recorded("binance", "DOCS-EXAMPLE_fapi_ws_markPriceUpdate.json");
    let out = events(binance::decode_frame(&mark).unwrap());
    let [MarketEvent::AssetCtx(c)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            c.coin.as_str(),
            c.oracle_px.to_string(),
            c.mark_px.to_string(),
            c.funding.to_string(),
            c.time
        ),
        (
            "BTC",
            "11784.62659091".into(),
            "11794.15".into(),
            "0.00038167".into(),
            Timestamp(1_562_305_380_000)
        )
    );
    // The same frame inside a combined-stream envelope.
    let wrapped = format!(
        r#"{{"stream":"btcusdt@markPrice@1s","data":{}}}"#,
        compact(&mark)
    );
    assert_eq!(events(binance::decode_frame(&wrapped).unwrap()), out);
    let force = recorded("binance", "DOCS-EXAMPLE_fapi_ws_forceOrder.json");
    let out = events(binance::decode_frame(&force).unwrap());
    let (fill, trade) = match out.as_slice() {
        [MarketEvent::Fill(f), MarketEvent::Trade(t)] => (f, t),
        other => panic!("{other:?}"),
    };
    assert!(fill.is_liquidation());
    assert_eq!(
        (
            trade.side,
            trade.px.to_string(),
            trade.sz.to_string(),
            trade.time
        ),
        (
            Side::Sell,
            "9910.12345678".into(),
            "0.014".into(),
            Timestamp(1_568_014_460_893)
        )
    );
    // Acks are nothing; garbage and unknown events are errors, never panics.
    assert!(
        binance::decode_frame(r#"{"result":null,"id":1}"#)
            .unwrap()
            .is_empty()
    );
    for bad in [
        "",
        "{",
        "[]",
        "null",
        r#"{"e":"aggTrade"}"#,
        r#"{"e":"forceOrder","o":{}}"#,
    ] {
        assert!(binance::decode_frame(bad).is_err(), "{bad}");
    }
    // Subscriptions: both streams per market, lowercase.
    let subs = binance::Binance.subscribe(&["BTCUSDT".into()]);
    assert_eq!(subs.len(), 1);
    assert!(subs[0].contains("btcusdt@markPrice@1s") && subs[0].contains("btcusdt@forceOrder"));
}

fn lighter_ready() -> Lighter {
    let mut l = Lighter::default();
    let details = recorded("lighter", "REAL_orderBookDetails_ETH_2026-05-05.json");
    assert_eq!(l.read_details(&details).unwrap(), 1);
    l
}

#[test]
fn lighter_frames_decode() {
    let l = lighter_ready();
    // The captured market_stats frame (class UNCLEAR): BTC, named by symbol.
    let stats = recorded(
        "lighter",
        "UNCLEAR_ws_market_stats_subscribed_BTC_2026-06-04.json",
    );
    let out = events(l.decode_frame(&stats, Timestamp(0)).unwrap());
    let [MarketEvent::AssetCtx(c)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            c.coin.as_str(),
            c.oracle_px.to_string(),
            c.mark_px.to_string(),
            c.mid_px.map(|m| m.to_string()),
            c.funding.to_string(),
            c.time
        ),
        (
            "BTC",
            "64400.1".into(),
            "64356.3".into(),
            Some("64349.7".into()),
            "-0.0005".into(),
            Timestamp(1_780_546_209_291)
        )
    );
    // Open interest is quoted in USD: $102.1M at the mark is 1,586.85 BTC.
    assert_eq!(c.open_interest.round_dp(2).to_string(), "1586.85");
    // The same stats keyed by market id, as `market_stats/all` sends them.
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let all = serde_json::json!({"channel": "market_stats:all", "type": "update/market_stats",
        "timestamp": 1_780_546_209_291_i64, "market_stats": {"1": v["market_stats"]}});
    assert_eq!(
        events(l.decode_frame(&all.to_string(), Timestamp(0)).unwrap()),
        out
    );
    // The documented trade frame (class DOCS-DERIVED): ETH (market 0), the maker bought.
    let trade = recorded("lighter", "DOCS-DERIVED_ws_trade_update.json");
    let out = l.decode_frame(&trade, Timestamp(0)).unwrap();
    let out = events(out);
    let [MarketEvent::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            t.coin.as_str(),
            t.side,
            t.px.to_string(),
            t.sz.to_string(),
            t.tid
        ),
        (
            "ETH",
            Side::Sell,
            "2181.83".into(),
            "0.1336".into(),
            16_164_557_907
        )
    );
    // The same trade listed as a liquidation (moved here, in the test): a liquidation fill.
    let mut v: serde_json::Value = serde_json::from_str(&trade).unwrap();
    v["liquidation_trades"] = v["trades"].clone();
    v["trades"] = serde_json::json!([]);
    let items = l.decode_frame(&v.to_string(), Timestamp(0)).unwrap();
    assert!(
        matches!(&items[0], Item::Once { events, .. } if matches!(&events[0], MarketEvent::Fill(f) if f.is_liquidation()))
    );
    // A trade of a market the bootstrap did not list, garbage: errors, never panics.
    assert!(
        Lighter::default()
            .decode_frame(&trade, Timestamp(0))
            .is_err()
    );
    for bad in [
        "",
        "{",
        "[]",
        r#"{"type":"update/market_stats"}"#,
        r#"{"type":"surprise"}"#,
    ] {
        assert!(l.decode_frame(bad, Timestamp(0)).is_err(), "{bad}");
    }
    // Subscriptions: every market's stats, the followed markets' trades by id.
    let subs = l.subscribe(&["ETH".into(), "NOPE".into()]);
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs[0].contains("market_stats/all") && subs[1].contains("trade/0"));
}

/// What the loopback venue does on its n-th connection.
enum Step {
    Send(String),
    /// A protocol-level ping with this payload (the client's pong is recorded as
    /// `PONG <payload>`).
    Ping(&'static str),
    Wait(u64),
    Close,
}

type Plan = Arc<dyn Fn(usize) -> Vec<Step> + Send + Sync>;
type Rest = Arc<dyn Fn(&str, usize) -> (u16, String) + Send + Sync>;

struct WsVenue {
    root: String,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<String>>>,
}

async fn ws_venue(plan: Plan, rest: Rest) -> WsVenue {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let rest_calls = Arc::new(AtomicUsize::new(0));
    let (c2, r2) = (connections.clone(), received.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (plan, rest, conns, recv, calls) = (
                plan.clone(),
                rest.clone(),
                c2.clone(),
                r2.clone(),
                rest_calls.clone(),
            );
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let (plan, rest, conns, recv, calls) = (
                        plan.clone(),
                        rest.clone(),
                        conns.clone(),
                        recv.clone(),
                        calls.clone(),
                    );
                    async move {
                        if fastwebsockets::upgrade::is_upgrade_request(&req) {
                            let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req).unwrap();
                            let n = conns.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::spawn(async move {
                                if let Ok(ws) = fut.await {
                                    session(ws, plan(n), recv).await;
                                }
                            });
                            let (parts, _) = resp.into_parts();
                            return Ok::<_, Infallible>(Response::from_parts(
                                parts,
                                Full::new(Bytes::new()),
                            ));
                        }
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        let (status, body) = rest(req.uri().path(), n);
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok(r)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    WsVenue {
        root: format!("127.0.0.1:{}", addr.port()),
        connections,
        received,
    }
}

async fn session(
    ws: fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>,
    steps: Vec<Step>,
    received: Arc<Mutex<Vec<String>>>,
) {
    let (mut rx, mut tx) = ws.split(tokio::io::split);
    // Record what the client sends (its subscriptions).
    let reader = tokio::spawn(async move {
        loop {
            match rx
                .read_frame(&mut |_| async { Ok::<(), std::io::Error>(()) })
                .await
            {
                Ok(f) if f.opcode == OpCode::Text => received
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&f.payload).into_owned()),
                Ok(f) if f.opcode == OpCode::Pong => received
                    .lock()
                    .unwrap()
                    .push(format!("PONG {}", String::from_utf8_lossy(&f.payload))),
                Ok(f) if f.opcode == OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for s in steps {
        match s {
            Step::Send(t) => {
                if tx
                    .write_frame(Frame::text(Payload::Owned(t.into_bytes())))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Step::Ping(p) => {
                let ping = Frame::new(true, OpCode::Ping, None, Payload::Borrowed(p.as_bytes()));
                if tx.write_frame(ping).await.is_err() {
                    break;
                }
            }
            Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Step::Close => {
                let _ = tx.write_frame(Frame::close(1000, b"bye")).await;
                reader.abort();
                return;
            }
        }
    }
    // Then silent until the client gives up on the connection.
    let _ = reader.await;
}

#[derive(Debug, Default)]
struct Got {
    contexts: usize,
    trades: usize,
    liquidations: usize,
    feed: Vec<FeedState>,
}

async fn drain<S: Socket>(s: S, cfg: SocketConfig, enough: impl Fn(&Got) -> bool) -> Got {
    kamiyo_aggregators::install_crypto_provider();
    let stop = CancellationToken::new();
    let mut st = socket::stream(
        s,
        cfg,
        reqwest::Client::new(),
        Arc::new(|| 1_000),
        stop.clone(),
    );
    let mut got = Got::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && !enough(&got) {
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), st.next()).await else {
            break;
        };
        match e {
            MarketEvent::AssetCtx(_) => got.contexts += 1,
            MarketEvent::Trade(_) => got.trades += 1,
            MarketEvent::Fill(f) if f.is_liquidation() => got.liquidations += 1,
            MarketEvent::Feed(f) => got.feed.push(f.state),
            _ => {}
        }
    }
    stop.cancel();
    got
}

/// The Binance adapter against a loopback venue following `plan` (no REST), read until it has
/// given three asset contexts (or 20 s).
async fn binance_until_three_contexts(plan: Plan, idle_timeout: Duration) -> (WsVenue, Got) {
    let v = ws_venue(plan, Arc::new(|_, _| (404, String::new()))).await;
    let cfg = SocketConfig {
        ws_url: format!("ws://{}/ws", v.root),
        rest_url: format!("http://{}", v.root),
        markets: vec!["BTCUSDT".into()],
        connect_timeout: Duration::from_secs(2),
        idle_timeout,
        resume_after: None,
    };
    let got = drain(binance::Binance, cfg, |g| g.contexts >= 3).await;
    (v, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_socket_reconnects_resubscribes_and_emits_each_liquidation_once() {
    let mark = compact(&recorded(
        "binance",
        "DOCS-EXAMPLE_fapi_ws_markPriceUpdate.json",
    ));
    let force = compact(&recorded("binance", "DOCS-EXAMPLE_fapi_ws_forceOrder.json"));
    let plan: Plan = Arc::new(move |n| match n {
        // An ack, a context, garbage, then the venue closes.
        1 => vec![
            Step::Send(r#"{"result":null,"id":1}"#.into()),
            Step::Send(mark.clone()),
            Step::Send("{not json".into()),
            Step::Close,
        ],
        // The liquidation twice (a replay after reconnect must not count twice), then silence
        // longer than the idle timeout.
        2 => vec![
            Step::Send(force.clone()),
            Step::Send(force.clone()),
            Step::Send(mark.clone()),
        ],
        _ => vec![
            Step::Send(force.clone()),
            Step::Send(mark.clone()),
            Step::Wait(60_000),
        ],
    });
    let (v, got) = binance_until_three_contexts(plan, Duration::from_millis(700)).await;
    assert_eq!(got.liquidations, 1, "{got:?}");
    assert_eq!(got.trades, 1, "{got:?}");
    assert!(got.contexts >= 3, "{got:?}");
    assert_eq!(got.feed.first(), Some(&FeedState::Live), "{got:?}");
    assert!(got.feed.contains(&FeedState::Down), "{got:?}");
    assert_eq!(got.feed.last(), Some(&FeedState::Live), "{got:?}");
    // Each connection subscribed again.
    let n = v.connections.load(Ordering::SeqCst);
    assert!(n >= 3, "{n} connections");
    let subs = v.received.lock().unwrap().clone();
    assert!(
        subs.iter().filter(|s| s.contains("SUBSCRIBE")).count() >= 3,
        "{subs:?}"
    );
}

/// A venue that pings at the protocol level (dYdX's indexer every 30 s, dropping a connection
/// 10 s without a pong) gets its pong from the adapter's reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_adapter_answers_the_venues_protocol_pings() {
    let mark = compact(&recorded(
        "binance",
        "DOCS-EXAMPLE_fapi_ws_markPriceUpdate.json",
    ));
    let plan: Plan = Arc::new(move |_| {
        vec![
            Step::Send(mark.clone()),
            Step::Ping("keepalive-1"),
            Step::Wait(300),
            Step::Send(mark.clone()),
            Step::Ping("keepalive-2"),
            Step::Wait(300),
            Step::Send(mark.clone()),
            Step::Wait(60_000),
        ]
    });
    let (v, got) = binance_until_three_contexts(plan, Duration::from_secs(10)).await;
    assert!(got.contexts >= 3, "{got:?}");
    let received = v.received.lock().unwrap().clone();
    for p in ["PONG keepalive-1", "PONG keepalive-2"] {
        assert!(received.iter().any(|r| r == p), "no {p:?} in {received:?}");
    }
    assert_eq!(v.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lighter_bootstraps_through_a_failing_rest_api_then_streams() {
    let details = recorded("lighter", "REAL_orderBookDetails_ETH_2026-05-05.json");
    let stats = compact(&recorded(
        "lighter",
        "UNCLEAR_ws_market_stats_subscribed_BTC_2026-06-04.json",
    ));
    let trade = compact(&recorded("lighter", "DOCS-DERIVED_ws_trade_update.json"));
    let plan: Plan = Arc::new(move |_| {
        vec![
            Step::Send(r#"{"type":"connected"}"#.into()),
            Step::Send(stats.clone()),
            Step::Send(trade.clone()),
            Step::Send(stats.clone()),
            Step::Wait(60_000),
        ]
    });
    let rest: Rest = Arc::new(move |path, n| match (path, n) {
        (_, 1) => (503, "maintenance".into()),
        (_, 2) => (200, "{\"order_book_details\": 7}".into()),
        (p, _) if p.ends_with("/orderBookDetails") => (200, details.clone()),
        _ => (404, String::new()),
    });
    let v = ws_venue(plan, rest).await;
    let cfg = SocketConfig {
        ws_url: format!("ws://{}/stream", v.root),
        rest_url: format!("http://{}/api/v1", v.root),
        markets: vec!["ETH".into()],
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        resume_after: None,
    };
    let got = drain(Lighter::default(), cfg, |g| {
        g.contexts >= 2 && g.trades >= 1
    })
    .await;
    assert_eq!((got.contexts, got.trades), (2, 1), "{got:?}");
    // Down while the bootstrap failed (twice), live once streaming; one connection.
    assert_eq!(got.feed, [FeedState::Down, FeedState::Live], "{got:?}");
    assert_eq!(v.connections.load(Ordering::SeqCst), 1);
    let subs = v.received.lock().unwrap().clone();
    assert!(
        subs.iter().any(|s| s.contains("market_stats/all"))
            && subs.iter().any(|s| s.contains("trade/0")),
        "{subs:?}"
    );
}
