//! Driving an engine over recorded events, in order, by the caller: a scenario replay (which
//! commits its position with every batch, so a rerun resumes) and an evaluation (which only
//! reads the incident steps). Both go through [`Replay`], so a replayed scenario is detected
//! by exactly the code path that `ml evaluate` scores.

use kamiyo_core_models::{IncidentUpdate, MarketEvent, StableId, StoreResult, Timestamp};
use kamiyo_monitors::{Engine, EngineOutput};

use crate::Committer;

/// An engine fed by its caller, event by event, with its outputs optionally committed.
#[derive(Debug)]
pub struct Replay {
    engine: Engine,
    store: Option<(Committer, String)>,
    index: usize,
}

impl Replay {
    /// A replay whose outputs are returned and not stored.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            store: None,
            index: 0,
        }
    }

    /// Commits the outputs through `committer`; the number of events processed so far is
    /// committed under the cursor `cursor` with every batch (and one more than the count once
    /// the replay has finished), so a caller resumes after the last committed event.
    #[must_use]
    pub fn committing(mut self, committer: Committer, cursor: String) -> Self {
        self.store = Some((committer, cursor));
        self
    }

    /// Brings the engine to its state after `events` without producing anything (resuming
    /// after events committed by an earlier run).
    pub fn warm(&mut self, events: &[MarketEvent]) {
        for e in events {
            drop(self.engine.process(e));
        }
        self.index += events.len();
    }

    /// True when the outputs are committed ([`Replay::committing`]).
    pub fn is_committing(&self) -> bool {
        self.store.is_some()
    }

    /// Events processed (warm-up included).
    pub fn position(&self) -> usize {
        self.index
    }

    /// The engine (its state's settings, its protocol …).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, mutable.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Stops tracking an incident an operator resolved.
    pub fn forget_incident(&mut self, id: &StableId) -> bool {
        self.engine.forget_incident(id)
    }

    /// Processes one event; returns the incident steps it produced. When committing, the
    /// output joins the batch and the batch is committed when due.
    pub async fn step(&mut self, e: &MarketEvent) -> StoreResult<Vec<IncidentUpdate>> {
        let steps = self.advance(e);
        self.commit_if_due().await?;
        Ok(steps)
    }

    /// [`Replay::step`] without committing (a batch that falls due waits for the next
    /// [`Replay::step`], [`Replay::commit`] or [`Replay::finish`]): for synchronous callers
    /// that store nothing, such as an evaluation.
    pub fn advance(&mut self, e: &MarketEvent) -> Vec<IncidentUpdate> {
        let out = self.engine.process(e);
        self.index += 1;
        let position = self.index.to_string();
        self.keep(Some(e), out, position)
    }

    /// Ends the replay at `end`: what is still open resolves; everything left is committed with
    /// the finished marker. Returns the final steps.
    pub async fn finish(&mut self, end: Timestamp) -> StoreResult<Vec<IncidentUpdate>> {
        let steps = self.finish_batch(end);
        self.commit().await?;
        Ok(steps)
    }

    /// [`Replay::finish`] without committing (for callers that store nothing).
    pub fn finish_batch(&mut self, end: Timestamp) -> Vec<IncidentUpdate> {
        let out = self.engine.finish(end);
        let position = (self.index + 1).to_string();
        self.keep(None, out, position)
    }

    /// Commits what is batched (an interrupted replay keeps its progress).
    pub async fn commit(&mut self) -> StoreResult<()> {
        if let Some((c, _)) = self.store.as_mut() {
            c.commit().await?;
        }
        Ok(())
    }

    /// The engine back (the replay is over).
    pub fn into_engine(self) -> Engine {
        self.engine
    }

    async fn commit_if_due(&mut self) -> StoreResult<()> {
        if let Some((c, _)) = self.store.as_mut()
            && c.due()
        {
            c.commit().await?;
        }
        Ok(())
    }

    fn keep(
        &mut self,
        e: Option<&MarketEvent>,
        out: EngineOutput,
        position: String,
    ) -> Vec<IncidentUpdate> {
        let Some((c, cursor)) = self.store.as_mut() else {
            return out.updates;
        };
        if let Some(e) = e {
            c.note(e);
        }
        let steps = out.updates.clone();
        c.push(out);
        c.set_cursor(cursor.clone(), position);
        steps
    }
}
