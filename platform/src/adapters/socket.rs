//! What every WebSocket venue shares: a [`Socket`] says where to connect, what to send after
//! connecting (and, if the venue needs it, a REST bootstrap first — Lighter's market ids) and
//! how a frame reads (pure, no I/O); [`stream`] runs it — reconnecting with jittered backoff
//! (1 s doubling to 60 s, reset after data), re-subscribing, an application ping where the
//! venue wants one, a connection silent for `idle_timeout` dropped, a `<venue>.ws` feed going
//! down and back live, forced trades deduplicated by the venue's ids across reconnects, frames
//! over 1 MiB refused, and malformed frames logged and skipped, never fatal.

use std::collections::HashMap;
use std::time::Duration;

use fastwebsockets::{Frame, Payload};
use kamiyo_aggregators::hyperliquid::ws::start_session;
use kamiyo_core_models::{EventStream, FeedState, MarketEvent, Timestamp};
use tokio_util::sync::CancellationToken;

use super::poll::{DecodeError, FeedReporter, Item, MsClock, Seen};

/// Longest frame accepted.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// How a socket venue is spoken. Implementations do no I/O.
pub trait Socket: Send + Sync + 'static {
    /// Its name in feed names and logs (`binance` → feed `binance.ws`).
    fn name(&self) -> &'static str;
    /// A REST path to read before each connection (its answer goes to
    /// [`Socket::bootstrapped`]), if the venue needs one.
    fn bootstrap(&self) -> Option<&'static str> {
        None
    }
    /// Takes the bootstrap answer.
    fn bootstrapped(&mut self, _body: &str) -> Result<(), DecodeError> {
        Ok(())
    }
    /// The messages that subscribe `markets`, sent after every connect.
    fn subscribe(&self, markets: &[String]) -> Vec<String>;
    /// An application-level ping and how often, if the venue wants one.
    fn ping(&self) -> Option<(Duration, String)> {
        None
    }
    /// Decodes one text frame; acks and pongs decode to nothing.
    fn decode(&mut self, text: &str, now: Timestamp) -> Result<Vec<Item>, DecodeError>;
}

/// How a socket runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketConfig {
    /// The socket's URL.
    pub ws_url: String,
    /// The venue's REST base (for the bootstrap).
    pub rest_url: String,
    /// Venue market symbols to follow.
    pub markets: Vec<String>,
    /// Per connection attempt and bootstrap request.
    pub connect_timeout: Duration,
    /// A connection silent this long is dropped and reopened.
    pub idle_timeout: Duration,
    /// Trades before this time were committed by a previous leader (see
    /// [`super::poll::PollConfig::resume_after`]).
    pub resume_after: Option<Timestamp>,
}

/// The events of `socket` until `shutdown`; `clock` stamps what carries no time of its own and
/// the feed's changes.
pub fn stream<S: Socket>(
    socket: S,
    cfg: SocketConfig,
    http: reqwest::Client,
    clock: MsClock,
    shutdown: CancellationToken,
) -> EventStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<MarketEvent>(4096);
    tokio::spawn(async move {
        let mut r = Runner {
            feed: FeedReporter::new(format!("{}.ws", socket.name())),
            socket,
            cfg,
            http,
            clock,
            seen: HashMap::new(),
            tx,
        };
        r.run(shutdown).await;
    });
    super::poll::channel_stream(rx)
}

struct Runner<S: Socket> {
    socket: S,
    cfg: SocketConfig,
    http: reqwest::Client,
    clock: MsClock,
    seen: HashMap<String, Seen>,
    feed: FeedReporter,
    tx: tokio::sync::mpsc::Sender<MarketEvent>,
}

impl<S: Socket> Runner<S> {
    fn now(&self) -> Timestamp {
        Timestamp((self.clock)())
    }

