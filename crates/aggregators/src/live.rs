//! The live source: Hyperliquid's WebSocket, its REST pollers, the reference venues and whale
//! polling merged into one normalized, deduplicated event stream with feed health.
//!
//! ```text
//!  ws (allMids, trades, activeAssetCtx, userFills of the HLP Liquidators) ─┐
//!  REST backfill after every reconnect (userFillsByTime, recentTrades) ────┤
//!  REST pollers (vaultDetails, clearinghouseState of HLP children,         ├─► merger ─► stream
//!                metaAndAssetCtxs, perpsAtOpenInterestCap)                 │   (dedup, freshness,
//!  whale poller (clearinghouseState + ledger of the top traders) ──────────┤    whale ranking)
//!  reference venues (Binance, Coinbase, … via PriceSource) ───────────────┘
//! ```
//!
//! Every task reports failures to the merger, which turns them into feed-state changes
//! (LIVE / STALE / DOWN) in the stream; no task dies silently, and the REST budget is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kamiyo_core_models::{
    Address, Clock, Coin, EventStream, MarketDataStream, MarketEvent, OiCapSnapshot, PriceSource,
    SourceError, Timestamp,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::aggregate::{FeedBoard, Staleness};
use crate::hyperliquid::budget::WeightBudget;
use crate::hyperliquid::dedup::DedupWindow;
use crate::hyperliquid::discovery::{HlpTopology, discover_hlp};
use crate::hyperliquid::rest::InfoClient;
use crate::hyperliquid::wire::WsMessage;
use crate::hyperliquid::ws::{self, Backoff, Subscription, WsConfig, WsItem};
use crate::whales::WhaleTracker;

/// Feed name of the Hyperliquid WebSocket.
pub const FEED_WS: &str = "hyperliquid.ws";
/// Feed name of Hyperliquid's REST pollers.
pub const FEED_REST: &str = "hyperliquid.rest";

