//! GMX v2 through its oracle keepers' public API (`https://arbitrum-api.gmxinfra.io`, mirror
//! `gmxinfra2.io`), polled. GMX has no order book: positions open and close at the keepers'
//! signed oracle prices, a long paying the upper (`maxPrice`) and a short the lower
//! (`minPrice`) of each token's pair. So each listed market's index token becomes an asset
//! context whose oracle and mark are the pair's middle and whose impact prices are the pair
//! itself — the spread GMX charges at the door, which widens when the keepers' sources
//! disagree (the venue-specific signal the thin-market detector reads as impact).
//!
//! `GET /tokens` (decimals) and `GET /markets` (which index tokens are listed, under which
//! name) are read first and then every ten context rounds; `GET /prices/tickers` every round.
//! Prices arrive as integers scaled by 10^(30 − token decimals). No public endpoint lists
//! GMX trades or liquidations (they are contract events), and `/markets/info` (open interest,
//! funding) has no recorded answer to test against, so contexts carry zero open interest and
//! funding. No numeric rate limit is published; the default spends 20 requests per 10 s.

use std::collections::HashMap;
use std::time::Duration;

use kamiyo_core_models::{AssetCtx, Coin, Decimal, MarketEvent, Timestamp};
use serde::Deserialize;

use super::poll::{Ask, AskKind, DecodeError, Item, PollConfig, Venue};

const VENUE: &str = "GMX";

/// The defaults: Arbitrum's keepers, contexts every 2 s (the keepers sign about once a second).
pub fn default_config() -> PollConfig {
    PollConfig {
        base_urls: vec!["https://arbitrum-api.gmxinfra.io".into()],
        markets: Vec::new(),
        contexts_every: Duration::from_secs(2),
        trades_every: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        requests_per_10s: 20,
        resume_after: None,
    }
}

#[derive(Deserialize)]
struct Tokens {
    tokens: Vec<Token>,
}

#[derive(Deserialize)]
struct Token {
    address: String,
    decimals: u32,
}

#[derive(Deserialize)]
struct Markets {
    markets: Vec<WireMarket>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMarket {
    name: String,
    index_token: String,
    is_listed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ticker {
    token_address: String,
    min_price: String,
    max_price: String,
    updated_at: i64,
}

/// GMX v2 as a polled venue: the token decimals and listed markets it has read.
#[derive(Debug, Default)]
pub struct Gmx {
    /// Token address (lowercase) → decimals.
    decimals: HashMap<String, u32>,
    /// Index token address (lowercase) → the coin its markets are named by.
    index: HashMap<String, Coin>,
    rounds: u32,
}

fn err(what: &'static str, detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(VENUE, what, detail)
}

/// The coin a market is named by: `ETH/USD [WETH-USDC]` → `ETH`; swap-only markets → none.
pub fn coin_of(name: &str) -> Option<Coin> {
    let (base, _) = name.split_once("/USD")?;
    Coin::new(base.trim()).ok()
}

/// A keeper price: the integer divided by 10^(30 − decimals).
pub fn price(raw: &str, decimals: u32) -> Result<Decimal, DecodeError> {
    let scale = 30u32
        .checked_sub(decimals)
        .ok_or_else(|| err("prices", format!("{decimals} decimals")))?;
    // Up to 40 digits: split into what a 96-bit decimal holds, keeping 12 significant places.
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 60 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("prices", format!("price {raw:?}")));
    }
    let keep = raw.len().min(20);
    let dropped = u32::try_from(raw.len() - keep).unwrap_or(u32::MAX);
    let head: Decimal = raw[..keep]
        .parse()
        .map_err(|e| err("prices", format!("price {raw:?}: {e}")))?;
    // value = head × 10^dropped / 10^scale
    let mut v = head;
    let shift = i64::from(dropped) - i64::from(scale);
    if shift >= 0 {
        for _ in 0..shift {
            v = v
                .checked_mul(Decimal::TEN)
                .ok_or_else(|| err("prices", format!("price {raw:?} too large")))?;
        }
    } else {
        // `head` is an integer (scale 0): moving its point is exact up to 28 places.
        let down = u32::try_from(-shift).unwrap_or(u32::MAX);
        v.set_scale(down.min(28))
            .map_err(|e| err("prices", format!("price {raw:?}: {e}")))?;
        if down > 28 {
            let rest = 10_i128
                .checked_pow(down - 28)
                .ok_or_else(|| err("prices", format!("price {raw:?} too small")))?;
            v /= Decimal::from_i128_with_scale(rest, 0);
        }
    }
    Ok(v.normalize())
}

