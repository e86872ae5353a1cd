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
pub mod stream;
pub mod ticker;

use std::collections::BTreeMap;

use kamiyo_core_models::Coin;

/// Maps Hyperliquid coins to a venue's symbols.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymbolMap(pub BTreeMap<Coin, String>);

/// The perps the default symbol maps cover, in this order (HYPE last: not every venue lists it).
pub const DEFAULT_COINS: [&str; 12] = [
    "BTC", "ETH", "SOL", "ARB", "OP", "AVAX", "POL", "DOGE", "XRP", "LINK", "SUI", "HYPE",
];

impl SymbolMap {
    /// `coins` quoted in `quote` with `sep` between (`BTC` → `BTC-USDT`).
    pub fn quoted(coins: &[&str], sep: &str, quote: &str) -> Self {
        Self(
            coins
                .iter()
                .filter_map(|c| Coin::new(c).ok().map(|k| (k, format!("{c}{sep}{quote}"))))
                .collect(),
        )
    }

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

/// How to reach one reference venue.
#[derive(Debug, Clone)]
pub struct VenueEndpoints {
    /// REST base URL.
    pub rest_url: String,
    /// WebSocket URL, for the venues that push tickers (OKX, Bybit, Kraken, Gate, MEXC; KuCoin
    /// hands out its URL over REST, so any value turns its socket on). `None`: REST polling only.
    pub ws_url: Option<String>,
    /// HTTP and connect timeout.
    pub timeout: std::time::Duration,
}

/// A source for the reference venue named `venue` (one of [`KNOWN_VENUES`], if its cargo
/// feature is on), with the venue's default symbols: its socket with REST as the fallback where
/// `ws_url` is set and the venue has one, else REST polling. Sockets run on the current tokio
/// runtime until `cancel`. `None` for a venue this build does not have.
pub fn reference_source(
    venue: &str,
    ep: &VenueEndpoints,
    clock: std::sync::Arc<dyn kamiyo_core_models::Clock>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<
    Result<std::sync::Arc<dyn kamiyo_core_models::PriceSource>, kamiyo_core_models::SourceError>,
> {
    use kamiyo_core_models::{PriceSource, SourceError};
    use std::sync::Arc;
    use ticker::TickerSource;
    type Out = Result<Arc<dyn PriceSource>, SourceError>;
    fn polled<A: ticker::TickerApi>(
        api: A,
        ep: &VenueEndpoints,
        symbols: SymbolMap,
        clock: Arc<dyn kamiyo_core_models::Clock>,
    ) -> Out {
        TickerSource::new(api, &ep.rest_url, symbols, clock, ep.timeout)
            .map(|s| Arc::new(s) as Arc<dyn PriceSource>)
    }
    #[allow(dead_code, reason = "unused when every socket venue's feature is off")]
    fn streamed<A: ticker::TickerApi + stream::TickerStream + Clone>(
        api: A,
        ep: &VenueEndpoints,
        symbols: SymbolMap,
        clock: Arc<dyn kamiyo_core_models::Clock>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Out {
        let Some(ws) = &ep.ws_url else {
            return polled(api, ep, symbols, clock);
        };
        let rest = TickerSource::new(
            api.clone(),
            &ep.rest_url,
            symbols.clone(),
            clock.clone(),
            ep.timeout,
        )?;
        let mut cfg = stream::StreamConfig::new(ws);
        cfg.connect_timeout = ep.timeout;
        stream::StreamSource::spawn(
            api,
            rest,
            symbols,
            &ep.rest_url,
            cfg,
            clock,
            cancel.child_token(),
        )
        .map(|s| Arc::new(s) as Arc<dyn PriceSource>)
    }
    let _ = cancel;
    Some(match venue {
        #[cfg(feature = "binance")]
        "binance" => polled(binance::Binance, ep, binance::default_symbols(), clock),
        #[cfg(feature = "okx")]
        "okx" => streamed(okx::Okx, ep, okx::default_symbols(), clock, cancel),
        #[cfg(feature = "bybit")]
        "bybit" => streamed(bybit::Bybit, ep, bybit::default_symbols(), clock, cancel),
        #[cfg(feature = "kraken")]
        "kraken" => streamed(kraken::Kraken, ep, kraken::default_symbols(), clock, cancel),
        #[cfg(feature = "kucoin")]
        "kucoin" => streamed(kucoin::Kucoin, ep, kucoin::default_symbols(), clock, cancel),
        #[cfg(feature = "gate")]
        "gate" => streamed(gate::Gate, ep, gate::default_symbols(), clock, cancel),
        #[cfg(feature = "mexc")]
        "mexc" => streamed(mexc::Mexc, ep, mexc::default_symbols(), clock, cancel),
        #[cfg(feature = "coinbase")]
        "coinbase" => polled(coinbase::Coinbase, ep, coinbase::default_symbols(), clock),
        _ => return None,
    })
}
