//! Reference venues behind the [`PriceSource`](kamiyo_core_models::PriceSource) trait. Each
//! venue is one small module (and one cargo feature) describing its public ticker API as a
//! [`ticker::TickerApi`] — published rate limit, requests, a pure decoder — and one client,
//! [`ticker::TickerSource`], polls them all the same way. The oracle's venues (Binance, OKX,
//! Bybit, Kraken, KuCoin, Gate, MEXC) and Coinbase, an independent USD reference.

#[cfg(feature = "binance")]
pub mod binance;
#[cfg(feature = "bybit")]
pub mod bybit;
#[cfg(feature = "coinbase")]
pub mod coinbase;
#[cfg(feature = "gate")]
pub mod gate;
#[cfg(feature = "kraken")]
pub mod kraken;
#[cfg(feature = "kucoin")]
pub mod kucoin;
#[cfg(feature = "mexc")]
pub mod mexc;
#[cfg(feature = "okx")]
pub mod okx;
pub mod ticker;

use std::collections::BTreeMap;

use kamiyo_core_models::Coin;

/// Maps Hyperliquid coins to a venue's symbols.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymbolMap(pub BTreeMap<Coin, String>);

impl SymbolMap {
    /// Builds a map from `(coin, symbol)` pairs, skipping invalid coin names.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .filter_map(|(c, s)| Coin::new(c).ok().map(|c| (c, (*s).to_owned())))
                .collect(),
        )
    }

    /// The venue symbol of `coin`.
    pub fn symbol(&self, coin: &Coin) -> Option<&str> {
        self.0.get(coin).map(String::as_str)
    }

    /// The coin of a venue symbol.
    pub fn coin(&self, symbol: &str) -> Option<&Coin> {
        self.0
            .iter()
            .find(|(_, s)| s.as_str() == symbol)
            .map(|(c, _)| c)
    }
}

/// The mid of a bid/ask pair, or the last price when either side is missing or crossed.
pub fn mid_or_last(
    bid: Option<kamiyo_core_models::Decimal>,
    ask: Option<kamiyo_core_models::Decimal>,
    last: Option<kamiyo_core_models::Decimal>,
) -> Option<kamiyo_core_models::Decimal> {
    match (bid, ask) {
        (Some(b), Some(a)) if b > kamiyo_core_models::Decimal::ZERO && a >= b => {
            Some((a + b) / kamiyo_core_models::Decimal::TWO)
        }
        _ => last.filter(|p| *p > kamiyo_core_models::Decimal::ZERO),
    }
}

/// Every reference venue this build knows, oracle inputs first.
pub const KNOWN_VENUES: [&str; 8] = [
    "binance", "okx", "bybit", "kraken", "kucoin", "gate", "mexc", "coinbase",
];

/// A polling source for the reference venue named `venue` (one of [`KNOWN_VENUES`], if its
/// cargo feature is on) against `base_url`, with the venue's default symbols. `None` for a venue
/// this build does not have.
pub fn reference_source(
    venue: &str,
    base_url: &str,
    clock: std::sync::Arc<dyn kamiyo_core_models::Clock>,
    timeout: std::time::Duration,
) -> Option<
    Result<std::sync::Arc<dyn kamiyo_core_models::PriceSource>, kamiyo_core_models::SourceError>,
> {
    use std::sync::Arc;
    use ticker::TickerSource;
    fn boxed<A: ticker::TickerApi>(
        r: Result<TickerSource<A>, kamiyo_core_models::SourceError>,
    ) -> Result<Arc<dyn kamiyo_core_models::PriceSource>, kamiyo_core_models::SourceError> {
        r.map(|s| Arc::new(s) as Arc<dyn kamiyo_core_models::PriceSource>)
    }
    Some(match venue {
        #[cfg(feature = "binance")]
        "binance" => boxed(TickerSource::new(
            binance::Binance,
            base_url,
            binance::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "okx")]
        "okx" => boxed(TickerSource::new(
            okx::Okx,
            base_url,
            okx::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "bybit")]
        "bybit" => boxed(TickerSource::new(
            bybit::Bybit,
            base_url,
            bybit::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "kraken")]
        "kraken" => boxed(TickerSource::new(
            kraken::Kraken,
            base_url,
            kraken::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "kucoin")]
        "kucoin" => boxed(TickerSource::new(
            kucoin::Kucoin,
            base_url,
            kucoin::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "gate")]
        "gate" => boxed(TickerSource::new(
            gate::Gate,
            base_url,
            gate::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "mexc")]
        "mexc" => boxed(TickerSource::new(
            mexc::Mexc,
            base_url,
            mexc::default_symbols(),
            clock,
            timeout,
        )),
        #[cfg(feature = "coinbase")]
        "coinbase" => boxed(TickerSource::new(
            coinbase::Coinbase,
            base_url,
            coinbase::default_symbols(),
            clock,
            timeout,
        )),
        _ => return None,
    })
}