impl Gmx {
    /// `GET /tokens`.
    pub fn read_tokens(&mut self, body: &str) -> Result<usize, DecodeError> {
        let t: Tokens = serde_json::from_str(body).map_err(|e| err("tokens", e))?;
        self.decimals = t
            .tokens
            .into_iter()
            .map(|t| (t.address.to_ascii_lowercase(), t.decimals))
            .collect();
        Ok(self.decimals.len())
    }

    /// `GET /markets`: the listed markets' index tokens.
    pub fn read_markets(&mut self, body: &str) -> Result<usize, DecodeError> {
        let m: Markets = serde_json::from_str(body).map_err(|e| err("markets", e))?;
        self.index = m
            .markets
            .into_iter()
            .filter(|m| m.is_listed)
            .filter_map(|m| Some((m.index_token.to_ascii_lowercase(), coin_of(&m.name)?)))
            .collect();
        Ok(self.index.len())
    }

    /// `GET /prices/tickers` → one context per listed index token, sorted by coin.
    pub fn decode_tickers(&self, body: &str) -> Result<Vec<AssetCtx>, DecodeError> {
        let tickers: Vec<Ticker> = serde_json::from_str(body).map_err(|e| err("prices", e))?;
        let mut out: Vec<AssetCtx> = Vec::new();
        for t in tickers {
            let addr = t.token_address.to_ascii_lowercase();
            let (Some(coin), Some(&decimals)) = (self.index.get(&addr), self.decimals.get(&addr))
            else {
                continue;
            };
            let (lo, hi) = (
                price(&t.min_price, decimals)?,
                price(&t.max_price, decimals)?,
            );
            if lo <= Decimal::ZERO || hi < lo {
                return Err(err("prices", format!("{coin}: min {lo} max {hi}")));
            }
            let mid = ((lo + hi) / Decimal::TWO).round_sf(12).unwrap_or(lo);
            if out.iter().any(|c| &c.coin == coin) {
                continue;
            }
            out.push(AssetCtx {
                coin: coin.clone(),
                time: Timestamp(t.updated_at),
                oracle_px: mid,
                mark_px: mid,
                mid_px: None,
                open_interest: Decimal::ZERO,
                funding: Decimal::ZERO,
                day_ntl_vlm: Decimal::ZERO,
                prev_day_px: None,
                premium: None,
                impact_pxs: Some([lo, hi]),
            });
        }
        out.sort_by(|a, b| a.coin.cmp(&b.coin));
        Ok(out)
    }
}

impl Venue for Gmx {
    fn name(&self) -> &'static str {
        "gmx"
    }

    fn asks(&self, _cfg: &PollConfig, contexts_due: bool) -> Vec<Ask> {
        let mut out = Vec::new();
        if !contexts_due {
            return out;
        }
        if self.index.is_empty() || self.rounds % 10 == 9 {
            out.push(Ask::new("/tokens", AskKind::Reference("tokens")));
            out.push(Ask::new("/markets", AskKind::Reference("markets")));
        }
        out.push(Ask::new("/prices/tickers", AskKind::Contexts));
        out
    }

    fn decode(&mut self, ask: &Ask, body: &str, _now: Timestamp) -> Result<Vec<Item>, DecodeError> {
        match ask.kind {
            AskKind::Reference("tokens") => self.read_tokens(body).map(|_| Vec::new()),
            AskKind::Reference(_) => self.read_markets(body).map(|_| Vec::new()),
            _ => {
                self.rounds = self.rounds.wrapping_add(1);
                Ok(self
                    .decode_tickers(body)?
                    .into_iter()
                    .map(|c| Item::Event(MarketEvent::AssetCtx(c)))
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeper_prices_scale_by_token_decimals() {
        // APE (18 decimals): 134813365929 / 10^12.
        assert_eq!(
            price("134813365929", 18).unwrap().to_string(),
            "0.134813365929"
        );
        // APT (8 decimals): 22 digits / 10^22.
        assert_eq!(
            price("6080179422913060750000", 8).unwrap().to_string(),
            "0.608017942291306075"
        );
        // BTC (8 decimals) at 100k: 10^5 × 10^22.
        assert_eq!(
            price("1000000000000000000000000000", 8)
                .unwrap()
                .to_string(),
            "100000"
        );
        for bad in ["", "-1", "1.5", "abc"] {
            assert!(price(bad, 18).is_err(), "{bad}");
        }
        assert!(price("1", 31).is_err());
    }
}
