//! In-memory implementations of every boundary trait, for tests here and in third-party crates
//! (feature `test-utils`). They behave like the real ones where tests can observe it:
//! duplicate ids are ignored, sequence numbers are monotonic, listings are filtered and ordered
//! the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::alert::{Alert, DeliveryReceipt, Notifier, NotifyError};
use crate::ids::{Address, Coin, ProtocolId, StableId};
use crate::market::{EventStream, MarketDataStream, MarketEvent};
use crate::operator::{IncidentAction, OperatorStore, Silence};
use crate::price::{PriceSource, ReferenceQuote, SourceError, Venue};
use crate::security::{Incident, IncidentStatus, IncidentUpdate};
use crate::store::{
    ApiKeyRecord, ApiKeyStore, AuditEntry, AuditStore, DeliveryQuery, DeviationSample, EventQuery,
    IncidentQuery, IncidentStore, IngestBatch, LiquidationRecord, MarketBar, MarketStore, Order,
    OutboxEntry, OutboxStatus, OutboxStore, PositionRecord, StoreResult, StoredEvent, VaultPoint,
};
use crate::time::Timestamp;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct MemoryState {
    seq: i64,
    events: Vec<StoredEvent>,
    log: Vec<crate::ledger::LogEntry>,
    incidents: BTreeMap<StableId, Incident>,
    vault_points: Vec<VaultPoint>,
    deviations: Vec<DeviationSample>,
    liquidations: Vec<LiquidationRecord>,
    positions: Vec<PositionRecord>,
    bars: BTreeMap<(ProtocolId, Coin, i64, i64), MarketBar>,
    cursors: HashMap<String, String>,
    outbox: BTreeMap<StableId, OutboxEntry>,
    keys: Vec<ApiKeyRecord>,
    audit: Vec<AuditEntry>,
    actions: Vec<IncidentAction>,
    silences: Vec<Silence>,
}

/// An in-memory store implementing every store trait.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<MemoryState>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored event, in insertion order.
    pub fn all_events(&self) -> Vec<StoredEvent> {
        lock(&self.0).events.clone()
    }

    /// Every liquidation stored.
    pub fn all_liquidations(&self) -> Vec<LiquidationRecord> {
        lock(&self.0).liquidations.clone()
    }

    fn record_locked(st: &mut MemoryState, updates: &[IncidentUpdate]) -> Vec<StoredEvent> {
        let mut out = Vec::new();
        for u in updates {
            if st.events.iter().any(|e| e.event.id == u.event.id) {
                continue;
            }
            st.seq += 1;
            let stored = StoredEvent {
                seq: st.seq,
                event: u.event.clone(),
            };
            st.events.push(stored.clone());
            // A resolved incident stays resolved (an operator may close one the engine still
            // updates); a condition that persists opens a new incident.
            let closed = st
                .incidents
                .get(&u.incident.id)
                .is_some_and(|i| i.status == IncidentStatus::Resolved);
            if !closed {
                st.incidents
                    .insert(u.incident.id.clone(), u.incident.clone());
            }
            out.push(stored);
        }
        let now = crate::time::Clock::now(&crate::time::SystemClock);
        let entries = crate::ledger::append(st.log.last(), &out, now);
        st.log.extend(entries);
        out
    }
}

fn matches_event(q: &EventQuery, e: &StoredEvent) -> bool {
    q.protocol.as_ref().is_none_or(|p| e.event.protocol == *p)
        && q.min_severity.is_none_or(|s| e.event.severity >= s)
        && q.threat_type.is_none_or(|t| e.event.threat_type == t)
        && q.asset
            .as_ref()
            .is_none_or(|a| e.event.asset.as_ref() == Some(a))
        && q.since.is_none_or(|s| e.event.time >= s)
        && q.before_seq.is_none_or(|s| e.seq < s)
        && q.after_seq.is_none_or(|s| e.seq > s)
}

#[async_trait]
impl IncidentStore for MemoryStore {
    async fn record_updates(&self, updates: &[IncidentUpdate]) -> StoreResult<Vec<StoredEvent>> {
        Ok(Self::record_locked(&mut lock(&self.0), updates))
    }

    async fn incident(&self, id: &StableId) -> StoreResult<Option<Incident>> {
        Ok(lock(&self.0).incidents.get(id).cloned())
    }

