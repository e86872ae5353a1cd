//! A loopback exchange that serves a scenario in the real wire formats.
//!
//! - `POST /info`: Hyperliquid's info requests, answered from the state at the current
//!   scenario time.
//! - `GET /ws`: Hyperliquid's WebSocket (greeting, subscription acks, pong, `allMids`,
//!   `trades`, `activeAssetCtx`, `userFills` with a snapshot, `l2Book`).
//! - `GET /<venue>/…`: the reference venues' public ticker APIs (Binance, OKX, Bybit, Kraken,
//!   KuCoin, Gate, MEXC, Coinbase; see [`venues`]); Binance and Coinbase also answer without
//!   the prefix. `GET /<venue>/ws`: the ticker sockets of OKX, Bybit, Kraken (v2), KuCoin (its
//!   URL from `POST /kucoin/api/v1/bullet-public`) and Gate, each in the venue's protocol.
//! - `POST /control/drop`, `/control/stall?ms=N[&mode=delay]` (drop every frame for N ms, or
//!   hold them and send them late), `/control/malformed`, `/control/speed?x=F`,
//!   `/control/venue?name=V&status=N[&retry_after=S]` (or `&malformed=1`; `status=0` clears),
//!   `/control/ping?payload=P` (every open WebSocket is sent a protocol ping carrying `P`; the
//!   status counts the pongs kept, the newest 1,000), `GET /control/status`: fault injection
//!   and pacing.
//!
//! Scenario time runs at `speed` × wall time from `start_at`.

pub mod state;
pub mod venues;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastwebsockets::{FragmentCollectorRead, Frame, OpCode, Payload};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kamiyo_aggregators::hyperliquid::wire::encode;
use kamiyo_core_models::{Address, Coin, Fill, MarketEvent, Timestamp, Trade};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::state::ExchangeState;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Listen address (port 0 picks one).
    pub bind: SocketAddr,
    /// Scenario-time speed factor (1 = real time).
    pub speed: f64,
    /// Scenario time at which to start (defaults to the first event).
    pub start_at: Option<Timestamp>,
    /// Send the plain-text greeting on connect (the real server sometimes does).
    pub greeting: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: 1.0,
            start_at: None,
            greeting: true,
        }
    }
}

#[derive(Debug)]
struct Pace {
    anchor_wall: Instant,
    anchor_sim: i64,
    speed: f64,
}

impl Pace {
    fn now(&self) -> i64 {
        self.anchor_sim + (self.anchor_wall.elapsed().as_secs_f64() * 1000.0 * self.speed) as i64
    }
}

/// A fault injected into one reference venue (`POST /control/venue`).
#[derive(Debug, Clone)]
enum VenueFault {
    /// Answer every request with this status (and `Retry-After`, if set).
    Status {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// Answer with a truncated JSON body.
    Malformed,
}

#[derive(Debug, Clone)]
enum Push {
    Events(Arc<Vec<MarketEvent>>),
    Malformed,
}

struct Shared {
    state: Mutex<ExchangeState>,
    pace: Mutex<Pace>,
    push: broadcast::Sender<Push>,
    drop_gen: watch::Sender<u64>,
    stall_until: Mutex<Option<Instant>>,
    delay_until: Mutex<Option<Instant>>,
    addr: SocketAddr,
    venue_faults: Mutex<BTreeMap<String, VenueFault>>,
    connections: AtomicU64,
    frames_sent: AtomicU64,
    /// Protocol pings to send on every open WebSocket (`/control/ping`), by payload.
    pings: broadcast::Sender<Bytes>,
    /// The payloads of the protocol pongs the WebSocket clients sent back, in arrival order
    /// (the newest [`MAX_PONGS`]).
    pongs: Mutex<VecDeque<Bytes>>,
    greeting: bool,
    end: Timestamp,
    /// (newest scenario time of a pushed batch, wall instant of the push), for latency
    /// measurements.
    released: Mutex<Vec<(i64, Instant)>>,
}

/// Most pong payloads kept.
const MAX_PONGS: usize = 1_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stalled(&self) -> bool {
        lock(&self.stall_until).is_some_and(|u| Instant::now() < u)
    }

