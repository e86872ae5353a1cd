//! Channel and routing settings as plain data. The binary reads them from its configuration
//! (`[alerts]`, `[alerts.channels.<name>]`); this crate validates them and builds the
//! notifiers.

use std::collections::BTreeMap;
use std::sync::Arc;

use kamiyo_core_models::{IncidentChange, Notifier, NotifyError, Severity, ThreatType};
use serde::{Deserialize, Serialize};

use crate::Secret;
use crate::budget::{self, Window};
use crate::channels::{
    Discord, SendGrid, Slack, Smtp, SmtpSecurity, SmtpSettings, Telegram, Webhook,
};

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Deliver alerts at all.
    pub enabled: bool,
    /// After an incident's alert, the same incident key re-opening within this many seconds
    /// at the same or a lower severity is not alerted again (nor its next resolution):
    /// flapping conditions make one alert, not dozens.
    pub cooldown_secs: u32,
    /// Incidents on the same market share one notification thread per channel: after the
    /// first, the others are reported in group updates at most this often (at once when they
    /// raise its severity); 0 alerts each incident on its own.
    pub group_interval_secs: u32,
    /// Attempts before a delivery is recorded as failed.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter, up to `max_backoff_secs`.
    pub initial_backoff_ms: u32,
    /// Longest retry delay.
    pub max_backoff_secs: u32,
    /// Channels by name.
    pub channels: BTreeMap<String, ChannelConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cooldown_secs: 900,
            group_interval_secs: 120,
            max_attempts: 12,
            initial_backoff_ms: 1000,
            max_backoff_secs: 600,
            channels: BTreeMap::new(),
        }
    }
}

/// Channel kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChannelKind {
    /// Discord webhook.
    Discord,
    /// Slack incoming webhook.
    Slack,
    /// Telegram bot.
    Telegram,
    /// SendGrid v3 mail send.
    Sendgrid,
    /// SMTP relay.
    Smtp,
    /// Signed generic webhook.
    Webhook,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Opsgenie Alert API v2.
    Opsgenie,
}

impl ChannelKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discord => "discord",
            Self::Slack => "slack",
            Self::Telegram => "telegram",
            Self::Sendgrid => "sendgrid",
            Self::Smtp => "smtp",
            Self::Webhook => "webhook",
            Self::Pagerduty => "pagerduty",
            Self::Opsgenie => "opsgenie",
        }
    }
}

/// `[alerts.channels.<name>]`: the destination, and what it receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Channel kind.
    pub kind: ChannelKind,
    /// Turn the channel off without deleting it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Lowest severity delivered.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Only these threat types (empty: all).
    #[serde(default)]
    pub threat_types: Vec<ThreatType>,
    /// Only these assets (empty: all).
    #[serde(default)]
    pub assets: Vec<String>,
    /// Lifecycle steps delivered.
    #[serde(default = "default_changes")]
    pub changes: Vec<IncidentChange>,
    /// Rate budget windows (`["5/2s", "30/1m"]`); empty: the kind's documented default.
    #[serde(default)]
    pub rate: Vec<String>,
    /// Webhook URL (discord, slack, webhook). Secret.
    #[serde(default)]
    pub url: Secret,
    /// HMAC secret (webhook). Secret.
    #[serde(default)]
    pub secret: Secret,
    /// Bot token (telegram). Secret.
    #[serde(default)]
    pub bot_token: Secret,
    /// Chat id (telegram).
    #[serde(default)]
    pub chat_id: String,
    /// API base URL (telegram, sendgrid, pagerduty, opsgenie); empty: the public API.
    #[serde(default)]
    pub api_url: String,
    /// API key (sendgrid), integration routing key (pagerduty), API integration key
    /// (opsgenie). Secret.
    #[serde(default)]
    pub api_key: Secret,
    /// Sender (sendgrid, smtp).
    #[serde(default)]
    pub from: String,
    /// Recipients (sendgrid, smtp).
    #[serde(default)]
    pub to: Vec<String>,
    /// SMTP host.
    #[serde(default)]
    pub host: String,
    /// SMTP port (0: 587 for STARTTLS, 465 for TLS, 25 for none).
    #[serde(default)]
    pub port: u16,
    /// SMTP security.
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    /// SMTP login.
    #[serde(default)]
    pub username: String,
    /// SMTP password. Secret.
    #[serde(default)]
    pub password: Secret,
    /// Extra trusted root certificate file (PEM) for an SMTP relay with a private CA.
    #[serde(default)]
    pub ca_file: String,
}

