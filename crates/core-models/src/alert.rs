//! Alerts: the message a channel delivers, and the [`Notifier`] trait every channel
//! (Discord, Slack, Telegram, email, webhook, or your own) implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::StableId;
use crate::security::{IncidentChange, IncidentUpdate};

/// One alert to deliver: an incident lifecycle step, addressed to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Idempotency key: the same alert re-delivered after a crash carries the same key, so a
    /// receiver can drop the repeat. Derived from the security event id and the channel.
    pub idempotency_key: StableId,
    /// The incident step.
    pub update: IncidentUpdate,
    /// Link to the incident on the dashboard, when a public URL is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    /// True for `alerts test` messages, which say so prominently.
    #[serde(default)]
    pub is_test: bool,
    /// A group update (Alertmanager's `group_by` asset): the other incidents on the same market
    /// folded into this incident's notification thread, with their latest state. Empty for a
    /// plain lifecycle step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RelatedIncident>,
    /// The name the message is sent under, when a host white-labels its alerts (a tenant's
    /// brand); `None`: kamiyo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The step's entry in the event log ([`crate::ledger`]), when it has one: a receiver that
    /// keeps it holds a head of the chain as of the moment it was alerted, and can later check
    /// the published log against it (and so the alert's lead time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<crate::ledger::LogEntry>,
}

/// An incident reported inside another's group update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedIncident {
    /// Its id.
    pub incident_id: StableId,
    /// Its latest title.
    pub title: String,
    /// Its latest severity.
    pub severity: crate::security::Severity,
    /// Its latest lifecycle step.
    pub change: IncidentChange,
    /// Time of that step.
    pub time: crate::time::Timestamp,
}

impl Alert {
    /// Builds the alert of `update` for `channel`.
    pub fn new(update: IncidentUpdate, channel: &str, dashboard_base: Option<&str>) -> Self {
        let idempotency_key = StableId::derive("alr", &[update.event.id.as_str(), channel]);
        let dashboard_url = dashboard_base.map(|base| {
            format!(
                "{}/#incident/{}",
                base.trim_end_matches('/'),
                update.incident.id
            )
        });
        Self {
            idempotency_key,
            update,
            dashboard_url,
            is_test: false,
            related: Vec::new(),
            brand: None,
            log: None,
        }
    }

    /// The lifecycle step.
    pub fn change(&self) -> IncidentChange {
        self.update.event.change
    }
}

/// Why a delivery failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The destination asked us to wait (HTTP 429 with `Retry-After`).
    #[error("rate limited by the destination; retry after {retry_after_ms} ms")]
    RateLimited {
        /// Milliseconds to wait.
        retry_after_ms: u64,
    },
    /// A failure worth retrying: timeout, connection error, 5xx.
    #[error("transient failure: {0}")]
    Transient(String),
    /// A failure retrying will not fix: 4xx other than 429, invalid configuration.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl NotifyError {
    /// True when another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Permanent(_))
    }
}

/// What a successful delivery returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// HTTP status or SMTP reply code.
    pub status: Option<u16>,
    /// Provider message id, if any.
    pub remote_id: Option<String>,
}

/// A delivery channel. One implementation per channel kind; selected by configuration.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Channel name as configured (`ops-discord`); unique per deployment.
    fn name(&self) -> &str;

    /// Channel kind (`discord`, `slack`, `telegram`, `email`, `webhook` …).
    fn kind(&self) -> &'static str;

    /// Delivers one alert. Must not retry internally: the router owns retries, rate budgets and
    /// the durable outbox.
    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError>;
}
