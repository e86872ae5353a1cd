//! What the HTTP channels share: one client, and the mapping of a response to a receipt or a
//! [`NotifyError`] (429 → wait for `Retry-After`; other 4xx → permanent; 5xx, timeouts and
//! connection errors → retry).

use std::time::Duration;

use kamiyo_core_models::{DeliveryReceipt, NotifyError};

/// Time allowed for one delivery attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Installs rustls' ring provider for the process (idempotent); every TLS user here calls it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client every channel uses (rustls).
pub fn client() -> Result<reqwest::Client, NotifyError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("kamiyo/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NotifyError::Permanent(format!("cannot build the HTTP client: {e}")))
}

/// Milliseconds to wait from a `Retry-After` header (seconds, possibly fractional), or from a
/// JSON body's `retry_after` (Discord: seconds as a float; Telegram: `parameters.retry_after`).
pub fn retry_after_ms(headers: &reqwest::header::HeaderMap, body: &str) -> u64 {
    let from_header = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let from_body = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("retry_after")
                .or_else(|| v.get("parameters").and_then(|p| p.get("retry_after")))
                .and_then(serde_json::Value::as_f64)
        });
    let secs = from_header.or(from_body).unwrap_or(1.0);
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).ceil().min(3_600_000.0) as u64
    } else {
        1000
    }
}

/// Sends `req` and classifies the outcome. `ok` decides whether a 2xx body is a success
/// (Telegram answers 200 with `"ok": false` on some errors).
pub async fn send(
    req: reqwest::RequestBuilder,
    remote_id: impl Fn(&reqwest::header::HeaderMap, &str) -> Option<String>,
) -> Result<DeliveryReceipt, NotifyError> {
    let res = req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        NotifyError::Transient(format!("{what}: {}", without_url(&e)))
    })?;
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    let detail = || {
        let b = crate::message::truncate(body.trim(), 300);
        if b.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {}: {b}", status.as_u16())
        }
    };
    if status.is_success() {
        return Ok(DeliveryReceipt {
            status: Some(status.as_u16()),
            remote_id: remote_id(&headers, &body),
        });
    }
    if status.as_u16() == 429 {
        return Err(NotifyError::RateLimited {
            retry_after_ms: retry_after_ms(&headers, &body),
        });
    }
    if status.is_client_error() && status.as_u16() != 408 {
        return Err(NotifyError::Permanent(detail()));
    }
    Err(NotifyError::Transient(detail()))
}

/// reqwest's error text without the URL (webhook URLs carry their secret token).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// A named destination reached by posting to a secret URL (Discord, Slack).
#[derive(Debug)]
pub struct Target {
    /// Channel name.
    pub name: String,
    /// The URL (it carries the destination's token).
    pub url: crate::Secret,
    /// The client.
    pub http: reqwest::Client,
}

impl Target {
    /// A target posting to `url`.
    pub fn new(name: &str, url: crate::Secret) -> Result<Self, NotifyError> {
        Ok(Self {
            name: name.to_owned(),
            url,
            http: client()?,
        })
    }
}
