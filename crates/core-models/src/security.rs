//! Security events and incidents: what detectors conclude.
//!
//! A detector emits [`Detection`]s. The engine folds detections with the same
//! [`IncidentKey`] into one [`Incident`] that is opened, escalated, updated and resolved, and
//! records each lifecycle step as a [`SecurityEvent`]. Alerts are sent per lifecycle step, not
//! per tick.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::ids::{Coin, IncidentKey, ProtocolId, StableId};
use crate::time::Timestamp;

/// How bad it is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Context only.
    Info,
    /// Worth a look.
    Low,
    /// Unusual.
    Medium,
    /// Act soon.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Self::Info,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ModelError::UnknownName {
                kind: "severity",
                value: s.chars().take(40).collect(),
                expected: "info, low, medium, high, critical",
            })
    }
}

macro_rules! threat_types {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// What kind of threat a detection is about: one of the built-in types, or a type a
        /// library user declared with [`ThreatType::custom`] for a detector of their own (so
        /// routing, silences and filters can tell it apart from the built-in ones).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ThreatType {
            $(#[doc = $doc] $variant,)*
            /// A type declared by a library user ([`ThreatType::custom`]).
            Custom(CustomThreat),
        }

        impl ThreatType {
            /// The built-in threat types.
            pub const ALL: &'static [ThreatType] = &[$(Self::$variant,)*];

            /// The built-in names, comma separated (for error messages).
            const NAMES: &'static str = concat!($($name, ", ",)* "or a declared custom type");

            /// snake_case name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Custom(c) => c.0,
                }
            }
        }
    };
}

threat_types! {
    HlpLoss => "hlp_loss", "HLP vault lost more than a threshold over 24 h.";
    HlpDrawdown => "hlp_drawdown", "HLP vault drawdown from its peak.";
    HlpAnomaly => "hlp_anomaly", "HLP returns outside their statistical band.";
    HlpExposure => "hlp_exposure", "An HLP child vault holds a position large against the market's OI or volume.";
    LiquidatorStress => "liquidator_stress", "The Liquidator vault's losses approach the ADL trigger.";
    OracleDeviation => "oracle_deviation", "Oracle price diverges from reference venues.";
    VenueDisagreement => "venue_disagreement", "Reference venues disagree: a venue or group departs from the others (the oracle's inputs are at risk when the group can move its weighted median).";
    MarkManipulation => "mark_manipulation", "Mark or mid price diverges from the oracle (book manipulation).";
    LargeLiquidation => "large_liquidation", "Very large liquidation notional in seconds.";
    LiquidationCascade => "liquidation_cascade", "Many liquidations in one market within minutes.";
    MarketCascade => "market_cascade", "Liquidations across many markets at once: a market-wide cascade (the per-market incidents are grouped under it).";
    CoordinatedLiquidation => "coordinated_liquidation", "One account liquidated repeatedly for large notional.";
    AutoDeleveraging => "auto_deleveraging", "Auto-deleveraging fills: the backstop ran out.";
    ThinMarketManipulation => "thin_market_manipulation", "Price moved hard on a thin market.";
    OpenInterestCap => "open_interest_cap", "A market hit its open-interest cap.";
    BookWall => "book_wall", "A one-sided order-book wall appeared or vanished.";
    WhaleLiquidationRisk => "whale_liquidation_risk", "A very large position is close to liquidation.";
    MlAnomaly => "ml_anomaly", "The anomaly model scored the market state as unusual.";
    RiskForecast => "risk_forecast", "The 24 h risk forecast crossed its threshold.";
    FeedHealth => "feed_health", "A data feed is stale or down.";
}

/// The name of a declared custom threat type (interned: declaring the same name twice gives
/// the same value). Build it with [`ThreatType::custom`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomThreat(&'static str);

/// Custom threat names are interned once per process; the table is bounded so names read from
/// outside cannot grow it without limit.
const MAX_CUSTOM_THREATS: usize = 1024;

