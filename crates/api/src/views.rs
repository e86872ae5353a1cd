//! Read models: the hottest reads answered from memory kept in step with the store, not from a
//! response cache. Each caller's view is filtered per request (two tenants, two filters, two
//! answers), so nothing is shared that a caller should not see.
//!
//! [`EventView`] holds the newest security events (a contiguous suffix of the event sequence)
//! with each one's JSON encoded once, when it enters the view. A request scans it from the
//! newest down, applies its filters and concatenates the encoded events; only a page that
//! reaches past the oldest event held goes to the store. The view follows the store: before
//! answering it reads the events committed after the newest it holds when the hub has published
//! a newer one, or when it last looked more than [`EventView::MAX_STALE`] ago (an API process
//! that does not run the pipeline hears of no commit).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use kamiyo_core_models::{
    Address, Coin, Decimal, DeviationKind, DeviationSample, EventQuery, Incident, IncidentAction,
    IncidentQuery, IncidentStatus, IncidentStore, LiquidationRecord, MarketStore, OperatorStore,
    Order, ProtocolId, Severity, StableId, StoreResult, StoredEvent, ThreatType, Timestamp,
    VaultPoint, Venue,
};

use crate::ApiError;
use crate::dto::{EventResponse, IncidentResponse};

/// The read models of one store (one per [`crate::ApiStores`]: callers who share stores share
/// them).
#[derive(Debug, Default)]
pub struct Views {
    /// The newest security events.
    pub events: EventView,
    /// The most recently seen incidents.
    pub incidents: IncidentView,
    /// The dashboard's market figures.
    pub market: Arc<MarketView>,
    /// Forecasts by their input.
    pub forecasts: ForecastMemo,
}

/// A forecast request: protocol (or every protocol) and window in hours.
pub type ForecastKey = (Option<ProtocolId>, usize);
/// What identifies a forecast's input series: points read, newest time, newest value's bits.
pub type Fingerprint = (usize, i64, u64);

impl Views {
    /// Views whose market figures are read whole every `reload` (rather than
    /// [`MarketView::RELOAD`]).
    pub fn with_market_reload(reload: Duration) -> Self {
        Self {
            market: Arc::new(MarketView::new(reload)),
            ..Self::default()
        }
    }
}

/// `/ml/forecast` bodies by request and input: the model is fitted again only when the input
/// series changed (a new vault point), never per request.
#[derive(Debug, Default)]
pub struct ForecastMemo {
    bodies: std::sync::Mutex<HashMap<ForecastKey, (Fingerprint, Bytes)>>,
}

impl ForecastMemo {
    /// The body computed for `key` from the input `fingerprint`, if that is still the input.
    pub fn get(&self, key: &ForecastKey, fingerprint: Fingerprint) -> Option<Bytes> {
        let m = self.bodies.lock().ok()?;
        m.get(key)
            .filter(|(f, _)| *f == fingerprint)
            .map(|(_, b)| b.clone())
    }

    /// Keeps `body` for `key` and its input.
    pub fn put(&self, key: ForecastKey, fingerprint: Fingerprint, body: Bytes) {
        if let Ok(mut m) = self.bodies.lock() {
            // Bounded: a handful of protocols × windows in practice.
            if m.len() >= 256 {
                m.clear();
            }
            m.insert(key, (fingerprint, body));
        }
    }
}

/// What a view needs before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: it is current.
    Nothing,
    /// A look at the store, because it last looked a while ago: a request that finds another
    /// one looking answers from what is held instead of waiting.
    Look,
    /// To catch up: it has never read the store, or the hub announced newer events; every
    /// request waits for it (what was committed before a request is in its answer).
    CatchUp,
}

/// Puts a view's whole new state in place of the old under its lock; the old one is freed
/// after the lock is released, so readers wait only for the swap.
fn swap_in<T>(lock: &RwLock<T>, fresh: T) {
    let old = lock
        .write()
        .ok()
        .map(|mut s| std::mem::replace(&mut *s, fresh));
    drop(old);
}

/// The refresh guard for `need`: waited for to catch up, taken only when free for a look.
async fn guard(
    lock: &tokio::sync::Mutex<()>,
    need: Need,
) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    match need {
        Need::Nothing => None,
        Need::Look => lock.try_lock().ok(),
        Need::CatchUp => Some(lock.lock().await),
    }
}

