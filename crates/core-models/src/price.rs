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

/// [`deviation_pct`] rounded to 4 decimals (half to even) — the form detectors compare with
/// thresholds and report. Identical to `deviation_pct(value, reference)?.round_dp(4)`, value
/// and scale, but for the common case (prices below 10^15 in their common scale, deviations
/// under 10,000 %, an inexact quotient) computed in 128-bit integers instead of a 96-bit
/// decimal division; this runs for every asset context, several times.
pub fn deviation_pct_4dp(value: Price, reference: Price) -> Option<Decimal> {
    if reference <= Decimal::ZERO {
        return None;
    }
    if let Some(d) = deviation_pct_4dp_int(value, reference) {
        return Some(d);
    }
    deviation_pct(value, reference).map(|d| d.round_dp(4))
}

/// The integer path of [`deviation_pct_4dp`]; `None` where it would not be exactly the
/// decimal result (operands too large, an exact quotient whose scale the decimal division
/// chooses, a deviation beyond 10,000 %).
fn deviation_pct_4dp_int(value: Decimal, reference: Decimal) -> Option<Decimal> {
    const LIMIT: i128 = 1_000_000_000_000_000;
    let scale = value.scale().max(reference.scale());
    let a = value
        .mantissa()
        .checked_mul(10i128.checked_pow(scale - value.scale())?)?;
    let b = reference
        .mantissa()
        .checked_mul(10i128.checked_pow(scale - reference.scale())?)?;
    if a.abs() >= LIMIT || b >= LIMIT || b <= 0 {
        return None;
    }
    if a == b {
        return Some(Decimal::ZERO);
    }
    // (a − b) / b × 100, in units of 10^-4, rounded half to even. Below 10^15 the quotient
    // is at least 1 / (2·10^15) away from any rounding midpoint it is not on, far beyond the
    // 28 digits of the decimal division, so both round the same way.
    let n = (a - b) * 1_000_000;
    let (q, r) = (n / b, n % b);
    if r == 0 {
        return None;
    }
    let twice = 2 * r.abs();
    let q = if twice > b || (twice == b && q % 2 != 0) {
        q + n.signum()
    } else {
        q
    };
    if q.abs() >= 100_000_000 {
        return None;
    }
    Decimal::try_from_i128_with_scale(q, 4).ok()
}

/// Orders two decimals like `Decimal::cmp`, but when their scales differ (a deviation with 4
/// decimals against a threshold with 1) aligns the mantissas in 128-bit integers instead of
/// rescaling a 96-bit buffer; falls back to `Decimal::cmp` if the alignment would overflow.
pub fn cmp_decimal(a: &Decimal, b: &Decimal) -> std::cmp::Ordering {
    let (sa, sb) = (a.scale(), b.scale());
    if sa == sb {
        return a.cmp(b);
    }
    let align = |m: i128, by: u32| 10i128.checked_pow(by).and_then(|p| m.checked_mul(p));
    let aligned = if sa < sb {
        align(a.mantissa(), sb - sa).map(|x| (x, b.mantissa()))
    } else {
        align(b.mantissa(), sa - sb).map(|y| (a.mantissa(), y))
    };
    match aligned {
        Some((x, y)) => x.cmp(&y),
        None => a.cmp(b),
    }
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

    /// The definition `deviation_pct_4dp` must reproduce, value and text.
    fn dp4_reference(v: Decimal, r: Decimal) -> Option<String> {
        deviation_pct(v, r).map(|d| d.round_dp(4).to_string())
    }

    #[test]
    fn deviation_4dp_matches_the_decimal_definition_on_edge_cases() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        for (v, r) in [
            ("101", "100"),
            ("100", "100"),
            ("100.00", "100.0"),
            ("104585", "104544.6"),
            ("1.5", "1"),
            ("99.5", "100"),
            ("100.5", "100.00"),
            ("100.00005", "100"),
            ("99.99995", "100"),
            ("1.000015", "1"),
            ("0.999985", "1"),
            ("0.0000123", "0.0000122"),
            ("1000000", "0.001"),
            ("0", "5"),
            ("-3", "5"),
            ("79228162514264337593543950335", "1"),
            ("1", "79228162514264337593543950335"),
        ] {
            assert_eq!(
                deviation_pct_4dp(d(v), d(r)).map(|x| x.to_string()),
                dp4_reference(d(v), d(r)),
                "{v} vs {r}"
            );
        }
        assert_eq!(deviation_pct_4dp(d("1"), d("0")), None);
        assert_eq!(deviation_pct_4dp(d("1"), d("-1")), None);
    }

    proptest::proptest! {
        #[test]
        fn cmp_decimal_orders_like_decimal(am: i64, asc in 0u32..29, bm: i64, bsc in 0u32..29, big: bool) {
            let a = if big { Decimal::MAX - Decimal::new(am & 0xffff, 0) } else { Decimal::new(am, asc) };
            let b = Decimal::new(bm, bsc);
            proptest::prop_assert_eq!(cmp_decimal(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(cmp_decimal(&b, &a), b.cmp(&a));
            let c = b.round_dp(asc.min(bsc));
            proptest::prop_assert_eq!(cmp_decimal(&c, &b), c.cmp(&b));
        }

        #[test]
        fn deviation_4dp_matches_the_decimal_definition(
            vm in -10_000_000_000_000i64..10_000_000_000_000, vs in 0u32..12,
            rm in 1i64..10_000_000_000_000, rs in 0u32..12,
            near in proptest::bool::ANY, bp in -20_000i64..20_000,
        ) {
            let r = Decimal::new(rm, rs);
            // Half the cases near the reference (real deviations are small), half anywhere.
            let v = if near {
                (r * Decimal::new(1_000_000 + bp, 6)).round_dp(vs.max(rs))
            } else {
                Decimal::new(vm, vs)
            };
            proptest::prop_assert_eq!(
                deviation_pct_4dp(v, r).map(|x| x.to_string()),
                dp4_reference(v, r)
            );
        }
    }
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
