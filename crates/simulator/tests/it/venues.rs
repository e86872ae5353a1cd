//! Every reference venue's client against the simulator speaking that venue's wire format:
//! quotes for listed coins, unlisted ones omitted, the venue's rate-limit answers honoured
//! (cool-down, no request sent while cooling), malformed bodies a typed error, and the
//! client-side budget never above the venue's published limit.

use std::sync::Arc;
use std::time::Duration;

use kamiyo_aggregators::sources::ticker::TickerSource;
use kamiyo_aggregators::sources::{KNOWN_VENUES, VenueEndpoints, kraken, reference_source};
use kamiyo_core_models::{
    Coin, Decimal, MarketEvent, PriceSource, ReferenceQuote, SourceError, SystemClock, Timestamp,
    Venue,
};
use kamiyo_simulator::{SimHandle, SimOptions};
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_748_736_000_000; // 2025-06-01T00:00:00Z

/// A simulator whose every venue quotes BTC at 100 000 + 10·i and ETH at 2 500 + i.
async fn venues_sim() -> SimHandle {
    let mut events = Vec::new();
    for (i, v) in KNOWN_VENUES.iter().enumerate() {
        for (coin, px) in [("BTC", 100_000 + 10 * i as i64), ("ETH", 2_500 + i as i64)] {
            events.push(MarketEvent::Reference(ReferenceQuote {
                venue: Venue::new(v).unwrap(),
                coin: Coin::new(coin).unwrap(),
                price: Decimal::from(px),
                bid: None,
                ask: None,
                time: Timestamp(T0),
            }));
        }
    }
    let opts = SimOptions {
        start_at: Some(Timestamp(T0 + 1_000)),
        ..SimOptions::default()
    };
    kamiyo_simulator::start(
        events,
        vec![Coin::new("BTC").unwrap(), Coin::new("ETH").unwrap()],
        Timestamp(T0 + 3_600_000),
        opts,
    )
    .await
    .unwrap()
}

fn coins() -> Vec<Coin> {
    ["BTC", "ETH", "NOPE"]
        .iter()
        .map(|c| Coin::new(c).unwrap())
        .collect()
}

fn endpoints(h: &SimHandle, venue: &str, ws: bool) -> VenueEndpoints {
    VenueEndpoints {
        rest_url: format!("{}/{venue}", h.http_url()),
        ws_url: ws.then(|| format!("ws://{}/{venue}/ws", h.addr())),
        timeout: Duration::from_secs(5),
    }
}

/// A REST-polled source of `venue` against the simulator.
fn source(h: &SimHandle, venue: &str) -> Arc<dyn PriceSource> {
    reference_source(
        venue,
        &endpoints(h, venue, false),
        Arc::new(SystemClock),
        &CancellationToken::new(),
    )
    .unwrap()
    .unwrap()
}

async fn control(h: &SimHandle, query: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/control/venue?{query}", h.http_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{query}: {}", r.status());
}

#[tokio::test]
async fn every_venue_quotes_in_its_own_wire_format() {
    let h = venues_sim().await;
    for (i, v) in KNOWN_VENUES.iter().enumerate() {
        let q = source(&h, v).quotes(&coins()).await.unwrap();
        assert_eq!(q.len(), 2, "{v}: BTC and ETH quoted, NOPE omitted");
        for x in &q {
            assert_eq!(x.venue.as_str(), *v);
            let want = match x.coin.as_str() {
                "BTC" => Decimal::from(100_000 + 10 * i as i64),
                _ => Decimal::from(2_500 + i as i64),
            };
            assert_eq!(x.price, want, "{v} {}: the mid of the served book", x.coin);
            assert!(x.bid < x.ask, "{v}: bid and ask decoded");
        }
    }
}