/// One event as the view keeps it: what the filters look at, and its response JSON.
#[derive(Debug)]
pub struct ViewEvent {
    /// Sequence number.
    pub seq: i64,
    /// Protocol.
    pub protocol: ProtocolId,
    /// Severity.
    pub severity: Severity,
    /// Threat type.
    pub threat_type: ThreatType,
    /// Market.
    pub asset: Option<Coin>,
    /// Event time.
    pub time: Timestamp,
    /// Incident.
    pub incident_id: StableId,
    /// `EventResponse` as JSON.
    pub json: Bytes,
}

impl ViewEvent {
    fn new(e: &StoredEvent) -> Self {
        let json = serde_json::to_vec(&EventResponse::from(e)).unwrap_or_default();
        Self {
            seq: e.seq,
            protocol: e.event.protocol.clone(),
            severity: e.event.severity,
            threat_type: e.event.threat_type,
            asset: e.event.asset.clone(),
            time: e.event.time,
            incident_id: e.event.incident_id.clone(),
            json: Bytes::from(json),
        }
    }

    /// True when the event passes `q`'s filters (not its order, limit or sequence bounds).
    pub fn matches(&self, q: &EventQuery) -> bool {
        q.protocol.as_ref().is_none_or(|p| self.protocol == *p)
            && q.min_severity.is_none_or(|s| self.severity >= s)
            && q.threat_type
                .as_ref()
                .is_none_or(|t| self.threat_type == *t)
            && q.asset
                .as_ref()
                .is_none_or(|a| self.asset.as_ref() == Some(a))
            && q.since.is_none_or(|s| self.time >= s)
    }
}

#[derive(Debug, Default)]
struct Log {
    /// Events in sequence order, contiguous.
    events: VecDeque<Arc<ViewEvent>>,
    /// The same events by threat type, each in sequence order (a type filter, such as
    /// `/ml/anomalies`, walks only its own events).
    by_threat: HashMap<ThreatType, VecDeque<Arc<ViewEvent>>>,
    /// The newest sequence number read from the store (0: none yet).
    last: i64,
    /// True when `events` starts at the first event ever stored.
    complete: bool,
    /// When the store was last read; `None` before the first read.
    synced: Option<Instant>,
}

impl Log {
    fn push(&mut self, e: Arc<ViewEvent>) {
        self.last = e.seq;
        self.by_threat
            .entry(e.threat_type)
            .or_default()
            .push_back(e.clone());
        self.events.push_back(e);
    }

    fn pop_oldest(&mut self) {
        if let Some(e) = self.events.pop_front()
            && let Some(list) = self.by_threat.get_mut(&e.threat_type)
        {
            list.pop_front();
        }
        self.complete = false;
    }
}

/// The newest security events of one store, in memory.
#[derive(Debug)]
pub struct EventView {
    capacity: usize,
    log: RwLock<Log>,
    refresh: tokio::sync::Mutex<()>,
}

impl Default for EventView {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

/// The answer of [`EventView::page`].
#[derive(Debug)]
pub enum Page {
    /// The newest-first page, complete: the view held every event it could contain.
    Found(Vec<Arc<ViewEvent>>),
    /// The page reaches past the oldest event held: ask the store.
    Beyond,
}

impl EventView {
    /// Events held by default (about 1 KB each).
    pub const DEFAULT_CAPACITY: usize = 20_000;
    /// Longest the view answers without looking at the store when the hub announced nothing.
    pub const MAX_STALE: Duration = Duration::from_millis(250);

    /// A view of at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            log: RwLock::default(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The newest sequence number held.
    pub fn last_seq(&self) -> i64 {
        self.log.read().map_or(0, |l| l.last)
    }

    fn need(&self, announced: i64) -> Need {
        let Ok(l) = self.log.read() else {
            return Need::CatchUp;
        };
        match l.synced {
            None => Need::CatchUp,
            Some(_) if l.last < announced => Need::CatchUp,
            Some(t) if t.elapsed() >= Self::MAX_STALE => Need::Look,
            Some(_) => Need::Nothing,
        }
    }