    fn delaying(&self) -> bool {
        lock(&self.delay_until).is_some_and(|u| Instant::now() < u)
    }
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// Bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// REST clients of the reference `venues` polling this simulator (Binance and Coinbase answer
    /// at its root; the others under `/<venue>`), for live-source tests.
    pub fn reference_sources(
        &self,
        venues: &[&str],
    ) -> Vec<Arc<dyn kamiyo_core_models::PriceSource>> {
        venues
            .iter()
            .filter_map(|v| {
                let rest_url = if ["binance", "coinbase"].contains(v) {
                    self.http_url()
                } else {
                    format!("{}/{v}", self.http_url())
                };
                let ep = kamiyo_aggregators::sources::VenueEndpoints {
                    rest_url,
                    ws_url: None,
                    timeout: Duration::from_secs(5),
                };
                kamiyo_aggregators::sources::reference_source(
                    v,
                    &ep,
                    Arc::new(kamiyo_core_models::SystemClock),
                    &CancellationToken::new(),
                )?
                .ok()
            })
            .collect()
    }

    /// Current scenario time.
    pub fn now(&self) -> Timestamp {
        Timestamp(lock(&self.shared.pace).now())
    }

    /// True once every scenario event has been served.
    pub fn finished(&self) -> bool {
        lock(&self.shared.state).now >= self.shared.end.plus_millis(-1)
            || self.now() >= self.shared.end
    }

    /// Closes every WebSocket connection abruptly (no close frame).
    pub fn drop_connections(&self) {
        self.shared.drop_gen.send_modify(|g| *g += 1);
    }

    /// Stops pushing WebSocket data for `d` (connections stay open; data in between is lost
    /// to WebSocket clients and must be backfilled over REST).
    pub fn stall(&self, d: Duration) {
        *lock(&self.shared.stall_until) = Some(Instant::now() + d);
    }

    /// Holds every Hyperliquid WebSocket frame for `d` (wall time), then sends them all in order:
    /// a late network rather than a lossy one.
    pub fn delay(&self, d: Duration) {
        *lock(&self.shared.delay_until) = Some(Instant::now() + d);
    }

    /// Sends one malformed frame to every WebSocket client.
    pub fn send_malformed(&self) {
        let _ = self.shared.push.send(Push::Malformed);
    }

    /// Changes the speed factor from now on.
    pub fn set_speed(&self, speed: f64) {
        let mut p = lock(&self.shared.pace);
        let now = p.now();
        *p = Pace {
            anchor_wall: Instant::now(),
            anchor_sim: now,
            speed,
        };
    }

    /// WebSocket connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Sends a protocol ping carrying `payload` on every open WebSocket (Hyperliquid's and the
    /// venues'); RFC 6455 §5.5.2 obliges each client to answer with a pong carrying it back.
    pub fn ping_clients(&self, payload: &[u8]) {
        let _ = self.shared.pings.send(Bytes::copy_from_slice(payload));
    }

    /// The payloads of the protocol pongs received so far (the newest 1,000), in arrival order.
    pub fn pongs(&self) -> Vec<Bytes> {
        lock(&self.shared.pongs).iter().cloned().collect()
    }

    /// Data frames sent so far.
    pub fn frames_sent(&self) -> u64 {
        self.shared.frames_sent.load(Ordering::Relaxed)
    }

    /// When the event at scenario time `t` was released to the WebSocket connections (the
    /// wall instant its frame was handed to them), if it has been yet. Events already in the
    /// state at start were never released.
    pub fn released_at(&self, t: Timestamp) -> Option<Instant> {
        let r = lock(&self.shared.released);
        let i = r.partition_point(|(last, _)| *last < t.0);
        r.get(i).map(|(_, at)| *at)
    }