fn yes() -> bool {
    true
}
fn default_min_severity() -> Severity {
    Severity::High
}
fn default_changes() -> Vec<IncidentChange> {
    vec![
        IncidentChange::Opened,
        IncidentChange::Escalated,
        IncidentChange::Resolved,
    ]
}
fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

impl ChannelConfig {
    /// A channel of `kind` with every other setting at its default.
    pub fn new(kind: ChannelKind) -> Self {
        Self {
            kind,
            enabled: true,
            min_severity: default_min_severity(),
            threat_types: Vec::new(),
            assets: Vec::new(),
            changes: default_changes(),
            rate: Vec::new(),
            url: Secret::default(),
            secret: Secret::default(),
            bot_token: Secret::default(),
            chat_id: String::new(),
            api_url: String::new(),
            api_key: Secret::default(),
            from: String::new(),
            to: Vec::new(),
            host: String::new(),
            port: 0,
            security: default_security(),
            username: String::new(),
            password: Secret::default(),
            ca_file: String::new(),
        }
    }

    /// The budget windows (configured, or the kind's default).
    pub fn windows(&self) -> Result<Vec<Window>, String> {
        if self.rate.is_empty() {
            let group = self.chat_id.starts_with('-') || self.chat_id.starts_with('@');
            return Ok(budget::defaults(self.kind.as_str(), group));
        }
        self.rate.iter().map(|r| r.parse()).collect()
    }