    /// Brings the view up to the store: every event up to `announced` (the hub's newest
    /// published sequence number) and whatever else was committed since the last look.
    pub async fn sync(&self, store: &dyn IncidentStore, announced: i64) -> StoreResult<()> {
        let Some(_one) = guard(&self.refresh, self.need(announced)).await else {
            return Ok(());
        };
        if self.need(announced) == Need::Nothing {
            return Ok(());
        }
        let (loaded, last) = self
            .log
            .read()
            .map_or((false, 0), |l| (l.synced.is_some(), l.last));
        if !loaded {
            // The newest `capacity` events, newest first.
            let newest = store
                .events(&EventQuery {
                    order: Order::Desc,
                    limit: u32::try_from(self.capacity).unwrap_or(u32::MAX),
                    ..EventQuery::default()
                })
                .await?;
            let complete =
                newest.len() < self.capacity || newest.last().is_some_and(|e| e.seq <= 1);
            // Encoded before the lock is taken: requests read on meanwhile.
            let mut log = Log::default();
            for e in newest.iter().rev() {
                log.push(Arc::new(ViewEvent::new(e)));
            }
            log.complete = complete;
            log.synced = Some(Instant::now());
            swap_in(&self.log, log);
            return Ok(());
        }
        let mut after = last;
        loop {
            let page = store
                .events(&EventQuery {
                    after_seq: Some(after),
                    order: Order::Asc,
                    limit: 1000,
                    ..EventQuery::default()
                })
                .await?;
            let n = page.len();
            let add: Vec<_> = page.iter().map(|e| Arc::new(ViewEvent::new(e))).collect();
            if let Ok(mut l) = self.log.write() {
                for e in add {
                    l.push(e);
                }
                while l.events.len() > self.capacity {
                    l.pop_oldest();
                }
                after = l.last;
                if n < 1000 {
                    l.synced = Some(Instant::now());
                }
            }
            if n < 1000 {
                return Ok(());
            }
        }
    }

    /// The distinct incidents of the events after `seq`, when the view holds all of them and
    /// there are at most `max`.
    pub fn incidents_after(&self, seq: i64, max: usize) -> Option<Vec<StableId>> {
        let l = self.log.read().ok()?;
        let first = l.events.front().map_or(l.last + 1, |e| e.seq);
        if seq + 1 < first {
            return None;
        }
        let start = usize::try_from(seq + 1 - first).unwrap_or(0);
        let mut ids: Vec<StableId> = Vec::new();
        for e in l.events.range(start.min(l.events.len())..) {
            if !ids.contains(&e.incident_id) {
                if ids.len() == max {
                    return None;
                }
                ids.push(e.incident_id.clone());
            }
        }
        Some(ids)
    }

    /// The events `q` asks for, newest first: from memory when the view holds the whole page,
    /// from the store otherwise. `announced` is the hub's newest published sequence number.
    pub async fn query(
        &self,
        store: &dyn IncidentStore,
        announced: i64,
        q: &EventQuery,
    ) -> StoreResult<Vec<Arc<ViewEvent>>> {
        self.sync(store, announced).await?;
        if let Page::Found(v) = self.page(q) {
            return Ok(v);
        }
        let found = store.events(q).await?;
        Ok(found.iter().map(|e| Arc::new(ViewEvent::new(e))).collect())
    }

    /// The page `q` asks for (newest first, `Order::Desc`), when the view can answer it.
    pub fn page(&self, q: &EventQuery) -> Page {
        let Ok(l) = self.log.read() else {
            return Page::Beyond;
        };
        if q.order != Order::Desc || l.synced.is_none() {
            return Page::Beyond;
        }
        let limit = q.limit as usize;
        let mut out = Vec::with_capacity(limit.min(1024));
        let first = l.events.front().map_or(l.last + 1, |e| e.seq);
        if q.before_seq.is_some_and(|b| b <= first) {
            return if l.complete {
                Page::Found(out)
            } else {
                Page::Beyond
            };
        }
        // The events the type filter allows, if it names one: only those are walked.
        let list = match &q.threat_type {
            None => &l.events,
            Some(t) => match l.by_threat.get(t) {
                Some(list) => list,
                None => return Self::exhausted(&l, q, first, out),
            },
        };
        let end = match q.before_seq {
            Some(b) => list.partition_point(|e| e.seq < b),
            None => list.len(),
        };
        for e in list.range(..end).rev() {
            if q.after_seq.is_some_and(|a| e.seq <= a) {
                return Page::Found(out);
            }
            if e.matches(q) {
                out.push(e.clone());
                if out.len() == limit {
                    return Page::Found(out);
                }
            }
        }
        Self::exhausted(&l, q, first, out)
    }

    /// The answer once every held event the page could hold was walked: the page is whole
    /// when nothing older was ever stored or the page stops short of the oldest held event.
    fn exhausted(l: &Log, q: &EventQuery, first: i64, out: Vec<Arc<ViewEvent>>) -> Page {
        if l.complete || q.after_seq.is_some_and(|a| a >= first - 1) {
            Page::Found(out)
        } else {
            Page::Beyond
        }
    }
}

/// A JSON object written member by member: JSON the views hold encoded is spliced in as it
/// is, other values are serialized in place.
#[derive(Debug)]
pub struct JsonObject(Vec<u8>);

impl Default for JsonObject {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(16 * 1024);
        out.push(b'{');
        Self(out)
    }

