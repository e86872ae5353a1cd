//! The scenario format: a directory with `scenario.toml` (what to replay and how it was built),
//! an optional `events.jsonl` (time-ordered overlay events, one normalized [`MarketEvent`] per
//! line) and `truth.toml` (what a monitor should say, and when). See `docs/SCENARIOS.md`.

use std::path::{Path, PathBuf};

use kamiyo_core_models::{
    Address, Coin, Decimal, MarketEvent, Severity, ThreatType, Timestamp, Venue,
};
use serde::{Deserialize, Deserializer};

/// Why a scenario could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// A file could not be read.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// A file did not parse or a value was invalid; names the file and the place.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with line or key.
        detail: String,
    },
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

pub(crate) fn invalid(path: &Path, detail: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = String::deserialize(d)?;
    Timestamp::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid time {s:?}: expected RFC 3339 like 2025-03-12T13:17:00Z"
        ))
    })
}

fn de_opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| {
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid time {s:?}")))
    })
    .transpose()
}

/// How a scenario's data was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// Built only from real recorded candles (interpolated between closes).
    RecordedCandles,
    /// Real candles where they exist, plus events reconstructed from public facts.
    Reconstructed,
    /// Made up; for tests of the machinery only.
    Synthetic,
}

impl Provenance {
    /// Label shown in outputs.
    pub fn label(self) -> &'static str {
        match self {
            Self::RecordedCandles => "recorded candles",
            Self::Reconstructed => "reconstructed",
            Self::Synthetic => "synthetic",
        }
    }
}

/// `[scenario]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioMeta {
    /// Short name (directory name).
    pub name: String,
    /// One-line title.
    pub title: String,
    /// Provenance label.
    pub provenance: Provenance,
    /// What happened and how the scenario was built.
    pub description: String,
    /// First event time.
    #[serde(deserialize_with = "de_time")]
    pub start: Timestamp,
    /// End (exclusive).
    #[serde(deserialize_with = "de_time")]
    pub end: Timestamp,
    /// Step of generated market ticks.
    #[serde(default = "default_tick")]
    pub tick_secs: u32,
    /// Data directory for `[[series]]` files, relative to the scenario directory.
    #[serde(default = "default_data_root")]
    pub data_root: String,
    /// Public sources the reconstruction is based on.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Feed staleness appropriate for this replay's tick spacing.
    #[serde(default)]
    pub stale_after_secs: Option<u32>,
}

impl ScenarioMeta {
    /// Feed staleness for this replay, in milliseconds: `stale_after_secs`, else three ticks.
    /// The engine leaves out reference quotes older than this, and so does the reconstructed
    /// oracle.
    pub fn stale_after_ms(&self) -> i64 {
        self.stale_after_secs
            .map_or(i64::from(self.tick_secs) * 3_000, |s| i64::from(s) * 1_000)
    }
}

fn default_tick() -> u32 {
    60
}

fn default_data_root() -> String {
    "../../testdata/market".into()
}

/// What a candle series stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeriesRole {
    /// A reference venue's price (becomes `Reference` quotes and feeds the oracle median).
    Reference,
    /// Hyperliquid's own perp price (becomes the mark and mid).
    Mark,
    /// Hyperliquid's perp price used only as an hourly basis over the reference median (for
    /// days where only 1 h Hyperliquid candles exist).
    MarkBasis,
}

/// `[[series]]`: a real candle file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// Venue (`hyperliquid`, `binance`, `coinbase`).
    pub venue: Venue,
    /// Hyperliquid coin.
    pub coin: Coin,
    /// CSV file under the data root.
    pub file: String,
    /// Candle interval in seconds.
    pub interval_secs: u32,
    /// Role.
    pub role: SeriesRole,
    /// Replay this series at a coarser resolution: its candles are merged into candles of this
    /// many seconds (first open, highest high, lowest low, last close, summed volume; only
    /// complete ones), so that venues quoting at different resolutions are compared like for
    /// like, at the same closes.
    #[serde(default)]
    pub resample_secs: Option<u32>,
}

