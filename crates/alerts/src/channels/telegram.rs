//! Telegram Bot API `sendMessage` with `parse_mode = "HTML"`: only `<b>`, `<i>`, `<code>` and
//! `<a href>` tags are produced and every piece of text is escaped, so evidence can never
//! break the markup. A message is at most 4,096 characters.

use async_trait::async_trait;
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError};
use serde_json::{Value, json};

use crate::Secret;
use crate::message::{Message, escape_html as h, truncate};

/// The public Bot API.
pub const API_URL: &str = "https://api.telegram.org";

/// A Telegram chat.
#[derive(Debug)]
pub struct Telegram {
    name: String,
    api_url: String,
    token: Secret,
    chat_id: String,
    http: reqwest::Client,
}

impl Telegram {
    /// `chat_id`: a numeric id (`-100…` for groups and channels) or `@channelusername`.
    pub fn new(
        name: &str,
        api_url: &str,
        token: Secret,
        chat_id: &str,
    ) -> Result<Self, NotifyError> {
        Ok(Self {
            name: name.to_owned(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            token,
            chat_id: chat_id.to_owned(),
            http: crate::http::client()?,
        })
    }

    /// The HTML text of the message.
    pub fn html(m: &Message) -> String {
        let mut s = format!("<b>{}</b>\n", h(&m.headline));
        s.push_str(&format!(
            "<b>Severity:</b> {} · <b>Lifecycle:</b> {} ({})\n<b>Threat:</b> {}",
            h(m.severity.as_str()),
            h(m.change),
            h(m.status),
            h(m.threat_type)
        ));
        if let Some(a) = &m.asset {
            s.push_str(&format!(" · <b>Asset:</b> {}", h(a)));
        }
        s.push('\n');
        for (k, v) in &m.evidence {
            s.push_str(&format!("{}: <code>{}</code>\n", h(k), h(v)));
        }
        for (label, url) in &m.links {
            s.push_str(&format!("<a href=\"{}\">{}</a>\n", h(url), h(label)));
        }
        if !m.related.is_empty() {
            s.push_str("<b>Related incidents on this market:</b>\n");
            for r in &m.related {
                s.push_str(&format!("• {}\n", h(r)));
            }
        }
        if m.change != "Resolved" {
            s.push_str(&format!("<b>What to check:</b> {}\n", h(m.what_to_check)));
        }
        s.push_str(&format!(
            "<i>first seen {} · {} detections</i>\n",
            h(&m.first_seen),
            m.detections
        ));
        if let Some(l) = &m.logged {
            s.push_str(&format!("<i>event log {}</i>\n", h(l)));
        }
        if let Some(l) = &m.link {
            s.push_str(&format!(
                "<a href=\"{}\">Open in {}</a>\n",
                h(l),
                h(&m.brand)
            ));
        }
        s.push_str(&format!("<code>{}</code>", h(&m.idempotency_key)));
        if s.chars().count() > 4096 {
            // Never cut inside a tag: fall back to the escaped plain text.
            return h(&truncate(&m.plain_text(), 4000));
        }
        s
    }

    /// The JSON body of `sendMessage`.
    pub fn body(&self, m: &Message) -> Value {
        json!({
            "chat_id": self.chat_id,
            "text": Self::html(m),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        })
    }

    /// Groups and channels (negative ids, `@names`) have the stricter 20 messages/minute limit.
    pub fn is_group(&self) -> bool {
        self.chat_id.starts_with('-') || self.chat_id.starts_with('@')
    }
}

#[async_trait]
impl Notifier for Telegram {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "telegram"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let url = format!("{}/bot{}/sendMessage", self.api_url, self.token.expose());
        let req = self.http.post(url).json(&self.body(&Message::of(alert)));
        let r = crate::http::send(req, |_, b| {
            serde_json::from_str::<Value>(b)
                .ok()
                .and_then(|v| v["result"]["message_id"].as_i64())
                .map(|id| id.to_string())
        })
        .await;
        // The token is part of the URL: make sure no error text carries it.
        r.map_err(|e| match e {
            NotifyError::Transient(t) => {
                NotifyError::Transient(t.replace(self.token.expose(), "<token>"))
            }
            NotifyError::Permanent(t) => {
                NotifyError::Permanent(t.replace(self.token.expose(), "<token>"))
            }
            other => other,
        })
    }
}
