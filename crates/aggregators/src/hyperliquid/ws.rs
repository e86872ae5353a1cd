//! Hyperliquid WebSocket client on fastwebsockets: TLS for `wss://`, plain TCP for loopback
//! `ws://`; subscriptions, application ping, idle detection, and reconnection with exponential
//! backoff and full jitter. It reports everything it sees as [`WsItem`]s; the live source
//! (`crate::live`) adds REST backfill and deduplication on top.
//!
//! fastwebsockets' `read_frame` is not cancel-safe, so each connection has one reader task that
//! owns the read half and forwards whole text frames over a channel; the session loop selects
//! on that channel, the ping timer and shutdown, and writes through the shared write half.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{FragmentCollectorRead, Frame, OpCode, Payload, WebSocket, WebSocketWrite};
use http_body_util::Empty;
use hyper::Request;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use kamiyo_core_models::{Address, Clock, Coin, SourceError, Timestamp};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::wire::{DecodeError, WsContext, WsMessage, decode_ws_text};

/// Hyperliquid's per-IP limit on unique users across user subscriptions.
pub const MAX_UNIQUE_USERS: usize = 10;
/// Hyperliquid's per-IP subscription limit.
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// Longest frame accepted.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Subscription {
    /// `allMids`
    AllMids,
    /// `trades` of a coin.
    Trades(Coin),
    /// `activeAssetCtx` of a coin.
    ActiveAssetCtx(Coin),
    /// `l2Book` of a coin.
    L2Book(Coin),
    /// `bbo` of a coin.
    Bbo(Coin),
    /// `userFills` of a user.
    UserFills(Address),
    /// `userEvents` of a user (channel `user`; one per connection).
    UserEvents(Address),
    /// `candle` of a coin at an interval (`1m`, `5m`, `15m`, `1h`, `4h`, `1d`, …).
    Candle(Coin, String),
}

impl Subscription {
    /// The `subscription` object sent to the server.
    pub fn to_json(&self) -> Value {
        match self {
            Self::AllMids => json!({"type": "allMids"}),
            Self::Trades(c) => json!({"type": "trades", "coin": c}),
            Self::ActiveAssetCtx(c) => json!({"type": "activeAssetCtx", "coin": c}),
            Self::L2Book(c) => json!({"type": "l2Book", "coin": c}),
            Self::Bbo(c) => json!({"type": "bbo", "coin": c}),
            Self::UserFills(u) => json!({"type": "userFills", "user": u}),
            Self::UserEvents(u) => json!({"type": "userEvents", "user": u}),
            Self::Candle(c, i) => json!({"type": "candle", "coin": c, "interval": i}),
        }
    }

    /// The user of a user subscription.
    pub fn user(&self) -> Option<Address> {
        match self {
            Self::UserFills(u) | Self::UserEvents(u) => Some(*u),
            _ => None,
        }
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Cap.
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempt` (0-based): uniform in `[0, min(max, initial·2^attempt)]`,
    /// never below 50 ms.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(50);
        Duration::from_millis(rng.random_range(50..=ms))
    }
}

/// WebSocket client configuration.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// `wss://api.hyperliquid.xyz/ws` or a loopback `ws://127.0.0.1:PORT/ws`.
    pub url: String,
    /// Subscriptions, sent after every (re)connect.
    pub subscriptions: Vec<Subscription>,
    /// Application ping interval (the server drops connections silent for 60 s).
    pub ping_interval: Duration,
    /// Reconnect when nothing at all arrived for this long (pongs count: with pings every
    /// `ping_interval`, a live connection is never silent that long).
    pub idle_timeout: Duration,
    /// A silence longer than this, followed by frames again, is reported as a [`WsItem::Gap`].
    pub gap_after: Duration,
    /// Connect and handshake timeout.
    pub connect_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
}

impl WsConfig {
    /// Defaults for `url`: an application heartbeat (ping) every 5 s, so a silent connection is
    /// noticed in seconds: a silence over 8 s is a gap, over 15 s the connection is dropped and
    /// re-made; backoff 0.5 s … 30 s.
    pub fn new(url: &str, subscriptions: Vec<Subscription>) -> Self {
        Self {
            url: url.to_owned(),
            subscriptions,
            ping_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            gap_after: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
        }
    }

