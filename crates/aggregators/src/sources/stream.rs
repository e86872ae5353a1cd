//! Reference venues over WebSocket, with REST as the fallback. A venue that pushes tickers is
//! described by a [`TickerStream`] (subscribe messages, application ping, a pure frame decoder,
//! and for KuCoin the REST bootstrap that hands out the socket's URL); [`StreamSource`] keeps one
//! connection per venue — reconnecting with jittered backoff, re-subscribing, and dropping a
//! connection that has been silent for `idle_timeout` — and keeps the latest ticker per symbol.
//! `quotes` answers from those tickers while they are fresh and asks the venue's REST API (with
//! its rate budget) only for the symbols the socket has not refreshed, so a dead socket costs
//! freshness of seconds, never the venue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fastwebsockets::{Frame, Payload};
use kamiyo_core_models::{Clock, Coin, PriceSource, ReferenceQuote, SourceError, Timestamp, Venue};
use tokio_util::sync::CancellationToken;

use super::SymbolMap;
use super::ticker::{TickerApi, TickerSource, Top};
use crate::hyperliquid::rest::{http_client, send_text};
use crate::hyperliquid::ws::{Backoff, Received, connect, payload_text, start_session};

/// Longest frame accepted from a reference venue (tickers are well under 1 KB).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// How one venue's public WebSocket ticker channel is spoken. Implementations are pure.
pub trait TickerStream: Send + Sync + std::fmt::Debug + 'static {
    /// The messages that subscribe `symbols` (venue WebSocket symbols), sent after every connect.
    fn subscribe(&self, symbols: &[String], now: Timestamp) -> Vec<String>;
    /// The application-level ping, if the venue wants one, and how often.
    fn ping(&self, now: Timestamp) -> Option<String>;
    /// How often to ping (the venue drops silent connections sooner than this doubled).
    fn ping_interval(&self) -> Duration;
    /// Decodes one text frame: tickers (with WebSocket symbols), or none for acks and pongs; a
    /// venue error frame is an error.
    fn decode_frame(&self, text: &str) -> Result<Vec<Top>, SourceError>;
    /// Decodes one binary frame (MEXC pushes protobuf); by default read as text.
    fn decode_binary(&self, bytes: &[u8]) -> Result<Vec<Top>, SourceError> {
        self.decode_frame(&payload_text(bytes))
    }
    /// The WebSocket symbol of a REST symbol (most venues use the same).
    fn ws_symbol(&self, rest: &str) -> String {
        rest.to_owned()
    }
    /// A REST path to `POST` for the socket's URL (KuCoin's `bullet-public`), if the venue hands
    /// out URLs that way; its answer goes through [`TickerStream::endpoint`].
    fn bootstrap_path(&self) -> Option<&'static str> {
        None
    }
    /// The socket URL from the bootstrap answer.
    fn endpoint(&self, _body: &str) -> Result<String, SourceError> {
        Err(SourceError::Transport {
            venue: "stream".into(),
            detail: "this venue has no bootstrap".into(),
        })
    }
}

/// Connection settings of a [`StreamSource`].
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The venue's public WebSocket URL (unused when the venue bootstraps its URL over REST).
    pub ws_url: String,
    /// A ticker older than this (by receipt) is not used; REST answers for it instead.
    pub fresh_for: Duration,
    /// Reconnect when nothing at all arrived for this long.
    pub idle_timeout: Duration,
    /// Connect and handshake timeout.
    pub connect_timeout: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
}

impl StreamConfig {
    /// Defaults for `ws_url`: tickers fresh for 10 s, idle after 30 s, backoff 0.5 s … 30 s.
    pub fn new(ws_url: &str) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            fresh_for: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    /// Latest ticker per REST symbol, with its receipt time (monotonic).
    tops: HashMap<String, (Top, tokio::time::Instant)>,
    connected: bool,
    connects: u64,
    last_error: Option<String>,
}

/// A reference venue read over its WebSocket, REST filling in whatever the socket has not
/// refreshed.
#[derive(Debug)]
pub struct StreamSource<A: TickerApi + TickerStream + Clone> {
    rest: TickerSource<A>,
    api: A,
    symbols: SymbolMap,
    clock: Arc<dyn Clock>,
    cache: Arc<Mutex<Cache>>,
    fresh_for: Duration,
}