    /// Stops the simulator.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Serves a loaded scenario: its events in time order, its markets as the universe, until its
/// end.
pub async fn start_scenario(
    scenario: kamiyo_aggregators::replay::Scenario,
    opts: SimOptions,
) -> std::io::Result<SimHandle> {
    let universe = scenario
        .manifest
        .market
        .iter()
        .map(|m| m.coin.clone())
        .collect();
    let end = scenario.manifest.scenario.end;
    let mut events = scenario.events;
    events.sort_by_key(MarketEvent::time);
    start(events, universe, end, opts).await
}

/// Starts serving `events` (time-ordered) for the perp `universe` until `end`.
pub async fn start(
    events: Vec<MarketEvent>,
    universe: Vec<Coin>,
    end: Timestamp,
    opts: SimOptions,
) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(opts.bind).await?;
    let addr = listener.local_addr()?;
    let start_at = opts
        .start_at
        .or_else(|| events.first().map(MarketEvent::time))
        .unwrap_or_default();
    let (push, _) = broadcast::channel(4096);
    let (drop_gen, _) = watch::channel(0);
    let (pings, _) = broadcast::channel(16);
    let shared = Arc::new(Shared {
        state: Mutex::new(ExchangeState::new(universe)),
        pace: Mutex::new(Pace {
            anchor_wall: Instant::now(),
            anchor_sim: start_at.0,
            speed: opts.speed,
        }),
        push,
        drop_gen,
        stall_until: Mutex::new(None),
        delay_until: Mutex::new(None),
        addr,
        venue_faults: Mutex::new(BTreeMap::new()),
        connections: AtomicU64::new(0),
        frames_sent: AtomicU64::new(0),
        pings,
        pongs: Mutex::new(VecDeque::new()),
        greeting: opts.greeting,
        end,
        released: Mutex::new(Vec::new()),
    });
    let cancel = CancellationToken::new();
    // Events before the start time form the initial state.
    let split = events.partition_point(|e| e.time() < start_at);
    {
        let mut st = lock(&shared.state);
        for e in &events[..split] {
            st.apply(e);
        }
    }
    tokio::spawn(clock_task(
        shared.clone(),
        events[split..].to_vec(),
        cancel.clone(),
    ));
    tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
    Ok(SimHandle {
        addr,
        shared,
        cancel,
    })
}

