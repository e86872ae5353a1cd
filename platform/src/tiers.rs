//! The tier matrix: which features each plan has, its limits and its price, as typed,
//! validated configuration, and the server-side checks that enforce it.
//!
//! A refused feature maps to HTTP 402 (upgrade needed), a limit reached to HTTP 429.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// The embedded default matrix (`platform/config/tiers.toml`).
pub const DEFAULT_TIERS_TOML: &str = include_str!("../config/tiers.toml");

/// A plan.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Self-hosted open source.
    OpenSource,
    /// $99/month.
    CloudBasic,
    /// $299/month.
    CloudPro,
    /// $2,499/month.
    CloudEnterprise,
}

impl Tier {
    /// All tiers, cheapest first.
    pub const ALL: [Tier; 4] = [
        Self::OpenSource,
        Self::CloudBasic,
        Self::CloudPro,
        Self::CloudEnterprise,
    ];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenSource => "open_source",
            Self::CloudBasic => "cloud_basic",
            Self::CloudPro => "cloud_pro",
            Self::CloudEnterprise => "cloud_enterprise",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = TierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TierError::UnknownTier(s.chars().take(40).collect()))
    }
}

/// A gated feature.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// ARIMA risk forecast.
    PredictiveAnalytics,
    /// More than one protocol.
    MultiProtocol,
    /// Runs as one tenant among many.
    MultiTenant,
    /// Ensemble ML (Isolation Forest + One-Class SVM + Random Forest).
    AdvancedMl,
    /// Cross-protocol correlation.
    CrossProtocolCorrelation,
    /// Social sentiment signals.
    SocialSentiment,
    /// Custom branding.
    CustomBranding,
    /// Custom domain.
    CustomDomain,
    /// Priority support.
    PrioritySupport,
    /// Single sign-on (OIDC).
    Sso,
    /// Role-based access control.
    Rbac,
    /// Tenant audit log.
    AuditLog,
    /// Contractual SLA.
    Sla,
    /// White-label.
    WhiteLabel,
}

impl Feature {
    /// Every feature.
    pub const ALL: [Feature; 14] = [
        Self::PredictiveAnalytics,
        Self::MultiProtocol,
        Self::MultiTenant,
        Self::AdvancedMl,
        Self::CrossProtocolCorrelation,
        Self::SocialSentiment,
        Self::CustomBranding,
        Self::CustomDomain,
        Self::PrioritySupport,
        Self::Sso,
        Self::Rbac,
        Self::AuditLog,
        Self::Sla,
        Self::WhiteLabel,
    ];
}

/// A metered limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// Protocols monitored at once.
    Protocols,
    /// API calls per UTC day.
    ApiCallsPerDay,
    /// Alerts delivered per UTC day.
    AlertsPerDay,
    /// Days of history kept and queryable.
    HistoryDays,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 4] = [
        Self::Protocols,
        Self::ApiCallsPerDay,
        Self::AlertsPerDay,
        Self::HistoryDays,
    ];
}

/// Limits of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Protocols monitored at once.
    pub protocols: u32,
    /// API calls per UTC day.
    pub api_calls_per_day: u64,
    /// Alerts per UTC day.
    pub alerts_per_day: u64,
    /// Days of history.
    pub history_days: u32,
}

impl Limits {
    /// The value of one limit.
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::Protocols => u64::from(self.protocols),
            Limit::ApiCallsPerDay => self.api_calls_per_day,
            Limit::AlertsPerDay => self.alerts_per_day,
            Limit::HistoryDays => u64::from(self.history_days),
        }
    }
}

/// Configuration of one tier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Name shown on the pricing page.
    pub display_name: String,
    /// Price in US cents per month.
    pub price_cents_per_month: u64,
    /// Hosted by kamiyo.ai.
    pub managed_hosting: bool,
    /// Support level.
    pub support: String,
    /// Enabled features.
    pub features: BTreeSet<Feature>,
    /// Limits.
    pub limits: Limits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    tiers: BTreeMap<Tier, TierConfig>,
}