    /// Sends `events`; false when nobody listens any more.
    async fn send(&self, events: impl IntoIterator<Item = MarketEvent>) -> bool {
        for e in events {
            if self.tx.send(e).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn run(&mut self, shutdown: CancellationToken) {
        let mut attempt = 0u32;
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng();
        let backoff = kamiyo_aggregators::hyperliquid::ws::Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let (reason, got_data) = self.session(&shutdown).await;
            if shutdown.is_cancelled() || self.tx.is_closed() {
                return;
            }
            if got_data {
                attempt = 0;
            }
            tracing::warn!(venue = self.socket.name(), reason = %reason, "socket ended; reconnecting");
            let now = self.now();
            let down = self.feed.set(FeedState::Down, reason, now);
            if !self.send(down).await {
                return;
            }
            let delay = backoff.delay(attempt, &mut rng);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection: why it ended, and whether it carried data.
    async fn session(&mut self, shutdown: &CancellationToken) -> (String, bool) {
        if let Some(path) = self.socket.bootstrap() {
            let url = format!("{}{path}", self.cfg.rest_url.trim_end_matches('/'));
            let body = match self
                .http
                .get(&url)
                .timeout(self.cfg.connect_timeout)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.text().await.map_err(|e| e.to_string()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match body.map(|b| self.socket.bootstrapped(&b)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return (format!("bootstrap {path}: {e}"), false),
                Err(e) => return (format!("bootstrap {path}: {e}"), false),
            }
        }
        let ws = match kamiyo_aggregators::hyperliquid::ws::connect(
            &self.cfg.ws_url,
            self.cfg.connect_timeout,
        )
        .await
        {
            Ok(ws) => ws,
            Err(e) => return (e, false),
        };
        let (wx, reader, mut frx) = start_session(ws, MAX_FRAME_BYTES, 1024);
        let text = |t: String| Frame::text(Payload::Owned(t.into_bytes()));
        for m in self.socket.subscribe(&self.cfg.markets) {
            if let Err(e) = wx.lock().await.write_frame(text(m)).await {
                reader.abort();
                return (format!("subscribe: {e}"), false);
            }
        }
        let ping = self.socket.ping();
        let mut ticker = tokio::time::interval(
            ping.as_ref()
                .map_or(Duration::from_secs(3600), |(every, _)| *every),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut got_data = false;
        let mut idle = tokio::time::Instant::now() + self.cfg.idle_timeout;
        let reason = loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = wx.lock().await.write_frame(Frame::close(1000, b"shutdown")).await;
                    break "shutdown".to_owned();
                }
                m = frx.recv() => match m {
                    Some(Ok(frame)) => {
                        // These venues send JSON, as text or (some) as binary frames.
                        let frame = frame.into_text();
                        idle = tokio::time::Instant::now() + self.cfg.idle_timeout;
                        let now = self.now();
                        match self.socket.decode(&frame, now) {
                            Ok(items) => {
                                let mut out = Vec::new();
                                super::poll::admit(&mut self.seen, self.cfg.resume_after, items, &mut out);
                                if !out.is_empty() {
                                    got_data = true;
                                    let live = self.feed.set(FeedState::Live, String::new(), now);
                                    if !self.send(live.into_iter().chain(out)).await {
                                        break "nobody listens".to_owned();
                                    }
                                }
                            }
                            Err(e) => tracing::warn!(venue = self.socket.name(), error = %e, "frame skipped"),
                        }
                    }
                    Some(Err(e)) => break e,
                    None => break "reader ended".to_owned(),
                },
                _ = ticker.tick() => {
                    if let Some((_, p)) = &ping
                        && let Err(e) = wx.lock().await.write_frame(text(p.clone())).await
                    {
                        break format!("ping: {e}");
                    }
                }
                () = tokio::time::sleep_until(idle) => {
                    break format!("nothing received for {:?}", self.cfg.idle_timeout);
                }
            }
        };
        reader.abort();
        (reason, got_data)
    }
}