    fn key(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    /// `name`: an array of already-encoded values (room for them all made first, so a page is
    /// copied once and never moved as the buffer grows).
    #[must_use]
    pub fn array<'a, I>(mut self, name: &str, items: I) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let items = items.into_iter();
        self.0
            .reserve(items.clone().map(|item| item.len() + 1).sum::<usize>() + name.len() + 8);
        self.key(name);
        self.0.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.0.extend_from_slice(item);
        }
        self.0.push(b']');
        self
    }

    /// `name`: `value`, serialized.
    pub fn value(mut self, name: &str, value: &impl serde::Serialize) -> Result<Self, ApiError> {
        self.key(name);
        serde_json::to_writer(&mut self.0, value).map_err(|_| ApiError::Internal)?;
        Ok(self)
    }

    /// The object's text.
    pub fn finish(mut self) -> Bytes {
        self.0.push(b'}');
        Bytes::from(self.0)
    }
}

/// One incident as the view keeps it.
#[derive(Debug)]
pub struct ViewIncident {
    /// The incident.
    pub incident: Incident,
    /// `IncidentResponse` as JSON, without an acknowledgement.
    pub json: Bytes,
}

impl ViewIncident {
    fn new(i: Incident) -> Self {
        let json = serde_json::to_vec(&IncidentResponse::from(&i)).unwrap_or_default();
        Self {
            incident: i,
            json: Bytes::from(json),
        }
    }

    /// Its JSON, acknowledged by `ack` when given.
    pub fn json_with(&self, ack: Option<&IncidentAction>) -> Bytes {
        let Some(a) = ack else {
            return self.json.clone();
        };
        let mut r = IncidentResponse::from(&self.incident);
        r.acknowledge(a);
        Bytes::from(serde_json::to_vec(&r).unwrap_or_default())
    }

    fn matches(&self, q: &IncidentQuery) -> bool {
        let i = &self.incident;
        q.protocol.as_ref().is_none_or(|p| i.protocol == *p)
            && q.status.is_none_or(|s| i.status == s)
            && q.asset.as_ref().is_none_or(|a| i.asset.as_ref() == Some(a))
            && q.seen_since.is_none_or(|t| i.last_seen >= t)
    }
}

/// Incidents ordered as the store lists them: most recently seen first, then by id.
type Rank = (std::cmp::Reverse<Timestamp>, StableId);

fn rank(i: &Incident) -> Rank {
    (std::cmp::Reverse(i.last_seen), i.id.clone())
}

#[derive(Debug, Default)]
struct Incidents {
    by_id: HashMap<StableId, Arc<ViewIncident>>,
    order: BTreeMap<Rank, Arc<ViewIncident>>,
    /// True when every stored incident is held.
    complete: bool,
    /// The event sequence number the incidents reflect.
    seq: i64,
    /// The acknowledgement of each acknowledged open incident held.
    acks: HashMap<StableId, IncidentAction>,
    synced: Option<Instant>,
    acks_synced: Option<Instant>,
}

impl Incidents {
    /// `f` of each incident `q` selects, in the store's order, when all of them are held.
    fn select<T>(
        &self,
        q: &IncidentQuery,
        mut f: impl FnMut(&Self, &Arc<ViewIncident>) -> T,
    ) -> Option<Vec<T>> {
        self.synced?;
        let limit = q.limit as usize;
        let mut out = Vec::with_capacity(limit.min(512));
        for v in self.order.values().filter(|v| v.matches(q)) {
            out.push(f(self, v));
            if out.len() == limit {
                return Some(out);
            }
        }
        self.complete.then_some(out)
    }

    fn put(&mut self, i: Incident) {
        if let Some(old) = self.by_id.remove(&i.id) {
            self.order.remove(&rank(&old.incident));
        }
        let v = Arc::new(ViewIncident::new(i));
        self.order.insert(rank(&v.incident), v.clone());
        self.by_id.insert(v.incident.id.clone(), v);
    }
}

/// The most recently seen incidents of one store, in memory, moved along by the events that
/// change them (every change of an incident is a security event), with the acknowledgements
/// of the open ones.
#[derive(Debug)]
pub struct IncidentView {
    capacity: usize,
    state: RwLock<Incidents>,
    refresh: tokio::sync::Mutex<()>,
}