/// The full matrix, validated: every tier present, and a higher tier never loses a feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierMatrix {
    tiers: BTreeMap<Tier, TierConfig>,
}

/// Why a matrix was rejected or a check refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierError {
    /// Not one of the four tiers.
    #[error("unknown tier {0:?}; expected open_source, cloud_basic, cloud_pro or cloud_enterprise")]
    UnknownTier(String),
    /// The TOML did not parse or had unknown keys.
    #[error("invalid tier configuration: {0}")]
    Invalid(String),
    /// The feature is not in the tenant's plan (HTTP 402).
    #[error("feature {feature:?} is not included in the {tier} plan")]
    FeatureNotInPlan {
        /// The tier.
        tier: Tier,
        /// The feature.
        feature: Feature,
    },
    /// A limit was reached (HTTP 429).
    #[error("{limit:?} limit of the {tier} plan reached ({used} of {max})")]
    LimitReached {
        /// The tier.
        tier: Tier,
        /// The limit.
        limit: Limit,
        /// Usage including the request.
        used: u64,
        /// The limit value.
        max: u64,
    },
}

impl TierError {
    /// The HTTP status this refusal maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::FeatureNotInPlan { .. } => 402,
            Self::LimitReached { .. } => 429,
            Self::UnknownTier(_) | Self::Invalid(_) => 400,
        }
    }
}

impl TierMatrix {
    /// Parses and validates a matrix.
    pub fn load(toml_text: &str) -> Result<Self, TierError> {
        let file: TierFile =
            toml::from_str(toml_text).map_err(|e| TierError::Invalid(e.to_string()))?;
        for t in Tier::ALL {
            if !file.tiers.contains_key(&t) {
                return Err(TierError::Invalid(format!("tier {t} is missing")));
            }
        }
        for pair in Tier::ALL.windows(2) {
            let (lo, hi) = (&file.tiers[&pair[0]], &file.tiers[&pair[1]]);
            if let Some(f) = lo.features.difference(&hi.features).next() {
                return Err(TierError::Invalid(format!(
                    "{} has feature {f:?} but the higher tier {} does not",
                    pair[0], pair[1]
                )));
            }
            if hi.price_cents_per_month < lo.price_cents_per_month {
                return Err(TierError::Invalid(format!(
                    "{} is cheaper than {}",
                    pair[1], pair[0]
                )));
            }
        }
        Ok(Self { tiers: file.tiers })
    }

    /// The embedded default matrix.
    pub fn default_matrix() -> Result<Self, TierError> {
        Self::load(DEFAULT_TIERS_TOML)
    }

    /// One tier's configuration.
    pub fn config(&self, tier: Tier) -> &TierConfig {
        // Every tier is present: `load` checked it.
        &self.tiers[&tier]
    }

    /// True when `tier` includes `feature`.
    pub fn is_feature_enabled(&self, tier: Tier, feature: Feature) -> bool {
        self.config(tier).features.contains(&feature)
    }

    /// The cheapest tier that includes `feature` (what a 402 tells the tenant to move to).
    pub fn cheapest_with(&self, feature: Feature) -> Option<Tier> {
        Tier::ALL
            .into_iter()
            .filter(|t| self.is_feature_enabled(*t, feature))
            .min_by_key(|t| self.config(*t).price_cents_per_month)
    }

    /// Refuses with 402 unless `tier` includes `feature`.
    pub fn require_feature(&self, tier: Tier, feature: Feature) -> Result<(), TierError> {
        if self.is_feature_enabled(tier, feature) {
            Ok(())
        } else {
            Err(TierError::FeatureNotInPlan { tier, feature })
        }
    }

