//! Alert routing and delivery for kamiyo: Discord, Slack, Telegram, email, signed webhooks, with a durable outbox.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod budget;
pub mod channels;
pub mod config;
pub mod http;
pub mod message;
pub mod router;
pub mod service;

use std::fmt;

use kamiyo_core_models::{
    Alert, Coin, Evidence, Incident, IncidentChange, IncidentKey, IncidentStatus, IncidentUpdate,
    SecurityEvent, Severity, ThreatType, Timestamp,
};
use serde::{Deserialize, Serialize};

pub use config::{AlertsConfig, ChannelConfig, ChannelKind};
pub use message::Message;
pub use service::{AlertHandle, AlertService, AlertStore, Channel, Retry};

/// A secret setting (webhook URL, token, password): its `Debug`, `Display` and serialized
/// forms are masked, so it never reaches a log line or `config show`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// The clearly marked message `kamiyo-hyperliquid alerts test` sends to `channel`.
pub fn test_alert(channel: &str, now: Timestamp, dashboard_base: Option<&str>) -> Alert {
    let key = IncidentKey::new("alerts_test", &[channel]);
    let incident = Incident {
        protocol: Default::default(),
        id: Incident::derive_id(&key, now),
        key,
        detector: "alerts_test".into(),
        threat_type: ThreatType::OracleDeviation,
        severity: Severity::Info,
        peak_severity: Severity::Info,
        asset: Coin::new("ETH").ok(),
        status: IncidentStatus::Open,
        title: "Test message from kamiyo: this channel is configured correctly".into(),
        indicators: vec!["test".into()],
        evidence: Evidence::new().with("channel", channel),
        first_seen: now,
        last_seen: now,
        resolved_at: None,
        detections: 0,
    };
    let event = SecurityEvent::from_incident(&incident, IncidentChange::Opened, now);
    let mut a = Alert::new(IncidentUpdate { incident, event }, channel, dashboard_base);
    a.is_test = true;
    a
}