    async fn incidents(&self, q: &IncidentQuery) -> StoreResult<Vec<Incident>> {
        let st = lock(&self.0);
        let mut v: Vec<Incident> = st
            .incidents
            .values()
            .filter(|i| q.protocol.as_ref().is_none_or(|p| i.protocol == *p))
            .filter(|i| q.status.is_none_or(|s| i.status == s))
            .filter(|i| q.asset.as_ref().is_none_or(|a| i.asset.as_ref() == Some(a)))
            .filter(|i| q.seen_since.is_none_or(|t| i.last_seen >= t))
            .cloned()
            .collect();
        v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn events(&self, q: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        let st = lock(&self.0);
        let mut v: Vec<StoredEvent> = st
            .events
            .iter()
            .filter(|e| matches_event(q, e))
            .cloned()
            .collect();
        if q.order == Order::Desc {
            v.reverse();
        }
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn incident_events(&self, id: &StableId) -> StoreResult<Vec<StoredEvent>> {
        Ok(lock(&self.0)
            .events
            .iter()
            .filter(|e| &e.event.incident_id == id)
            .cloned()
            .collect())
    }

    async fn event_log(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<crate::ledger::LogEntry>> {
        Ok(lock(&self.0)
            .log
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn event_log_head(&self) -> StoreResult<Option<crate::ledger::LogEntry>> {
        Ok(lock(&self.0).log.last().cloned())
    }
}

#[async_trait]
impl MarketStore for MemoryStore {
    async fn commit(&self, batch: &IngestBatch) -> StoreResult<Vec<StoredEvent>> {
        let mut st = lock(&self.0);
        for p in &batch.vault_points {
            if !st
                .vault_points
                .iter()
                .any(|q| q.protocol == p.protocol && q.vault == p.vault && q.time == p.time)
            {
                st.vault_points.push(p.clone());
            }
        }
        st.deviations.extend(batch.deviations.iter().cloned());
        for l in &batch.liquidations {
            let dup = st.liquidations.iter().any(|q| q.same_fill(l));
            if !dup {
                st.liquidations.push(l.clone());
            }
        }
        st.positions.extend(batch.positions.iter().cloned());
        for b in &batch.bars {
            st.bars
                .entry((b.protocol.clone(), b.coin.clone(), b.interval_ms, b.time.0))
                .or_insert_with(|| b.clone());
        }
        let stored = Self::record_locked(&mut st, &batch.updates);
        // Outbox rows commit with the batch, like `OutboxStore::enqueue` (an existing id wins).
        for e in &batch.outbox {
            st.outbox.entry(e.id.clone()).or_insert_with(|| e.clone());
        }
        for a in &batch.actions {
            if !st.actions.iter().any(|x| x.id == a.id) {
                st.actions.push(a.clone());
            }
        }
        for (k, v) in &batch.cursors {
            st.cursors.insert(k.clone(), v.clone());
        }
        Ok(stored)
    }

    async fn cursor(&self, source: &str) -> StoreResult<Option<String>> {
        Ok(lock(&self.0).cursors.get(source).cloned())
    }

    async fn vault_points(
        &self,
        protocol: Option<&ProtocolId>,
        vault: Option<Address>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<VaultPoint>> {
        let st = lock(&self.0);
        let mut v: Vec<VaultPoint> = st
            .vault_points
            .iter()
            .filter(|p| {
                protocol.is_none_or(|x| &p.protocol == x)
                    && vault.is_none_or(|a| p.vault == a)
                    && p.time >= since
            })
            .cloned()
            .collect();
        v.sort_by_key(|p| p.time);
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn deviations(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DeviationSample>> {
        let st = lock(&self.0);
        let mut v: Vec<DeviationSample> = st
            .deviations
            .iter()
            .filter(|d| {
                protocol.is_none_or(|x| &d.protocol == x)
                    && coin.is_none_or(|c| &d.coin == c)
                    && d.time >= since
            })
            .cloned()
            .collect();
        v.sort_by_key(|d| d.time);
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn liquidations(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<LiquidationRecord>> {
        let st = lock(&self.0);
        let mut v: Vec<LiquidationRecord> = st
            .liquidations
            .iter()
            .filter(|l| {
                protocol.is_none_or(|x| &l.protocol == x)
                    && coin.is_none_or(|c| &l.coin == c)
                    && l.time >= since
            })
            .cloned()
            .collect();
        v.sort_by_key(|l| std::cmp::Reverse(l.time));
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn positions(
        &self,
        protocol: Option<&ProtocolId>,
        user: Option<Address>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PositionRecord>> {
        let st = lock(&self.0);
        let mut latest: BTreeMap<(ProtocolId, Address, Coin), PositionRecord> = BTreeMap::new();
        for p in st.positions.iter().filter(|p| {
            protocol.is_none_or(|x| &p.protocol == x)
                && user.is_none_or(|u| p.user == u)
                && p.time >= since
        }) {
            let k = (p.protocol.clone(), p.user, p.coin.clone());
            if latest.get(&k).is_none_or(|q| q.time <= p.time) {
                latest.insert(k, p.clone());
            }
        }
        let mut v: Vec<PositionRecord> = latest.into_values().collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.position_value.abs()));
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn bars(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        interval_ms: i64,
        since: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MarketBar>> {
        Ok(lock(&self.0)
            .bars
            .values()
            .filter(|b| {
                protocol.is_none_or(|x| &b.protocol == x)
                    && coin.is_none_or(|c| &b.coin == c)
                    && b.interval_ms == interval_ms
                    && b.time >= since
                    && b.time < until
            })
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> StoreResult<usize> {
        let mut st = lock(&self.0);
        let mut n = 0;
        for e in entries {
            if !st.outbox.contains_key(&e.id) {
                st.outbox.insert(e.id.clone(), e.clone());
                n += 1;
            }
        }
        Ok(n)
    }

    async fn due(
        &self,
        consumer: &str,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let st = lock(&self.0);
        let mut v: Vec<OutboxEntry> = st
            .outbox
            .values()
            .filter(|e| {
                e.consumer == consumer
                    && e.status == OutboxStatus::Pending
                    && e.next_attempt_at <= now
            })
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn mark_delivered(&self, id: &StableId, attempts: u32, at: Timestamp) -> StoreResult<()> {
        if let Some(e) = lock(&self.0).outbox.get_mut(id) {
            e.status = OutboxStatus::Delivered;
            e.attempts = attempts;
            e.delivered_at = Some(at);
        }
        Ok(())
    }

    async fn mark_retry(
        &self,
        id: &StableId,
        attempts: u32,
        next: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        if let Some(e) = lock(&self.0).outbox.get_mut(id) {
            e.attempts = attempts;
            e.next_attempt_at = next;
            e.last_error = Some(error.to_owned());
        }
        Ok(())
    }

    async fn mark_failed(&self, id: &StableId, attempts: u32, error: &str) -> StoreResult<()> {
        if let Some(e) = lock(&self.0).outbox.get_mut(id) {
            e.status = OutboxStatus::Failed;
            e.attempts = attempts;
            e.last_error = Some(error.to_owned());
        }
        Ok(())
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<OutboxEntry>> {
        let st = lock(&self.0);
        let mut v: Vec<OutboxEntry> = st
            .outbox
            .values()
            .filter(|e| q.channel.as_ref().is_none_or(|c| &e.channel == c))
            .filter(|e| q.status.is_none_or(|s| e.status == s))
            .filter(|e| q.since.is_none_or(|t| e.created_at >= t))
            .filter(|e| {
                q.incident
                    .as_ref()
                    .is_none_or(|i| e.alert.update.incident.id == *i)
            })
            .filter(|e| {
                q.protocol
                    .as_ref()
                    .is_none_or(|p| e.alert.update.event.protocol == *p)
            })
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn routed_cursor(&self, consumer: &str) -> StoreResult<Option<i64>> {
        crate::store::routed_cursor_of(consumer, MarketStore::cursor(self, consumer).await?)
    }

    async fn commit_routed(
        &self,
        consumer: &str,
        entries: Vec<OutboxEntry>,
        cursor: Option<i64>,
    ) -> StoreResult<()> {
        MarketStore::commit(self, &crate::store::routed_batch(consumer, entries, cursor))
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        lock(&self.0).keys.push(key.clone());
        Ok(())
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let mut v = lock(&self.0).keys.clone();
        v.reverse();
        Ok(v)
    }

    async fn keys_by_prefix(&self, prefix: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        Ok(lock(&self.0)
            .keys
            .iter()
            .filter(|k| k.prefix == prefix)
            .cloned()
            .collect())
    }

    async fn revoke_key(&self, id_or_prefix: &str, at: Timestamp) -> StoreResult<bool> {
        let mut st = lock(&self.0);
        let mut hit = false;
        for k in st.keys.iter_mut() {
            if (k.id.as_str() == id_or_prefix || k.prefix == id_or_prefix) && k.revoked_at.is_none()
            {
                k.revoked_at = Some(at);
                hit = true;
            }
        }
        Ok(hit)
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        lock(&self.0).audit.push(entry.clone());
        Ok(())
    }

    async fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let st = lock(&self.0);
        Ok(st
            .audit
            .iter()
            .rev()
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

/// A price source that returns whatever quotes were set, or a configured error.
#[derive(Debug, Clone)]
pub struct FakePriceSource {
    venue: Venue,
    quotes: Arc<Mutex<Result<Vec<ReferenceQuote>, SourceError>>>,
}

impl FakePriceSource {
    /// A source for `venue` with no quotes.
    pub fn new(venue: Venue) -> Self {
        Self {
            venue,
            quotes: Arc::new(Mutex::new(Ok(Vec::new()))),
        }
    }

    /// Sets the quotes the next calls return.
    pub fn set_quotes(&self, quotes: Vec<ReferenceQuote>) {
        *lock(&self.quotes) = Ok(quotes);
    }

    /// Makes the next calls fail.
    pub fn set_error(&self, err: SourceError) {
        *lock(&self.quotes) = Err(err);
    }
}

#[async_trait]
impl PriceSource for FakePriceSource {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError> {
        let q = lock(&self.quotes).clone()?;
        Ok(q.into_iter().filter(|q| coins.contains(&q.coin)).collect())
    }
}

/// A notifier that records what it was asked to deliver and answers with scripted results.
#[derive(Debug, Clone)]
pub struct RecordingNotifier {
    name: String,
    sent: Arc<Mutex<Vec<Alert>>>,
    script: Arc<Mutex<Vec<Result<DeliveryReceipt, NotifyError>>>>,
}

impl RecordingNotifier {
    /// A notifier called `name` that always succeeds unless scripted otherwise.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            sent: Arc::default(),
            script: Arc::default(),
        }
    }

    /// Queues results for the next calls (first queued, first returned).
    pub fn script(&self, results: Vec<Result<DeliveryReceipt, NotifyError>>) {
        lock(&self.script).extend(results);
    }

    /// Alerts delivered successfully so far.
    pub fn sent(&self) -> Vec<Alert> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "recording"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let next = {
            let mut s = lock(&self.script);
            if s.is_empty() {
                None
            } else {
                Some(s.remove(0))
            }
        };
        let result = next.unwrap_or(Ok(DeliveryReceipt {
            status: Some(200),
            remote_id: None,
        }));
        if result.is_ok() {
            lock(&self.sent).push(alert.clone());
        }
        result
    }
}

/// A market-data stream that yields a fixed list of events.
#[derive(Debug, Clone)]
pub struct VecStream {
    name: String,
    events: Vec<MarketEvent>,
}

impl VecStream {
    /// A stream named `name` over `events`.
    pub fn new(name: &str, events: Vec<MarketEvent>) -> Self {
        Self {
            name: name.to_owned(),
            events,
        }
    }
}

struct IterStream(std::vec::IntoIter<MarketEvent>);

impl futures_core::Stream for IterStream {
    type Item = MarketEvent;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

impl MarketDataStream for VecStream {
    fn name(&self) -> &str {
        &self.name
    }

    fn into_stream(self: Box<Self>) -> EventStream {
        Box::pin(IterStream(self.events.into_iter()))
    }
}

#[async_trait]
impl OperatorStore for MemoryStore {
    async fn record_action(&self, action: &IncidentAction) -> StoreResult<()> {
        let mut st = lock(&self.0);
        if !st.actions.iter().any(|a| a.id == action.id) {
            st.actions.push(action.clone());
        }
        Ok(())
    }

    async fn incident_actions(&self, ids: &[StableId]) -> StoreResult<Vec<IncidentAction>> {
        let mut v: Vec<IncidentAction> = lock(&self.0)
            .actions
            .iter()
            .filter(|a| ids.contains(&a.incident_id))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn insert_silence(&self, silence: &Silence) -> StoreResult<()> {
        lock(&self.0).silences.push(silence.clone());
        Ok(())
    }

    async fn silences(&self, since: Option<Timestamp>, limit: u32) -> StoreResult<Vec<Silence>> {
        let mut v: Vec<Silence> = lock(&self.0)
            .silences
            .iter()
            .filter(|s| since.is_none_or(|t| s.ends_at > t && s.expired_at.is_none_or(|x| x > t)))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn expire_silence(&self, id: &StableId, at: Timestamp) -> StoreResult<bool> {
        let mut st = lock(&self.0);
        match st
            .silences
            .iter_mut()
            .find(|s| s.id == *id && s.active_at(at))
        {
            Some(s) => {
                s.expired_at = Some(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
