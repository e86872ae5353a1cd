//! Slack incoming webhook with Block Kit: a header, a section with the title and fields, the
//! evidence, a context line and a button to the dashboard; `text` carries the plain fallback
//! used in notifications. mrkdwn text is escaped (`&`, `<`, `>`); a header is at most 150
//! characters, a section field 2,000, a section at most 10 fields.

use async_trait::async_trait;
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError};
use serde_json::{Value, json};

use crate::Secret;
use crate::message::{Message, truncate};

/// A Slack incoming-webhook channel.
#[derive(Debug)]
pub struct Slack(crate::http::Target);

/// Escapes text for Slack mrkdwn.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Slack {
    /// `url`: the incoming webhook URL (`https://hooks.slack.com/services/…`).
    pub fn new(name: &str, url: Secret) -> Result<Self, NotifyError> {
        crate::http::Target::new(name, url).map(Self)
    }

    /// The JSON body Slack receives.
    pub fn body(m: &Message) -> Value {
        let mut fields = vec![
            json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", m.severity.as_str())}),
            json!({"type": "mrkdwn", "text": format!("*Lifecycle*\n{} ({})", m.change, m.status)}),
            json!({"type": "mrkdwn", "text": format!("*Threat*\n{}", m.threat_type)}),
        ];
        if let Some(a) = &m.asset {
            fields.push(json!({"type": "mrkdwn", "text": format!("*Asset*\n{}", esc(a))}));
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&m.headline, 150), "emoji": false}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&esc(&m.title), 3000)}, "fields": fields}),
        ];
        if !m.evidence.is_empty() {
            let ev: Vec<Value> = m
                .evidence
                .iter()
                .take(10)
                .map(|(k, v)| json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", esc(k), esc(v)), 2000)}))
                .collect();
            blocks.push(json!({"type": "section", "fields": ev}));
            if m.evidence.len() > 10 {
                let rest: Vec<String> = m.evidence[10..]
                    .iter()
                    .map(|(k, v)| format!("{}: {}", esc(k), esc(v)))
                    .collect();
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&rest.join("\n"), 3000)}}));
            }
        }
        if !m.links.is_empty() {
            let links: Vec<String> = m
                .links
                .iter()
                .map(|(label, url)| format!("<{url}|{}>", esc(label)))
                .collect();
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*Explorer* {}", links.join(" · ")), 3000)}}));
        }
        if !m.related.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*Related incidents on this market*\n{}", esc(&m.related.join("\n"))), 3000)}}));
        }
        if m.change != "Resolved" {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*What to check*\n{}", esc(m.what_to_check)), 3000)}}));
        }
        blocks.push(
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&format!(
            "first seen {} · {} detections · {} · alert {}",
            m.first_seen, m.detections, esc(&m.incident_key), m.idempotency_key
        ), 3000)}]}),
        );
        if let Some(l) = &m.logged {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&format!("event log {}", esc(l)), 3000)}]}));
        }
        if let Some(l) = &m.link {
            blocks.push(json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": format!("Open in {}", m.brand)}, "url": l}]}));
        }
        json!({"text": m.headline, "blocks": blocks})
    }
}

#[async_trait]
impl Notifier for Slack {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn kind(&self) -> &'static str {
        "slack"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let req = self
            .0
            .http
            .post(self.0.url.expose())
            .json(&Self::body(&Message::of(alert)));
        crate::http::send(req, |_, _| None).await
    }
}
