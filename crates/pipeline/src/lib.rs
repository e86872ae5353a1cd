//! The kamiyo pipeline as a library: market-data sources → detection engine → store → outputs
//! (the live `/ws` stream, alert consumers, anything a host adds).
//!
//! It is assembled from trait objects and one context value ([`PipelineContext`]: the
//! protocol, the clock, the shutdown token, the store, the outputs, the batching policy), never
//! from the self-hosted configuration file, so the self-hosted binary, the platform and a
//! library user wire it the same way:
//!
//! - [`spawn`] runs a live pipeline: the engine's runner task over an [`EventStream`], and a
//!   consumer task that batches the engine's outputs into the store ([`Committer`]) and hands
//!   what was committed to every [`Output`];
//! - [`Committer`] alone is the store → outputs half, for callers that drive the engine
//!   themselves;
//! - [`Replay`] drives an engine over recorded events for its caller, committing through a
//!   [`Committer`] with its position (`replay`) or only returning the incident steps (`ml
//!   evaluate`);
//! - [`Observer`] is how a host sees the flow for its metrics and logs.
//!
//! Ordering guarantee: an output sees an event only after the transaction that stored it has
//! committed, so no subscriber or alert consumer ever acts on an event the store does not have.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod replay;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kamiyo_core_models::{
    Clock, EventStream, FeedStatus, MarketEvent, MarketStore, ProtocolId, StableId, StoreResult,
    StoredEvent,
};
use kamiyo_monitors::{Engine, EngineOutput};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use replay::Replay;
pub use writer::{FILL_CURSOR_PREFIX, Writer, fill_cursor, trade_cursor};

/// Where committed results go, besides the store. Both methods default to doing nothing.
pub trait Output: Send + Sync {
    /// Security events just committed, in commit order (publish them, wake a consumer …).
    fn committed(&self, _stored: &[StoredEvent]) {}
    /// A feed's status (a change of state, or a periodic refresh of its data time).
    fn feed(&self, _status: &FeedStatus) {}
}

/// The alert service follows the committed event sequence: it is woken after each commit that
/// stored events (each consumer then routes from its own cursor).
impl Output for kamiyo_alerts::AlertHandle {
    fn committed(&self, stored: &[StoredEvent]) {
        if !stored.is_empty() {
            self.wake();
        }
    }
}

/// What the host watches for its metrics and logs. Every method defaults to doing nothing.
pub trait Observer: Send {
    /// An event the engine processed (before its output is stored).
    fn event(&mut self, _event: &MarketEvent) {}
    /// What the engine produced.
    fn output(&mut self, _output: &EngineOutput) {}
    /// A commit: how long it took, how many rows, whether it succeeded.
    fn commit(&mut self, _elapsed: Duration, _rows: usize, _ok: bool) {}
}

/// An observer that observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;
impl Observer for NoObserver {}

/// When a batch is committed: at `max_rows` rows or `max_delay` after its first row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Rows per transaction at most.
    pub max_rows: usize,
    /// Longest a row waits.
    pub max_delay: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_rows: 500,
            max_delay: Duration::from_millis(250),
        }
    }
}

/// Everything a pipeline is built from.
#[derive(Clone)]
pub struct PipelineContext {
    /// The protocol watched (the engine must be built for the same one).
    pub protocol: ProtocolId,
    /// Event time for the engine's quiet-stream ticks.
    pub clock: Arc<dyn Clock>,
    /// Cancelled to stop: the runner stops reading, the consumer commits what is left.
    pub shutdown: CancellationToken,
    /// Where market facts and incident steps are committed.
    pub store: Arc<dyn MarketStore>,
    /// Who hears of each commit and feed status.
    pub outputs: Vec<Arc<dyn Output>>,
    /// Batching.
    pub batch: BatchPolicy,
    /// How often the engine is ticked from `clock` when the stream is quiet.
    pub tick: Duration,
}

impl std::fmt::Debug for PipelineContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineContext")
            .field("protocol", &self.protocol)
            .field("outputs", &self.outputs.len())
            .field("batch", &self.batch)
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

impl PipelineContext {
    /// A context with no outputs, default batching and one-second ticks.
    pub fn new(
        protocol: ProtocolId,
        clock: Arc<dyn Clock>,
        store: Arc<dyn MarketStore>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            protocol,
            clock,
            shutdown,
            store,
            outputs: Vec::new(),
            batch: BatchPolicy::default(),
            tick: Duration::from_secs(1),
        }
    }

    /// Adds an output.
    #[must_use]
    pub fn with_output(mut self, output: Arc<dyn Output>) -> Self {
        self.outputs.push(output);
        self
    }
}

/// The store → outputs half of the pipeline: batches engine outputs (and cursors), commits each
/// batch in one transaction, then hands the stored events to every output. A failed commit
/// keeps its rows for the next attempt.
pub struct Committer {
    writer: Writer,
    outputs: Vec<Arc<dyn Output>>,
    observer: Box<dyn Observer>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("pending", &self.writer.pending())
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// A committer for `ctx`'s store and outputs.
    pub fn new(ctx: &PipelineContext, observer: Box<dyn Observer>) -> Self {
        Self {
            writer: {
                let w = Writer::new(ctx.store.clone(), ctx.batch.max_rows, ctx.batch.max_delay);
                // Hyperliquid's sources resume by fills; the other protocols' adapters by trades.
                if ctx.protocol.is_default() {
                    w
                } else {
                    w.with_trade_cursor(trade_cursor(&ctx.protocol))
                }
            },
            outputs: ctx.outputs.clone(),
            observer,
        }
    }

