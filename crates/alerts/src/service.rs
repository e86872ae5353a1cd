//! The delivery service: stored security events → router → durable outbox → one worker per
//! channel (rate budget, retries with backoff and jitter) → delivery log.
//!
//! Nothing is lost across a crash: the router reads committed events after its cursor
//! (`alerts:routed`) and writes the outbox entries before advancing it; an entry is marked
//! delivered only after the destination accepted it. A crash between a delivery and its mark
//! re-sends that alert once, with the same idempotency key, so the receiver can drop it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kamiyo_core_models::{
    Alert, Clock, DeliveryQuery, EventQuery, IncidentChange, IncidentStore, IncidentUpdate,
    Notifier, NotifyError, OperatorStore, Order, OutboxEntry, OutboxStatus, OutboxStore, Silence,
    StableId, StoredEvent, Timestamp,
};
use opentelemetry::KeyValue;
use rand::Rng;
use tokio::sync::{Notify, mpsc, watch};

use crate::budget::Budget;
use crate::config::AlertsConfig;
use crate::router::{Decision, Route, Router, SILENCED};

/// The cursor of routed events of the default consumer (the self-hosted alert router).
pub const CURSOR: &str = "alerts:routed";

/// What the service needs from the store.
///
/// Market facts are read through [`IncidentStore`] (the event sequence and incidents); what
/// the service owns — its outbox rows and its routing cursor — is written only through
/// [`OutboxStore`].
pub trait AlertStore: IncidentStore + OutboxStore + OperatorStore + 'static {}
impl<T: IncidentStore + OutboxStore + OperatorStore + 'static> AlertStore for T {}

/// One configured destination.
pub struct Channel {
    /// The notifier.
    pub notifier: Arc<dyn Notifier>,
    /// Its budget.
    pub budget: Budget,
    /// Its route.
    pub route: Route,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.notifier.name())
            .field("kind", &self.notifier.kind())
            .field("budget", &self.budget.windows())
            .finish_non_exhaustive()
    }
}

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Retry {
    /// Delay before attempt `attempts + 1`: `initial · 2^(attempts-1)`, capped, with ±25 %
    /// jitter so many failed alerts do not retry in lockstep.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(20);
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        let jitter =
            <rand::rngs::SmallRng as rand::SeedableRng>::from_os_rng().random_range(0.75..1.25);
        base.mul_f64(jitter).min(self.max)
    }
}

struct Shared<S: ?Sized> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    retry: Retry,
    inflight: Mutex<HashSet<StableId>>,
    /// Attempts recorded per entry by the workers: a `due` row read before a worker recorded
    /// its outcome is stale and must not be dispatched again.
    recorded: Mutex<HashMap<StableId, u32>>,
    wake: Notify,
    /// Wake requests so far: a pass that starts after request `n` has seen every commit made
    /// before it.
    requested: AtomicU64,
    /// After each pass: (the requests that pass had seen, whether it found nothing to do).
    idle: watch::Sender<(u64, bool)>,
}

/// The alert service. Build with [`AlertService::new`], then [`AlertService::run`].
pub struct AlertService<S: AlertStore> {
    shared: Arc<Shared<S>>,
    channels: Vec<Channel>,
    router: Router,
    dashboard_base: Option<String>,
    cursor: Option<i64>,
    /// The name of the routing cursor in the store: one per consumer of the event sequence.
    cursor_name: String,
}

impl<S: AlertStore> std::fmt::Debug for AlertService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertService")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// A handle to wake the service after a commit and to wait until it is idle.
#[derive(Clone)]
pub struct AlertHandle {
    /// Requests a pass; returns the request's number.
    wake: Arc<dyn Fn() -> u64 + Send + Sync>,
    idle: watch::Receiver<(u64, bool)>,
}

impl std::fmt::Debug for AlertHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertHandle").finish_non_exhaustive()
    }
}

impl AlertHandle {
    /// New events were committed: route them now rather than at the next poll.
    pub fn wake(&self) {
        (self.wake)();
    }