impl Default for IncidentView {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl IncidentView {
    /// Incidents held by default.
    pub const DEFAULT_CAPACITY: usize = 5_000;

    /// A view of at most `capacity` incidents.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: RwLock::default(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn need(&self, seq: i64) -> Need {
        let Ok(s) = self.state.read() else {
            return Need::CatchUp;
        };
        if s.synced.is_none() || s.seq < seq || s.acks_synced.is_none() {
            Need::CatchUp
        } else if s
            .acks_synced
            .is_some_and(|t| t.elapsed() >= EventView::MAX_STALE)
        {
            Need::Look
        } else {
            Need::Nothing
        }
    }

    /// Forgets the acknowledgements read, so the next request reads them again (an operator
    /// acted through this API).
    pub fn acknowledgements_changed(&self) {
        if let Ok(mut s) = self.state.write() {
            s.acks_synced = None;
        }
    }

    /// Brings the view up to `events` (synced by the caller): the incidents their new events
    /// touched are read again; the acknowledgements when stale.
    pub async fn sync(
        &self,
        incidents: &dyn IncidentStore,
        operator: &dyn OperatorStore,
        events: &EventView,
    ) -> StoreResult<()> {
        let seq = events.last_seq();
        let Some(_one) = guard(&self.refresh, self.need(seq)).await else {
            return Ok(());
        };
        if self.need(seq) == Need::Nothing {
            return Ok(());
        }
        let (loaded, from) = self
            .state
            .read()
            .map_or((false, 0), |s| (s.synced.is_some(), s.seq));
        let touched = if loaded {
            events.incidents_after(from, 256)
        } else {
            None
        };
        match touched {
            Some(ids) => {
                let mut fetched = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(i) = incidents.incident(id).await? {
                        fetched.push(i);
                    }
                }
                if let Ok(mut s) = self.state.write() {
                    for i in fetched {
                        s.put(i);
                    }
                    while s.order.len() > self.capacity {
                        let Some((_, v)) = s.order.pop_last() else {
                            break;
                        };
                        s.by_id.remove(&v.incident.id);
                        s.complete = false;
                    }
                    s.seq = seq;
                }
            }
            None => {
                let all = incidents
                    .incidents(&IncidentQuery {
                        protocol: None,
                        status: None,
                        asset: None,
                        seen_since: None,
                        limit: u32::try_from(self.capacity).unwrap_or(u32::MAX),
                    })
                    .await?;
                let mut fresh = Incidents {
                    complete: all.len() < self.capacity,
                    seq,
                    synced: Some(Instant::now()),
                    ..Incidents::default()
                };
                for i in all {
                    fresh.put(i);
                }
                swap_in(&self.state, fresh);
            }
        }
        // Acknowledgements come with no event: read when forgotten or old. Catching up with
        // events needs none — an incident is acknowledged after it opens, and one that
        // resolved is not shown as acknowledged.
        let open: Option<Vec<StableId>> = self.state.read().ok().and_then(|s| {
            s.acks_synced
                .is_none_or(|t| t.elapsed() >= EventView::MAX_STALE)
                .then(|| {
                    s.order
                        .values()
                        .filter(|v| v.incident.status == IncidentStatus::Open)
                        .map(|v| v.incident.id.clone())
                        .collect()
                })
        });
        let Some(open) = open else {
            return Ok(());
        };
        let actions = operator.incident_actions(&open).await?;
        let acks = kamiyo_core_models::acknowledgements(&actions)
            .into_iter()
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect();
        if let Ok(mut s) = self.state.write() {
            s.acks = acks;
            s.acks_synced = Some(Instant::now());
        }
        Ok(())
    }

    /// The incidents `q` asks for with their JSON, when the view holds the whole answer.
    pub fn page(&self, q: &IncidentQuery) -> Option<Vec<Bytes>> {
        self.state.read().ok()?.select(q, |s, v| {
            let open = v.incident.status == IncidentStatus::Open;
            v.json_with(open.then(|| s.acks.get(&v.incident.id)).flatten())
        })
    }

    /// The incidents `q` asks for, as the view holds them (for summaries), when it holds them
    /// all.
    pub fn list(&self, q: &IncidentQuery) -> Option<Vec<Arc<ViewIncident>>> {
        self.state.read().ok()?.select(q, |_, v| v.clone())
    }
}

