//! The detector registry: detectors registered by name with a factory that builds them from
//! the monitors configuration. An [`Engine`](crate::Engine) is built from a protocol's detector
//! set — the built-in ones ([`DetectorRegistry::builtin`]), a subset of them, or any mix with
//! detectors a library user registers. HLP vault monitoring is one entry like the others.

use std::sync::Arc;

use crate::config::{ConfigError, MonitorsConfig};
use crate::detectors::Detector;
use crate::detectors::feed::FeedDetector;
use crate::detectors::hlp::HlpDetector;
use crate::detectors::liquidation::LiquidationDetector;
use crate::detectors::oracle::OracleDetector;
use crate::detectors::thin_market::ThinMarketDetector;
use crate::detectors::venues::VenueDetector;
use crate::detectors::whale::WhaleDetector;

/// Builds a detector from the configuration; `Ok(None)` when the configuration turns it off.
pub type DetectorFactory =
    Arc<dyn Fn(&MonitorsConfig) -> Result<Option<Box<dyn Detector>>, ConfigError> + Send + Sync>;

/// Why a registry refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A second detector with a name already registered.
    #[error("a detector named {0:?} is already registered")]
    Duplicate(String),
    /// A detector set names a detector nobody registered.
    #[error("no detector named {name:?} is registered; registered: {registered}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        registered: String,
    },
    /// A detector's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Detectors by name, in registration order (the order they run in).
#[derive(Clone, Default)]
pub struct DetectorRegistry {
    entries: Vec<(String, DetectorFactory)>,
}

impl std::fmt::Debug for DetectorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl DetectorRegistry {
    /// A registry with nothing in it.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in detectors of Hyperliquid monitoring, in the order they run: `hlp_vault`,
    /// `oracle`, `venues`, `liquidations`, `thin_market`, `whales`, `feeds` (the last one off
    /// when `monitors.feeds.enabled` is false).
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        let builtin: [(&str, DetectorFactory); 7] = [
            (
                "hlp_vault",
                Arc::new(|c: &MonitorsConfig| Ok(Some(boxed(HlpDetector::new(c.hlp.clone()))))),
            ),
            (
                "oracle",
                Arc::new(|c: &MonitorsConfig| {
                    Ok(Some(boxed(OracleDetector::new(c.oracle.clone()))))
                }),
            ),
            (
                "venues",
                Arc::new(|c: &MonitorsConfig| {
                    Ok(Some(boxed(VenueDetector::new(c.venues.clone()))))
                }),
            ),
            (
                "liquidations",
                Arc::new(|c: &MonitorsConfig| {
                    Ok(Some(boxed(LiquidationDetector::new(
                        c.liquidations.clone(),
                    ))))
                }),
            ),
            (
                "thin_market",
                Arc::new(|c: &MonitorsConfig| {
                    Ok(Some(boxed(ThinMarketDetector::new(c.thin_market.clone()))))
                }),
            ),
            (
                "whales",
                Arc::new(|c: &MonitorsConfig| {
                    Ok(Some(boxed(WhaleDetector::new(c.whales.clone()))))
                }),
            ),
            (
                "feeds",
                Arc::new(|c: &MonitorsConfig| {
                    Ok(c.feeds.enabled.then(|| boxed(FeedDetector::new())))
                }),
            ),
        ];
        for (name, f) in builtin {
            r.entries.push((name.to_owned(), f));
        }
        r
    }

    /// Registers a detector under `name` (the name its `Detector::name` returns, by
    /// convention). Refuses a name already taken.
    pub fn register(
        &mut self,
        name: &str,
        factory: impl Fn(&MonitorsConfig) -> Result<Option<Box<dyn Detector>>, ConfigError>
        + Send
        + Sync
        + 'static,
    ) -> Result<&mut Self, RegistryError> {
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(RegistryError::Duplicate(name.to_owned()));
        }
        self.entries.push((name.to_owned(), Arc::new(factory)));
        Ok(self)
    }

    /// Registered names, in run order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Builds the detectors of a set: every registered one when `set` is `None`, otherwise
    /// those named (in registration order; an unknown name is an error).
    pub fn build(
        &self,
        config: &MonitorsConfig,
        set: Option<&[&str]>,
    ) -> Result<Vec<Box<dyn Detector>>, RegistryError> {
        if let Some(set) = set
            && let Some(unknown) = set
                .iter()
                .find(|n| !self.entries.iter().any(|(e, _)| e == *n))
        {
            return Err(RegistryError::Unknown {
                name: (*unknown).to_owned(),
                registered: self.names().join(", "),
            });
        }
        let mut out = Vec::new();
        for (name, factory) in &self.entries {
            if set.is_some_and(|s| !s.contains(&name.as_str())) {
                continue;
            }
            if let Some(d) = factory(config)? {
                out.push(d);
            }
        }
        Ok(out)
    }
}

fn boxed(d: impl Detector + 'static) -> Box<dyn Detector> {
    Box::new(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::Sink;
    use crate::state::MarketState;
    use kamiyo_core_models::MarketEvent;

    struct Quiet;
    impl Detector for Quiet {
        fn name(&self) -> &'static str {
            "quiet"
        }
        fn on_event(&mut self, _: &MarketEvent, _: &MarketState, _: &mut Sink) {}
    }

    #[test]
    fn builtin_order_subsets_and_registration() {
        let cfg = MonitorsConfig::default();
        let mut r = DetectorRegistry::builtin();
        assert_eq!(
            r.names(),
            [
                "hlp_vault",
                "oracle",
                "venues",
                "liquidations",
                "thin_market",
                "whales",
                "feeds"
            ]
        );
        let all = r.build(&cfg, None).unwrap();
        assert_eq!(all.len(), 7);
        let some = r.build(&cfg, Some(&["oracle", "hlp_vault"])).unwrap();
        assert_eq!(
            some.iter().map(|d| d.name()).collect::<Vec<_>>(),
            ["hlp_vault", "oracle"],
            "registration order, not the order asked"
        );
        let err = r.build(&cfg, Some(&["nope"])).err().unwrap();
        assert!(err.to_string().contains("hlp_vault, oracle"), "{err}");
        r.register("quiet", |_| Ok(Some(Box::new(Quiet) as Box<dyn Detector>)))
            .unwrap();
        assert!(matches!(
            r.register("oracle", |_| Ok(None)),
            Err(RegistryError::Duplicate(_))
        ));
        assert_eq!(r.build(&cfg, Some(&["quiet"])).unwrap()[0].name(), "quiet");
        let mut off = cfg.clone();
        off.feeds.enabled = false;
        assert_eq!(r.build(&off, None).unwrap().len(), 7, "feeds off, quiet on");
    }
}