/// `[[market]]`: a Hyperliquid perp in the replay, with the context values no candle carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSpec {
    /// Coin.
    pub coin: Coin,
    /// Open interest in base units (constant unless a path overrides it).
    pub open_interest: Decimal,
    /// 24 h notional volume used when no Hyperliquid candles give it.
    #[serde(default)]
    pub day_volume_usd: Option<Decimal>,
    /// Hourly funding CSV under the data root.
    #[serde(default)]
    pub funding_file: Option<String>,
    /// Constant funding when no file is given.
    #[serde(default)]
    pub funding: Option<Decimal>,
}

/// Interpolation of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interp {
    /// Straight lines between points.
    #[default]
    Linear,
    /// Hold each value until the next point.
    Step,
}

/// `[[path]]`: a value over time reconstructed from public facts, as waypoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    /// Coin.
    pub coin: Coin,
    /// `mark`, `oracle`, `mid`, `open_interest`, `day_volume_usd`, `funding`, or
    /// `reference:<venue>`.
    pub field: String,
    /// Interpolation.
    #[serde(default)]
    pub interp: Interp,
    /// `[time, value]` waypoints, time-ordered.
    pub points: Vec<(String, Decimal)>,
    /// Why these numbers (the public fact they come from).
    #[serde(default)]
    pub note: String,
}

/// `[[vault]]`: a vault whose account value and cumulative PnL follow paths.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSpec {
    /// Address.
    pub address: Address,
    /// Name.
    pub name: String,
    /// Snapshot cadence.
    pub every_secs: u32,
    /// Account value waypoints.
    pub account_value: Vec<(String, Decimal)>,
    /// Cumulative PnL waypoints.
    pub pnl: Vec<(String, Decimal)>,
    /// Why these numbers.
    #[serde(default)]
    pub note: String,
}

/// `[[position]]`: a user's position reconstructed from public facts; snapshots
/// (`clearinghouseState`) are generated on a cadence with value and PnL at the current mark.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionSpec {
    /// Account.
    pub user: Address,
    /// Market.
    pub coin: Coin,
    /// Snapshot cadence.
    pub every_secs: u32,
    /// Signed size waypoints (held until the next point).
    pub szi: Vec<(String, Decimal)>,
    /// Entry price waypoints (held).
    pub entry_px: Vec<(String, Decimal)>,
    /// Liquidation price waypoints (held).
    pub liquidation_px: Vec<(String, Decimal)>,
    /// Margin (account value excluding unrealised PnL) waypoints (held).
    pub margin: Vec<(String, Decimal)>,
    /// Leverage shown.
    #[serde(default)]
    pub leverage: Option<Decimal>,
    /// Why these numbers.
    #[serde(default)]
    pub note: String,
}

/// `[[fine_ticks]]`: a window with a finer market tick than the scenario's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineTicks {
    /// Window start.
    pub start: String,
    /// Window end.
    pub end: String,
    /// Tick inside the window.
    pub tick_secs: u32,
}

/// `scenario.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Metadata.
    pub scenario: ScenarioMeta,
    /// Real candle series.
    #[serde(default)]
    pub series: Vec<SeriesSpec>,
    /// Markets.
    #[serde(default)]
    pub market: Vec<MarketSpec>,
    /// Reconstructed paths.
    #[serde(default)]
    pub path: Vec<PathSpec>,
    /// Vaults.
    #[serde(default)]
    pub vault: Vec<VaultSpec>,
    /// Reconstructed positions.
    #[serde(default)]
    pub position: Vec<PositionSpec>,
    /// Finer tick windows.
    #[serde(default)]
    pub fine_ticks: Vec<FineTicks>,
}

/// One expectation of the ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Any of these threat types satisfies it.
    pub threat_types: Vec<ThreatType>,
    /// At least this severity.
    pub min_severity: Severity,
    /// Must fire strictly before the incident start.
    #[serde(default)]
    pub before_start: bool,
    /// Must fire no later than this many seconds after the start (event time).
    #[serde(default)]
    pub within_secs: Option<i64>,
    /// Earliest time that counts (defaults to one hour before the start).
    #[serde(default, deserialize_with = "de_opt_time")]
    pub not_before: Option<Timestamp>,
    /// What a monitor should say, in words.
    pub description: String,
}

