//! Opsgenie Alert API v2 (`Authorization: GenieKey <key>`): an incident is one Opsgenie alert
//! whose `alias` is the incident id (Opsgenie keeps one open alert per alias). Opening creates
//! it (`POST /v2/alerts`; message at most 130 characters, description 15,000); an escalation
//! creates-or-deduplicates it and raises its priority (`POST /v2/alerts/{alias}/priority`);
//! the resolution closes it (`POST /v2/alerts/{alias}/close`). Priorities: critical P1, high
//! P2, medium P3, low P4, info P5. Requests are asynchronous: a 202 answer carries a
//! `requestId`. (Atlassian has announced Opsgenie's end of sale and support for 2027; the API
//! is the same under Jira Service Management's Opsgenie-compatible endpoint.)

use async_trait::async_trait;
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError, Severity};
use serde_json::{Map, Value, json};

use crate::Secret;
use crate::message::{Message, truncate};

/// The public API (EU accounts: `https://api.eu.opsgenie.com`).
pub const API_URL: &str = "https://api.opsgenie.com";

/// An Opsgenie API integration.
#[derive(Debug)]
pub struct Opsgenie {
    name: String,
    api_url: String,
    key: Secret,
    http: reqwest::Client,
}

/// Opsgenie's priority for our severity.
pub fn priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "P1",
        Severity::High => "P2",
        Severity::Medium => "P3",
        Severity::Low => "P4",
        Severity::Info => "P5",
    }
}

/// One request of a delivery: method path (after the API URL) and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Path and query.
    pub path: String,
    /// Body.
    pub body: Value,
}

impl Opsgenie {
    /// `api_url`: the API base; `key`: the API integration's key.
    pub fn new(name: &str, api_url: &str, key: Secret) -> Result<Self, NotifyError> {
        Ok(Self {
            name: name.to_owned(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            key,
            http: crate::http::client()?,
        })
    }

    /// The requests of one delivery, in order.
    pub fn calls(m: &Message) -> Vec<Call> {
        let alias = &m.incident_id;
        if m.change == "Resolved" {
            return vec![Call {
                path: format!("/v2/alerts/{alias}/close?identifierType=alias"),
                body: json!({
                    "source": m.brand,
                    "user": m.brand,
                    "note": truncate(&m.headline, 25_000),
                }),
            }];
        }
        let mut details = Map::new();
        for (k, v) in &m.evidence {
            details.insert(k.clone(), Value::String(v.clone()));
        }
        details.insert("incident key".into(), json!(m.incident_key));
        details.insert("alert id".into(), json!(m.idempotency_key));
        if let Some(l) = &m.logged {
            details.insert("event log".into(), json!(l));
        }
        if let Some(l) = &m.link {
            details.insert("incident page".into(), json!(l));
        }
        for (label, url) in &m.links {
            details.insert(format!("explorer {label}"), json!(url));
        }
        let mut tags = vec![
            m.brand.clone(),
            m.threat_type.to_owned(),
            m.severity.as_str().to_owned(),
        ];
        if let Some(a) = &m.asset {
            tags.push(a.clone());
        }
        let mut calls = vec![Call {
            path: "/v2/alerts".into(),
            body: json!({
                "message": truncate(&m.title, 130),
                "alias": alias,
                "description": truncate(&format!("{}\n\nWhat to check: {}", m.plain_text(), m.what_to_check), 15_000),
                "tags": tags,
                "details": details,
                "entity": m.asset.as_deref().unwrap_or("hyperliquid"),
                "source": m.brand,
                "priority": priority(m.severity),
            }),
        }];
        if m.change == "Escalated" {
            // An open alert with this alias only counts the repeat: raise its priority.
            calls.push(Call {
                path: format!("/v2/alerts/{alias}/priority?identifierType=alias"),
                body: json!({"priority": priority(m.severity)}),
            });
        }
        calls
    }
}

#[async_trait]
impl Notifier for Opsgenie {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "opsgenie"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let mut receipt = None;
        // Every call is idempotent (the alias), so a retry after a partial failure repeats
        // them all safely.
        for c in Self::calls(&Message::of(alert)) {
            let req = self
                .http
                .post(format!("{}{}", self.api_url, c.path))
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("GenieKey {}", self.key.expose()),
                )
                .json(&c.body);
            receipt = Some(
                crate::http::send(req, |_, b| {
                    serde_json::from_str::<Value>(b)
                        .ok()
                        .and_then(|v| v["requestId"].as_str().map(str::to_owned))
                })
                .await?,
            );
        }
        receipt.ok_or_else(|| NotifyError::Permanent("nothing to send".into()))
    }
}