#[tokio::test]
async fn rate_limit_answers_are_honoured_and_bad_bodies_are_typed_errors() {
    let h = venues_sim().await;
    // A 429 with Retry-After: the error says how long, and the client stays away that long
    // even after the venue recovers.
    let okx = source(&h, "okx");
    control(&h, "name=okx&status=429&retry_after=30").await;
    match okx.quotes(&coins()).await {
        Err(SourceError::RateLimited { retry_after_ms, .. }) => assert_eq!(retry_after_ms, 30_000),
        other => panic!("{other:?}"),
    }
    control(&h, "name=okx&status=0").await;
    assert!(
        matches!(
            okx.quotes(&coins()).await,
            Err(SourceError::RateLimited { retry_after_ms, .. }) if retry_after_ms > 25_000
        ),
        "cooling down: no request is sent"
    );
    // Bybit's ban answer (403 "access too frequent") keeps the client away ten minutes.
    let bybit = source(&h, "bybit");
    control(&h, "name=bybit&status=403").await;
    assert!(matches!(
        bybit.quotes(&coins()).await,
        Err(SourceError::Status { status: 403, .. })
    ));
    control(&h, "name=bybit&status=0").await;
    assert!(matches!(
        bybit.quotes(&coins()).await,
        Err(SourceError::RateLimited { retry_after_ms, .. }) if retry_after_ms > 590_000
    ));
    // A truncated body: a decode error naming the venue; the venue is polled again next time.
    let gate = source(&h, "gate");
    control(&h, "name=gate&malformed=1").await;
    match gate.quotes(&coins()).await {
        Err(SourceError::Decode { venue, .. }) => assert_eq!(venue, "gate"),
        other => panic!("{other:?}"),
    }
    control(&h, "name=gate&status=0").await;
    assert_eq!(gate.quotes(&coins()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_client_budget_keeps_under_the_published_limit() {
    let h = venues_sim().await;
    // Kraken: one public request per second. Three polls in a row: the second and third wait
    // for the window instead of sending, and the window never holds more than one.
    let k = TickerSource::new(
        kraken::Kraken,
        &format!("{}/kraken", h.http_url()),
        kraken::default_symbols(),
        Arc::new(SystemClock),
        Duration::from_secs(5),
    )
    .unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(k.quotes(&coins()).await.unwrap().len(), 2);
        assert!(k.budget().used() <= 1);
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1_900),
        "three requests under 1/s take two windows: {:?}",
        start.elapsed()
    );
    // With less patience than the window, the budget refuses instead of sending.
    let impatient = TickerSource::new(
        kraken::Kraken,
        &format!("{}/kraken", h.http_url()),
        kraken::default_symbols(),
        Arc::new(SystemClock),
        Duration::from_millis(200),
    )
    .unwrap();
    impatient.quotes(&coins()).await.unwrap();
    assert!(matches!(
        impatient.quotes(&coins()).await,
        Err(SourceError::RateLimited { .. })
    ));
}

/// The venues whose ticker socket kamiyo reads.
const SOCKET_VENUES: [&str; 6] = ["okx", "bybit", "kraken", "kucoin", "gate", "mexc"];

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_answer_reconnect_after_drops_and_fall_back_to_rest_when_silent() {
    let h = venues_sim().await;
    let cancel = CancellationToken::new();
    for (i, v) in KNOWN_VENUES.iter().enumerate() {
        if !SOCKET_VENUES.contains(v) {
            continue;
        }
        let src = reference_source(v, &endpoints(&h, v, true), Arc::new(SystemClock), &cancel)
            .unwrap()
            .unwrap();
        // REST refused: every quote must come from the socket (KuCoin's REST bootstrap excepted:
        // its socket URL comes from bullet-public, which the fault does not touch).
        control(&h, &format!("name={v}&status=503")).await;
        wait_for(&format!("{v} quotes over its socket"), async || {
            src.quotes(&coins()).await.is_ok_and(|q| q.len() == 2)
        })
        .await;
        let q = src.quotes(&coins()).await.unwrap();
        let btc = q.iter().find(|x| x.coin.as_str() == "BTC").unwrap();
        assert_eq!(btc.price, Decimal::from(100_000 + 10 * i as i64), "{v}");
        control(&h, &format!("name={v}&status=0")).await;
    }
    // Every socket is dropped: each venue reconnects, re-subscribes and answers again.
    let before = h.connections();
    h.drop_connections();
    wait_for("every socket back", async || {
        h.connections() >= before + SOCKET_VENUES.len() as u64
    })
    .await;
    // Every socket answers the venue's protocol pings with the payload (RFC 6455 §5.5.2); a
    // venue that closes unanswered connections would otherwise cut them all.
    let http = reqwest::Client::new();
    let ping = |payload: String| {
        http.post(format!("{}/control/ping?payload={payload}", h.http_url()))
            .send()
    };
    let answer = ping("venue-keepalive".into()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert!(
        answer["sessions"].as_u64() >= Some(SOCKET_VENUES.len() as u64),
        "{answer}"
    );
    // A control frame carries at most 125 bytes (RFC 6455 §5.5).
    assert_eq!(ping("x".repeat(126)).await.unwrap().status(), 400);
    wait_for("a pong from every socket", async || {
        h.pongs()
            .iter()
            .filter(|p| &p[..] == b"venue-keepalive")
            .count()
            >= SOCKET_VENUES.len()
    })
    .await;
    // The sockets go silent (stall): after the freshness window the quotes come from REST.
    h.stall(Duration::from_secs(15));
    let okx = reference_source(
        "okx",
        &endpoints(&h, "okx", true),
        Arc::new(SystemClock),
        &cancel,
    )
    .unwrap()
    .unwrap();
    let q = okx.quotes(&coins()).await.unwrap();
    assert_eq!(
        q.len(),
        2,
        "REST answers before the socket has pushed anything"
    );
    control(&h, "name=okx&status=503").await;
    assert!(
        okx.quotes(&coins()).await.is_err(),
        "a silent socket does not stand in for REST"
    );
    cancel.cancel();
}
