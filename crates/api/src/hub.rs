//! The live hub: what `/ws` subscribers receive. The host publishes stored security events
//! (with their sequence numbers) and feed-state changes; publishing never blocks, whatever the
//! subscribers do — a subscriber that falls behind the broadcast buffer is dropped (and told why)
//! instead of slowing the engine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use kamiyo_core_models::{FeedState, FeedStatus, StoredEvent};
use tokio::sync::broadcast;

/// A message for live subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveMessage {
    /// A stored security event.
    Event(StoredEvent),
    /// A feed changed state.
    Feed(FeedStatus),
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Arc<LiveMessage>>,
    feeds: RwLock<BTreeMap<String, FeedStatus>>,
    last_seq: AtomicI64,
    capacity: usize,
}

/// Cheap to clone; one per server.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Hub {
    /// A hub whose subscribers may fall `capacity` messages behind before being dropped.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                tx,
                feeds: RwLock::default(),
                last_seq: AtomicI64::new(0),
                capacity: capacity.max(1),
            }),
        }
    }

    /// The lag a subscriber may accumulate.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Publishes stored events (in `seq` order). Never blocks.
    pub fn publish_events(&self, events: &[StoredEvent]) {
        for e in events {
            self.inner.last_seq.fetch_max(e.seq, Ordering::Relaxed);
            // No subscribers is not an error.
            let _ = self.inner.tx.send(Arc::new(LiveMessage::Event(e.clone())));
        }
    }

    /// Records a feed status and publishes it when the state changed. Never blocks.
    pub fn publish_feed(&self, status: FeedStatus) {
        let changed = {
            let Ok(mut feeds) = self.inner.feeds.write() else {
                return;
            };
            let changed = feeds
                .get(&status.feed)
                .is_none_or(|old| old.state != status.state || old.detail != status.detail);
            feeds.insert(status.feed.clone(), status.clone());
            changed
        };
        if changed {
            let _ = self.inner.tx.send(Arc::new(LiveMessage::Feed(status)));
        }
    }

    /// The latest status of every feed, by name.
    pub fn feeds(&self) -> Vec<FeedStatus> {
        self.inner
            .feeds
            .read()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default()
    }

    /// True when some feed is down.
    pub fn any_feed_down(&self) -> bool {
        self.feeds().iter().any(|f| f.state == FeedState::Down)
    }

    /// Starts the hub at `seq` (a host that tails a store publishes only what comes after;
    /// `/ws` clients resuming before it read the backlog from the store). Never moves back.
    pub fn start_at(&self, seq: i64) {
        self.inner.last_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// The highest sequence number published.
    pub fn last_seq(&self) -> i64 {
        self.inner.last_seq.load(Ordering::Relaxed)
    }

    /// Subscribes to live messages.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveMessage>> {
        self.inner.tx.subscribe()
    }

    /// Current subscribers.
    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }
}
