//! The protocol registry: every protocol the platform knows — what it is, where its data comes
//! from, which plan it needs and whether an adapter ingests it — from `config/protocols.toml`
//! (or a deployment's own file), validated as a whole at start: every problem is reported with
//! the protocol it is in.

use std::fmt;

use kamiyo_core_models::ProtocolId;
use serde::{Deserialize, Serialize};

use crate::tiers::Tier;

/// The embedded registry.
pub const DEFAULT_PROTOCOLS_TOML: &str = include_str!("../config/protocols.toml");

/// The least number of protocols a registry must define (the product lists 20+).
pub const MIN_PROTOCOLS: usize = 20;

/// What kind of protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Perpetual futures exchange.
    PerpDex,
    /// Centralised perpetual futures exchange (a reference for the others).
    PerpCex,
    /// Spot exchange (AMM or order book).
    SpotDex,
    /// Lending market.
    Lending,
    /// Cross-chain bridge or messaging.
    Bridge,
    /// Price oracle.
    Oracle,
    /// Stablecoin.
    Stablecoin,
    /// Liquid staking.
    LiquidStaking,
}

/// Whether an adapter ingests it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterStatus {
    /// Ingested by an adapter of this code base.
    Live,
    /// No longer produces data; its past is kept.
    Historical,
    /// Listed; no adapter yet.
    Planned,
}

/// The adapter's status and, unless live, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adapter {
    /// Status.
    pub status: AdapterStatus,
    /// Why it is historical or planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolDef {
    /// Stable id (what tenants subscribe to, what events carry).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub category: Category,
    /// Chains it runs on.
    pub chains: Vec<String>,
    /// The cheapest plan that may subscribe to it.
    pub min_plan: Tier,
    /// Adapter.
    pub adapter: Adapter,
    /// Documentation of its data.
    pub docs: String,
    /// Where the data comes from.
    pub sources: Vec<String>,
    /// The open core's detector thresholds for this protocol, over their defaults (the
    /// self-hosted `[monitors]` format; only what differs is written).
    #[serde(default, skip_serializing)]
    pub monitors: kamiyo_monitors::MonitorsConfig,
    /// The platform's `venue_stress` thresholds for this protocol, over their defaults.
    #[serde(default, skip_serializing)]
    pub stress: crate::detectors::StressConfig,
}

impl ProtocolDef {
    /// Its id (validated at load).
    pub fn protocol(&self) -> Option<ProtocolId> {
        ProtocolId::parse(&self.id).ok()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    protocols: Vec<ProtocolDef>,
}

/// A registry that did not validate: every problem, `(where, what)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError(pub Vec<(String, String)>);

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (at, what)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{at}: {what}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

/// The validated registry, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    defs: Vec<ProtocolDef>,
}