async fn clock_task(shared: Arc<Shared>, events: Vec<MarketEvent>, cancel: CancellationToken) {
    let mut i = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while i < events.len() {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = lock(&shared.pace).now();
        let mut batch = Vec::new();
        {
            let mut st = lock(&shared.state);
            while i < events.len() && events[i].time().0 <= now {
                st.apply(&events[i]);
                batch.push(events[i].clone());
                i += 1;
            }
        }
        if let Some(last) = batch.last().map(|e| e.time().0) {
            lock(&shared.released).push((last, Instant::now()));
            let _ = shared.push.send(Push::Events(Arc::new(batch)));
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
        };
        let shared = shared.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, shared.clone(), cancel.clone()));
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_resp(v: &Value) -> Resp {
    respond(StatusCode::OK, "application/json", v.to_string())
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match (req.method().clone(), path.as_str()) {
        (Method::GET, "/ws") if fastwebsockets::upgrade::is_upgrade_request(&req) => {
            match fastwebsockets::upgrade::upgrade(&mut req) {
                Ok((resp, fut)) => {
                    tokio::spawn(async move {
                        if let Ok(ws) = fut.await {
                            ws_session(ws, shared, cancel).await;
                        }
                    });
                    let (parts, _) = resp.into_parts();
                    Response::from_parts(parts, Full::new(Bytes::new()))
                }
                Err(e) => respond(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
            }
        }
        (Method::POST, "/info") => {
            let body = Limited::new(req.into_body(), 1 << 20)
                .collect()
                .await
                .map(|b| b.to_bytes());
            match body
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            {
                None => respond(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "text/plain",
                    "Failed to deserialize the JSON body into the target type".into(),
                ),
                Some(v) => match lock(&shared.state).info(&v) {
                    Ok(v) => json_resp(&v),
                    Err(msg) => respond(StatusCode::UNPROCESSABLE_ENTITY, "text/plain", msg),
                },
            }
        }
        (Method::GET, "/api/v3/ticker/bookTicker") => venue_answer("binance", &path, &req, &shared),
        (Method::GET, p) if p.starts_with("/products/") && p.ends_with("/ticker") => {
            venue_answer("coinbase", &path, &req, &shared)
        }
        (Method::GET, p)
            if fastwebsockets::upgrade::is_upgrade_request(&req)
                && venues::split_prefix(p)
                    .is_some_and(|(v, rest)| rest == "/ws" && venues::WS_VENUES.contains(&v)) =>
        {
            let venue = venues::split_prefix(p).map_or("okx", |(v, _)| v);
            match fastwebsockets::upgrade::upgrade(&mut req) {
                Ok((resp, fut)) => {
                    tokio::spawn(async move {
                        if let Ok(ws) = fut.await {
                            venue_ws_session(venue, ws, shared, cancel).await;
                        }
                    });
                    let (parts, _) = resp.into_parts();
                    Response::from_parts(parts, Full::new(Bytes::new()))
                }
                Err(e) => respond(StatusCode::BAD_REQUEST, "text/plain", e.to_string()),
            }
        }
        (Method::POST, "/kucoin/api/v1/bullet-public") => {
            let host = req
                .headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or_else(|| shared_addr(&shared), str::to_owned);
            let (status, body) = venues::bullet(&host);
            respond(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                "application/json",
                body,
            )
        }
        (Method::GET, p) if venues::split_prefix(p).is_some() => match venues::split_prefix(p) {
            Some((venue, rest)) => venue_answer(venue, rest, &req, &shared),
            None => respond(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
        },
        (Method::POST, "/control/venue") => {
            let Some(venue) = query_param(&req, "name")
                .and_then(|n| venues::VENUES.iter().find(|v| **v == n).copied())
            else {
                return Ok(respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("name must be one of {}", venues::VENUES.join(", ")),
                ));
            };
            let fault = match (
                query_param(&req, "status").and_then(|v| v.parse::<u16>().ok()),
                query_param(&req, "malformed").is_some(),
            ) {
                (_, true) => Some(VenueFault::Malformed),
                (Some(0) | None, false) => None,
                (Some(status), false) => Some(VenueFault::Status {
                    status,
                    retry_after_secs: query_param(&req, "retry_after")
                        .and_then(|v| v.parse::<u64>().ok()),
                }),
            };
            let mut f = lock(&shared.venue_faults);
            match &fault {
                Some(x) => {
                    f.insert(venue.to_owned(), x.clone());
                }
                None => {
                    f.remove(venue);
                }
            }
            json_resp(&json!({"ok": true, "venue": venue, "fault": format!("{fault:?}")}))
        }
        (Method::POST, "/control/drop") => {
            shared.drop_gen.send_modify(|g| *g += 1);
            json_resp(&json!({"ok": true}))
        }
        (Method::POST, "/control/stall") => {
            let ms = query_param(&req, "ms")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(10_000);
            let until = Some(Instant::now() + Duration::from_millis(ms));
            let delay = query_param(&req, "mode").as_deref() == Some("delay");
            if delay {
                *lock(&shared.delay_until) = until;
            } else {
                *lock(&shared.stall_until) = until;
            }
            json_resp(
                &json!({"ok": true, "stall_ms": ms, "mode": if delay { "delay" } else { "drop" }}),
            )
        }
        (Method::POST, "/control/ping") => {
            let payload = query_param(&req, "payload").unwrap_or_default();
            // A control frame's payload is at most 125 bytes (RFC 6455 §5.5).
            if payload.len() > 125 {
                return Ok(respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "payload must be at most 125 bytes".into(),
                ));
            }
            let sessions = shared.pings.send(Bytes::from(payload.clone())).unwrap_or(0);
            json_resp(&json!({"ok": true, "payload": payload, "sessions": sessions}))
        }
        (Method::POST, "/control/malformed") => {
            let _ = shared.push.send(Push::Malformed);
            json_resp(&json!({"ok": true}))
        }
        (Method::POST, "/control/speed") => match query_param(&req, "x")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x >= 0.0)
        {
            Some(x) => {
                let mut p = lock(&shared.pace);
                let now = p.now();
                *p = Pace {
                    anchor_wall: Instant::now(),
                    anchor_sim: now,
                    speed: x,
                };
                json_resp(&json!({"ok": true, "speed": x}))
            }
            None => respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "x must be a non-negative number".into(),
            ),
        },
        (Method::GET, "/control/status") => {
            let now = lock(&shared.pace).now();
            json_resp(&json!({
                "scenario_time": Timestamp(now).to_rfc3339(),
                "applied_until": lock(&shared.state).now.to_rfc3339(),
                "connections": shared.connections.load(Ordering::Relaxed),
                "frames_sent": shared.frames_sent.load(Ordering::Relaxed),
                "pongs": lock(&shared.pongs).len(),
                "finished": now >= shared.end.0,
            }))
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    };
    Ok(resp)
}