#[derive(Debug, Default)]
struct Market {
    /// The watched vault's points, oldest first.
    vault: VecDeque<VaultPoint>,
    /// The latest deviation sample per (protocol, market, kind, venue).
    deviations: HashMap<(ProtocolId, Coin, DeviationKind, Option<Venue>), DeviationSample>,
    /// Liquidation fills, oldest first.
    liquidations: Vec<LiquidationRecord>,
    /// `sums[i]`: count, notional and ADL count of `liquidations[..i]` (one more entry than
    /// fills), so a window's figures are one subtraction, not a pass.
    sums: Vec<(usize, Decimal, usize)>,
    /// Newest time read of each.
    vault_hwm: Timestamp,
    deviation_hwm: Timestamp,
    liquidation_hwm: Timestamp,
    loaded: Option<Instant>,
    synced: Option<Instant>,
}

/// Whether `items` (oldest first, by `time`) hold one that is `same`: only those from `at` on
/// are looked at.
fn held<'a, T: 'a>(
    items: impl DoubleEndedIterator<Item = &'a T>,
    time: impl Fn(&T) -> Timestamp,
    at: Timestamp,
    same: impl FnMut(&T) -> bool,
) -> bool {
    items.rev().take_while(|q| time(q) >= at).any(same)
}

impl Market {
    /// Takes in what was read from the store: vault points (oldest first), deviation samples
    /// and liquidation fills (newest first), dropping what fell out of every window (`history`
    /// for the vault, `day` for liquidations).
    fn merge(
        &mut self,
        points: Vec<VaultPoint>,
        samples: Vec<DeviationSample>,
        fills: Vec<LiquidationRecord>,
        history: Timestamp,
        day: Timestamp,
    ) {
        let m = self;
        for p in points {
            m.vault_hwm = m.vault_hwm.max(p.time);
            let known = held(
                m.vault.iter(),
                |q| q.time,
                p.time,
                |q| q.time == p.time && q.protocol == p.protocol,
            );
            if !known {
                // Points arrive in time order; a late one goes to its place.
                let at = m.vault.partition_point(|q| q.time <= p.time);
                m.vault.insert(at, p);
            }
        }
        for s in samples {
            m.deviation_hwm = m.deviation_hwm.max(s.time);
            let k = (s.protocol.clone(), s.coin.clone(), s.kind, s.venue.clone());
            if m.deviations.get(&k).is_none_or(|o| s.time >= o.time) {
                m.deviations.insert(k, s);
            }
        }
        // Newest first from the store.
        for l in fills.into_iter().rev() {
            m.liquidation_hwm = m.liquidation_hwm.max(l.time);
            let known = held(
                m.liquidations.iter(),
                |q| q.time,
                l.time,
                |q| q.same_fill(&l),
            );
            if !known {
                let at = m.liquidations.partition_point(|q| q.time <= l.time);
                m.liquidations.insert(at, l);
                // Fills arrive in time order: the sums are extended, or redone from a late one.
                let Market {
                    liquidations, sums, ..
                } = &mut *m;
                sums.truncate(at + 1);
                if sums.is_empty() {
                    sums.push((0, Decimal::ZERO, 0));
                }
                for l in &liquidations[at..] {
                    let (c, n, a) = sums[sums.len() - 1];
                    sums.push((c + 1, n + l.notional, a + usize::from(l.is_adl)));
                }
            }
        }
        // Out of every window: gone.
        while m.vault.front().is_some_and(|p| p.time < history) {
            m.vault.pop_front();
        }
        let old = m.liquidations.partition_point(|l| l.time < day);
        if old > 0 {
            // Differences of the remaining sums stay exact.
            m.liquidations.drain(..old);
            m.sums.drain(..old);
        }
        m.synced = Some(Instant::now());
    }
}

/// The market figures of the dashboard summary for one store, in memory: the watched vault's
/// last 90 days (also the HLP chart's and the forecast's input), the latest deviation per
/// market, the last day's liquidations (at most 50,000). Followed by reading
/// what was stored after the newest row held (at most every [`EventView::MAX_STALE`]), and
/// reloaded whole every [`MarketView::RELOAD`] (by default) so late rows (a backfill after a gap) are not
/// missed for long.
#[derive(Debug)]
pub struct MarketView {
    reload: Duration,
    state: RwLock<Market>,
    refresh: tokio::sync::Mutex<()>,
}

impl Default for MarketView {
    fn default() -> Self {
        Self::new(Self::RELOAD)
    }
}