impl Registry {
    /// Parses and validates a registry.
    pub fn load(text: &str) -> Result<Self, RegistryError> {
        let file: File = toml::from_str(text).map_err(|e| {
            RegistryError(vec![(
                "protocols".into(),
                e.to_string().lines().collect::<Vec<_>>().join(" "),
            )])
        })?;
        let mut p = Vec::new();
        if file.protocols.len() < MIN_PROTOCOLS {
            p.push((
                "protocols".into(),
                format!(
                    "{} defined; the registry lists at least {MIN_PROTOCOLS}",
                    file.protocols.len()
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in file.protocols.iter().enumerate() {
            let at = format!("protocols[{i}] ({})", d.id);
            if let Err(e) = ProtocolId::parse(&d.id) {
                p.push((at.clone(), format!("id: {e}")));
            }
            if !seen.insert(d.id.as_str()) {
                p.push((at.clone(), "id defined twice".into()));
            }
            if d.name.trim().is_empty() || d.name.len() > 80 {
                p.push((at.clone(), "name: 1 to 80 characters".into()));
            }
            if d.chains.is_empty() || d.chains.iter().any(|c| c.trim().is_empty()) {
                p.push((at.clone(), "chains: at least one, none empty".into()));
            }
            if !d.docs.starts_with("https://") {
                p.push((at.clone(), "docs: an https:// URL".into()));
            }
            if d.sources.is_empty() || d.sources.iter().any(|s| s.trim().is_empty()) {
                p.push((at.clone(), "sources: at least one, none empty".into()));
            }
            if let Err(e) = d.monitors.validate(&format!("{at}.monitors")) {
                p.push((at.clone(), e.to_string()));
            }
            for (k, why) in d.stress.problems("stress") {
                p.push((at.clone(), format!("{k}: {why}")));
            }
            let reason = d.adapter.reason.as_deref().map(str::trim).unwrap_or("");
            if d.adapter.status != AdapterStatus::Live && reason.is_empty() {
                p.push((
                    at.clone(),
                    "adapter.reason: a historical or planned protocol says why".into(),
                ));
            }
        }
        if p.is_empty() {
            Ok(Self {
                defs: file.protocols,
            })
        } else {
            Err(RegistryError(p))
        }
    }

    /// A registry with no protocols (a fallback; `load` never returns one).
    pub fn empty() -> Self {
        Self { defs: Vec::new() }
    }

    /// The embedded registry.
    pub fn embedded() -> Result<Self, RegistryError> {
        Self::load(DEFAULT_PROTOCOLS_TOML)
    }

    /// Every protocol, in file order.
    pub fn all(&self) -> &[ProtocolDef] {
        &self.defs
    }

    /// One protocol.
    pub fn get(&self, id: &ProtocolId) -> Option<&ProtocolDef> {
        self.defs.iter().find(|d| d.id == id.as_str())
    }

    /// The protocols `plan` may subscribe to.
    pub fn for_plan(&self, plan: Tier) -> impl Iterator<Item = &ProtocolDef> {
        self.defs.iter().filter(move |d| d.min_plan <= plan)
    }

    /// Checks a deployment's ingested protocols against the registry: each must be defined
    /// and live.
    pub fn check_ingested(&self, ingested: &[ProtocolId]) -> Result<(), RegistryError> {
        let p: Vec<(String, String)> = ingested
            .iter()
            .filter_map(|id| match self.get(id) {
                None => Some((
                    format!("platform.protocols ({id})"),
                    "not in the protocol registry".into(),
                )),
                Some(d) if d.adapter.status != AdapterStatus::Live => Some((
                    format!("platform.protocols ({id})"),
                    format!(
                        "the registry says its adapter is {:?}: {}",
                        d.adapter.status,
                        d.adapter.reason.as_deref().unwrap_or("")
                    ),
                )),
                Some(_) => None,
            })
            .collect();
        if p.is_empty() {
            Ok(())
        } else {
            Err(RegistryError(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_registry_validates_with_twenty_protocols_or_more() {
        let r = Registry::embedded().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.all().len() >= MIN_PROTOCOLS);
        let hl = r
            .get(&ProtocolId::HYPERLIQUID)
            .unwrap_or_else(|| panic!("hyperliquid"));
        assert_eq!(
            (hl.adapter.status, hl.min_plan),
            (AdapterStatus::Live, Tier::OpenSource)
        );
        let vertex = r
            .get(&ProtocolId::parse("vertex").unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|| panic!("vertex"));
        assert_eq!(vertex.adapter.status, AdapterStatus::Historical);
        // Each plan sees more than the one below it; open source sees Hyperliquid only.
        let counts: Vec<usize> = Tier::ALL.iter().map(|t| r.for_plan(*t).count()).collect();
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert_eq!(counts[0], 1);
        assert_eq!(counts[3], r.all().len());
        // Every category is represented.
        for c in [
            Category::PerpDex,
            Category::SpotDex,
            Category::Lending,
            Category::Bridge,
            Category::Oracle,
        ] {
            assert!(r.all().iter().any(|d| d.category == c), "{c:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_protocol() {
        let one = |id: &str, extra: &str| {
            format!(
                "[[protocols]]\nid = \"{id}\"\nname = \"X\"\ncategory = \"perp_dex\"\nchains = [\"c\"]\nmin_plan = \"cloud_basic\"\ndocs = \"https://x.example\"\nsources = [\"REST https://x.example\"]\n{extra}\n"
            )
        };
        let mut text = String::new();
        for i in 0..19 {
            text.push_str(&one(&format!("p{i}"), "adapter = { status = \"live\" }"));
        }
        text.push_str(&one("p3", "adapter = { status = \"live\" }"));
        text.push_str(&one("Bad Id", "adapter = { status = \"planned\" }"));
        let Err(e) = Registry::load(&text) else {
            panic!("accepted")
        };
        let msgs: Vec<String> = e.0.iter().map(|(a, m)| format!("{a}: {m}")).collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("protocols[19] (p3): id defined twice")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("protocols[20] (Bad Id): id:")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("(Bad Id): adapter.reason")),
            "{msgs:?}"
        );
        // Thresholds the detectors refuse are named with their protocol.
        let mut bad = String::new();
        for i in 0..20 {
            bad.push_str(&one(&format!("p{i}"), "adapter = { status = \"live\" }"));
        }
        bad.push_str("[protocols.stress]\nfunding_high = \"-1\"\n[protocols.monitors.oracle]\nwarn_pct = \"0\"\n");
        let Err(e) = Registry::load(&bad) else {
            panic!("accepted")
        };
        let msgs = e.to_string();
        assert!(
            msgs.contains("protocols[19] (p19): stress.funding"),
            "{msgs}"
        );
        assert!(
            msgs.contains("protocols[19] (p19): ") && msgs.contains("warn_pct"),
            "{msgs}"
        );
        // Too few, unknown fields and bad values are refused too.
        assert!(Registry::load(&one("a", "adapter = { status = \"live\" }")).is_err());
        assert!(Registry::load(&one("a", "adapter = { status = \"live\" }\nextra = 1")).is_err());
        assert!(Registry::load(&one("a", "adapter = { status = \"sometimes\" }")).is_err());
    }

    #[test]
    fn ingested_protocols_must_be_live_in_the_registry() {
        let r = Registry::embedded().unwrap_or_else(|e| panic!("{e}"));
        assert!(r.check_ingested(&[ProtocolId::HYPERLIQUID]).is_ok());
        let bad = [
            ProtocolId::parse("vertex").unwrap_or_else(|e| panic!("{e}")),
            ProtocolId::parse("nosuch").unwrap_or_else(|e| panic!("{e}")),
        ];
        let e = r
            .check_ingested(&bad)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.0.len(), 2, "{e}");
    }
}
