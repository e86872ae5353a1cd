//! Coinbase Exchange: `GET /products/{BASE-USD}/ticker` per coin (concurrently) gives bid, ask
//! and last trade; the quote is the mid. Coinbase quotes in USD, so it is an independent check
//! of the USDT-based venues.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use kamiyo_core_models::{Clock, Coin, Decimal, PriceSource, ReferenceQuote, SourceError, Venue};
use serde::Deserialize;

use super::{SymbolMap, mid_or_last};
use crate::hyperliquid::num::opt_dec;
use crate::hyperliquid::rest::{http_client, send_text};

/// Default products.
pub fn default_symbols() -> SymbolMap {
    SymbolMap::from_pairs(&[
        ("BTC", "BTC-USD"),
        ("ETH", "ETH-USD"),
        ("SOL", "SOL-USD"),
        ("ARB", "ARB-USD"),
        ("OP", "OP-USD"),
        ("AVAX", "AVAX-USD"),
        ("POL", "POL-USD"),
        ("DOGE", "DOGE-USD"),
        ("XRP", "XRP-USD"),
        ("LINK", "LINK-USD"),
        ("SUI", "SUI-USD"),
    ])
}

/// `products/{id}/ticker`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ticker {
    /// Best ask.
    #[serde(deserialize_with = "opt_dec", default)]
    pub ask: Option<Decimal>,
    /// Best bid.
    #[serde(deserialize_with = "opt_dec", default)]
    pub bid: Option<Decimal>,
    /// Last trade price.
    #[serde(deserialize_with = "opt_dec", default)]
    pub price: Option<Decimal>,
    /// Last trade time (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
}

/// Decodes a ticker body.
pub fn decode_ticker(body: &str) -> Result<Ticker, SourceError> {
    serde_json::from_str(body).map_err(|e| SourceError::Decode {
        venue: "coinbase".into(),
        what: "products/ticker".into(),
        detail: e.to_string().chars().take(300).collect(),
    })
}

/// Coinbase as a reference venue.
#[derive(Debug, Clone)]
pub struct CoinbaseSource {
    venue: Venue,
    http: reqwest::Client,
    base_url: String,
    symbols: SymbolMap,
    clock: Arc<dyn Clock>,
}

impl CoinbaseSource {
    /// A source against `base_url` (`https://api.exchange.coinbase.com` or a loopback simulator).
    pub fn new(
        base_url: &str,
        symbols: SymbolMap,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            venue: Venue::new("coinbase").map_err(|e| SourceError::Transport {
                venue: "coinbase".into(),
                detail: e.to_string(),
            })?,
            http: http_client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            symbols,
            clock,
        })
    }

    async fn one(&self, coin: &Coin, product: &str) -> Result<Option<ReferenceQuote>, SourceError> {
        let body = send_text(
            "coinbase",
            self.http
                .get(format!("{}/products/{product}/ticker", self.base_url)),
        )
        .await;
        let body = match body {
            Err(SourceError::Status { status: 404, .. }) => return Ok(None),
            other => other?,
        };
        let t = decode_ticker(&body)?;
        Ok(
            mid_or_last(t.bid, t.ask, t.price).map(|price| ReferenceQuote {
                venue: self.venue.clone(),
                coin: coin.clone(),
                price,
                bid: t.bid,
                ask: t.ask,
                time: self.clock.now(),
            }),
        )
    }
}

#[async_trait]
impl PriceSource for CoinbaseSource {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError> {
        let jobs: Vec<_> = coins
            .iter()
            .filter_map(|c| self.symbols.symbol(c).map(|s| self.one(c, s)))
            .collect();
        let mut out = Vec::new();
        let mut first_err = None;
        for r in join_all(jobs).await {
            match r {
                Ok(Some(q)) => out.push(q),
                Ok(None) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (out.is_empty(), first_err) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }
}