fn custom_threats() -> &'static std::sync::Mutex<std::collections::BTreeSet<&'static str>> {
    static T: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<&'static str>>> =
        std::sync::OnceLock::new();
    T.get_or_init(Default::default)
}

fn invalid_threat(s: &str, rule: &'static str) -> ModelError {
    ModelError::InvalidName {
        kind: "threat type",
        value: s.chars().take(40).collect(),
        rule,
    }
}

impl ThreatType {
    /// Declares (or finds) a custom threat type for a detector of your own. The name is
    /// snake_case (`[a-z][a-z0-9_]*`, at most 48 characters) and must not be a built-in
    /// name. Declaring the same name again returns the same type.
    pub fn custom(name: &str) -> Result<Self, ModelError> {
        if Self::ALL.iter().any(|t| t.as_str() == name) {
            return Err(invalid_threat(
                name,
                "this is a built-in threat type's name",
            ));
        }
        let valid = !name.is_empty()
            && name.len() <= 48
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(invalid_threat(
                name,
                "expected snake_case: [a-z][a-z0-9_]*, at most 48 characters",
            ));
        }
        let mut t = custom_threats()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = t.get(name) {
            return Ok(Self::Custom(CustomThreat(found)));
        }
        if t.len() >= MAX_CUSTOM_THREATS {
            return Err(invalid_threat(
                name,
                "too many custom threat types declared",
            ));
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        t.insert(leaked);
        Ok(Self::Custom(CustomThreat(leaked)))
    }

    /// The custom types declared so far in this process.
    pub fn declared() -> Vec<Self> {
        custom_threats()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|n| Self::Custom(CustomThreat(n)))
            .collect()
    }

    /// A stored name: a built-in type, or a custom one (declared now if this process has not
    /// declared it yet — the row was written by a detector of a previous run).
    pub fn from_stored(s: &str) -> Result<Self, ModelError> {
        s.parse().or_else(|_| Self::custom(s))
    }

    /// True for a type declared by a library user.
    pub fn is_custom(self) -> bool {
        matches!(self, Self::Custom(_))
    }
}

impl fmt::Display for ThreatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a built-in name or one declared in this process (a filter naming a type nobody
/// declared is an error, not an empty result).
impl FromStr for ThreatType {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = Self::ALL.iter().copied().find(|t| t.as_str() == s) {
            return Ok(t);
        }
        custom_threats()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(s)
            .map(|n| Self::Custom(CustomThreat(n)))
            .ok_or_else(|| ModelError::UnknownName {
                kind: "threat type",
                value: s.chars().take(40).collect(),
                expected: Self::NAMES,
            })
    }
}

impl Serialize for ThreatType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Deserializes like a stored name ([`ThreatType::from_stored`]): payloads written by a
/// custom detector of an earlier run still read back.
impl<'de> Deserialize<'de> for ThreatType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::from_stored(&s).map_err(serde::de::Error::custom)
    }
}

/// One number or fact behind a detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvidenceValue {
    /// A flag.
    Bool(bool),
    /// A count or a millisecond timestamp.
    Int(i64),
    /// A decimal quantity (serialized as a string, like every price).
    Decimal(Decimal),
    /// Free text (a venue name, an address).
    Text(String),
}

impl fmt::Display for EvidenceValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Decimal(d) => write!(f, "{}", d.normalize()),
            Self::Text(t) => f.write_str(t),
        }
    }
}

