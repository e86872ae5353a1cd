//! The write path: engine outputs accumulate into one [`IngestBatch`] that is committed in a
//! single transaction together with the ingest cursors, when it is large enough or old enough.
//! A crash loses at most the uncommitted batch, and the cursors say exactly where to resume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kamiyo_core_models::{
    Address, IngestBatch, MarketEvent, MarketStore, StoreResult, StoredEvent, Timestamp,
};
use kamiyo_monitors::EngineOutput;

/// Prefix of the per-user fill cursors.
pub const FILL_CURSOR_PREFIX: &str = "fills:";

/// Cursor name of a user's fills.
pub fn fill_cursor(user: &Address) -> String {
    format!("{FILL_CURSOR_PREFIX}{user}")
}

/// Cursor name of a protocol's newest committed trade time (epoch ms): a polled venue's
/// adapter resumes after it, so a new leader's first page does not replay what its
/// predecessor committed.
pub fn trade_cursor(protocol: &kamiyo_core_models::ProtocolId) -> String {
    format!("trades:{protocol}")
}

/// Accumulates and commits.
pub struct Writer {
    store: Arc<dyn MarketStore>,
    batch: IngestBatch,
    items: usize,
    max_items: usize,
    max_delay: Duration,
    since: Option<Instant>,
    fills: BTreeMap<Address, Timestamp>,
    trades: Option<(String, Timestamp)>,
}

impl Writer {
    /// A writer committing at `max_items` rows or after `max_delay`.
    pub fn new(store: Arc<dyn MarketStore>, max_items: usize, max_delay: Duration) -> Self {
        Self {
            store,
            batch: IngestBatch::default(),
            items: 0,
            max_items,
            max_delay,
            since: None,
            fills: BTreeMap::new(),
            trades: None,
        }
    }

    /// Also commits the newest trade time seen under the cursor `name` ([`trade_cursor`]).
    pub fn with_trade_cursor(mut self, name: String) -> Self {
        self.trades = Some((name, Timestamp(i64::MIN)));
        self
    }

    /// Adds an engine output.
    pub fn push(&mut self, out: EngineOutput) {
        self.batch.updates.extend(out.updates);
        self.batch.deviations.extend(out.observations.deviations);
        self.batch
            .liquidations
            .extend(out.observations.liquidations);
        self.batch
            .vault_points
            .extend(out.observations.vault_points);
        self.batch.positions.extend(out.observations.positions);
        self.batch.bars.extend(out.observations.bars);
        self.items = rows(&self.batch);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Notes an ingested event for the resume cursors (fills per user).
    pub fn observe(&mut self, e: &MarketEvent) {
        if let (MarketEvent::Trade(t), Some((_, newest))) = (e, self.trades.as_mut())
            && t.time > *newest
        {
            *newest = t.time;
            self.since.get_or_insert_with(Instant::now);
        }
        // The zero address stands for an account a venue does not name: no fills to resume.
        if let MarketEvent::Fill(f) = e
            && f.user.as_bytes() != &[0; 20]
        {
            let t = self.fills.entry(f.user).or_insert(f.time);
            if f.time > *t {
                *t = f.time;
            }
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// Sets a cursor to commit with the next batch.
    pub fn set_cursor(&mut self, source: String, position: String) {
        self.batch.cursors.retain(|(s, _)| *s != source);
        self.batch.cursors.push((source, position));
        self.since.get_or_insert_with(Instant::now);
    }

    /// True when the batch should be committed now.
    pub fn due(&self) -> bool {
        self.items >= self.max_items || self.since.is_some_and(|s| s.elapsed() >= self.max_delay)
    }

    /// Rows waiting.
    pub fn pending(&self) -> usize {
        self.items
    }

    /// Commits the batch (and the fill cursors) in one transaction.
    pub async fn flush(&mut self) -> StoreResult<Vec<StoredEvent>> {
        for (u, t) in std::mem::take(&mut self.fills) {
            self.batch.cursors.push((fill_cursor(&u), t.0.to_string()));
        }
        if let Some((name, newest)) = &self.trades
            && newest.0 != i64::MIN
            && !self.batch.cursors.iter().any(|(s, _)| s == name)
        {
            self.batch
                .cursors
                .push((name.clone(), newest.0.to_string()));
        }
        if self.batch.is_empty() {
            self.since = None;
            return Ok(Vec::new());
        }
        let batch = std::mem::take(&mut self.batch);
        let n = self.items;
        self.items = 0;
        self.since = None;
        let span = tracing::info_span!("store.commit", rows = n, events = batch.updates.len());
        let r = tracing::Instrument::instrument(self.store.commit(&batch), span).await;
        match r {
            Ok(stored) => Ok(stored),
            Err(e) => {
                // Keep the rows for the next attempt: nothing is lost on a transient failure.
                self.batch = batch;
                self.items = rows(&self.batch);
                Err(e)
            }
        }
    }
}

fn rows(b: &IngestBatch) -> usize {
    b.updates.len()
        + b.deviations.len()
        + b.liquidations.len()
        + b.vault_points.len()
        + b.positions.len()
        + b.bars.len()
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("items", &self.items)
            .field("max_items", &self.max_items)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}