/// Configuration of the live source.
#[derive(Clone)]
pub struct LiveConfig {
    /// REST base URL.
    pub rest_url: String,
    /// WebSocket URL.
    pub ws_url: String,
    /// Perp markets to stream (trades and asset contexts).
    pub coins: Vec<Coin>,
    /// HLP parent vault.
    pub hlp_parent: Address,
    /// Reference venues.
    pub references: Vec<Arc<dyn PriceSource>>,
    /// Reference polling period.
    pub reference_interval: Duration,
    /// `vaultDetails` polling period.
    pub vault_interval: Duration,
    /// `clearinghouseState` polling period for HLP children.
    pub hlp_positions_interval: Duration,
    /// `metaAndAssetCtxs` / `perpsAtOpenInterestCap` polling period.
    pub market_interval: Duration,
    /// Whale polling period.
    pub whale_interval: Duration,
    /// Whales polled per period.
    pub whale_count: usize,
    /// Addresses always polled as whales.
    pub watch: Vec<Address>,
    /// Staleness of the Hyperliquid feeds.
    pub staleness: Staleness,
    /// Staleness of the reference venues.
    pub reference_staleness: Staleness,
    /// Resume points: backfill each user's fills from here at start (from the store's cursor).
    pub resume_from: BTreeMap<Address, Timestamp>,
    /// Shared REST weight budget.
    pub budget: Arc<WeightBudget>,
    /// HTTP timeout.
    pub http_timeout: Duration,
    /// WebSocket ping interval and reconnect backoff.
    pub ping_interval: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Idle timeout of the WebSocket (no frame at all, pongs included).
    pub idle_timeout: Duration,
    /// A WebSocket silence longer than this, then frames again, is a gap to backfill.
    pub gap_after: Duration,
    /// An exchange-time clock to feed with the times the exchange reports (when the source's
    /// clock is one).
    pub exchange_clock: Option<Arc<crate::clock::ExchangeClock>>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("rest_url", &self.rest_url)
            .field("ws_url", &self.ws_url)
            .field("coins", &self.coins)
            .field(
                "references",
                &self
                    .references
                    .iter()
                    .map(|r| r.venue().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// Defaults for mainnet-like endpoints at `rest_url` / `ws_url`.
    pub fn new(rest_url: &str, ws_url: &str, coins: Vec<Coin>, hlp_parent: Address) -> Self {
        Self {
            rest_url: rest_url.to_owned(),
            ws_url: ws_url.to_owned(),
            coins,
            hlp_parent,
            references: Vec::new(),
            reference_interval: Duration::from_secs(5),
            vault_interval: Duration::from_secs(60),
            hlp_positions_interval: Duration::from_secs(30),
            market_interval: Duration::from_secs(30),
            whale_interval: Duration::from_secs(30),
            whale_count: 8,
            watch: Vec::new(),
            staleness: Staleness::default(),
            reference_staleness: Staleness {
                stale_after_ms: 30_000,
                down_after_ms: 120_000,
            },
            resume_from: BTreeMap::new(),
            budget: Arc::new(WeightBudget::hyperliquid(Duration::from_secs(30))),
            http_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(5),
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
            idle_timeout: Duration::from_secs(15),
            gap_after: Duration::from_secs(8),
            exchange_clock: None,
        }
    }
}

enum Raw {
    Data(&'static str, Vec<MarketEvent>),
    Ref(String, Vec<MarketEvent>),
    Failure(String, String),
    WsConnected,
    /// The socket ended; the last frame before it arrived at this time.
    WsDisconnected(String, Option<Timestamp>),
    /// The socket was silent and resumed: a gap from this time.
    WsGap(Timestamp),
    Liquidators(Vec<Address>),
}

/// Seconds between reports of LIVE feeds' data times.
const FEED_REFRESH_TICKS: u32 = 5;

/// The live source.
pub struct LiveSource {
    config: LiveConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// A source that stops when `cancel` fires.
    pub fn new(config: LiveConfig, clock: Arc<dyn Clock>, cancel: CancellationToken) -> Self {
        Self {
            config,
            clock,
            cancel,
        }
    }
}

impl MarketDataStream for LiveSource {
    fn name(&self) -> &str {
        "hyperliquid"
    }

    fn into_stream(self: Box<Self>) -> EventStream {
        let (out_tx, out_rx) = mpsc::channel::<MarketEvent>(65_536);
        let Self {
            config,
            clock,
            cancel,
        } = *self;
        tokio::spawn(run(config, clock, cancel, out_tx));
        Box::pin(futures_util::stream::unfold(out_rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        }))
    }
}

fn restamp(
    mut s: kamiyo_core_models::FeedStatus,
    wall_now: Timestamp,
    now: Timestamp,
) -> kamiyo_core_models::FeedStatus {
    let shift = |t: Timestamp| now.plus_millis(-wall_now.millis_since(t));
    s.last_data_at = s.last_data_at.map(shift);
    s.changed_at = shift(s.changed_at);
    s
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every background task of the source shares.
#[derive(Clone)]
struct Task {
    config: LiveConfig,
    client: InfoClient,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    raw: mpsc::Sender<Raw>,
}

impl Task {
    /// A supervisor reporting into this task's feed channel, stopping with its token.
    fn supervisor(&self) -> Supervisor {
        Supervisor {
            cancel: self.cancel.clone(),
            backoff: self.config.backoff,
            raw: self.raw.clone(),
        }
    }
}

/// Spawns the source's background tasks under [`crate::supervise::supervise`]; a crash is
/// reported as a failure of the feed the task serves (so it shows in feed health) and the task
/// restarts.
struct Supervisor {
    cancel: CancellationToken,
    backoff: Backoff,
    raw: mpsc::Sender<Raw>,
}

impl Supervisor {
    fn spawn<F, Fut>(&self, task: &'static str, feed: &str, make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let raw = self.raw.clone();
        let feed = feed.to_owned();
        tokio::spawn(crate::supervise::supervise(
            task,
            self.cancel.clone(),
            self.backoff,
            move |task, exit, restart_in| {
                let _ = raw.try_send(Raw::Failure(
                    feed.clone(),
                    format!(
                        "task {task} {exit}; restarting in {} ms",
                        restart_in.as_millis()
                    ),
                ));
            },
            make,
        ));
    }
}

async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

async fn run(
    config: LiveConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    out: mpsc::Sender<MarketEvent>,
) {
    let (raw_tx, mut raw_rx) = mpsc::channel::<Raw>(65_536);
    let client = match InfoClient::new(&config.rest_url, config.budget.clone(), config.http_timeout)
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the Hyperliquid REST client");
            return;
        }
    };
    let whales = Arc::new(Mutex::new(WhaleTracker::new(Timestamp::HOUR, 256)));
    let (backfill_tx, backfill_rx) = mpsc::channel::<BTreeMap<Address, Timestamp>>(16);

    let task = Task {
        config: config.clone(),
        client: client.clone(),
        clock: clock.clone(),
        cancel: cancel.clone(),
        raw: raw_tx.clone(),
    };
    let sup = task.supervisor();
    {
        let (t, backfill) = (task.clone(), backfill_tx.clone());
        sup.spawn("bootstrap", FEED_WS, move || {
            bootstrap(t.clone(), backfill.clone())
        });
    }
    {
        // The backfill queue's receiver lives in a shared slot so a restarted task takes it over.
        let (t, rx) = (task.clone(), Arc::new(tokio::sync::Mutex::new(backfill_rx)));
        sup.spawn("backfill", FEED_REST, move || {
            backfill_task(t.clone(), rx.clone())
        });
    }
    {
        let t = task.clone();
        sup.spawn("market_poller", FEED_REST, move || market_poller(t.clone()));
    }
    {
        let (t, whales) = (task.clone(), whales.clone());
        sup.spawn("whale_poller", FEED_REST, move || {
            whale_poller(t.clone(), whales.clone())
        });
    }
    for r in &config.references {
        let (r, coins, interval, cancel, raw) = (
            r.clone(),
            config.coins.clone(),
            config.reference_interval,
            cancel.clone(),
            raw_tx.clone(),
        );
        let feed = r.venue().as_str().to_owned();
        sup.spawn("reference_poller", &feed, move || {
            reference_poller(
                r.clone(),
                coins.clone(),
                interval,
                cancel.clone(),
                raw.clone(),
            )
        });
    }

    // Freshness is about our connection, so it runs on the wall clock; the statuses it emits
    // are restamped onto the source's clock (the exchange's time base) for the engine.
    let wall = kamiyo_core_models::SystemClock;
    let mut board = FeedBoard::new();
    board.register(FEED_WS, config.staleness);
    board.register(FEED_REST, config.staleness);
    for r in &config.references {
        board.register(r.venue().as_str(), config.reference_staleness);
    }
    let mut dedup = DedupWindow::new(200_000, 6 * Timestamp::HOUR);
    let mut liquidators: BTreeSet<Address> = BTreeSet::new();
    let mut disconnected_at: Option<Timestamp> = None;
    // The newest exchange time (trade and fill times) received over the socket: where a gap
    // starts in the exchange's own time, whatever clock the source runs on.
    let mut ws_newest: Option<Timestamp> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh_in = FEED_REFRESH_TICKS;

    loop {
        let raw = tokio::select! {
            () = cancel.cancelled() => return,
            r = raw_rx.recv() => match r { Some(r) => r, None => return },
            _ = tick.tick() => {
                for s in board.tick(wall.now()) {
                    let s = restamp(s, wall.now(), clock.now());
                    crate::metrics::feed_state(&s);
                    if out.send(MarketEvent::Feed(s)).await.is_err() { return; }
                }
                // Every few seconds, LIVE feeds report their latest data time (feed health
                // and /feeds show it advance; detectors see no state change).
                refresh_in = refresh_in.saturating_sub(1);
                if refresh_in == 0 {
                    refresh_in = FEED_REFRESH_TICKS;
                    for s in board.refresh() {
                        let s = restamp(s, wall.now(), clock.now());
                        if out.send(MarketEvent::Feed(s)).await.is_err() { return; }
                    }
                }
                continue;
            }
        };
        let now = clock.now();
        let wall_now = wall.now();
        let mut emit: Vec<MarketEvent> = Vec::new();
        match raw {
            Raw::Data(feed, events) => {
                if let Some(s) = board
                    .on_data(feed, wall_now)
                    .map(|s| restamp(s, wall_now, now))
                {
                    emit.push(MarketEvent::Feed(s));
                }
                let (total, before) = (events.len(), emit.len());
                let mut newest: Option<Timestamp> = None;
                for e in events {
                    newest = newest.max(Some(e.time()));
                    if let Some(c) = &config.exchange_clock
                        && matches!(
                            e,
                            MarketEvent::Fill(_)
                                | MarketEvent::Trade(_)
                                | MarketEvent::Positions(_)
                        )
                    {
                        c.observe(e.time());
                    }
                    if feed == FEED_WS && matches!(e, MarketEvent::Fill(_) | MarketEvent::Trade(_))
                    {
                        ws_newest = ws_newest.max(Some(e.time()));
                    }
                    if !dedup.admit_event(&e) {
                        continue;
                    }
                    if let MarketEvent::Trade(t) = &e {
                        lock(&whales).observe(t);
                    }
                    emit.push(e);
                }
                let admitted = emit.len() - before;
                crate::metrics::frame(
                    feed,
                    admitted,
                    total - admitted,
                    newest.map(|t| now.millis_since(t)),
                );
            }
            Raw::Ref(feed, events) => {
                if let Some(s) = board
                    .on_data(&feed, wall_now)
                    .map(|s| restamp(s, wall_now, now))
                {
                    emit.push(MarketEvent::Feed(s));
                }
                let newest = events.iter().map(MarketEvent::time).max();
                crate::metrics::frame(&feed, events.len(), 0, newest.map(|t| now.millis_since(t)));
                emit.extend(events);
            }
            Raw::Failure(feed, detail) => {
                if let Some(s) = board
                    .on_failure(&feed, wall_now, &detail)
                    .map(|s| restamp(s, wall_now, now))
                {
                    emit.push(MarketEvent::Feed(s));
                }
            }
            Raw::WsDisconnected(reason, last_frame_at) => {
                // The gap starts at the last frame received, not when the loss was noticed.
                disconnected_at.get_or_insert(last_frame_at.unwrap_or(now).min(now));
                if let Some(s) = board
                    .on_failure(FEED_WS, wall_now, &reason)
                    .map(|s| restamp(s, wall_now, now))
                {
                    emit.push(MarketEvent::Feed(s));
                }
            }
            Raw::WsConnected => {
                if let Some(since) = disconnected_at.take() {
                    let since = ws_newest.map_or(since, |n| n.min(since));
                    request_backfill(&backfill_tx, &liquidators, since);
                }
            }
            Raw::WsGap(since) => {
                tracing::warn!(gap.since = %since, "Hyperliquid WebSocket was silent; backfilling the gap");
                let since = ws_newest.map_or(since, |n| n.min(since));
                request_backfill(&backfill_tx, &liquidators, since);
            }
            Raw::Liquidators(l) => liquidators = l.into_iter().collect(),
        }
        for e in emit {
            if let MarketEvent::Feed(s) = &e {
                crate::metrics::feed_state(s);
            }
            if out.send(e).await.is_err() {
                return;
            }
        }
    }
}

/// How far before the last frame received a gap's backfill starts: frames of one moment can
/// arrive split around it.
const GAP_MARGIN_MS: i64 = 5_000;

/// Asks the backfill task for every watched user's fills (and recent trades) from `since` (the
/// last frame received before the gap) up to now; duplicates are dropped by the merger.
fn request_backfill(
    tx: &mpsc::Sender<BTreeMap<Address, Timestamp>>,
    liquidators: &BTreeSet<Address>,
    since: Timestamp,
) {
    let from: BTreeMap<Address, Timestamp> = liquidators
        .iter()
        .map(|u| (*u, since.plus_millis(-GAP_MARGIN_MS)))
        .collect();
    if tx.try_send(from).is_err() {
        tracing::warn!("backfill queue full; the next gap's backfill covers this one");
    }
}

/// Start-up: universe, HLP discovery, initial backfill from the resume points, then the
/// WebSocket (restarted if it ever returns).
async fn bootstrap(task: Task, backfill: mpsc::Sender<BTreeMap<Address, Timestamp>>) {
    let Task {
        config,
        client,
        clock,
        cancel,
        raw,
    } = task;
    let mut attempt = 0u32;
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng();
    let (universe, topology) = loop {
        let r = async {
            let meta = client.meta().await?;
            let topo = discover_hlp(&client, config.hlp_parent, clock.now()).await?;
            Ok::<_, SourceError>((meta.coins(), topo))
        }
        .await;
        match r {
            Ok(v) => break v,
            Err(e) => {
                let _ = raw
                    .send(Raw::Failure(FEED_REST.into(), format!("start-up: {e}")))
                    .await;
                let d = config.backoff.delay(attempt, &mut rng);
                attempt = attempt.saturating_add(1);
                if !sleep_or_cancel(d, &cancel).await {
                    return;
                }
            }
        }
    };
    // What this task starts stops with it (a restarted bootstrap starts them afresh).
    let cancel = cancel.child_token();
    let _stop_children = cancel.clone().drop_guard();
    let liquidators = topology.liquidators();
    tracing::info!(
        hlp.children = topology.children.len(),
        hlp.liquidators = liquidators.len(),
        "HLP discovered"
    );
    let _ = raw.send(Raw::Liquidators(liquidators.clone())).await;
    let resume: BTreeMap<Address, Timestamp> = liquidators
        .iter()
        .filter_map(|u| config.resume_from.get(u).map(|t| (*u, *t)))
        .collect();
    if !resume.is_empty() {
        let _ = backfill.send(resume).await;
    }
    {
        let t = Task {
            config: config.clone(),
            client: client.clone(),
            clock: clock.clone(),
            cancel: cancel.clone(),
            raw: raw.clone(),
        };
        let sup = t.supervisor();
        sup.spawn("hlp_poller", FEED_REST, move || {
            hlp_poller(t.clone(), topology.clone())
        });
    }

    let mut subs = vec![Subscription::AllMids];
    for c in &config.coins {
        subs.push(Subscription::Trades(c.clone()));
        subs.push(Subscription::ActiveAssetCtx(c.clone()));
    }
    subs.extend(
        liquidators
            .iter()
            .take(ws::MAX_UNIQUE_USERS)
            .map(|u| Subscription::UserFills(*u)),
    );
    let mut wsc = WsConfig::new(&config.ws_url, subs);
    wsc.ping_interval = config.ping_interval;
    wsc.backoff = config.backoff;
    wsc.idle_timeout = config.idle_timeout;
    wsc.gap_after = config.gap_after;
    if let Err(e) = wsc.validate() {
        let _ = raw.send(Raw::Failure(FEED_WS.into(), e.to_string())).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<WsItem>(65_536);
    tokio::spawn(ws::run(wsc, universe, clock.clone(), tx, cancel.clone()));
    while let Some(item) = rx.recv().await {
        let msg = match item {
            WsItem::Connected { attempt } => {
                tracing::info!(ws.attempt = attempt, "Hyperliquid WebSocket connected");
                Raw::WsConnected
            }
            WsItem::Disconnected {
                reason,
                retry_in,
                last_frame_at,
            } => {
                tracing::warn!(ws.reason = %reason, ws.retry_in_ms = retry_in.as_millis() as u64, "Hyperliquid WebSocket disconnected");
                Raw::WsDisconnected(reason, last_frame_at)
            }
            WsItem::Gap {
                last_frame_at,
                silent_for,
            } => {
                tracing::warn!(
                    ws.silent_ms = silent_for.as_millis() as u64,
                    "Hyperliquid WebSocket resumed after a silence"
                );
                Raw::WsGap(last_frame_at)
            }
            WsItem::Message(WsMessage::Events { events, .. }, _) => Raw::Data(FEED_WS, events),
            WsItem::Message(WsMessage::ServerError(e), _) => {
                tracing::warn!(ws.error = %e, "Hyperliquid WebSocket error frame");
                continue;
            }
            WsItem::Message(_, _) => continue,
            WsItem::DecodeFailed(e) => {
                tracing::warn!(error = %e, "undecodable WebSocket frame");
                continue;
            }
        };
        if raw.send(msg).await.is_err() {
            return;
        }
    }
}

async fn backfill_task(
    task: Task,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<BTreeMap<Address, Timestamp>>>>,
) {
    let Task {
        config,
        client,
        clock,
        cancel,
        raw,
    } = task;
    let mut rx = rx.lock().await;
    loop {
        let from = tokio::select! {
            () = cancel.cancelled() => return,
            f = rx.recv() => match f { Some(f) => f, None => return },
        };
        let mut events = Vec::new();
        for (user, since) in from {
            match client.user_fills_by_time(user, since, None, 20).await {
                Ok(fills) => events.extend(fills.into_iter().map(MarketEvent::Fill)),
                Err(e) => {
                    let _ = raw
                        .send(Raw::Failure(
                            FEED_REST.into(),
                            format!("backfill of {user}: {e}"),
                        ))
                        .await;
                }
            }
        }
        for c in &config.coins {
            match client.recent_trades(c).await {
                Ok(t) => events.extend(t.into_iter().map(MarketEvent::Trade)),
                Err(e) => {
                    let _ = raw
                        .send(Raw::Failure(
                            FEED_REST.into(),
                            format!("recentTrades {c}: {e}"),
                        ))
                        .await;
                }
            }
        }
        tracing::info!(backfill.events = events.len(), at = %clock.now(), "gap backfilled over REST");
        events.sort_by_key(MarketEvent::time);
        if raw.send(Raw::Data(FEED_REST, events)).await.is_err() {
            return;
        }
    }
}

async fn hlp_poller(task: Task, topology: HlpTopology) {
    let Task {
        config,
        client,
        clock,
        cancel,
        raw,
    } = task;
    let mut vault_tick = tokio::time::interval(config.vault_interval);
    let mut pos_tick = tokio::time::interval(config.hlp_positions_interval);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = vault_tick.tick() => {
                let msg = match client.vault_details(topology.parent, clock.now()).await {
                    Ok(Some(d)) => Raw::Data(FEED_REST, vec![MarketEvent::Vault(d.snapshot)]),
                    Ok(None) => Raw::Failure(FEED_REST.into(), format!("{} is no longer a vault", topology.parent)),
                    Err(e) => Raw::Failure(FEED_REST.into(), format!("vaultDetails: {e}")),
                };
                if raw.send(msg).await.is_err() { return; }
            }
            _ = pos_tick.tick() => {
                for child in topology.child_addresses() {
                    let msg = match client.clearinghouse_state(child, clock.now()).await {
                        Ok(s) => Raw::Data(FEED_REST, vec![MarketEvent::Positions(s)]),
                        Err(e) => Raw::Failure(FEED_REST.into(), format!("clearinghouseState {child}: {e}")),
                    };
                    if raw.send(msg).await.is_err() { return; }
                }
            }
        }
    }
}