impl From<bool> for EvidenceValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<i64> for EvidenceValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<u32> for EvidenceValue {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<usize> for EvidenceValue {
    fn from(v: usize) -> Self {
        Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<Decimal> for EvidenceValue {
    fn from(v: Decimal) -> Self {
        Self::Decimal(v)
    }
}
impl From<String> for EvidenceValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&str> for EvidenceValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

/// The numbers that made a detector fire, by name; ordered so output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Evidence(pub BTreeMap<String, EvidenceValue>);

impl Evidence {
    /// Empty evidence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value (builder style).
    pub fn with(mut self, name: &str, value: impl Into<EvidenceValue>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// Adds one value.
    pub fn insert(&mut self, name: &str, value: impl Into<EvidenceValue>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// Looks a value up.
    pub fn get(&self, name: &str) -> Option<&EvidenceValue> {
        self.0.get(name)
    }

    /// Iterates in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &EvidenceValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// True when there is no evidence.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a detector concluded at one moment. Detections are the engine's input; incidents and
/// security events are its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// Which incident this belongs to.
    pub key: IncidentKey,
    /// The protocol it is about. Detectors leave the default; the engine stamps its own
    /// protocol (and puts the key in that protocol's namespace).
    #[serde(default)]
    pub protocol: ProtocolId,
    /// Detector name (`oracle_deviation`, `hlp_vault` …).
    pub detector: String,
    /// Threat type.
    pub threat_type: ThreatType,
    /// Severity now.
    pub severity: Severity,
    /// The market concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Coin>,
    /// One-line summary for humans.
    pub title: String,
    /// Short tags explaining the signal (`sustained_60s`, `venue:binance`).
    #[serde(default)]
    pub indicators: Vec<String>,
    /// The numbers.
    pub evidence: Evidence,
    /// Event time at which the detector concluded this.
    pub time: Timestamp,
    /// Which way the measured quantity has moved, for detectors whose signal has a sign (a
    /// deviation above or below its reference, a price move up or down). A flip of direction
    /// inside an open incident is reported at once, like an escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The incident this one belongs under while that incident is open (a market's liquidation
    /// incident under the market-wide cascade): its steps then carry a
    /// [`MEMBER_OF`] indicator naming that incident, and alert routing reports them as part of
    /// it instead of separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IncidentKey>,
}

/// Prefix of the indicator that links an incident to the open incident it is grouped under
/// (`member_of:<incident id>`).
pub const MEMBER_OF: &str = "member_of:";

/// The sign of a detection's signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Above the reference, or moving up.
    Up,
    /// Below the reference, or moving down.
    Down,
}

impl Direction {
    /// The direction of a signed value (zero counts as up).
    pub fn of(v: crate::Decimal) -> Self {
        if v.is_sign_negative() {
            Self::Down
        } else {
            Self::Up
        }
    }
}

/// Incident status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// The condition holds or held recently.
    Open,
    /// Quiet for the resolution period.
    Resolved,
}

impl IncidentStatus {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

impl FromStr for IncidentStatus {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "resolved" => Ok(Self::Resolved),
            _ => Err(ModelError::UnknownName {
                kind: "incident status",
                value: s.chars().take(40).collect(),
                expected: "open, resolved",
            }),
        }
    }
}

/// A lifecycle step of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentChange {
    /// First detection.
    Opened,
    /// Severity rose.
    Escalated,
    /// New evidence at the same severity (rate-limited by the engine).
    Updated,
    /// Quiet for the resolution period.
    Resolved,
}

impl IncidentChange {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Escalated => "escalated",
            Self::Updated => "updated",
            Self::Resolved => "resolved",
        }
    }
}

impl fmt::Display for IncidentChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident: one condition, tracked from first detection to resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id (derived from the key and first-seen time).
    pub id: StableId,
    /// Stable key (in its protocol's namespace: [`IncidentKey::in_protocol`]).
    pub key: IncidentKey,
    /// The protocol.
    #[serde(default)]
    pub protocol: ProtocolId,
    /// Detector that owns it.
    pub detector: String,
    /// Threat type.
    pub threat_type: ThreatType,
    /// Current severity.
    pub severity: Severity,
    /// Highest severity reached.
    pub peak_severity: Severity,
    /// Market concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Coin>,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// Latest summary.
    pub title: String,
    /// Latest indicators.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// Latest evidence.
    pub evidence: Evidence,
    /// First detection.
    pub first_seen: Timestamp,
    /// Latest detection.
    pub last_seen: Timestamp,
    /// Resolution time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// Number of detections folded in.
    pub detections: u64,
}

impl Incident {
    /// Derives the incident id for a key first seen at `first_seen`.
    pub fn derive_id(key: &IncidentKey, first_seen: Timestamp) -> StableId {
        StableId::derive("inc", &[key.as_str(), &first_seen.0.to_string()])
    }
}