/// One incident of the ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthIncident {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Start (the reference point of lead times).
    #[serde(deserialize_with = "de_time")]
    pub start: Timestamp,
    /// End of the incident window; detections up to here are attributed to it.
    #[serde(deserialize_with = "de_time")]
    pub end: Timestamp,
    /// Asset concerned.
    #[serde(default)]
    pub asset: Option<Coin>,
    /// Expectations.
    pub expect: Vec<Expectation>,
    /// Other things that truly happened as part of the incident, each backed by a public fact,
    /// that no expectation requires: a detection of one is neither a hit nor a false positive.
    #[serde(default)]
    pub related: Vec<Related>,
}

/// Something that truly happened as part of a truth incident (a precursor or a consequence)
/// and that a detector may rightly report, although the truth does not require it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Related {
    /// Threat types that report it.
    pub threat_types: Vec<ThreatType>,
    /// Earliest time it can be reported (defaults to the incident start); it ends with the
    /// incident.
    #[serde(default, deserialize_with = "de_opt_time")]
    pub not_before: Option<Timestamp>,
    /// The public fact that says it happened.
    pub fact: String,
}

/// Limits for a scenario without incidents (false-positive budget).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietBudget {
    /// Maximum critical incidents.
    pub max_critical: u32,
    /// Maximum high incidents.
    pub max_high: u32,
}

/// `truth.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundTruth {
    /// Incidents.
    #[serde(default)]
    pub incident: Vec<TruthIncident>,
    /// Budget for detections outside incident windows.
    #[serde(default)]
    pub quiet: Option<QuietBudget>,
}

/// A loaded scenario: manifest, expanded events, ground truth.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Where it was loaded from.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// Every event, time-ordered.
    pub events: Vec<MarketEvent>,
    /// The ground truth.
    pub truth: GroundTruth,
}

impl Scenario {
    /// Loads and expands the scenario in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ScenarioError> {
        let mpath = dir.join("scenario.toml");
        let text = std::fs::read_to_string(&mpath).map_err(|e| io_err(&mpath, e))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| invalid(&mpath, e.to_string()))?;
        if manifest.scenario.end <= manifest.scenario.start {
            return Err(invalid(&mpath, "scenario.end must be after scenario.start"));
        }
        if manifest.scenario.tick_secs == 0 {
            return Err(invalid(&mpath, "scenario.tick_secs must be positive"));
        }
        // The label must follow from the contents, not the other way round: a scenario with
        // reconstructed paths, positions or hand-written events is not "recorded".
        if manifest.scenario.provenance == Provenance::RecordedCandles {
            let reconstructed = [
                (!manifest.path.is_empty(), "[[path]]"),
                (!manifest.position.is_empty(), "[[position]]"),
                (dir.join("events.jsonl").exists(), "events.jsonl"),
            ];
            if let Some((_, what)) = reconstructed.iter().find(|(has, _)| *has) {
                return Err(invalid(
                    &mpath,
                    format!(
                        "provenance = \"recorded-candles\" but the scenario has {what}, which is reconstructed: label it \"reconstructed\""
                    ),
                ));
            }
            if manifest.series.is_empty() {
                return Err(invalid(
                    &mpath,
                    "provenance = \"recorded-candles\" needs at least one [[series]] of recorded candles",
                ));
            }
        }
        let tpath = dir.join("truth.toml");
        let truth = match std::fs::read_to_string(&tpath) {
            Ok(t) => toml::from_str(&t).map_err(|e| invalid(&tpath, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => GroundTruth::default(),
            Err(e) => return Err(io_err(&tpath, e)),
        };
        let events = super::build::expand(dir, &manifest)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            events,
            truth,
        })
    }

    /// Feed staleness for this replay, in milliseconds.
    pub fn stale_after_ms(&self) -> i64 {
        self.manifest.scenario.stale_after_ms()
    }
}
