//! What on-call people do to incidents: acknowledge, resolve with a note, annotate, and
//! silence notifications by matcher (Alertmanager's model: a silence mutes notifications, it
//! never hides an incident). Pure values and the storage trait; no I/O.

use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::ids::{Coin, StableId};
use crate::security::{
    Incident, IncidentChange, IncidentStatus, IncidentUpdate, SecurityEvent, Severity,
};
use crate::store::StoreResult;
use crate::time::Timestamp;

/// What an API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// Read every route; change nothing.
    #[default]
    Read,
    /// Read, and act on incidents and silences.
    Write,
}

impl KeyScope {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl FromStr for KeyScope {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            other => Err(ModelError::UnknownName {
                kind: "key scope",
                value: other.to_owned(),
                expected: "read, write",
            }),
        }
    }
}

/// An operator's step on an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// "I am on it."
    Acknowledge,
    /// Withdraws an acknowledgement.
    Unacknowledge,
    /// Closed by a person, with a note.
    Resolve,
    /// A note in the incident's history.
    Note,
}

impl ActionKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Unacknowledge => "unacknowledge",
            Self::Resolve => "resolve",
            Self::Note => "note",
        }
    }
}

impl FromStr for ActionKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "acknowledge" => Ok(Self::Acknowledge),
            "unacknowledge" => Ok(Self::Unacknowledge),
            "resolve" => Ok(Self::Resolve),
            "note" => Ok(Self::Note),
            other => Err(ModelError::UnknownName {
                kind: "incident action",
                value: other.to_owned(),
                expected: "acknowledge, unacknowledge, resolve, note",
            }),
        }
    }
}

/// One stored operator step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentAction {
    /// Id (derived from the incident, the kind, the actor and the time).
    pub id: StableId,
    /// The incident.
    pub incident_id: StableId,
    /// What was done.
    pub kind: ActionKind,
    /// Who (`key:kmy_…` prefix, or `local` for the keyless loopback operator).
    pub actor: String,
    /// Free text (may be empty except for resolutions).
    pub note: String,
    /// When.
    pub time: Timestamp,
}

impl IncidentAction {
    /// A new action; its id is derived from everything here and `nonce` (the caller's random
    /// number: two notes at the same instant — a replay's clock stands still once it has
    /// ended — are two actions).
    pub fn new(
        incident_id: &StableId,
        kind: ActionKind,
        actor: &str,
        note: &str,
        time: Timestamp,
        nonce: u64,
    ) -> Self {
        Self {
            id: StableId::derive(
                "act",
                &[
                    incident_id.as_str(),
                    kind.as_str(),
                    actor,
                    &time.0.to_string(),
                    note,
                    &nonce.to_string(),
                ],
            ),
            incident_id: incident_id.clone(),
            kind,
            actor: actor.to_owned(),
            note: note.to_owned(),
            time,
        }
    }
}

/// Whether an incident is acknowledged, from its actions (oldest first): the latest
/// acknowledge or unacknowledge wins.
pub fn acknowledgement(actions: &[IncidentAction]) -> Option<&IncidentAction> {
    actions
        .iter()
        .rev()
        .find(|a| matches!(a.kind, ActionKind::Acknowledge | ActionKind::Unacknowledge))
        .filter(|a| a.kind == ActionKind::Acknowledge)
}

/// The acknowledgement of each incident in `actions` (oldest first, several incidents mixed),
/// by [`acknowledgement`]'s rule: per incident the latest acknowledge or unacknowledge wins.
pub fn acknowledgements(
    actions: &[IncidentAction],
) -> std::collections::HashMap<&StableId, &IncidentAction> {
    let mut acks = std::collections::HashMap::new();
    for a in actions {
        match a.kind {
            ActionKind::Acknowledge => {
                acks.insert(&a.incident_id, a);
            }
            ActionKind::Unacknowledge => {
                acks.remove(&a.incident_id);
            }
            _ => {}
        }
    }
    acks
}

/// The lifecycle step that closes `incident` by an operator's decision at `at`. The engine
/// opens a new incident if the condition is still there.
pub fn operator_resolution(
    incident: &Incident,
    actor: &str,
    note: &str,
    at: Timestamp,
) -> IncidentUpdate {
    let mut i = incident.clone();
    i.status = IncidentStatus::Resolved;
    i.resolved_at = Some(at);
    let mut event = SecurityEvent::from_incident(&i, IncidentChange::Resolved, at);
    event.title = format!("Resolved by {actor}: {note}");
    event.indicators.push(format!("resolved_by:{actor}"));
    IncidentUpdate { incident: i, event }
}

/// What a silence mutes; every set field must match (an empty matcher set is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatchers {
    /// Detector name, exactly (`oracle`, `liquidation_cascade` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// Market, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Coin>,
    /// Steps at or below this severity (a silence for warnings never mutes a critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Protocol id (`hyperliquid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl SilenceMatchers {
    /// True when no field is set (it would mute everything).
    pub fn is_empty(&self) -> bool {
        self.detector.is_none()
            && self.asset.is_none()
            && self.severity.is_none()
            && self.protocol.is_none()
    }

    /// True when `e` matches every set field.
    pub fn matches(&self, e: &SecurityEvent) -> bool {
        self.detector.as_ref().is_none_or(|d| *d == e.detector)
            && self.asset.as_ref().is_none_or(|a| {
                e.asset
                    .as_ref()
                    .is_some_and(|x| x.as_str().eq_ignore_ascii_case(a.as_str()))
            })
            && self.severity.is_none_or(|s| e.severity <= s)
            && self
                .protocol
                .as_ref()
                .is_none_or(|p| p.eq_ignore_ascii_case(e.protocol.as_str()))
    }
}

/// A silence: notifications of matching steps between `starts_at` and `ends_at` are recorded
/// as suppressed instead of sent; incidents are stored and shown as always.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Id.
    pub id: StableId,
    /// What it mutes.
    pub matchers: SilenceMatchers,
    /// Start.
    pub starts_at: Timestamp,
    /// End.
    pub ends_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Set when it was ended early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Timestamp>,
}

impl Silence {
    /// True when it mutes at `now`.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at && self.expired_at.is_none_or(|x| now < x)
    }

    /// True when it mutes `e` (at the step's own time).
    pub fn mutes(&self, e: &SecurityEvent) -> bool {
        self.active_at(e.time) && self.matchers.matches(e)
    }
}

/// Operator actions and silences.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Stores an action (an id already stored is left unchanged).
    async fn record_action(&self, action: &IncidentAction) -> StoreResult<()>;
    /// Actions on these incidents, oldest first.
    async fn incident_actions(&self, ids: &[StableId]) -> StoreResult<Vec<IncidentAction>>;
    /// Stores a silence.
    async fn insert_silence(&self, silence: &Silence) -> StoreResult<()>;
    /// Silences ending after `since` (all when `None`), newest first.
    async fn silences(&self, since: Option<Timestamp>, limit: u32) -> StoreResult<Vec<Silence>>;
    /// Ends a silence at `at`; false when none is active with that id.
    async fn expire_silence(&self, id: &StableId, at: Timestamp) -> StoreResult<bool>;
}
