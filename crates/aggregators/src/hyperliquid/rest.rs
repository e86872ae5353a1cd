//! Hyperliquid `POST /info` client (reqwest over rustls) with the client-side weight budget
//! and typed errors.

use std::sync::Arc;
use std::time::Duration;

use kamiyo_core_models::{
    Address, BookSnapshot, Coin, Fill, LedgerEvent, Mids, PositionSnapshot, SourceError, Timestamp,
    Trade,
};
use serde_json::{Value, json};

use super::budget::{WeightBudget, items_weight, request_weight};
use super::wire::{self, VaultDetails, WireCandle, WireFunding, WireMeta};

/// Largest response body accepted (the biggest real bodies are a few hundred KB).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Page size of time-range requests (`userFillsByTime`, `fundingHistory` …).
pub const PAGE_SIZE: usize = 500;

const VENUE: &str = "hyperliquid";

/// Client of Hyperliquid's info endpoint.
#[derive(Debug, Clone)]
pub struct InfoClient {
    http: reqwest::Client,
    url: String,
    budget: Arc<WeightBudget>,
}

/// Builds the shared HTTP client: rustls, timeouts, a user agent naming us.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, SourceError> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "kamiyo/",
            env!("CARGO_PKG_VERSION"),
            " (+https://kamiyo.ai)"
        ))
        .build()
        .map_err(|e| SourceError::Transport {
            venue: VENUE.into(),
            detail: e.to_string(),
        })
}

/// Maps a reqwest error to a source error.
pub(crate) fn transport(venue: &str, e: &reqwest::Error) -> SourceError {
    let mut detail = e.to_string();
    if let Some(src) = std::error::Error::source(e) {
        detail.push_str(": ");
        detail.push_str(&src.to_string());
    }
    SourceError::Transport {
        venue: venue.into(),
        detail,
    }
}

/// Sends `req`, enforces status and size, and returns the body text.
pub(crate) async fn send_text(
    venue: &str,
    req: reqwest::RequestBuilder,
) -> Result<String, SourceError> {
    let resp = req.send().await.map_err(|e| transport(venue, &e))?;
    let status = resp.status();
    if status.as_u16() == 429 {
        let retry_after_ms = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(1_000, |s| s.saturating_mul(1000));
        return Err(SourceError::RateLimited {
            venue: venue.into(),
            retry_after_ms,
        });
    }
    if let Some(len) = resp.content_length()
        && len > MAX_BODY_BYTES as u64
    {
        return Err(SourceError::Decode {
            venue: venue.into(),
            what: "response".into(),
            detail: format!("body of {len} bytes exceeds the limit"),
        });
    }
    let bytes = resp.bytes().await.map_err(|e| transport(venue, &e))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(SourceError::Decode {
            venue: venue.into(),
            what: "response".into(),
            detail: "body exceeds the limit".into(),
        });
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !status.is_success() {
        return Err(SourceError::Status {
            venue: venue.into(),
            status: status.as_u16(),
            detail: text.chars().take(300).collect(),
        });
    }
    Ok(text)
}