    /// Notes an event the engine processed: fill cursors advance, feed statuses go to the
    /// outputs, the observer sees it.
    pub fn event(&mut self, e: &MarketEvent) {
        self.observer.event(e);
        self.writer.observe(e);
        if let MarketEvent::Feed(f) = e {
            for o in &self.outputs {
                o.feed(f);
            }
        }
    }

    /// Shows an event to the observer only: no fill cursor, no feed status (a replay's events
    /// are not the live feeds', and its position is its own cursor).
    pub fn note(&mut self, e: &MarketEvent) {
        self.observer.event(e);
    }

    /// Adds an engine output to the batch.
    pub fn push(&mut self, out: EngineOutput) {
        self.observer.output(&out);
        self.writer.push(out);
    }

    /// Sets a cursor to commit with the next batch (a replay's position …).
    pub fn set_cursor(&mut self, source: String, position: String) {
        self.writer.set_cursor(source, position);
    }

    /// True when the batch should be committed now.
    pub fn due(&self) -> bool {
        self.writer.due()
    }

    /// Rows waiting.
    pub fn pending(&self) -> usize {
        self.writer.pending()
    }

    /// Commits the batch, then hands the stored events to the outputs; returns how many
    /// events were stored.
    pub async fn commit(&mut self) -> StoreResult<usize> {
        let rows = self.writer.pending();
        let started = Instant::now();
        let r = self.writer.flush().await;
        if rows > 0 || r.is_err() {
            self.observer.commit(started.elapsed(), rows, r.is_ok());
        }
        let stored = r?;
        for o in &self.outputs {
            o.committed(&stored);
        }
        Ok(stored.len())
    }

    /// [`Committer::commit`], logging a failure (the rows stay and are retried).
    pub async fn commit_or_log(&mut self) {
        if let Err(e) = self.commit().await {
            tracing::error!(error = %e, rows.pending = self.pending(), "store write failed; will retry");
        }
    }
}

/// A running pipeline.
#[derive(Debug)]
pub struct Running {
    /// The engine's runner; returns the engine when the stream ends or on shutdown.
    pub runner: JoinHandle<Engine>,
    /// The consumer; ends after committing what is left once the runner has stopped.
    pub consumer: JoinHandle<()>,
    forget: mpsc::UnboundedSender<StableId>,
}

impl Running {
    /// A sender of incident ids the engine should stop tracking (closed by an operator).
    pub fn forgetter(&self) -> mpsc::UnboundedSender<StableId> {
        self.forget.clone()
    }
}

/// Why [`spawn`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolMismatch {
    /// The context's protocol.
    pub context: ProtocolId,
    /// The engine's.
    pub engine: ProtocolId,
}

impl std::fmt::Display for ProtocolMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the engine watches {} but the pipeline context is for {}",
            self.engine, self.context
        )
    }
}

impl std::error::Error for ProtocolMismatch {}

/// Starts a live pipeline: `engine` over `stream`, its outputs committed to `ctx.store` and
/// handed to `ctx.outputs`. Stops when the stream ends or `ctx.shutdown` is cancelled.
pub fn spawn(
    ctx: &PipelineContext,
    engine: Engine,
    stream: EventStream,
    observer: Box<dyn Observer>,
) -> Result<Running, ProtocolMismatch> {
    if *engine.protocol() != ctx.protocol {
        return Err(ProtocolMismatch {
            context: ctx.protocol.clone(),
            engine: engine.protocol().clone(),
        });
    }
    let (tx, mut rx) = mpsc::channel(4096);
    let (forget, forget_rx) = mpsc::unbounded_channel();
    let runner = tokio::spawn(kamiyo_monitors::runner::run(
        engine,
        stream,
        ctx.clock.clone(),
        ctx.tick,
        // Every event comes back: fills advance the resume cursors, feed statuses go out.
        true,
        tx,
        Some(forget_rx),
        ctx.shutdown.clone(),
    ));
    let mut committer = Committer::new(ctx, observer);
    // A zero delay means "commit at once"; the timer still needs a period.
    let flush_every = ctx.batch.max_delay.max(Duration::from_millis(1));
    let consumer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let item = tokio::select! {
                item = rx.recv() => item,
                _ = tick.tick() => {
                    committer.commit_or_log().await;
                    continue;
                }
            };
            let Some(item) = item else { break };
            if let Some(e) = &item.event {
                committer.event(e);
            }
            committer.push(item.output);
            if committer.due() {
                committer.commit_or_log().await;
            }
        }
        // The runner has stopped: commit what is left before ending.
        committer.commit_or_log().await;
    });
    Ok(Running {
        runner,
        consumer,
        forget,
    })
}