    /// Checks Hyperliquid's limits: at most 10 unique users, one `userEvents`, 1000
    /// subscriptions, a ping interval of at most 50 s.
    pub fn validate(&self) -> Result<(), SourceError> {
        let err = |detail: String| SourceError::Transport {
            venue: "hyperliquid.ws".into(),
            detail,
        };
        let users: BTreeSet<Address> = self
            .subscriptions
            .iter()
            .filter_map(Subscription::user)
            .collect();
        if users.len() > MAX_UNIQUE_USERS {
            return Err(err(format!(
                "{} unique users subscribed; Hyperliquid allows {MAX_UNIQUE_USERS} per IP",
                users.len()
            )));
        }
        if self
            .subscriptions
            .iter()
            .filter(|s| matches!(s, Subscription::UserEvents(_)))
            .count()
            > 1
        {
            return Err(err(
                "at most one userEvents subscription per connection".into()
            ));
        }
        if self.subscriptions.len() > MAX_SUBSCRIPTIONS {
            return Err(err(format!(
                "{} subscriptions; the limit is {MAX_SUBSCRIPTIONS}",
                self.subscriptions.len()
            )));
        }
        if self.ping_interval > Duration::from_secs(50) || self.ping_interval.is_zero() {
            return Err(err("ping interval must be between 1 ms and 50 s".into()));
        }
        Ok(())
    }

    fn context(&self, universe: Vec<Coin>) -> WsContext {
        let owner = self.subscriptions.iter().find_map(|s| match s {
            Subscription::UserEvents(u) => Some(*u),
            _ => None,
        });
        WsContext {
            user_events_owner: owner,
            universe,
        }
    }
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsItem {
    /// A connection was established and subscriptions were sent.
    Connected {
        /// Consecutive failures before this success.
        attempt: u32,
    },
    /// The connection ended; the client reconnects after `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
        /// Receipt time of the last frame of any connection so far: everything the server sent
        /// before it arrived; a gap may start here.
        last_frame_at: Option<Timestamp>,
    },
    /// Frames resumed on a live connection after a silence longer than `gap_after` (a stall:
    /// whatever the server pushed meanwhile may be lost). The gap starts at `last_frame_at`.
    Gap {
        /// Receipt time of the last frame before the silence.
        last_frame_at: Timestamp,
        /// How long the connection was silent.
        silent_for: Duration,
    },
    /// A decoded frame, with its receipt time.
    Message(WsMessage, Timestamp),
    /// A frame that did not decode (counted and logged; the connection stays up).
    DecodeFailed(DecodeError),
}

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::spawn(fut);
    }
}

type Ws = WebSocket<TokioIo<Upgraded>>;
type WriteHalf = WebSocketWrite<tokio::io::WriteHalf<TokioIo<Upgraded>>>;

/// Opens a WebSocket to `url` (ws:// or wss://).
pub async fn connect(url: &str, timeout: Duration) -> Result<Ws, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => return Err(format!("unsupported scheme {other:?} in {url:?}")),
    };
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in {url:?}"))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let req = Request::builder()
            .method("GET")
            .uri(path)
            .header(HOST, format!("{host}:{port}"))
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let (ws, _) = if tls {
            crate::install_crypto_provider();
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let cfg = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("invalid TLS name {host}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            fastwebsockets::handshake::client(&SpawnExecutor, req, stream).await
        } else {
            fastwebsockets::handshake::client(&SpawnExecutor, req, tcp).await
        }
        .map_err(|e| format!("handshake: {e}"))?;
        Ok::<_, String>(ws)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("connect timeout after {timeout:?}"))?
}

async fn write_text(w: &Mutex<WriteHalf>, text: String) -> Result<(), String> {
    w.lock()
        .await
        .write_frame(Frame::text(Payload::Owned(text.into_bytes())))
        .await
        .map_err(|e| format!("write: {e}"))
}

/// One data frame from a venue's socket.
#[derive(Debug)]
pub enum Received {
    /// A text frame (invalid UTF-8 replaced).
    Text(String),
    /// A binary frame (gzip-compressed JSON or protobuf at some venues).
    Binary(Vec<u8>),
}