impl InfoClient {
    /// A client of `base_url` (`https://api.hyperliquid.xyz`, or a loopback simulator).
    pub fn new(
        base_url: &str,
        budget: Arc<WeightBudget>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            http: http_client(timeout)?,
            url: format!("{}/info", base_url.trim_end_matches('/')),
            budget,
        })
    }

    /// The budget this client spends.
    pub fn budget(&self) -> &Arc<WeightBudget> {
        &self.budget
    }

    /// Posts a raw request body and returns the response text (the building block of every
    /// typed call; also used by tests and tools).
    pub async fn post_raw(&self, body: &Value) -> Result<String, SourceError> {
        let rtype = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        self.budget
            .acquire(request_weight(rtype))
            .await
            .map_err(|wait_ms| SourceError::BudgetExhausted {
                venue: VENUE.into(),
                wait_ms,
            })?;
        send_text(VENUE, self.http.post(&self.url).json(body)).await
    }

    fn charge_items(&self, rtype: &str, n: usize) {
        self.budget.charge(items_weight(rtype, n));
    }

    /// `meta`.
    pub async fn meta(&self) -> Result<WireMeta, SourceError> {
        let body = self.post_raw(&json!({"type": "meta"})).await?;
        wire::decode_meta(&body).map_err(|e| e.into_source(VENUE))
    }

    /// `metaAndAssetCtxs`: the universe and every asset's context at `now`.
    pub async fn meta_and_asset_ctxs(
        &self,
        now: Timestamp,
    ) -> Result<(WireMeta, Vec<kamiyo_core_models::AssetCtx>), SourceError> {
        let body = self.post_raw(&json!({"type": "metaAndAssetCtxs"})).await?;
        wire::decode_meta_and_asset_ctxs(&body, now).map_err(|e| e.into_source(VENUE))
    }

    /// `allMids`.
    pub async fn all_mids(&self, now: Timestamp) -> Result<Mids, SourceError> {
        let body = self.post_raw(&json!({"type": "allMids"})).await?;
        wire::decode_all_mids(&body, now).map_err(|e| e.into_source(VENUE))
    }

    /// `vaultDetails` (`None` when the address is not a vault).
    pub async fn vault_details(
        &self,
        vault: Address,
        now: Timestamp,
    ) -> Result<Option<VaultDetails>, SourceError> {
        let body = self
            .post_raw(&json!({"type": "vaultDetails", "vaultAddress": vault}))
            .await?;
        wire::decode_vault_details(&body, now).map_err(|e| e.into_source(VENUE))
    }

    /// `clearinghouseState` of `user`.
    pub async fn clearinghouse_state(
        &self,
        user: Address,
        now: Timestamp,
    ) -> Result<PositionSnapshot, SourceError> {
        let body = self
            .post_raw(&json!({"type": "clearinghouseState", "user": user}))
            .await?;
        wire::decode_clearinghouse_state(&body, user, now).map_err(|e| e.into_source(VENUE))
    }

    /// `userFills` (the 2000 most recent).
    pub async fn user_fills(&self, user: Address) -> Result<Vec<Fill>, SourceError> {
        let body = self
            .post_raw(&json!({"type": "userFills", "user": user}))
            .await?;
        let fills = wire::decode_user_fills(&body, user).map_err(|e| e.into_source(VENUE))?;
        self.charge_items("userFills", fills.len());
        Ok(fills)
    }

    /// `userFillsByTime` from `start`, following pages of 500 until the range is exhausted
    /// (at most `max_pages`). Overlapping page edges are returned twice; callers dedup.
    pub async fn user_fills_by_time(
        &self,
        user: Address,
        start: Timestamp,
        end: Option<Timestamp>,
        max_pages: usize,
    ) -> Result<Vec<Fill>, SourceError> {
        let mut out = Vec::new();
        let mut from = start;
        for _ in 0..max_pages.max(1) {
            let mut req = json!({"type": "userFillsByTime", "user": user, "startTime": from.0});
            if let Some(e) = end {
                req["endTime"] = json!(e.0);
            }
            let body = self.post_raw(&req).await?;
            let page = wire::decode_user_fills(&body, user).map_err(|e| e.into_source(VENUE))?;
            self.charge_items("userFillsByTime", page.len());
            let full = page.len() >= PAGE_SIZE;
            let last = page.iter().map(|f| f.time).max();
            out.extend(page);
            match last {
                Some(t) if full && t > from => from = t,
                _ => break,
            }
        }
        Ok(out)
    }

    /// `candleSnapshot`.
    pub async fn candle_snapshot(
        &self,
        coin: &Coin,
        interval: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<WireCandle>, SourceError> {
        let body = self
            .post_raw(&json!({"type": "candleSnapshot", "req": {"coin": coin, "interval": interval, "startTime": start.0, "endTime": end.0}}))
            .await?;
        let c = wire::decode_candles(&body).map_err(|e| e.into_source(VENUE))?;
        self.charge_items("candleSnapshot", c.len());
        Ok(c)
    }

    /// `fundingHistory`.
    pub async fn funding_history(
        &self,
        coin: &Coin,
        start: Timestamp,
        end: Option<Timestamp>,
    ) -> Result<Vec<WireFunding>, SourceError> {
        let mut req = json!({"type": "fundingHistory", "coin": coin, "startTime": start.0});
        if let Some(e) = end {
            req["endTime"] = json!(e.0);
        }
        let body = self.post_raw(&req).await?;
        let f = wire::decode_funding_history(&body).map_err(|e| e.into_source(VENUE))?;
        self.charge_items("fundingHistory", f.len());
        Ok(f)
    }

    /// `l2Book`.
    pub async fn l2_book(&self, coin: &Coin) -> Result<Option<BookSnapshot>, SourceError> {
        let body = self
            .post_raw(&json!({"type": "l2Book", "coin": coin}))
            .await?;
        wire::decode_l2_book(&body).map_err(|e| e.into_source(VENUE))
    }

    /// `perpsAtOpenInterestCap`.
    pub async fn perps_at_oi_cap(&self) -> Result<Vec<Coin>, SourceError> {
        let body = self
            .post_raw(&json!({"type": "perpsAtOpenInterestCap"}))
            .await?;
        wire::decode_oi_cap(&body).map_err(|e| e.into_source(VENUE))
    }

    /// `recentTrades` of `coin`.
    pub async fn recent_trades(&self, coin: &Coin) -> Result<Vec<Trade>, SourceError> {
        let body = self
            .post_raw(&json!({"type": "recentTrades", "coin": coin}))
            .await?;
        let t = wire::decode_recent_trades(&body).map_err(|e| e.into_source(VENUE))?;
        self.charge_items("recentTrades", t.len());
        Ok(t)
    }

    /// `userNonFundingLedgerUpdates` of `user` since `start`.
    pub async fn ledger_updates(
        &self,
        user: Address,
        start: Timestamp,
    ) -> Result<Vec<LedgerEvent>, SourceError> {
        let body = self
            .post_raw(
                &json!({"type": "userNonFundingLedgerUpdates", "user": user, "startTime": start.0}),
            )
            .await?;
        wire::decode_ledger_updates(&body, user).map_err(|e| e.into_source(VENUE))
    }
}