    /// Refuses with 429 when using `requested` more on top of `used` would exceed the limit.
    pub fn check_limit(
        &self,
        tier: Tier,
        limit: Limit,
        used: u64,
        requested: u64,
    ) -> Result<(), TierError> {
        let max = self.config(tier).limits.get(limit);
        let total = used.saturating_add(requested);
        if total <= max {
            Ok(())
        } else {
            Err(TierError::LimitReached {
                tier,
                limit,
                used: total,
                max,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Feature as F;

    /// The product spec (§3), written out independently of the TOML: tier → features.
    fn expected_features(t: Tier) -> &'static [Feature] {
        match t {
            Tier::OpenSource => &[F::PredictiveAnalytics],
            Tier::CloudBasic => &[F::PredictiveAnalytics, F::MultiProtocol, F::MultiTenant],
            Tier::CloudPro => &[
                F::PredictiveAnalytics,
                F::MultiProtocol,
                F::MultiTenant,
                F::AdvancedMl,
                F::CrossProtocolCorrelation,
                F::SocialSentiment,
                F::CustomBranding,
                F::CustomDomain,
                F::PrioritySupport,
            ],
            Tier::CloudEnterprise => &F::ALL,
        }
    }

    fn expected_limits(t: Tier) -> [u64; 4] {
        match t {
            Tier::OpenSource => [1, 100_000, 1_000, 90],
            Tier::CloudBasic => [5, 10_000, 100, 30],
            Tier::CloudPro => [20, 100_000, 500, 180],
            Tier::CloudEnterprise => [999, 1_000_000, 10_000, 365],
        }
    }

    #[test]
    fn every_feature_cell_matches_the_spec() {
        let m = TierMatrix::default_matrix().unwrap();
        for t in Tier::ALL {
            for f in Feature::ALL {
                let want = expected_features(t).contains(&f);
                assert_eq!(m.is_feature_enabled(t, f), want, "{t} / {f:?}");
                assert_eq!(m.require_feature(t, f).is_ok(), want, "{t} / {f:?}");
                if !want {
                    assert_eq!(m.require_feature(t, f).unwrap_err().http_status(), 402);
                }
            }
        }
    }

    #[test]
    fn every_limit_cell_matches_the_spec_and_is_enforced_at_the_boundary() {
        let m = TierMatrix::default_matrix().unwrap();
        for t in Tier::ALL {
            for (i, l) in Limit::ALL.into_iter().enumerate() {
                let max = expected_limits(t)[i];
                assert_eq!(m.config(t).limits.get(l), max, "{t} / {l:?}");
                assert!(
                    m.check_limit(t, l, max - 1, 1).is_ok(),
                    "{t} / {l:?} at the limit"
                );
                let err = m.check_limit(t, l, max, 1).unwrap_err();
                assert_eq!(err.http_status(), 429);
                assert!(matches!(err, TierError::LimitReached { used, .. } if used == max + 1));
            }
        }
    }

    #[test]
    fn prices_match_the_spec() {
        let m = TierMatrix::default_matrix().unwrap();
        let prices: Vec<u64> = Tier::ALL
            .iter()
            .map(|t| m.config(*t).price_cents_per_month)
            .collect();
        assert_eq!(prices, [0, 9_900, 29_900, 249_900]);
        assert!(!m.config(Tier::OpenSource).managed_hosting);
        assert!(m.config(Tier::CloudEnterprise).managed_hosting);
    }

    #[test]
    fn invalid_matrices_are_refused_with_the_reason() {
        let missing = DEFAULT_TIERS_TOML.replace("[tiers.cloud_pro]", "[tiers.cloud_pro_x]");
        assert!(matches!(
            TierMatrix::load(&missing),
            Err(TierError::Invalid(_))
        ));
        let unknown_key = DEFAULT_TIERS_TOML.replacen(
            "support = \"email\"",
            "support = \"email\"\ncolour = 1",
            1,
        );
        let err = TierMatrix::load(&unknown_key).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let lost = DEFAULT_TIERS_TOML.replacen(
            "features = [\"predictive_analytics\", \"multi_protocol\", \"multi_tenant\"]",
            "features = [\"multi_protocol\", \"multi_tenant\"]",
            1,
        );
        let err = TierMatrix::load(&lost).unwrap_err().to_string();
        assert!(err.contains("PredictiveAnalytics"), "{err}");
        assert_eq!("enterprise".parse::<Tier>().unwrap_err().http_status(), 400);
    }
}