/// A lifecycle step of an incident, as stored, streamed and alerted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Stable id (derived from the incident id, the change and the time).
    pub id: StableId,
    /// The protocol.
    #[serde(default)]
    pub protocol: ProtocolId,
    /// The incident.
    pub incident_id: StableId,
    /// The incident's key.
    pub incident_key: IncidentKey,
    /// What changed.
    pub change: IncidentChange,
    /// Detector.
    pub detector: String,
    /// Threat type.
    pub threat_type: ThreatType,
    /// Severity after the change.
    pub severity: Severity,
    /// Market concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Coin>,
    /// Summary.
    pub title: String,
    /// Indicators.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// Evidence.
    pub evidence: Evidence,
    /// Event time.
    pub time: Timestamp,
}

impl SecurityEvent {
    /// Builds the event recording `change` of `incident` at `time`.
    pub fn from_incident(incident: &Incident, change: IncidentChange, time: Timestamp) -> Self {
        Self {
            id: StableId::derive(
                "evt",
                &[incident.id.as_str(), change.as_str(), &time.0.to_string()],
            ),
            protocol: incident.protocol.clone(),
            incident_id: incident.id.clone(),
            incident_key: incident.key.clone(),
            change,
            detector: incident.detector.clone(),
            threat_type: incident.threat_type,
            severity: incident.severity,
            asset: incident.asset.clone(),
            title: incident.title.clone(),
            indicators: incident.indicators.clone(),
            evidence: incident.evidence.clone(),
            time,
        }
    }

    /// The id of the incident this step's incident is grouped under, if any (see
    /// [`Detection::group`]).
    pub fn member_of(&self) -> Option<&str> {
        self.indicators
            .iter()
            .find_map(|i| i.strip_prefix(MEMBER_OF))
    }
}

/// The engine's output for one lifecycle step: the event and the incident after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    /// The lifecycle event.
    pub event: SecurityEvent,
    /// The incident after the change.
    pub incident: Incident,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_order_and_parse() {
        assert!(Severity::Critical > Severity::High && Severity::High > Severity::Info);
        assert_eq!("HIGH".parse::<Severity>().unwrap(), Severity::High);
        assert!("severe".parse::<Severity>().is_err());
    }

    #[test]
    fn custom_threat_types_are_declared_once_and_validated() {
        let a = ThreatType::custom("bridge_outflow").unwrap();
        assert_eq!(a, ThreatType::custom("bridge_outflow").unwrap());
        assert!(a.is_custom() && a.as_str() == "bridge_outflow");
        assert_eq!("bridge_outflow".parse::<ThreatType>().unwrap(), a);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"bridge_outflow\"");
        assert_eq!(
            serde_json::from_str::<ThreatType>("\"bridge_outflow\"").unwrap(),
            a
        );
        assert!(ThreatType::declared().contains(&a));
        for bad in [
            "",
            "Bridge",
            "1x",
            "a-b",
            "oracle_deviation",
            &"x".repeat(49),
        ] {
            assert!(ThreatType::custom(bad).is_err(), "{bad:?}");
        }
        let err = "never_declared_here".parse::<ThreatType>().unwrap_err();
        assert!(err.to_string().contains("oracle_deviation"), "{err}");
        assert!(
            ThreatType::from_stored("from_a_previous_run")
                .unwrap()
                .is_custom()
        );
    }

    #[test]
    fn threat_types_roundtrip() {
        for t in ThreatType::ALL {
            assert_eq!(t.as_str().parse::<ThreatType>().unwrap(), *t);
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }

    #[test]
    fn evidence_serializes_decimals_as_strings() {
        let e = Evidence::new()
            .with("deviation_pct", "1.25".parse::<Decimal>().unwrap())
            .with("venue", "binance")
            .with("samples", 12_i64)
            .with("sustained", true);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"deviation_pct":"1.25","samples":12,"sustained":true,"venue":"binance"}"#
        );
        let back: Evidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
