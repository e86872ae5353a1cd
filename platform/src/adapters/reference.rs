//! Outside reference prices for protocols other than Hyperliquid: the open core's reference
//! venues (Binance, Coinbase, OKX, …) quoted every few seconds for a protocol's reference
//! coins and merged into its event stream, so its oracle-versus-reference rule has the same
//! outside view as Hyperliquid's. A venue that fails is logged and skipped for that round; the
//! merged stream ends when the protocol's own stream ends (so its pipeline restarts as one).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kamiyo_core_models::{Coin, EventStream, MarketEvent, PriceSource};
use tokio_util::sync::CancellationToken;

/// Reference venues, the coins to quote, and how often.
#[derive(Clone, Default)]
pub struct References {
    sources: Vec<Arc<dyn PriceSource>>,
    coins: Vec<Coin>,
    every: Duration,
}

impl std::fmt::Debug for References {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("References")
            .field(
                "venues",
                &self
                    .sources
                    .iter()
                    .map(|s| s.venue().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("coins", &self.coins)
            .field("every", &self.every)
            .finish()
    }
}

impl References {
    /// `sources` quoted for `coins` every `every`.
    pub fn new(sources: Vec<Arc<dyn PriceSource>>, coins: Vec<Coin>, every: Duration) -> Self {
        Self {
            sources,
            coins,
            every: every.max(Duration::from_millis(100)),
        }
    }

    /// The same venues for other coins.
    pub fn for_coins(&self, coins: Vec<Coin>) -> Self {
        Self {
            coins,
            ..self.clone()
        }
    }

    /// `stream` with the reference quotes merged in; ends when `stream` ends or at `stop`.
    pub fn merge(&self, mut stream: EventStream, stop: CancellationToken) -> EventStream {
        if self.sources.is_empty() || self.coins.is_empty() {
            return stream;
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<MarketEvent>(4096);
        let done = stop.child_token();
        {
            let (tx, done) = (tx.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        () = done.cancelled() => return,
                        e = stream.next() => e,
                    };
                    let Some(e) = next else {
                        // The protocol's stream ended: end the merged one too.
                        done.cancel();
                        return;
                    };
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                for s in &me.sources {
                    let got = tokio::select! {
                        () = done.cancelled() => return,
                        r = s.quotes(&me.coins) => r,
                    };
                    match got {
                        Ok(quotes) => {
                            for q in quotes {
                                if tx.send(MarketEvent::Reference(q)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(venue = %s.venue(), error = %e, "reference quote failed")
                        }
                    }
                }
                tokio::select! {
                    () = done.cancelled() => return,
                    () = tokio::time::sleep(me.every) => {}
                }
            }
        });
        super::poll::channel_stream(rx)
    }
}
