//! Discord incoming webhook: one message with one embed (title, description, colour, fields,
//! timestamp, footer), `allowed_mentions` empty so evidence text can never ping anyone.
//! Limits applied: title 256, description 4096, 25 fields of name 256 / value 1024 characters.

use async_trait::async_trait;
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError};
use serde_json::{Value, json};

use crate::Secret;
use crate::message::{Message, truncate};

/// A Discord webhook channel.
#[derive(Debug)]
pub struct Discord(crate::http::Target);

impl Discord {
    /// `url`: the webhook URL (`https://discord.com/api/webhooks/{id}/{token}`).
    pub fn new(name: &str, url: Secret) -> Result<Self, NotifyError> {
        crate::http::Target::new(name, url).map(Self)
    }

    /// The JSON body Discord receives.
    pub fn body(m: &Message) -> Value {
        let mut fields = vec![
            json!({"name": "Severity", "value": m.severity.as_str(), "inline": true}),
            json!({"name": "Lifecycle", "value": format!("{} ({})", m.change, m.status), "inline": true}),
            json!({"name": "Threat", "value": m.threat_type, "inline": true}),
        ];
        if let Some(a) = &m.asset {
            fields.push(json!({"name": "Asset", "value": a, "inline": true}));
        }
        for (k, v) in m.evidence.iter().take(25 - fields.len() - 4) {
            fields.push(
                json!({"name": truncate(k, 256), "value": truncate(v, 1024), "inline": true}),
            );
        }
        if !m.links.is_empty() {
            let links: Vec<String> = m
                .links
                .iter()
                .map(|(label, url)| format!("[{label}]({url})"))
                .collect();
            fields.push(json!({"name": "Explorer", "value": truncate(&links.join("\n"), 1024), "inline": false}));
        }
        if !m.related.is_empty() {
            fields.push(json!({"name": "Related incidents on this market", "value": truncate(&m.related.join("\n"), 1024), "inline": false}));
        }
        if m.change != "Resolved" {
            fields.push(json!({"name": "What to check", "value": truncate(m.what_to_check, 1024), "inline": false}));
        }
        fields.push(json!({
            "name": "First seen",
            "value": format!("{} · {} detections", m.first_seen, m.detections),
            "inline": false,
        }));
        if let Some(l) = &m.logged {
            fields.push(json!({"name": "Event log", "value": truncate(l, 1024), "inline": false}));
        }
        let mut description = m.title.clone();
        if !m.indicators.is_empty() {
            description.push_str(&format!("\nIndicators: {}", m.indicators.join(", ")));
        }
        let mut embed = json!({
            "title": truncate(&m.headline, 256),
            "description": truncate(&description, 4096),
            "color": m.colour(),
            "fields": fields,
            "timestamp": m.time,
            "footer": {"text": truncate(&format!("{} · {} · {}", m.brand, m.incident_key, m.idempotency_key), 2048)},
        });
        if let Some(l) = &m.link {
            embed["url"] = json!(l);
        }
        let mut body = json!({
            "username": truncate(&m.brand, 80),
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        });
        if m.is_test {
            body["content"] = json!(crate::message::TEST_MARKER);
        }
        body
    }
}

#[async_trait]
impl Notifier for Discord {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn kind(&self) -> &'static str {
        "discord"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let body = Self::body(&Message::of(alert));
        // `wait=true` makes Discord answer 200 with the created message (and its id).
        let req = self
            .0
            .http
            .post(self.0.url.expose())
            .query(&[("wait", "true")])
            .json(&body);
        crate::http::send(req, |_, b| {
            serde_json::from_str::<Value>(b)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
        })
        .await
    }
}
