//! Generic webhook: `POST` of a JSON document describing the incident step, signed with
//! HMAC-SHA256 so the receiver can check it came from this kamiyo and is recent.
//!
//! Headers:
//! - `Kamiyo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
//! - `Kamiyo-Idempotency-Key: alr_…` (the same on every retry of the same alert)
//! - `Kamiyo-Event: incident.opened` (`.escalated`, `.updated`, `.resolved`, `test`)
//!
//! A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares
//! in constant time, rejects timestamps more than 5 minutes away from its clock, and drops a
//! repeated idempotency key. [`verify`] does exactly that for Rust receivers.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::Secret;
use crate::message::Message;

/// Signature header.
pub const SIGNATURE_HEADER: &str = "Kamiyo-Signature";
/// Idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "Kamiyo-Idempotency-Key";
/// Event-type header.
pub const EVENT_HEADER: &str = "Kamiyo-Event";
/// Largest clock difference [`verify`] accepts by default, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// A signed generic webhook.
#[derive(Debug)]
pub struct Webhook {
    name: String,
    url: Secret,
    secret: Secret,
    http: reqwest::Client,
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length: this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// `v1` signature of `body` at unix time `t`: hex HMAC-SHA256 of `"<t>.<body>"`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    mac(secret, t, body).map_or_else(String::new, |m| hex(&m.finalize().into_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is missing parts.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("timestamp outside the tolerance")]
    Stale,
    /// No `v1` signature matched.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks a `Kamiyo-Signature` header against the raw body, at unix time `now`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now - t).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    for s in sigs {
        let (Some(given), Some(m)) = (unhex(s), mac(secret, t, body)) else {
            continue;
        };
        // `verify_slice` compares in constant time.
        if m.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::Mismatch)
}

impl Webhook {
    /// A webhook to `url`, signed with `secret` (empty: unsigned, which `config check` warns
    /// about).
    pub fn new(name: &str, url: Secret, secret: Secret) -> Result<Self, NotifyError> {
        Ok(Self {
            name: name.to_owned(),
            url,
            secret,
            http: crate::http::client()?,
        })
    }

    /// The event type of `m` (`incident.opened` …, or `test`).
    pub fn event_type(m: &Message) -> String {
        if m.is_test {
            "test".into()
        } else {
            format!(
                "incident.{}",
                m.change.to_ascii_lowercase().replace(' ', "_")
            )
        }
    }

    /// The JSON document (stable field names; amounts as strings, like the API). `brand` is
    /// the name the alert is sent under, as in every other channel's text: `kamiyo`, or a
    /// white-labelling host's brand.
    pub fn body(alert: &Alert) -> Value {
        let m = Message::of(alert);
        json!({
            "id": alert.idempotency_key,
            "type": Self::event_type(&m),
            "test": alert.is_test,
            "brand": m.brand,
            "headline": m.headline,
            "what_to_check": m.what_to_check,
            "explorer_links": m.links.iter().map(|(label, url)| json!({"address": label, "url": url})).collect::<Vec<_>>(),
            "dashboard_url": alert.dashboard_url,
            "event": alert.update.event,
            "incident": alert.update.incident,
            "related": alert.related,
            "log": alert.log,
        })
    }
}

#[async_trait]
impl Notifier for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let doc = Self::body(alert);
        let event = doc["type"].as_str().unwrap_or("incident").to_owned();
        let body = serde_json::to_vec(&doc)
            .map_err(|e| NotifyError::Permanent(format!("cannot encode the body: {e}")))?;
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut req = self
            .http
            .post(self.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, alert.idempotency_key.as_str())
            .header(EVENT_HEADER, event);
        if !self.secret.expose().is_empty() {
            let sig = sign(self.secret.expose().as_bytes(), t, &body);
            req = req.header(SIGNATURE_HEADER, format!("t={t},v1={sig}"));
        }
        crate::http::send(req.body(body), |_, _| None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let body = br#"{"id":"alr_1"}"#;
        let sig = sign(b"s3cret", 1_700_000_000, body);
        let header = format!("t=1700000000,v1={sig}");
        assert_eq!(verify(b"s3cret", &header, body, 1_700_000_100, 300), Ok(()));
        assert_eq!(
            verify(
                b"s3cret",
                &header,
                b"{\"id\":\"alr_2\"}",
                1_700_000_100,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, body, 1_700_000_100, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", &header, body, 1_700_001_000, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(b"s3cret", "v1=abc", body, 1_700_000_000, 300),
            Err(VerifyError::Malformed)
        );
        // A known vector, so receivers in other languages can check their implementation:
        // HMAC-SHA256("s3cret", "1700000000.{\"id\":\"alr_1\"}").
        // (computed independently with Python's hmac module).
        assert_eq!(
            sig,
            "295b3908d5f707166723e2139fca7b74d7f7445eeabb53eb2c846505fe7915a2"
        );
    }
}
