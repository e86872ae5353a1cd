//! PagerDuty Events API v2 (`POST /v2/enqueue`): an incident's steps trigger one PagerDuty
//! alert keyed by the incident id (`dedup_key`), so escalations update it instead of paging
//! again, and the incident's resolution resolves it. Severities map to PagerDuty's four
//! (critical → critical, high → error, medium → warning, low and info → info). The summary is
//! at most 1,024 characters; a 202 answer carries the dedup key back.

use async_trait::async_trait;
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError, Severity};
use serde_json::{Map, Value, json};

use crate::Secret;
use crate::message::{Message, truncate};

/// The public Events API v2 endpoint (EU accounts: `https://events.eu.pagerduty.com/v2/enqueue`).
pub const API_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A PagerDuty service integration (Events API v2).
#[derive(Debug)]
pub struct PagerDuty {
    name: String,
    url: String,
    routing_key: Secret,
    http: reqwest::Client,
}

/// PagerDuty's severity for ours.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

impl PagerDuty {
    /// `url`: the enqueue endpoint; `routing_key`: the integration key of the service.
    pub fn new(name: &str, url: &str, routing_key: Secret) -> Result<Self, NotifyError> {
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
            routing_key,
            http: crate::http::client()?,
        })
    }

    /// The event sent for `m`: `trigger` (with the payload) for every step but the
    /// resolution, which sends `resolve` for the same `dedup_key`.
    pub fn body(&self, m: &Message) -> Value {
        let key = self.routing_key.expose();
        if m.change == "Resolved" {
            return json!({
                "routing_key": key,
                "event_action": "resolve",
                "dedup_key": m.incident_id,
            });
        }
        let mut details = Map::new();
        for (k, v) in &m.evidence {
            details.insert(k.clone(), Value::String(v.clone()));
        }
        details.insert("what to check".into(), json!(m.what_to_check));
        if !m.related.is_empty() {
            details.insert("related incidents".into(), json!(m.related));
        }
        details.insert(
            "lifecycle".into(),
            json!(format!("{} ({})", m.change, m.status)),
        );
        details.insert("first seen".into(), json!(m.first_seen));
        details.insert("detections".into(), json!(m.detections));
        details.insert("incident key".into(), json!(m.incident_key));
        details.insert("alert id".into(), json!(m.idempotency_key));
        if let Some(l) = &m.logged {
            details.insert("event log".into(), json!(l));
        }
        let mut links: Vec<Value> = m
            .link
            .iter()
            .map(|l| json!({"href": l, "text": format!("Open in {}", m.brand)}))
            .collect();
        links.extend(
            m.links
                .iter()
                .map(|(label, url)| json!({"href": url, "text": format!("Explorer: {label}")})),
        );
        let mut body = json!({
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": m.incident_id,
            "payload": {
                "summary": truncate(&m.headline, 1024),
                "source": format!("hyperliquid/{}", m.asset.as_deref().unwrap_or("market")),
                "severity": severity(m.severity),
                "timestamp": m.time,
                "component": m.asset.as_deref().unwrap_or("hyperliquid"),
                "group": m.threat_type,
                "class": m.threat_type,
                "custom_details": details,
            },
            "client": m.brand,
            "links": links,
        });
        if let Some(l) = &m.link {
            body["client_url"] = json!(l);
        }
        body
    }
}

#[async_trait]
impl Notifier for PagerDuty {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let req = self
            .http
            .post(&self.url)
            .json(&self.body(&Message::of(alert)));
        crate::http::send(req, |_, b| {
            serde_json::from_str::<Value>(b)
                .ok()
                .and_then(|v| v["dedup_key"].as_str().map(str::to_owned))
        })
        .await
    }
}