impl Received {
    /// The frame as text (a binary frame's bytes read as UTF-8, invalid sequences replaced),
    /// for venues that send JSON either way.
    pub fn into_text(self) -> String {
        match self {
            Self::Text(t) => t,
            Self::Binary(b) => payload_text(&b),
        }
    }
}

/// The write half of a venue socket, shared by the session and its reader task.
pub type SharedWriter<W> = Arc<Mutex<fastwebsockets::WebSocketWrite<W>>>;

/// A session's frames, as its reader task forwards them.
pub type Frames = mpsc::Receiver<Result<Received, String>>;

/// Starts a session on `ws`: pings answered and closes replied to, frames above
/// `max_frame_bytes` refused, and the read half handed to a task of its own — fastwebsockets'
/// `read_frame` is not cancel-safe, so one task owns it — that forwards each data frame
/// (fragments joined) until the server closes or a read fails, which ends the stream with
/// `Err(reason)`. What the protocol obliges the reader to send — the pong to a ping, the reply
/// to a close — goes out through the returned writer, shared with the session: a venue that
/// pings at the protocol level (dYdX's indexer every 30 s, dropping a connection 10 s without a
/// pong) keeps the connection. Abort the handle when the session ends first.
pub fn start_session<S>(
    mut ws: WebSocket<S>,
    max_frame_bytes: usize,
    capacity: usize,
) -> (
    SharedWriter<tokio::io::WriteHalf<S>>,
    tokio::task::JoinHandle<()>,
    Frames,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    ws.set_max_message_size(max_frame_bytes);
    let (rx, wx) = ws.split(tokio::io::split);
    let writer = Arc::new(Mutex::new(wx));
    let reader_writer = writer.clone();
    let (ftx, frx) = mpsc::channel::<Result<Received, String>>(capacity);
    let reader = tokio::spawn(async move {
        let mut rx = FragmentCollectorRead::new(rx);
        loop {
            let w = reader_writer.clone();
            let frame = rx
                .read_frame(&mut move |f: Frame<'_>| {
                    let w = w.clone();
                    let owned =
                        Frame::new(f.fin, f.opcode, None, Payload::Owned(f.payload.to_vec()));
                    async move { w.lock().await.write_frame(owned).await }
                })
                .await;
            let item = match frame {
                Ok(f) => match f.opcode {
                    OpCode::Text => Ok(Received::Text(payload_text(&f.payload))),
                    OpCode::Binary => Ok(Received::Binary(f.payload.to_vec())),
                    OpCode::Close => Err("the server closed the connection".to_owned()),
                    _ => continue,
                },
                Err(e) => Err(format!("read: {e}")),
            };
            let end = item.is_err();
            if ftx.send(item).await.is_err() || end {
                return;
            }
        }
    });
    (writer, reader, frx)
}

/// Runs the client until `cancel` fires: connects, subscribes, forwards frames, reconnects.
/// `universe` maps asset indices for `allDexsAssetCtxs`.
pub async fn run(
    config: WsConfig,
    universe: Vec<Coin>,
    clock: Arc<dyn Clock>,
    tx: mpsc::Sender<WsItem>,
    cancel: CancellationToken,
) {
    let ctx = config.context(universe);
    let mut attempt: u32 = 0;
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng();
    let mut last_frame_at: Option<Timestamp> = None;
    loop {
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            r = connect(&config.url, config.connect_timeout) => r,
        };
        let reason = match outcome {
            Ok(ws) => {
                if tx.send(WsItem::Connected { attempt }).await.is_err() {
                    return;
                }
                let (reason, got_data, last) =
                    session(ws, &config, &ctx, clock.as_ref(), &tx, &cancel).await;
                last_frame_at = last.or(last_frame_at);
                if cancel.is_cancelled() {
                    return;
                }
                if got_data {
                    attempt = 0;
                }
                reason
            }
            Err(e) => e,
        };
        let retry_in = config.backoff.delay(attempt, &mut rng);
        attempt = attempt.saturating_add(1);
        if tx
            .send(WsItem::Disconnected {
                reason,
                retry_in,
                last_frame_at,
            })
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(retry_in) => {}
        }
    }
}