    /// Problems with this channel as (key under the channel, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut need = |key: &str, ok: bool, what: &str| {
            if !ok {
                p.push((key.to_owned(), what.to_owned()));
            }
        };
        let http_url = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        match self.kind {
            ChannelKind::Discord | ChannelKind::Slack | ChannelKind::Webhook => {
                need(
                    "url",
                    http_url(self.url.expose()),
                    "required: the https:// URL to post to",
                );
            }
            ChannelKind::Telegram => {
                need(
                    "bot_token",
                    self.bot_token.expose().contains(':'),
                    "required: the bot token from @BotFather (123456:ABC…)",
                );
                need(
                    "chat_id",
                    !self.chat_id.is_empty(),
                    "required: a numeric chat id or @channel",
                );
            }
            ChannelKind::Pagerduty => need(
                "api_key",
                self.api_key.expose().len() == 32
                    && self
                        .api_key
                        .expose()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric()),
                "required: the 32-character integration key (routing key) of an Events API v2 integration",
            ),
            ChannelKind::Opsgenie => need(
                "api_key",
                !self.api_key.expose().trim().is_empty(),
                "required: the API key of an Opsgenie API integration",
            ),
            ChannelKind::Sendgrid | ChannelKind::Smtp => {
                if self.kind == ChannelKind::Sendgrid {
                    need("api_key", !self.api_key.expose().is_empty(), "required");
                } else {
                    need(
                        "host",
                        !self.host.is_empty(),
                        "required: the SMTP relay host",
                    );
                }
                need(
                    "from",
                    self.from.contains('@'),
                    "required: a sender address",
                );
                need(
                    "to",
                    !self.to.is_empty() && self.to.iter().all(|a| a.contains('@')),
                    "required: one or more recipient addresses",
                );
            }
        }
        if !self.api_url.is_empty() && !http_url(&self.api_url) {
            p.push(("api_url".into(), "expected an http(s):// URL".into()));
        }
        if let Err(e) = self.windows() {
            p.push(("rate".into(), e));
        }
        if self.changes.is_empty() {
            p.push((
                "changes".into(),
                "list at least one of opened, escalated, updated, resolved".into(),
            ));
        }
        p
    }

    /// Builds the notifier.
    pub fn build(&self, name: &str) -> Result<Arc<dyn Notifier>, NotifyError> {
        let api = |default: &str| {
            if self.api_url.is_empty() {
                default.to_owned()
            } else {
                self.api_url.clone()
            }
        };
        Ok(match self.kind {
            ChannelKind::Discord => Arc::new(Discord::new(name, self.url.clone())?),
            ChannelKind::Slack => Arc::new(Slack::new(name, self.url.clone())?),
            ChannelKind::Webhook => {
                Arc::new(Webhook::new(name, self.url.clone(), self.secret.clone())?)
            }
            ChannelKind::Telegram => Arc::new(Telegram::new(
                name,
                &api(crate::channels::telegram::API_URL),
                self.bot_token.clone(),
                &self.chat_id,
            )?),
            ChannelKind::Pagerduty => Arc::new(crate::channels::PagerDuty::new(
                name,
                &api(crate::channels::pagerduty::API_URL),
                self.api_key.clone(),
            )?),
            ChannelKind::Opsgenie => Arc::new(crate::channels::Opsgenie::new(
                name,
                &api(crate::channels::opsgenie::API_URL),
                self.api_key.clone(),
            )?),
            ChannelKind::Sendgrid => Arc::new(SendGrid::new(
                name,
                &api(crate::channels::email::SENDGRID_URL),
                self.api_key.clone(),
                &self.from,
                &self.to,
            )?),
            ChannelKind::Smtp => {
                let ca_pem = if self.ca_file.is_empty() {
                    None
                } else {
                    Some(std::fs::read(&self.ca_file).map_err(|e| {
                        NotifyError::Permanent(format!("cannot read ca_file {}: {e}", self.ca_file))
                    })?)
                };
                let port = match (self.port, self.security) {
                    (0, SmtpSecurity::Starttls) => 587,
                    (0, SmtpSecurity::Tls) => 465,
                    (0, SmtpSecurity::None) => 25,
                    (p, _) => p,
                };
                Arc::new(Smtp::new(
                    name,
                    &SmtpSettings {
                        host: self.host.clone(),
                        port,
                        security: self.security,
                        username: self.username.clone(),
                        password: self.password.clone(),
                        from: self.from.clone(),
                        to: self.to.clone(),
                        ca_pem,
                    },
                )?)
            }
        })
    }
}

impl AlertsConfig {
    /// Problems as (path under `alerts`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.max_attempts == 0 {
            p.push(("max_attempts".into(), "must be at least 1".into()));
        }
        if self.initial_backoff_ms == 0 {
            p.push(("initial_backoff_ms".into(), "must be at least 1".into()));
        }
        for (name, c) in &self.channels {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                p.push((
                    format!("channels.{name}"),
                    "channel names use letters, digits, - and _".into(),
                ));
            }
            for (k, m) in c.problems() {
                p.push((format!("channels.{name}.{k}"), m));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerduty_and_opsgenie_need_their_keys() {
        let mut pd = ChannelConfig::new(ChannelKind::Pagerduty);
        assert_eq!(pd.problems()[0].0, "api_key");
        pd.api_key = Secret::new("too-short");
        assert!(pd.problems()[0].1.contains("32-character"));
        pd.api_key = Secret::new("0123456789abcdef0123456789ABCDEF");
        assert!(pd.problems().is_empty(), "{:?}", pd.problems());
        assert!(pd.build("pd").is_ok());
        let mut og = ChannelConfig::new(ChannelKind::Opsgenie);
        assert_eq!(og.problems()[0].0, "api_key");
        og.api_key = Secret::new("eb243592-faa2-4ba2-a551-1afdf565c889");
        og.api_url = "ftp://nope".into();
        assert_eq!(
            og.problems(),
            vec![(
                "api_url".to_owned(),
                "expected an http(s):// URL".to_owned()
            )]
        );
        assert_eq!(
            serde_json::from_str::<ChannelConfig>(r#"{"kind": "pagerduty"}"#)
                .unwrap()
                .kind,
            ChannelKind::Pagerduty
        );
    }
}