fn lock(c: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    c.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<A: TickerApi + TickerStream + Clone> StreamSource<A> {
    /// Starts the socket for `symbols` (on the current tokio runtime, until `cancel`), with
    /// `rest` as the fallback.
    pub fn spawn(
        api: A,
        rest: TickerSource<A>,
        symbols: SymbolMap,
        rest_base: &str,
        config: StreamConfig,
        clock: Arc<dyn Clock>,
        cancel: CancellationToken,
    ) -> Result<Self, SourceError> {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let ws_symbols: HashMap<String, String> = symbols
            .0
            .values()
            .map(|s| (api.ws_symbol(s), s.clone()))
            .collect();
        let http = http_client(config.connect_timeout)?;
        let runner = Runner {
            api: api.clone(),
            config: config.clone(),
            rest_base: rest_base.trim_end_matches('/').to_owned(),
            http,
            ws_symbols,
            cache: cache.clone(),
            clock: clock.clone(),
        };
        tokio::spawn(runner.run(cancel));
        Ok(Self {
            rest,
            api,
            symbols,
            clock,
            cache,
            fresh_for: config.fresh_for,
        })
    }

    /// True while the socket is connected.
    pub fn connected(&self) -> bool {
        lock(&self.cache).connected
    }

    /// Connections made so far.
    pub fn connects(&self) -> u64 {
        lock(&self.cache).connects
    }

    /// The REST fallback (its budget shows what the fallback cost).
    pub fn rest(&self) -> &TickerSource<A> {
        &self.rest
    }
}

#[async_trait]
impl<A: TickerApi + TickerStream + Clone> PriceSource for StreamSource<A> {
    fn venue(&self) -> &Venue {
        self.rest.venue()
    }

    async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError> {
        let now = self.clock.now();
        let mut out = Vec::new();
        let mut missing = Vec::new();
        {
            let c = lock(&self.cache);
            for coin in coins {
                let Some(sym) = self.symbols.symbol(coin) else {
                    continue;
                };
                let hit = c
                    .tops
                    .get(sym)
                    .filter(|(_, at)| at.elapsed() <= self.fresh_for)
                    .and_then(|(t, _)| t.quote(self.rest.venue(), coin, now));
                match hit {
                    Some(q) => out.push(q),
                    None => missing.push(coin.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        match self.rest.quotes(&missing).await {
            Ok(more) => {
                out.extend(more);
                Ok(out)
            }
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                tracing::debug!(venue = self.api.venue(), error = %e, "REST fallback failed; answering from the socket");
                Ok(out)
            }
        }
    }
}

struct Runner<A: TickerStream + TickerApi> {
    api: A,
    config: StreamConfig,
    rest_base: String,
    http: reqwest::Client,
    /// WebSocket symbol → REST symbol.
    ws_symbols: HashMap<String, String>,
    cache: Arc<Mutex<Cache>>,
    clock: Arc<dyn Clock>,
}

impl<A: TickerStream + TickerApi> Runner<A> {
    async fn url(&self) -> Result<String, String> {
        let Some(path) = self.api.bootstrap_path() else {
            return Ok(self.config.ws_url.clone());
        };
        let body = send_text(
            TickerApi::venue(&self.api),
            self.http.post(format!("{}{path}", self.rest_base)),
        )
        .await
        .map_err(|e| e.to_string())?;
        self.api.endpoint(&body).map_err(|e| e.to_string())
    }

    async fn run(self, cancel: CancellationToken) {
        let mut attempt = 0u32;
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let outcome = match self.url().await {
                Ok(url) => match connect(&url, self.config.connect_timeout).await {
                    Ok(ws) => {
                        {
                            let mut c = lock(&self.cache);
                            c.connected = true;
                            c.connects += 1;
                        }
                        let (reason, got_data) = self.session(ws, &cancel).await;
                        lock(&self.cache).connected = false;
                        if got_data {
                            attempt = 0;
                        }
                        reason
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if cancel.is_cancelled() {
                return;
            }
            tracing::debug!(venue = TickerApi::venue(&self.api), reason = %outcome, "reference socket ended; reconnecting");
            lock(&self.cache).last_error = Some(outcome);
            let delay = self.config.backoff.delay(attempt, &mut rng);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session(
        &self,
        ws: fastwebsockets::WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
        cancel: &CancellationToken,
    ) -> (String, bool) {
        let (wx, reader, mut frx) = start_session(ws, MAX_FRAME_BYTES, 1024);
        let send = |t: String| Frame::text(Payload::Owned(t.into_bytes()));
        let mut ws_syms: Vec<String> = self.ws_symbols.keys().cloned().collect();
        ws_syms.sort();
        for m in self.api.subscribe(&ws_syms, self.clock.now()) {
            if let Err(e) = wx.lock().await.write_frame(send(m)).await {
                reader.abort();
                return (format!("subscribe: {e}"), false);
            }
        }
        let mut got_data = false;
        let mut ping = tokio::time::interval(self.api.ping_interval());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut idle = tokio::time::Instant::now() + self.config.idle_timeout;
        let reason = loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    let _ = wx.lock().await.write_frame(Frame::close(1000, b"shutdown")).await;
                    break "shutdown".to_owned();
                }
                m = frx.recv() => match m {
                    Some(Ok(frame)) => {
                        idle = tokio::time::Instant::now() + self.config.idle_timeout;
                        let decoded = match &frame {
                            Received::Text(text) => self.api.decode_frame(text),
                            Received::Binary(bytes) => self.api.decode_binary(bytes),
                        };
                        match decoded {
                            Ok(tops) => {
                                if !tops.is_empty() {
                                    got_data = true;
                                }
                                let at = tokio::time::Instant::now();
                                let mut c = lock(&self.cache);
                                for mut t in tops {
                                    if let Some(rest) = self.ws_symbols.get(&t.symbol) {
                                        t.symbol.clone_from(rest);
                                        c.tops.insert(rest.clone(), (t, at));
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::debug!(venue = TickerApi::venue(&self.api), error = %e, "reference frame refused");
                                if matches!(e, SourceError::Status { .. }) {
                                    break e.to_string();
                                }
                            }
                        }
                    }
                    Some(Err(e)) => break e,
                    None => break "reader ended".to_owned(),
                },
                _ = ping.tick() => {
                    if let Some(p) = self.api.ping(self.clock.now())
                        && let Err(e) = wx.lock().await.write_frame(send(p)).await
                    {
                        break format!("ping: {e}");
                    }
                }
                () = tokio::time::sleep_until(idle) => {
                    break format!("nothing received for {:?}", self.config.idle_timeout);
                }
            }
        };
        reader.abort();
        (reason, got_data)
    }
}

/// A venue error pushed over the socket (subscription refused and the like).
pub fn venue_error(venue: &str, detail: impl std::fmt::Display) -> SourceError {
    SourceError::Status {
        venue: venue.into(),
        status: 0,
        detail: detail.to_string().chars().take(300).collect(),
    }
}