    /// Waits until every committed event is routed and no delivery is due or in flight, or
    /// `timeout` passes. Returns whether it became idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.idle.clone();
        // Idle counts only from a pass that started after this request, so it has seen every
        // commit made before the call (a stale "idle" from an earlier pass does not count).
        let request = (self.wake)();
        tokio::time::timeout(timeout, async {
            rx.wait_for(|&(seen, idle)| seen >= request && idle)
                .await
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

impl<S: AlertStore> AlertService<S> {
    /// Builds the service: one [`Channel`] per enabled, valid channel of `cfg` (problems are
    /// returned as (channel, message) and those channels left out).
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        cfg: &AlertsConfig,
        dashboard_base: Option<String>,
    ) -> (Self, Vec<(String, String)>) {
        let mut channels = Vec::new();
        let mut problems = Vec::new();
        for (name, c) in cfg.channels.iter().filter(|(_, c)| c.enabled) {
            let built = c
                .windows()
                .map_err(|e| e.to_string())
                .and_then(|w| c.build(name).map(|n| (n, w)).map_err(|e| e.to_string()));
            match built {
                Ok((notifier, windows)) => channels.push(Channel {
                    notifier,
                    budget: Budget::new(windows),
                    route: Route::of(name, c),
                }),
                Err(e) => problems.push((name.clone(), e)),
            }
        }
        let retry = Retry {
            max_attempts: cfg.max_attempts.max(1),
            initial: Duration::from_millis(u64::from(cfg.initial_backoff_ms.max(1))),
            max: Duration::from_secs(u64::from(cfg.max_backoff_secs.max(1))),
        };
        let mut svc = Self::with_channels(
            store,
            clock,
            channels,
            retry,
            i64::from(cfg.cooldown_secs) * 1000,
            dashboard_base,
        );
        svc.router = std::mem::replace(&mut svc.router, Router::new(Vec::new(), 0))
            .with_grouping(i64::from(cfg.group_interval_secs) * 1000);
        (svc, problems)
    }

    /// Builds the service over explicit channels (your own notifiers included).
    pub fn with_channels(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        channels: Vec<Channel>,
        retry: Retry,
        cooldown_ms: i64,
        dashboard_base: Option<String>,
    ) -> Self {
        let routes = channels.iter().map(|c| c.route.clone()).collect();
        Self {
            shared: Arc::new(Shared {
                store,
                clock,
                retry,
                inflight: Mutex::default(),
                recorded: Mutex::default(),
                wake: Notify::new(),
                requested: AtomicU64::new(0),
                idle: watch::channel((0, false)).0,
            }),
            channels,
            router: Router::new(routes, cooldown_ms),
            dashboard_base,
            cursor: None,
            cursor_name: CURSOR.to_owned(),
        }
    }

    /// Follows the event sequence as consumer `name` (cursor `alerts:routed:<name>`), beside
    /// any other consumer of the same store (a per-tenant router, a correlator …); each routes
    /// every committed event once. Channel names must differ between consumers (an alert's id
    /// is derived from the event and the channel). Call before [`AlertService::init`].
    pub fn with_consumer(mut self, name: &str) -> Self {
        self.cursor_name = format!("{CURSOR}:{name}");
        self.cursor = None;
        self
    }

    /// The name of this service's routing cursor.
    pub fn cursor_name(&self) -> &str {
        &self.cursor_name
    }

    /// Channel names.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels
            .iter()
            .map(|c| c.notifier.name().to_owned())
            .collect()
    }

    /// A handle for the writer (wake) and for shutdown (wait until idle).
    pub fn handle(&self) -> AlertHandle {
        let s = self.shared.clone();
        AlertHandle {
            wake: Arc::new(move || {
                let n = s.requested.fetch_add(1, Ordering::SeqCst) + 1;
                s.wake.notify_one();
                n
            }),
            idle: self.shared.idle.subscribe(),
        }
    }

    /// Runs until `shutdown` turns true: routes committed events into the outbox and delivers
    /// due entries. On shutdown, deliveries in flight finish (or time out); pending entries
    /// stay in the outbox for the next start.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let sh = self.shared.clone();
        let mut cursor = match self.cursor {
            Some(c) => c,
            None => loop {
                match self.init().await {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::warn!(error = %e, "alert service cannot read the store; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            },
        };
        let mut workers = Vec::new();
        let mut queues: HashMap<String, mpsc::Sender<OutboxEntry>> = HashMap::new();
        for ch in std::mem::take(&mut self.channels) {
            let (tx, rx) = mpsc::channel(1024);
            queues.insert(ch.notifier.name().to_owned(), tx);
            workers.push(tokio::spawn(worker(sh.clone(), ch, rx)));
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            let seen = sh.requested.load(Ordering::SeqCst);
            let routed = match self.route_pending(&mut cursor).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "alert routing failed; retrying");
                    0
                }
            };
            let grouped = match self.flush_groups().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "alert group updates failed; retrying");
                    0
                }
            };
            let routed = routed + grouped;
            let dispatched = dispatch(&sh, &self.cursor_name, &queues).await;
            let busy = !lock(&sh.inflight).is_empty();
            let idle = routed == 0
                && dispatched == 0
                && !busy
                && nothing_due(&*sh.store, &self.cursor_name, sh.clock.now()).await;
            let _ = sh.idle.send((seen, idle));
            if routed > 0 {
                continue;
            }
            tokio::select! {
                () = sh.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => {}
            }
        }
        drop(queues);
        for w in workers {
            let _ = w.await;
        }
    }

    /// Restores the cooldown state from the last day of the delivery log and fixes the routing
    /// cursor: on the very first start it is set to the newest stored event (history is not
    /// alerted) and written at once, so events committed from now on are never skipped, even
    /// after a crash. Call before the pipeline starts writing; `run` calls it otherwise.
    pub async fn init(&mut self) -> Result<i64, String> {
        let sh = self.shared.clone();
        let since = Timestamp(sh.clock.now().0 - 24 * Timestamp::HOUR);
        let mut hist = sh
            .store
            .deliveries(&DeliveryQuery {
                since: Some(since),
                limit: 10_000,
                ..DeliveryQuery::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        hist.reverse();
        self.router.restore(&hist);
        let stored = match sh.store.routed_cursor(&self.cursor_name).await {
            Ok(c) => c,
            Err(e @ kamiyo_core_models::StoreError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "routing cursor unreadable; starting from the newest event");
                None
            }
            Err(e) => return Err(e.to_string()),
        };
        let cursor = match stored {
            Some(c) => c,
            None => {
                let c = latest_seq(&*sh.store).await?;
                sh.store
                    .commit_routed(&self.cursor_name, Vec::new(), Some(c))
                    .await
                    .map_err(|e| e.to_string())?;
                c
            }
        };
        self.cursor = Some(cursor);
        Ok(cursor)
    }

    /// Enqueues the group updates that are due (each the lead incident's latest step with the
    /// related incidents' state); returns how many.
    async fn flush_groups(&mut self) -> Result<usize, String> {
        let sh = self.shared.clone();
        let now = sh.clock.now();
        let due = self.router.due_updates(now);
        if due.is_empty() {
            return Ok(0);
        }
        let mut entries = Vec::new();
        for g in due {
            let incident = sh
                .store
                .incident(&g.lead)
                .await
                .map_err(|e| e.to_string())?;
            let last = sh
                .store
                .incident_events(&g.lead)
                .await
                .map_err(|e| e.to_string())?
                .pop();
            let (Some(incident), Some(last)) = (incident, last) else {
                tracing::warn!(incident = %g.lead, "group lead not stored; group update dropped");
                continue;
            };
            // The lead's last step is the update's event: its log entry goes with it.
            let entry = sh
                .store
                .event_log_of(std::slice::from_ref(&last))
                .await
                .map_err(|e| e.to_string())?
                .remove(&last.seq);
            let mut alert = Alert::new(
                IncidentUpdate {
                    incident,
                    event: last.event,
                },
                &g.channel,
                self.dashboard_base.as_deref(),
            );
            alert.idempotency_key = StableId::derive(
                "alr",
                &[g.lead.as_str(), &g.channel, "group", &g.seq.to_string()],
            );
            alert.related = g.related;
            alert.log = entry;
            entries.push(OutboxEntry {
                id: alert.idempotency_key.clone(),
                channel: g.channel,
                alert,
                status: OutboxStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                created_at: now,
                delivered_at: None,
                last_error: None,
                consumer: self.cursor_name.clone(),
            });
        }
        let n = entries.len();
        sh.store
            .commit_routed(&self.cursor_name, entries, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(n)
    }

    /// Routes events committed after `cursor`; returns how many.
    async fn route_pending(&mut self, cursor: &mut i64) -> Result<usize, String> {
        let sh = self.shared.clone();
        let events = sh
            .store
            .events(&EventQuery {
                after_seq: Some(*cursor),
                order: Order::Asc,
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(0);
        };
        // Each step's entry in the event log, carried by its alerts (the entries were written
        // with the events; a step stored before the log began has none).
        let mut log = sh
            .store
            .event_log_of(&events)
            .await
            .map_err(|e| e.to_string())?;
        let now = sh.clock.now();
        // Silences that may mute a step of this batch (ending after its oldest step).
        let oldest = events.iter().map(|e| e.event.time).min().unwrap_or(now);
        let silences: Vec<Silence> = sh
            .store
            .silences(Some(oldest), 1000)
            .await
            .map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        let mut incidents = HashMap::new();
        for StoredEvent { seq, event } in &events {
            let entry = log.remove(seq);
            let decisions = match silences.iter().find(|s| s.mutes(event)) {
                // Muted: recorded for the channels that would have heard it, the router's
                // cooldown state untouched (a resolution after the silence is not "news").
                Some(s) => self
                    .router
                    .listeners(event)
                    .into_iter()
                    .map(|c| {
                        let until = s.expired_at.map_or(s.ends_at, |x| x.min(s.ends_at));
                        let why = format!(
                            "{SILENCED}{} until {} ({})",
                            s.id,
                            until.to_rfc3339(),
                            s.comment
                        );
                        (c, Decision::Suppress(why))
                    })
                    .collect(),
                None => self.router.route(event),
            };
            if decisions.iter().all(|(_, d)| *d == Decision::Skip) {
                continue;
            }
            let incident = match incidents.get(&event.incident_id) {
                Some(i) => Some(i),
                None => {
                    let i = sh
                        .store
                        .incident(&event.incident_id)
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Some(i) = i {
                        incidents.insert(event.incident_id.clone(), i);
                    }
                    incidents.get(&event.incident_id)
                }
            };
            let Some(incident) = incident else {
                tracing::warn!(incident = %event.incident_id, "event without its incident; not alerted");
                continue;
            };
            let update = IncidentUpdate {
                incident: incident.clone(),
                event: event.clone(),
            };
            for (channel, d) in decisions {
                let (status, reason) = match d {
                    Decision::Skip => continue,
                    Decision::Send => (OutboxStatus::Pending, None),
                    Decision::Suppress(r) => (OutboxStatus::Suppressed, Some(r)),
                };
                let mut alert =
                    Alert::new(update.clone(), &channel, self.dashboard_base.as_deref());
                alert.log.clone_from(&entry);
                entries.push(OutboxEntry {
                    id: alert.idempotency_key.clone(),
                    channel,
                    alert,
                    status,
                    attempts: 0,
                    next_attempt_at: now,
                    created_at: now,
                    delivered_at: None,
                    last_error: reason,
                    consumer: self.cursor_name.clone(),
                });
            }
        }
        // The entries and the cursor commit in one transaction.
        sh.store
            .commit_routed(&self.cursor_name, entries, Some(last))
            .await
            .map_err(|e| e.to_string())?;
        *cursor = last;
        Ok(events.len())
    }
}

async fn latest_seq<S: AlertStore + ?Sized>(store: &S) -> Result<i64, String> {
    store
        .events(&EventQuery {
            order: Order::Desc,
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .map(|v| v.first().map_or(0, |e| e.seq))
        .map_err(|e| e.to_string())
}

async fn nothing_due<S: AlertStore + ?Sized>(store: &S, consumer: &str, now: Timestamp) -> bool {
    store
        .due(consumer, Timestamp(now.0 + 3_600_000 * 24 * 365), 1)
        .await
        .map(|v| v.is_empty())
        .unwrap_or(false)
}

fn change_rank(c: IncidentChange) -> u8 {
    match c {
        IncidentChange::Opened => 0,
        IncidentChange::Escalated => 1,
        IncidentChange::Updated => 2,
        IncidentChange::Resolved => 3,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hands due entries to their channel's worker; returns how many.
async fn dispatch<S: AlertStore>(
    sh: &Arc<Shared<S>>,
    consumer: &str,
    queues: &HashMap<String, mpsc::Sender<OutboxEntry>>,
) -> usize {
    let Ok(mut due) = sh.store.due(consumer, sh.clock.now(), 1000).await else {
        return 0;
    };
    // Per incident, lifecycle order: entries enqueued together go out in event order.
    due.sort_by_key(|e| {
        let ev = &e.alert.update.event;
        (e.created_at, ev.time, change_rank(ev.change))
    });
    let mut n = 0;
    for e in due {
        {
            let stale = lock(&sh.recorded)
                .get(&e.id)
                .is_some_and(|a| *a > e.attempts);
            if stale || lock(&sh.inflight).contains(&e.id) {
                continue;
            }
        }
        let Some(q) = queues.get(&e.channel) else {
            let _ = sh
                .store
                .mark_failed(
                    &e.id,
                    e.attempts,
                    "channel no longer configured; not delivered",
                )
                .await;
            continue;
        };
        lock(&sh.inflight).insert(e.id.clone());
        let id = e.id.clone();
        if q.try_send(e).is_err() {
            lock(&sh.inflight).remove(&id);
        } else {
            n += 1;
        }
    }
    n
}

/// Delivers one channel's entries in order, within its budget.
async fn worker<S: AlertStore>(
    sh: Arc<Shared<S>>,
    mut ch: Channel,
    mut rx: mpsc::Receiver<OutboxEntry>,
) {
    let name = ch.notifier.name().to_owned();
    let kind = ch.notifier.kind();
    let meter = opentelemetry::global::meter("kamiyo-alerts");
    let deliveries = meter
        .u64_counter("kamiyo_alert_deliveries")
        .with_description("Alert delivery attempts by channel and outcome")
        .build();
    let latency = meter
        .f64_histogram("kamiyo_alert_delivery_latency")
        .with_description("Time from enqueue to delivery, per channel")
        .with_unit("s")
        .with_boundaries(vec![
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ])
        .build();
    while let Some(e) = rx.recv().await {
        loop {
            let wait = ch.budget.wait(Instant::now());
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        ch.budget.record(Instant::now());
        let attempts = e.attempts + 1;
        let span = tracing::info_span!(
            "alert.deliver",
            alert.channel = %name,
            alert.kind = kind,
            alert.id = %e.id,
            alert.attempt = attempts,
        );
        let result = match tokio::time::timeout(
            crate::http::TIMEOUT + Duration::from_secs(5),
            tracing::Instrument::instrument(ch.notifier.notify(&e.alert), span),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(NotifyError::Transient("delivery timed out".into())),
        };
        let now = sh.clock.now();
        let outcome = match &result {
            Ok(_) => "delivered",
            Err(NotifyError::RateLimited { .. }) => "rate_limited",
            Err(e) if e.is_retryable() => "retry",
            Err(_) => "failed",
        };
        deliveries.add(
            1,
            &[
                KeyValue::new("channel", name.clone()),
                KeyValue::new("kind", kind),
                KeyValue::new("outcome", outcome),
            ],
        );
        let marked = match result {
            Ok(_) => {
                latency.record(
                    (now.0 - e.created_at.0).max(0) as f64 / 1000.0,
                    &[KeyValue::new("channel", name.clone())],
                );
                sh.store.mark_delivered(&e.id, attempts, now).await
            }
            Err(NotifyError::RateLimited { retry_after_ms }) => {
                let d = Duration::from_millis(retry_after_ms);
                ch.budget.pause(Instant::now(), d);
                let msg =
                    format!("rate limited by the destination; retry after {retry_after_ms} ms");
                if attempts >= sh.retry.max_attempts {
                    sh.store.mark_failed(&e.id, attempts, &msg).await
                } else {
                    sh.store
                        .mark_retry(
                            &e.id,
                            attempts,
                            Timestamp(now.0 + retry_after_ms as i64),
                            &msg,
                        )
                        .await
                }
            }
            Err(err) if err.is_retryable() && attempts < sh.retry.max_attempts => {
                let d = sh.retry.backoff(attempts);
                tracing::warn!(channel = %name, alert = %e.id, attempts, error = %err, retry_in_ms = d.as_millis() as u64, "alert delivery failed; will retry");
                sh.store
                    .mark_retry(
                        &e.id,
                        attempts,
                        Timestamp(now.0 + d.as_millis() as i64),
                        &err.to_string(),
                    )
                    .await
            }
            Err(err) => {
                tracing::error!(channel = %name, alert = %e.id, attempts, error = %err, "alert delivery failed for good");
                sh.store
                    .mark_failed(&e.id, attempts, &err.to_string())
                    .await
            }
        };
        if let Err(err) = marked {
            // The entry stays pending in the store and is retried (a repeat carries the same
            // idempotency key).
            tracing::error!(channel = %name, alert = %e.id, error = %err, "cannot record the delivery outcome");
        }
        {
            let mut rec = lock(&sh.recorded);
            if rec.len() > 100_000 {
                rec.clear();
            }
            rec.insert(e.id.clone(), attempts);
        }
        lock(&sh.inflight).remove(&e.id);
        sh.wake.notify_one();
    }
}
