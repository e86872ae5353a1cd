//! The WebSocket client against the simulator: greeting and acks tolerated, data flows,
//! reconnects with resubscription after a drop, survives malformed frames, and reconnects
//! after a stall.

use std::sync::Arc;
use std::time::Duration;

use kamiyo_aggregators::hyperliquid::wire::WsMessage;
use kamiyo_aggregators::hyperliquid::ws::{self, Backoff, Subscription, WsConfig, WsItem};
use kamiyo_core_models::{Address, Coin, MarketEvent, SystemClock};
use kamiyo_simulator::SimHandle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::sim;

fn config(url: &str) -> WsConfig {
    let mut c = WsConfig::new(
        url,
        vec![
            Subscription::AllMids,
            Subscription::ActiveAssetCtx(Coin::new("ETH").unwrap()),
            Subscription::UserFills(
                Address::parse("0x2e3d94f0562703b25c83308a05046ddaf9a8dd14").unwrap(),
            ),
        ],
    );
    c.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    };
    c.ping_interval = Duration::from_millis(300);
    c.idle_timeout = Duration::from_millis(800);
    c
}

/// The WebSocket client of [`config`] running against `h`, with its items.
fn client(h: &SimHandle) -> (CancellationToken, mpsc::Receiver<WsItem>) {
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(10_000);
    tokio::spawn(ws::run(
        config(&h.ws_url()),
        Vec::new(),
        Arc::new(SystemClock),
        tx,
        cancel.clone(),
    ));
    (cancel, rx)
}

async fn next_matching(
    rx: &mut mpsc::Receiver<WsItem>,
    what: &str,
    f: impl Fn(&WsItem) -> bool,
) -> WsItem {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let item = rx.recv().await.expect("client ended");
            if f(&item) {
                return item;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn subscribes_receives_and_survives_drop_malformed_and_stall() {
    let h = sim("2025-03-12T13:16:00Z", 60.0).await;
    let (cancel, mut rx) = client(&h);

    next_matching(&mut rx, "connect", |i| {
        matches!(i, WsItem::Connected { attempt: 0 })
    })
    .await;
    next_matching(&mut rx, "greeting", |i| {
        matches!(i, WsItem::Message(WsMessage::Greeting, _))
    })
    .await;
    next_matching(&mut rx, "ack", |i| {
        matches!(i, WsItem::Message(WsMessage::SubscriptionAck(_), _))
    })
    .await;
    next_matching(&mut rx, "userFills snapshot", |i| {
        matches!(
            i,
            WsItem::Message(WsMessage::Events { snapshot: true, .. }, _)
        )
    })
    .await;
    next_matching(&mut rx, "asset context", |i| matches!(i, WsItem::Message(WsMessage::Events { events, .. }, _) if events.iter().any(|e| matches!(e, MarketEvent::AssetCtx(_))))).await;
    next_matching(&mut rx, "pong", |i| {
        matches!(i, WsItem::Message(WsMessage::Pong, _))
    })
    .await;

    // A malformed frame is reported and the connection stays up.
    h.send_malformed();
    next_matching(&mut rx, "decode failure", |i| {
        matches!(i, WsItem::DecodeFailed(_))
    })
    .await;
    next_matching(&mut rx, "data after malformed", |i| {
        matches!(i, WsItem::Message(WsMessage::Events { .. }, _))
    })
    .await;
    assert_eq!(h.connections(), 1);

    // An abrupt drop: the client reconnects and resubscribes.
    h.drop_connections();
    next_matching(&mut rx, "disconnect", |i| {
        matches!(i, WsItem::Disconnected { .. })
    })
    .await;
    next_matching(&mut rx, "reconnect", |i| {
        matches!(i, WsItem::Connected { .. })
    })
    .await;
    next_matching(&mut rx, "resubscribed", |i| {
        matches!(i, WsItem::Message(WsMessage::SubscriptionAck(_), _))
    })
    .await;
    next_matching(&mut rx, "data after reconnect", |i| matches!(i, WsItem::Message(WsMessage::Events { events, .. }, _) if events.iter().any(|e| matches!(e, MarketEvent::AssetCtx(_))))).await;
    assert_eq!(h.connections(), 2);

    // A stall (no frame at all, not even pongs) longer than the idle timeout: the client gives
    // up on the silent connection and reconnects.
    h.stall(Duration::from_secs(3));
    let item = next_matching(&mut rx, "disconnect on stall", |i| {
        matches!(i, WsItem::Disconnected { .. })
    })
    .await;
    let WsItem::Disconnected { reason, .. } = item else {
        unreachable!()
    };
    assert!(reason.contains("no data"), "{reason}");
    next_matching(&mut rx, "reconnect after stall", |i| {
        matches!(i, WsItem::Connected { .. })
    })
    .await;
    cancel.cancel();
}

/// The server's protocol pings are answered with pongs carrying their payload (RFC 6455
/// §5.5.2): a server that closes unanswered connections never closes kamiyo's.
#[tokio::test]
async fn answers_the_servers_protocol_pings() {
    let h = sim("2025-03-12T13:16:00Z", 60.0).await;
    let (cancel, mut rx) = client(&h);
    next_matching(&mut rx, "ack", |i| {
        matches!(i, WsItem::Message(WsMessage::SubscriptionAck(_), _))
    })
    .await;
    for payload in [&b"keepalive-1"[..], b"keepalive-2"] {
        h.ping_clients(payload);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !h.pongs().iter().any(|p| &p[..] == payload) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no pong for {:?}; pongs so far {:?}",
                String::from_utf8_lossy(payload),
                h.pongs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Answered on the same connection: no reconnect was needed.
    assert_eq!(h.connections(), 1);
    cancel.cancel();
}
