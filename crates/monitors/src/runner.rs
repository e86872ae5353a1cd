//! The tokio runner: drives an [`Engine`] from a market-data stream, ticks it from the clock
//! when the stream is quiet, and hands every non-empty output to the caller. The engine itself
//! stays synchronous and pure; this is the only place in the crate that knows about tasks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kamiyo_core_models::{Clock, EventStream, MarketEvent, StableId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineOutput};

/// An engine output with the event that caused it (for metrics and latency tracking).
#[derive(Debug, Clone)]
pub struct RunnerItem {
    /// What the engine produced.
    pub output: EngineOutput,
    /// The triggering event, when there was one (ticks have none).
    pub event: Option<MarketEvent>,
}

/// Runs `engine` over `stream` until the stream ends or `cancel` fires; ticks every `tick`
/// of wall time with `clock`'s time. Events are forwarded with their outputs when `forward_events`
/// is set (the server stores some of them); otherwise only non-empty outputs are sent.
/// Incident ids received on `forgotten` (closed by an operator) are dropped from the engine.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per binary; the pipeline library (issue 20) replaces it with a context value"
)]
pub async fn run(
    mut engine: Engine,
    mut stream: EventStream,
    clock: Arc<dyn Clock>,
    tick: Duration,
    forward_events: bool,
    tx: mpsc::Sender<RunnerItem>,
    mut forgotten: Option<mpsc::UnboundedReceiver<StableId>>,
    cancel: CancellationToken,
) -> Engine {
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(id) = async {
                match forgotten.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                engine.forget_incident(&id);
            }
            e = stream.next() => {
                let Some(e) = e else { break };
                let output = engine.process(&e);
                if (forward_events || !output.is_empty()) && tx.send(RunnerItem { output, event: forward_events.then_some(e) }).await.is_err() {
                    break;
                }
            }
            _ = timer.tick() => {
                let output = engine.tick(clock.now());
                if !output.is_empty() && tx.send(RunnerItem { output, event: None }).await.is_err() {
                    break;
                }
            }
        }
    }
    engine
}