/// One connection's life. Returns why it ended, whether any data arrived, and the receipt time
/// of its last frame.
async fn session(
    ws: Ws,
    config: &WsConfig,
    ctx: &WsContext,
    clock: &dyn Clock,
    tx: &mpsc::Sender<WsItem>,
    cancel: &CancellationToken,
) -> (String, bool, Option<Timestamp>) {
    let (writer, reader, mut frx) = start_session(ws, MAX_FRAME_BYTES, 4096);

    for s in &config.subscriptions {
        let msg = json!({"method": "subscribe", "subscription": s.to_json()}).to_string();
        if let Err(e) = write_text(&writer, msg).await {
            reader.abort();
            return (e, false, None);
        }
    }

    let mut got_data = false;
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut idle_deadline = tokio::time::Instant::now() + config.idle_timeout;
    let mut last: Option<(tokio::time::Instant, Timestamp)> = None;
    let reason = loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = writer.lock().await.write_frame(Frame::close(1000, b"shutdown")).await;
                break "shutdown".to_owned();
            }
            msg = frx.recv() => match msg {
                Some(Ok(frame)) => {
                    let text = frame.into_text();
                    let at = tokio::time::Instant::now();
                    idle_deadline = at + config.idle_timeout;
                    let now = clock.now();
                    if let Some((prev, prev_at)) = last {
                        let silent_for = at.duration_since(prev);
                        if silent_for > config.gap_after
                            && tx.send(WsItem::Gap { last_frame_at: prev_at, silent_for }).await.is_err()
                        {
                            break "consumer gone".to_owned();
                        }
                    }
                    last = Some((at, now));
                    let item = match decode_ws_text(&text, now, ctx) {
                        Ok(m) => {
                            if matches!(m, WsMessage::Events { .. }) {
                                got_data = true;
                            }
                            WsItem::Message(m, now)
                        }
                        Err(e) => WsItem::DecodeFailed(e),
                    };
                    if tx.send(item).await.is_err() {
                        break "consumer gone".to_owned();
                    }
                }
                Some(Err(e)) => break e,
                None => break "reader ended".to_owned(),
            },
            _ = ping.tick() => {
                if let Err(e) = write_text(&writer, json!({"method": "ping"}).to_string()).await {
                    break e;
                }
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                break format!("no data for {:?}", config.idle_timeout);
            }
        }
    };
    reader.abort();
    (reason, got_data, last.map(|l| l.1))
}

/// A frame payload as text. Valid UTF-8 (every frame the server sends) takes std's
/// word-at-a-time check and one copy; anything else is kept, with U+FFFD for bad bytes, so the
/// decoder reports it instead of the reader dropping it.
pub fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(payload).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for attempt in 0..30 {
            let d = b.delay(attempt, &mut rng);
            let cap = Duration::from_millis(500)
                .saturating_mul(1 << attempt.min(20))
                .min(Duration::from_secs(30));
            assert!(
                d <= cap.max(Duration::from_millis(50)),
                "{attempt}: {d:?} > {cap:?}"
            );
            assert!(d >= Duration::from_millis(50));
        }
        let spread: BTreeSet<u128> = (0..50).map(|_| b.delay(10, &mut rng).as_millis()).collect();
        assert!(spread.len() > 40, "full jitter spreads reconnects");
    }

    #[test]
    fn limits_are_enforced() {
        let users: Vec<Subscription> = (0..11u8)
            .map(|i| Subscription::UserFills(Address::from_bytes([i; 20])))
            .collect();
        assert!(WsConfig::new("ws://x/ws", users).validate().is_err());
        let two_events = vec![
            Subscription::UserEvents(Address::from_bytes([1; 20])),
            Subscription::UserEvents(Address::from_bytes([2; 20])),
        ];
        assert!(WsConfig::new("ws://x/ws", two_events).validate().is_err());
        assert!(
            WsConfig::new("ws://x/ws", vec![Subscription::AllMids])
                .validate()
                .is_ok()
        );
        assert_eq!(
            Subscription::Trades(Coin::new("SOL").unwrap()).to_json(),
            json!({"type":"trades","coin":"SOL"})
        );
    }
}