/// PnL change over `points` (oldest first), drawdown from the PnL peak in percent of the
/// account value at the peak, and the latest account value.
pub fn vault_stats<'a>(
    points: impl IntoIterator<Item = &'a VaultPoint>,
) -> (Option<Decimal>, Option<Decimal>, Option<Decimal>) {
    let mut first: Option<&VaultPoint> = None;
    let mut last: Option<&VaultPoint> = None;
    let mut peak: Option<&VaultPoint> = None;
    for p in points {
        first.get_or_insert(p);
        last = Some(p);
        if peak.is_none_or(|k| p.pnl > k.pnl) {
            peak = Some(p);
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return (None, None, None);
    };
    let dd = peak.and_then(|k| {
        (k.account_value > Decimal::ZERO)
            .then(|| ((k.pnl - last.pnl) / k.account_value * Decimal::ONE_HUNDRED).round_dp(4))
    });
    (Some(last.pnl - first.pnl), dd, Some(last.account_value))
}

/// A snapshot of the market view for one request.
#[derive(Debug, Default)]
pub struct MarketFigures {
    /// The watched vault over the window: PnL change, drawdown, latest account value
    /// ([`vault_stats`]).
    pub vault: (Option<Decimal>, Option<Decimal>, Option<Decimal>),
    /// Latest deviation samples of the window.
    pub deviations: Vec<DeviationSample>,
    /// Liquidations of the window: count, total notional, ADL count.
    pub liquidations: (usize, Decimal, usize),
}

impl MarketView {
    /// How often everything is read again by default.
    pub const RELOAD: Duration = Duration::from_secs(30);

    /// A view that reads everything again every `reload`.
    pub fn new(reload: Duration) -> Self {
        Self {
            reload,
            state: RwLock::default(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }
    /// Rows read per table and look.
    const READ: u32 = 50_000;
    /// Hours of the watched vault's history held (the longest `/ml/forecast` window).
    pub const VAULT_HOURS: i64 = 2160;

    fn need(&self) -> Need {
        let Ok(m) = self.state.read() else {
            return Need::CatchUp;
        };
        match (m.synced, m.loaded) {
            (Some(s), Some(l))
                if s.elapsed() < EventView::MAX_STALE && l.elapsed() < self.reload =>
            {
                Need::Nothing
            }
            (Some(_), Some(_)) => Need::Look,
            _ => Need::CatchUp,
        }
    }

    /// Brings the view up to the store, for windows ending at `now`: a caller waits only for
    /// the first read; a later look at the store runs in the background while requests are
    /// answered from what is held.
    pub async fn sync(
        self: &Arc<Self>,
        store: Arc<dyn MarketStore>,
        vault: Address,
        now: Timestamp,
    ) -> StoreResult<()> {
        match self.need() {
            Need::Nothing => Ok(()),
            Need::CatchUp => {
                self.refresh(store.as_ref(), vault, now, Need::CatchUp)
                    .await
            }
            Need::Look => {
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.refresh(store.as_ref(), vault, now, Need::Look).await {
                        tracing::warn!(error = %e, "dashboard view: reading the store failed");
                    }
                });
                Ok(())
            }
        }
    }

    async fn refresh(
        &self,
        store: &dyn MarketStore,
        vault: Address,
        now: Timestamp,
        need: Need,
    ) -> StoreResult<()> {
        let Some(_one) = guard(&self.refresh, need).await else {
            return Ok(());
        };
        if self.need() == Need::Nothing {
            return Ok(());
        }
        let day = now.plus_millis(-Timestamp::DAY);
        let history = now.plus_millis(-Self::VAULT_HOURS * Timestamp::HOUR);
        let (reload, hwm) = self.state.read().map_or((true, (history, day, day)), |m| {
            (
                m.loaded.is_none_or(|t| t.elapsed() >= self.reload),
                (m.vault_hwm, m.deviation_hwm, m.liquidation_hwm),
            )
        });
        // Everything is read whole every `reload` (late rows), followed in between.
        let v_from = if reload { history } else { hwm.0 };
        let (d_from, l_from) = if reload {
            (now.plus_millis(-15 * Timestamp::MINUTE), day)
        } else {
            (hwm.1, hwm.2)
        };
        let mut points = Vec::new();
        let mut from = v_from;
        loop {
            let page = store
                .vault_points(None, Some(vault), from, Self::READ)
                .await?;
            let n = page.len();
            from = page.last().map_or(from, |p| p.time);
            points.extend(page);
            if n < Self::READ as usize {
                break;
            }
        }
        let samples = store.deviations(None, None, d_from, Self::READ).await?;
        let fills = store.liquidations(None, None, l_from, Self::READ).await?;
        if reload {
            // Built whole away from the lock (and off the request workers): readers keep
            // answering from the held figures meanwhile, and wait only for the swap — a
            // reload of 90 days of minute points is milliseconds of work.
            let built = tokio::task::spawn_blocking(move || {
                let mut fresh = Market {
                    vault_hwm: history,
                    deviation_hwm: day,
                    liquidation_hwm: day,
                    loaded: Some(Instant::now()),
                    ..Market::default()
                };
                fresh.merge(points, samples, fills, history, day);
                fresh
            })
            .await;
            let Ok(fresh) = built else {
                tracing::warn!("dashboard view: building a reload failed; the held figures stay");
                return Ok(());
            };
            swap_in(&self.state, fresh);
        } else if let Ok(mut m) = self.state.write() {
            m.merge(points, samples, fills, history, day);
        }
        Ok(())
    }

    /// `f` of the watched vault's points from `since` (for `protocol`, or every protocol),
    /// oldest first; `None` when `since` is older than the history held.
    fn vault_window<R>(
        &self,
        protocol: Option<&ProtocolId>,
        since: Timestamp,
        now: Timestamp,
        f: impl FnOnce(&mut dyn Iterator<Item = &VaultPoint>) -> R,
    ) -> Option<R> {
        if since < now.plus_millis(-Self::VAULT_HOURS * Timestamp::HOUR) {
            return None;
        }
        let m = self.state.read().ok()?;
        m.loaded?;
        let at = m.vault.partition_point(|p| p.time < since);
        let mut points = m
            .vault
            .range(at..)
            .filter(|p| protocol.is_none_or(|x| *x == p.protocol));
        Some(f(&mut points))
    }

    /// The watched vault's points from `since` (for `protocol`, or every protocol), oldest
    /// first; `None` when `since` is older than the history held.
    pub fn vault_points(
        &self,
        protocol: Option<&ProtocolId>,
        since: Timestamp,
        now: Timestamp,
    ) -> Option<Vec<VaultPoint>> {
        self.vault_window(protocol, since, now, |points| points.cloned().collect())
    }

    /// The hourly series of the watched vault's cumulative PnL from `since` (the last value of
    /// each hour, as [`kamiyo_ml::arima::risk::hourly`] builds it) and a fingerprint of its
    /// input points (count, newest time, newest value); `None` when `since` is older than the
    /// history held.
    pub fn hourly_pnl(
        &self,
        protocol: Option<&ProtocolId>,
        since: Timestamp,
        now: Timestamp,
    ) -> Option<(Vec<(i64, f64)>, Fingerprint)> {
        self.vault_window(protocol, since, now, |points| {
            let mut n = 0;
            let mut newest = (0, 0);
            let hourly = kamiyo_ml::arima::risk::hourly(points.map(|p| {
                let v = f64::try_from(p.pnl).unwrap_or(f64::NAN);
                n += 1;
                newest = (p.time.0, v.to_bits());
                (p.time.0, v)
            }));
            (hourly, (n, newest.0, newest.1))
        })
    }

    /// The figures of the day ending at `now` (deviations: of the last 15 minutes) for
    /// `protocol` (every protocol when `None`).
    pub fn figures(&self, protocol: Option<&ProtocolId>, now: Timestamp) -> MarketFigures {
        let Ok(m) = self.state.read() else {
            return MarketFigures::default();
        };
        let day = now.plus_millis(-Timestamp::DAY);
        let recent = now.plus_millis(-15 * Timestamp::MINUTE);
        let mine = |p: &ProtocolId| protocol.is_none_or(|x| x == p);
        let liq = if protocol.is_none() && m.sums.len() == m.liquidations.len() + 1 {
            let from = m.liquidations.partition_point(|l| l.time < day);
            let (a, b) = (m.sums[from], m.sums[m.liquidations.len()]);
            (b.0 - a.0, b.1 - a.1, b.2 - a.2)
        } else {
            let mut liq = (0, Decimal::ZERO, 0);
            for l in m
                .liquidations
                .iter()
                .filter(|l| l.time >= day && mine(&l.protocol))
            {
                liq.0 += 1;
                liq.1 += l.notional;
                liq.2 += usize::from(l.is_adl);
            }
            liq
        };
        let at = m.vault.partition_point(|p| p.time < day);
        MarketFigures {
            vault: vault_stats(m.vault.range(at..).filter(|p| mine(&p.protocol))),
            deviations: m
                .deviations
                .values()
                .filter(|d| d.time >= recent && mine(&d.protocol))
                .cloned()
                .collect(),
            liquidations: liq,
        }
    }
}
