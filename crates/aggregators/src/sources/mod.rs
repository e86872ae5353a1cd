//! Reference venues behind the [`PriceSource`](kamiyo_core_models::PriceSource) trait. Each
//! venue is one small module (and one cargo feature): a symbol map, a request, and a pure
//! decoder. Adding OKX, Bybit, Kraken, KuCoin, Gate or MEXC is another module of the same shape.

#[cfg(feature = "binance")]
pub mod binance;
#[cfg(feature = "coinbase")]
pub mod coinbase;

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
