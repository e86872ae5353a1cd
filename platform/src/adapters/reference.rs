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

#[cfg(test)]
mod tests {
    use kamiyo_core_models::{Decimal, ReferenceQuote, SourceError, Timestamp, Trade, Venue};

    use super::*;

    struct Fixed(Venue);

    #[async_trait::async_trait]
    impl PriceSource for Fixed {
        fn venue(&self) -> &Venue {
            &self.0
        }

        async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError> {
            Ok(coins
                .iter()
                .map(|c| ReferenceQuote {
                    venue: self.0.clone(),
                    coin: c.clone(),
                    price: Decimal::ONE_HUNDRED,
                    bid: None,
                    ask: None,
                    time: Timestamp(1),
                })
                .collect())
        }
    }

    fn trade() -> MarketEvent {
        MarketEvent::Trade(Trade {
            coin: Coin::new("BTC").unwrap_or_else(|e| panic!("{e}")),
            side: kamiyo_core_models::Side::Buy,
            px: Decimal::ONE,
            sz: Decimal::ONE,
            time: Timestamp(2),
            tid: 1,
            users: None,
        })
    }

    #[tokio::test]
    async fn quotes_join_the_protocol_stream_and_end_with_it() {
        let venue = Venue::new("binance").unwrap_or_else(|e| panic!("{e}"));
        let refs = References::new(
            vec![Arc::new(Fixed(venue))],
            vec![Coin::new("BTC").unwrap_or_else(|e| panic!("{e}"))],
            Duration::from_millis(100),
        );
        // The protocol's stream: two trades, then it ends after a while.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let merged = refs.merge(
            super::super::poll::channel_stream(rx),
            CancellationToken::new(),
        );
        tx.send(trade()).await.unwrap_or_else(|e| panic!("{e}"));
        tx.send(trade()).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(350)).await;
            drop(tx);
        });
        let all: Vec<MarketEvent> = tokio::time::timeout(Duration::from_secs(5), merged.collect())
            .await
            .unwrap_or_else(|_| panic!("the merged stream did not end with the protocol's"));
        let trades = all
            .iter()
            .filter(|e| matches!(e, MarketEvent::Trade(_)))
            .count();
        let quotes = all
            .iter()
            .filter(|e| matches!(e, MarketEvent::Reference(q) if q.coin.as_str() == "BTC"))
            .count();
        assert_eq!(trades, 2);
        assert!(quotes >= 2, "{quotes} quotes in 350 ms at one per 100 ms");
        // No venues or no coins: the stream is the protocol's own.
        assert!(References::default().sources.is_empty());
    }
}
