//! Prices and reference venues: decimal money, quotes, and the [`PriceSource`] trait that a
//! reference exchange (Binance, Coinbase, or your own venue) implements.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use crate::error::ModelError;
use crate::ids::Coin;
use crate::time::Timestamp;

/// Prices, sizes and USD amounts are exact decimals, never `f64`, on the wire and in storage.
pub type Price = Decimal;

/// A reference venue: `binance`, `coinbase`, `okx` … Lowercase ASCII, at most 32 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Venue(SmolStr);

impl Venue {
    /// Parses a venue name.
    pub fn new(name: &str) -> Result<Self, ModelError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(SmolStr::new(name)))
        } else {
            Err(ModelError::UnknownName {
                kind: "venue",
                value: name.chars().take(40).collect(),
                expected: "a lowercase name such as binance, coinbase, okx",
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Venue {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Venue::new(&s)
    }
}

impl From<Venue> for String {
    fn from(v: Venue) -> Self {
        v.0.to_string()
    }
}

impl FromStr for Venue {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Venue::new(s)
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Venue({})", self.0)
    }
}

/// One price observation of `coin` at a reference venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceQuote {
    /// Where the price comes from.
    pub venue: Venue,
    /// The Hyperliquid coin this quote is a reference for (venue symbols are mapped by adapters).
    pub coin: Coin,
    /// Mid (or last trade) price in USD.
    pub price: Price,
    /// Best bid, where the venue reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<Price>,
    /// Best ask, where the venue reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<Price>,
    /// Observation time (the venue's own timestamp when it sends one, else receipt time).
    pub time: Timestamp,
}

/// Signed deviation of `value` from `reference`, in percent: `(value − reference) / reference × 100`.
///
/// Returns `None` when the reference is not positive.
pub fn deviation_pct(value: Price, reference: Price) -> Option<Decimal> {
    if reference <= Decimal::ZERO {
        return None;
    }
    value
        .checked_sub(reference)?
        .checked_mul(Decimal::ONE_HUNDRED)?
        .checked_div(reference)
}

/// Errors from a market-data or price source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The venue could not be reached or the connection broke.
    #[error("{venue}: transport error: {detail}")]
    Transport {
        /// Venue or feed name.
        venue: String,
        /// What happened.
        detail: String,
    },
    /// The venue answered with an HTTP error status.
    #[error("{venue}: HTTP {status}: {detail}")]
    Status {
        /// Venue or feed name.
        venue: String,
        /// The status code.
        status: u16,
        /// Body excerpt.
        detail: String,
    },
    /// The venue asked us to slow down.
    #[error("{venue}: rate limited; retry after {retry_after_ms} ms")]
    RateLimited {
        /// Venue or feed name.
        venue: String,
        /// How long to wait.
        retry_after_ms: u64,
    },
    /// The body did not match the venue's documented format.
    #[error("{venue}: could not decode {what}: {detail}")]
    Decode {
        /// Venue or feed name.
        venue: String,
        /// Which response or frame.
        what: String,
        /// Decoder message.
        detail: String,
    },
    /// The venue does not list this coin.
    #[error("{venue}: no market for {coin}")]
    UnknownCoin {
        /// Venue name.
        venue: String,
        /// The coin asked for.
        coin: String,
    },
    /// The client-side request budget would be exceeded.
    #[error("{venue}: request budget exhausted; next slot in {wait_ms} ms")]
    BudgetExhausted {
        /// Venue name.
        venue: String,
        /// Wait until a slot frees.
        wait_ms: u64,
    },
}

/// A reference-price venue. Implement this to add OKX, Bybit or your own exchange: the
/// aggregator asks every configured source for quotes, weights them and flags the ones that
/// diverge.
#[async_trait]
pub trait PriceSource: Send + Sync {
    /// The venue's name, used in evidence ("binance diverges by 1.2 %").
    fn venue(&self) -> &Venue;

    /// Current quotes for the requested coins. Coins the venue does not list are omitted
    /// (not an error); a transport or decode failure is an error.
    async fn quotes(&self, coins: &[Coin]) -> Result<Vec<ReferenceQuote>, SourceError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::prelude::FromPrimitive;

    #[test]
    fn deviation_is_signed_percent() {
        let d = deviation_pct(Decimal::from(101), Decimal::from(100)).unwrap();
        assert_eq!(d, Decimal::ONE);
        let d = deviation_pct(Decimal::from(99), Decimal::from(100)).unwrap();
        assert_eq!(d, -Decimal::ONE);
        assert_eq!(deviation_pct(Decimal::ONE, Decimal::ZERO), None);
        let d = deviation_pct(
            Decimal::from_f64(0.0095).unwrap(),
            Decimal::from_f64(0.038).unwrap(),
        )
        .unwrap();
        assert!(d < Decimal::from(-74));
    }

    #[test]
    fn venue_names_are_validated() {
        assert!(Venue::new("binance").is_ok());
        assert!(Venue::new("Binance").is_err());
        assert!(Venue::new("").is_err());
        let v: Venue = serde_json::from_str("\"coinbase\"").unwrap();
        assert_eq!(v.as_str(), "coinbase");
        assert!(serde_json::from_str::<Venue>("\"no spaces\"").is_err());
    }
}