async fn market_poller(task: Task) {
    let Task {
        config,
        client,
        clock,
        cancel,
        raw,
    } = task;
    let mut tick = tokio::time::interval(config.market_interval);
    let wanted: BTreeSet<&Coin> = config.coins.iter().collect();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = clock.now();
        let msg = match client.meta_and_asset_ctxs(now).await {
            Ok((_, ctxs)) => Raw::Data(
                FEED_REST,
                ctxs.into_iter()
                    .filter(|c| wanted.contains(&c.coin))
                    .map(MarketEvent::AssetCtx)
                    .collect(),
            ),
            Err(e) => Raw::Failure(FEED_REST.into(), format!("metaAndAssetCtxs: {e}")),
        };
        if raw.send(msg).await.is_err() {
            return;
        }
        let msg = match client.perps_at_oi_cap().await {
            Ok(coins) => Raw::Data(
                FEED_REST,
                vec![MarketEvent::OiCap(OiCapSnapshot { time: now, coins })],
            ),
            Err(e) => Raw::Failure(FEED_REST.into(), format!("perpsAtOpenInterestCap: {e}")),
        };
        if raw.send(msg).await.is_err() {
            return;
        }
    }
}

async fn whale_poller(task: Task, whales: Arc<Mutex<WhaleTracker>>) {
    let Task {
        config,
        client,
        clock,
        cancel,
        raw,
    } = task;
    {
        let mut w = lock(&whales);
        for a in &config.watch {
            w.pin(*a);
        }
    }
    let mut tick = tokio::time::interval(config.whale_interval);
    let mut ledger_since: BTreeMap<Address, Timestamp> = BTreeMap::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let top = lock(&whales).top(config.whale_count);
        for user in top {
            let now = clock.now();
            let mut events = Vec::new();
            match client.clearinghouse_state(user, now).await {
                Ok(s) if !s.positions.is_empty() => events.push(MarketEvent::Positions(s)),
                Ok(_) => {}
                Err(e) => {
                    let _ = raw
                        .send(Raw::Failure(
                            FEED_REST.into(),
                            format!("clearinghouseState {user}: {e}"),
                        ))
                        .await;
                    continue;
                }
            }
            let since = *ledger_since
                .entry(user)
                .or_insert(now.plus_millis(-Timestamp::HOUR));
            match client.ledger_updates(user, since).await {
                Ok(l) => {
                    if let Some(last) = l.iter().map(|e| e.time).max() {
                        ledger_since.insert(user, last.plus_millis(1));
                    }
                    events.extend(
                        l.into_iter()
                            .filter(|e| e.time >= since)
                            .map(MarketEvent::Ledger),
                    );
                }
                Err(e) => {
                    let _ = raw
                        .send(Raw::Failure(
                            FEED_REST.into(),
                            format!("ledger {user}: {e}"),
                        ))
                        .await;
                }
            }
            if !events.is_empty() && raw.send(Raw::Data(FEED_REST, events)).await.is_err() {
                return;
            }
        }
    }
}

async fn reference_poller(
    source: Arc<dyn PriceSource>,
    coins: Vec<Coin>,
    interval: Duration,
    cancel: CancellationToken,
    raw: mpsc::Sender<Raw>,
) {
    let feed = source.venue().to_string();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let msg = match source.quotes(&coins).await {
            Ok(q) if !q.is_empty() => Raw::Ref(
                feed.clone(),
                q.into_iter().map(MarketEvent::Reference).collect(),
            ),
            Ok(_) => Raw::Failure(feed.clone(), "no quotes for the watched coins".into()),
            Err(e) => Raw::Failure(feed.clone(), e.to_string()),
        };
        if raw.send(msg).await.is_err() {
            return;
        }
    }
}