/// A reference venue's request: the fault set for the venue, or its answer.
fn venue_answer(venue: &str, path: &str, req: &Request<Incoming>, shared: &Shared) -> Resp {
    if let Some(fault) = lock(&shared.venue_faults).get(venue).cloned() {
        return match fault {
            VenueFault::Status {
                status,
                retry_after_secs,
            } => {
                let mut r = respond(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "application/json",
                    json!({"msg": "fault injected by the simulator"}).to_string(),
                );
                if let Some(s) = retry_after_secs
                    && let Ok(v) = s.to_string().parse()
                {
                    r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
                }
                r
            }
            VenueFault::Malformed => {
                respond(StatusCode::OK, "application/json", "{\"data\": [tru".into())
            }
        };
    }
    let now = lock(&shared.pace).now();
    let st = lock(&shared.state);
    let (status, body) = venues::answer(
        venue,
        path,
        &|k| query_param(req, k),
        &|c| st.reference(venue, c).cloned(),
        now,
    );
    respond(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        body,
    )
}

/// The text frames a WebSocket client sends, read by a task of their own (fastwebsockets'
/// `read_frame` is not cancel-safe); control frames need no answer beyond what the session
/// sends, pongs are recorded in `shared`, and the channel ends when the client closes or the
/// connection breaks.
fn client_texts(
    rx: fastwebsockets::WebSocketRead<tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>>,
    shared: Arc<Shared>,
) -> (tokio::task::JoinHandle<()>, mpsc::Receiver<String>) {
    let (tx, texts) = mpsc::channel::<String>(256);
    let reader = tokio::spawn(async move {
        let mut rx = FragmentCollectorRead::new(rx);
        loop {
            match rx
                .read_frame(&mut |_| async { Ok::<(), std::io::Error>(()) })
                .await
            {
                Ok(f) if f.opcode == OpCode::Text => {
                    if tx
                        .send(String::from_utf8_lossy(&f.payload).into_owned())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(f) if f.opcode == OpCode::Pong => {
                    let mut pongs = lock(&shared.pongs);
                    // Unsolicited pongs are allowed (RFC 6455 §5.5.3): keep the newest only.
                    if pongs.len() == MAX_PONGS {
                        pongs.pop_front();
                    }
                    pongs.push_back(Bytes::copy_from_slice(&f.payload));
                }
                Ok(f) if f.opcode == OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    (reader, texts)
}

/// The write half of a session's WebSocket.
type SessionWriter =
    fastwebsockets::WebSocketWrite<tokio::io::WriteHalf<TokioIo<hyper::upgrade::Upgraded>>>;

/// Sends a protocol ping carrying `payload` unless the server is stalled (a stalled server
/// sends nothing at all, pings included); false when the connection is gone.
async fn send_ping(tx: &mut SessionWriter, shared: &Shared, payload: Bytes) -> bool {
    shared.stalled()
        || tx
            .write_frame(Frame::new(
                true,
                OpCode::Ping,
                None,
                Payload::Owned(payload.to_vec()),
            ))
            .await
            .is_ok()
}

fn shared_addr(shared: &Shared) -> String {
    shared.addr.to_string()
}

/// A reference venue's WebSocket: the venue's own subscribe, ack and ping protocol, then a
/// ticker push per subscribed symbol every 200 ms of wall time from the scenario's quotes.
/// Honours `/control/drop` (closes) and `/control/stall` (sends nothing at all).
async fn venue_ws_session(
    venue: &'static str,
    ws: fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let mut drops = shared.drop_gen.subscribe();
    let (rx, mut tx) = ws.split(tokio::io::split);
    let (reader, mut client) = client_texts(rx, shared.clone());
    let mut pings = shared.pings.subscribe();
    let send = |text: String| Frame::text(Payload::Owned(text.into_bytes()));
    if let Some(w) = venues::ws_welcome(venue)
        && tx.write_frame(send(w)).await.is_err()
    {
        reader.abort();
        return;
    }
    let mut subs: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let out: Vec<venues::Push> = tokio::select! {
            () = cancel.cancelled() => break,
            _ = drops.changed() => break,
            Ok(payload) = pings.recv() => {
                if !send_ping(&mut tx, &shared, payload).await {
                    break;
                }
                Vec::new()
            }
            msg = client.recv() => {
                let Some(msg) = msg else { break };
                let now = lock(&shared.pace).now();
                let (replies, new) = venues::ws_reply(venue, &msg, now);
                subs.extend(new);
                replies.into_iter().map(venues::Push::Text).collect()
            }
            _ = tick.tick() => {
                let now = lock(&shared.pace).now();
                let st = lock(&shared.state);
                subs.iter()
                    .filter_map(|s| {
                        let coin = venues::ws_coin(venue, s)?;
                        let q = st.reference(venue, &coin)?;
                        Some(venues::ws_push(venue, s, q, now))
                    })
                    .collect()
            }
        };
        if shared.stalled() {
            continue;
        }
        for push in out {
            shared.frames_sent.fetch_add(1, Ordering::Relaxed);
            let frame = match push {
                venues::Push::Text(text) => send(text),
                venues::Push::Binary(bytes) => Frame::binary(Payload::Owned(bytes)),
            };
            if tx.write_frame(frame).await.is_err() {
                reader.abort();
                return;
            }
        }
    }
    let _ = tx.write_frame(Frame::close(1001, b"going away")).await;
    reader.abort();
}

#[derive(Default)]
struct Subs {
    all_mids: bool,
    trades: BTreeSet<Coin>,
    ctx: BTreeSet<Coin>,
    books: BTreeSet<Coin>,
    fills: BTreeSet<Address>,
}

fn frames_for(subs: &Subs, events: &[MarketEvent]) -> Vec<String> {
    let mut out = Vec::new();
    let mut trades: BTreeMap<Coin, Vec<Trade>> = BTreeMap::new();
    let mut fills: BTreeMap<Address, Vec<Fill>> = BTreeMap::new();
    for e in events {
        match e {
            MarketEvent::Mids(m) if subs.all_mids => out.push(encode::all_mids(m)),
            MarketEvent::AssetCtx(c) if subs.ctx.contains(&c.coin) => {
                out.push(encode::active_asset_ctx(c))
            }
            MarketEvent::Book(b) if subs.books.contains(&b.coin) => out.push(encode::l2_book(b)),
            MarketEvent::Trade(t) if subs.trades.contains(&t.coin) => {
                trades.entry(t.coin.clone()).or_default().push(t.clone())
            }
            MarketEvent::Fill(f) if subs.fills.contains(&f.user) => {
                fills.entry(f.user).or_default().push(f.clone())
            }
            _ => {}
        }
    }
    out.extend(trades.values().map(|t| encode::trades(t)));
    out.extend(fills.iter().map(|(u, f)| encode::user_fills(*u, f, false)));
    out
}

async fn ws_session(
    ws: fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let mut push = shared.push.subscribe();
    let mut drops = shared.drop_gen.subscribe();
    let (rx, mut tx) = ws.split(tokio::io::split);
    let (reader, mut client) = client_texts(rx, shared.clone());
    let mut pings = shared.pings.subscribe();
    let send = |text: String| Frame::text(Payload::Owned(text.into_bytes()));
    if shared.greeting
        && tx
            .write_frame(send("Websocket connection established.".into()))
            .await
            .is_err()
    {
        reader.abort();
        return;
    }
    let mut subs = Subs::default();
    let mut held: Vec<String> = Vec::new();
    let mut flush = tokio::time::interval(Duration::from_millis(50));
    loop {
        let out: Vec<String> = tokio::select! {
            _ = flush.tick(), if !held.is_empty() => Vec::new(),
            () = cancel.cancelled() => break,
            _ = drops.changed() => break,
            Ok(payload) = pings.recv() => {
                if !send_ping(&mut tx, &shared, payload).await {
                    break;
                }
                Vec::new()
            }
            msg = client.recv() => {
                let Some(msg) = msg else { break };
                match serde_json::from_str::<Value>(&msg) {
                    Ok(v) if v["method"] == "ping" => vec![encode::pong()],
                    Ok(v) if v["method"] == "subscribe" => {
                        let s = &v["subscription"];
                        let coin = s["coin"].as_str().and_then(|c| Coin::new(c).ok());
                        let user = s["user"].as_str().and_then(|u| Address::parse(u).ok());
                        let mut frames = vec![encode::subscription_ack(s)];
                        match (s["type"].as_str(), coin, user) {
                            (Some("allMids"), _, _) => subs.all_mids = true,
                            (Some("trades"), Some(c), _) => { subs.trades.insert(c); }
                            (Some("activeAssetCtx"), Some(c), _) => { subs.ctx.insert(c); }
                            (Some("l2Book"), Some(c), _) => { subs.books.insert(c); }
                            (Some("userFills"), _, Some(u)) => {
                                subs.fills.insert(u);
                                let snap = lock(&shared.state).recent_fills(&u, 100);
                                frames.push(encode::user_fills(u, &snap, true));
                            }
                            _ => frames = vec![encode::error(&format!("Invalid subscription {s}"))],
                        }
                        frames
                    }
                    Ok(v) if v["method"] == "unsubscribe" => Vec::new(),
                    _ => vec![encode::error(&format!("Unknown method: {}", msg.chars().take(80).collect::<String>()))],
                }
            }
            p = push.recv() => match p {
                Ok(Push::Events(batch)) => frames_for(&subs, &batch),
                Ok(Push::Malformed) => vec![r#"{"channel":"trades","data":[{"coin":"ETH","side":"B","px":"#.to_owned()],
                Err(broadcast::error::RecvError::Lagged(_)) => Vec::new(),
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        // A stalled server sends nothing at all: no data, no acks, no pongs.
        if shared.stalled() {
            continue;
        }
        // A delaying server holds everything and sends it, in order, when the delay ends.
        held.extend(out);
        if shared.delaying() {
            continue;
        }
        for text in held.drain(..) {
            shared.frames_sent.fetch_add(1, Ordering::Relaxed);
            if tx.write_frame(send(text)).await.is_err() {
                reader.abort();
                return;
            }
        }
    }
    reader.abort();
}
