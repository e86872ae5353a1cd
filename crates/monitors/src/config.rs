//! Detector configuration: data with documented defaults. Every field has a default that is
//! the product's threshold; unknown keys are rejected (`deny_unknown_fields`), and `validate`
//! names the key of any out-of-range value.

use std::collections::BTreeMap;

use kamiyo_core_models::{Address, Coin, Decimal};
use serde::{Deserialize, Serialize};

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// An invalid configuration value, named by its key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for `{key}`: {reason}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `monitors.oracle.warn_pct`.
    pub key: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn check(cond: bool, key: &str, reason: &str) -> Result<(), ConfigError> {
    if cond {
        Ok(())
    } else {
        Err(ConfigError {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    }
}

/// Configuration of every built-in detector and of the incident lifecycle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorsConfig {
    /// Incident lifecycle.
    pub incidents: IncidentConfig,
    /// HLP vault and its child vaults.
    pub hlp: HlpConfig,
    /// Oracle and mark deviation.
    pub oracle: OracleConfig,
    /// Disagreement between the reference venues (the oracle's inputs).
    pub venues: VenueConfig,
    /// Liquidations and auto-deleveraging.
    pub liquidations: LiquidationConfig,
    /// Thin-market manipulation.
    pub thin_market: ThinMarketConfig,
    /// Whale liquidation risk.
    pub whales: WhaleConfig,
    /// Feed health.
    pub feeds: FeedConfig,
}

impl MonitorsConfig {
    /// Checks every value, naming the first bad key (under `prefix`, e.g. `monitors`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |s: &str| format!("{prefix}.{s}");
        let i = &self.incidents;
        check(
            i.resolve_after_secs > 0,
            &k("incidents.resolve_after_secs"),
            "must be positive",
        )?;
        check(
            i.update_interval_secs > 0,
            &k("incidents.update_interval_secs"),
            "must be positive",
        )?;
        let h = &self.hlp;
        check(
            h.loss_high_usd > Decimal::ZERO,
            &k("hlp.loss_high_usd"),
            "must be positive",
        )?;
        check(
            h.loss_critical_usd >= h.loss_high_usd,
            &k("hlp.loss_critical_usd"),
            "must be at least hlp.loss_high_usd",
        )?;
        check(
            h.drawdown_high_pct > Decimal::ZERO && h.drawdown_high_pct < Decimal::ONE_HUNDRED,
            &k("hlp.drawdown_high_pct"),
            "must be in (0, 100)",
        )?;
        check(h.sigma > Decimal::ZERO, &k("hlp.sigma"), "must be positive")?;
        check(
            h.min_samples >= 10,
            &k("hlp.min_samples"),
            "must be at least 10",
        )?;
        check(
            h.return_bucket_secs > 0,
            &k("hlp.return_bucket_secs"),
            "must be positive",
        )?;
        check(
            h.exposure_high_oi_pct > Decimal::ZERO
                && h.exposure_high_oi_pct <= Decimal::ONE_HUNDRED,
            &k("hlp.exposure_high_oi_pct"),
            "must be in (0, 100]",
        )?;
        check(
            h.exposure_high_oi_pct <= h.exposure_critical_oi_pct
                && h.exposure_critical_oi_pct <= Decimal::ONE_HUNDRED,
            &k("hlp.exposure_critical_oi_pct"),
            "must be at least exposure_high_oi_pct and at most 100",
        )?;
        check(
            h.liquidator_loss_high_pct > Decimal::ZERO,
            &k("hlp.liquidator_loss_high_pct"),
            "must be positive",
        )?;
        check(
            h.liquidator_loss_critical_pct >= h.liquidator_loss_high_pct,
            &k("hlp.liquidator_loss_critical_pct"),
            "must be at least liquidator_loss_high_pct",
        )?;
        let o = &self.oracle;
        o.thresholds.validate(&k("oracle"))?;
        for (coin, t) in &o.assets {
            t.validate(&k(&format!("oracle.assets.{coin}")))?;
        }
        check(
            o.reference_max_age_secs > 0,
            &k("oracle.reference_max_age_secs"),
            "must be positive",
        )?;
        check(
            self.venues.split_pct > Decimal::ZERO,
            &k("venues.split_pct"),
            "must be positive",
        )?;
        let l = &self.liquidations;
        check(
            l.large_window_secs > 0,
            &k("liquidations.large_window_secs"),
            "must be positive",
        )?;
        check(
            l.large_usd > Decimal::ZERO,
            &k("liquidations.large_usd"),
            "must be positive",
        )?;
        check(
            l.large_critical_usd >= l.large_usd,
            &k("liquidations.large_critical_usd"),
            "must be at least liquidations.large_usd",
        )?;
        check(
            l.cascade_window_secs > 0,
            &k("liquidations.cascade_window_secs"),
            "must be positive",
        )?;
        check(
            l.cascade_critical_count >= l.cascade_count,
            &k("liquidations.cascade_critical_count"),
            "must be at least liquidations.cascade_count",
        )?;
        check(
            l.cascade_critical_usd > Decimal::ZERO,
            &k("liquidations.cascade_critical_usd"),
            "must be positive",
        )?;
        check(
            l.coordinated_window_secs > 0,
            &k("liquidations.coordinated_window_secs"),
            "must be positive",
        )?;
        for (i, w) in l.market_windows.iter().enumerate() {
            let key = |f: &str| k(&format!("liquidations.market_windows[{i}].{f}"));
            check(w.secs > 0, &key("secs"), "must be positive")?;
            check(
                w.high.liquidations >= 1 && w.high.coins >= 2,
                &key("high"),
                "needs at least 1 liquidation and 2 markets (one market is the per-market cascade rule)",
            )?;
            check(
                w.critical.liquidations >= w.high.liquidations
                    && w.critical.notional_usd >= w.high.notional_usd
                    && w.critical.coins >= w.high.coins,
                &key("critical"),
                "every minimum must be at least the high one",
            )?;
        }
        check(
            l.cascade_count >= 2,
            &k("liquidations.cascade_count"),
            "must be at least 2",
        )?;
        check(
            l.coordinated_count >= 2,
            &k("liquidations.coordinated_count"),
            "must be at least 2",
        )?;
        let t = &self.thin_market;
        check(
            t.window_secs > 0,
            &k("thin_market.window_secs"),
            "must be positive",
        )?;
        check(
            t.move_high_pct > Decimal::ZERO,
            &k("thin_market.move_high_pct"),
            "must be positive",
        )?;
        check(
            t.move_critical_pct >= t.move_high_pct,
            &k("thin_market.move_critical_pct"),
            "must be at least move_high_pct",
        )?;
        // A thin market is critical at a smaller move than a deep one; the other way round the
        // thin-market critical threshold could never take effect.
        check(
            t.any_market_critical_pct >= t.move_critical_pct,
            &k("thin_market.any_market_critical_pct"),
            "must be at least thin_market.move_critical_pct (else that threshold never takes effect)",
        )?;
        check(
            t.thin_oi_to_volume > Decimal::ZERO,
            &k("thin_market.thin_oi_to_volume"),
            "must be positive",
        )?;
        check(
            t.wall_multiple > Decimal::ONE,
            &k("thin_market.wall_multiple"),
            "must be above 1",
        )?;
        let w = &self.whales;
        check(
            w.min_notional_usd > Decimal::ZERO,
            &k("whales.min_notional_usd"),
            "must be positive",
        )?;
        check(
            w.huge_notional_usd >= w.min_notional_usd,
            &k("whales.huge_notional_usd"),
            "must be at least whales.min_notional_usd",
        )?;
        // Distances to liquidation: the closer, the more severe.
        check(
            w.critical_pct > Decimal::ZERO,
            &k("whales.critical_pct"),
            "must be positive",
        )?;
        check(
            w.high_pct >= w.critical_pct,
            &k("whales.high_pct"),
            "must be at least whales.critical_pct (a larger distance is less severe)",
        )?;
        check(
            w.medium_pct >= w.high_pct,
            &k("whales.medium_pct"),
            "must be at least whales.high_pct (a larger distance is less severe)",
        )?;
        Ok(())
    }
}

/// Incident lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// An incident resolves after this long without a detection.
    pub resolve_after_secs: u32,
    /// At most one `updated` step per incident per this interval (escalations are immediate).
    pub update_interval_secs: u32,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            resolve_after_secs: 600,
            update_interval_secs: 900,
        }
    }
}

/// HLP vault detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlpConfig {
    /// The HLP parent vault.
    pub vault: Address,
    /// HLP child vaults (positions watched for exposure; Liquidators for stress). Discovered
    /// children are added at run time.
    pub children: Vec<Address>,
    /// The Liquidator vaults among them.
    pub liquidators: Vec<Address>,
    /// 24 h PnL loss (USD) that is high.
    pub loss_high_usd: Decimal,
    /// 24 h PnL loss (USD) that is critical.
    pub loss_critical_usd: Decimal,
    /// Drawdown of PnL from its peak, as a percentage of account value, that is high.
    pub drawdown_high_pct: Decimal,
    /// Sigma threshold of the return anomaly.
    pub sigma: Decimal,
    /// Return samples needed before the anomaly rule runs.
    pub min_samples: u32,
    /// Bucket of the return series, seconds.
    pub return_bucket_secs: u32,
    /// A child position worth at least this share of the market's open interest is high.
    pub exposure_high_oi_pct: Decimal,
    /// … and this share is critical.
    pub exposure_critical_oi_pct: Decimal,
    /// Child positions below this notional are ignored.
    pub exposure_min_usd: Decimal,
    /// Liquidator losses (unrealised + realised over 24 h) as a share of its account value that
    /// are high.
    pub liquidator_loss_high_pct: Decimal,
    /// … and critical (close to the ADL trigger).
    pub liquidator_loss_critical_pct: Decimal,
}

impl Default for HlpConfig {
    fn default() -> Self {
        let a = |s: &str| Address::parse(s).unwrap_or(Address::from_bytes([0; 20]));
        Self {
            vault: a("0xdfc24b077bc1425ad1dea75bcb6f8158e10df303"),
            children: vec![
                a("0x010461c14e146ac35fe42271bdc1134ee31c703a"),
                a("0x2e3d94f0562703b25c83308a05046ddaf9a8dd14"),
                a("0x31ca8395cf837de08b24da3f660e77761dfb974b"),
                a("0x469f690213c467c39a23efacfd2816896009d7d8"),
                a("0xb0a55f13d22f66e6d495ac98113841b2326e9540"),
                a("0x5e177e5e39c0f4e421f5865a6d8beed8d921cb70"),
                a("0x2ed5c4484ea3ff8b57d5f2fb152a40d9f2b68308"),
            ],
            liquidators: vec![
                a("0x2e3d94f0562703b25c83308a05046ddaf9a8dd14"),
                a("0xb0a55f13d22f66e6d495ac98113841b2326e9540"),
                a("0x5e177e5e39c0f4e421f5865a6d8beed8d921cb70"),
                a("0x2ed5c4484ea3ff8b57d5f2fb152a40d9f2b68308"),
            ],
            loss_high_usd: d("1000000"),
            loss_critical_usd: d("2000000"),
            drawdown_high_pct: d("10"),
            sigma: d("3"),
            min_samples: 100,
            return_bucket_secs: 300,
            exposure_high_oi_pct: d("25"),
            exposure_critical_oi_pct: d("50"),
            exposure_min_usd: d("1000000"),
            liquidator_loss_high_pct: d("20"),
            liquidator_loss_critical_pct: d("40"),
        }
    }
}

/// Deviation thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviationThresholds {
    /// Deviation (percent, absolute) that warns (severity high).
    pub warn_pct: Decimal,
    /// Deviation that is critical.
    pub critical_pct: Decimal,
    /// How long the deviation must hold before it fires.
    pub sustain_secs: u32,
}

impl Default for DeviationThresholds {
    fn default() -> Self {
        Self {
            warn_pct: d("0.5"),
            critical_pct: d("1"),
            sustain_secs: 60,
        }
    }
}

impl DeviationThresholds {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        check(
            self.warn_pct > Decimal::ZERO,
            &format!("{key}.warn_pct"),
            "must be positive",
        )?;
        check(
            self.critical_pct >= self.warn_pct,
            &format!("{key}.critical_pct"),
            "must be at least warn_pct",
        )?;
        Ok(())
    }
}

/// Oracle detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OracleConfig {
    /// Default thresholds.
    #[serde(flatten)]
    pub thresholds: DeviationThresholds,
    /// Per-asset overrides.
    pub assets: BTreeMap<Coin, DeviationThresholds>,
    /// Reference quotes older than this are not used (the feed is stale).
    pub reference_max_age_secs: u32,
    /// Compare mid (not only mark) with the oracle.
    pub check_mid: bool,
}

impl Default for OracleConfig {
    fn default() -> Self {
        Self {
            thresholds: DeviationThresholds::default(),
            assets: BTreeMap::new(),
            reference_max_age_secs: 30,
            check_mid: false,
        }
    }
}

impl OracleConfig {
    /// Thresholds for `coin`.
    pub fn for_coin(&self, coin: &Coin) -> &DeviationThresholds {
        self.assets.get(coin).unwrap_or(&self.thresholds)
    }
}

/// Venue-disagreement detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VenueConfig {
    /// The venues split into two groups whose prices are at least this far apart (percent of the
    /// lower group's top): the group presumed dislocated opens an incident (high).
    pub split_pct: Decimal,
    /// How long the split must hold.
    pub sustain_secs: u32,
    /// Venues are compared only when their quotes are at most this far apart in time (a venue
    /// quoting once per candle is compared with the others only at its own candle closes).
    pub max_skew_secs: u32,
}

impl Default for VenueConfig {
    fn default() -> Self {
        Self {
            split_pct: d("1"),
            sustain_secs: 60,
            max_skew_secs: 60,
        }
    }
}

/// Liquidation detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiquidationConfig {
    /// Liquidated notional within `large_window_secs` that is high.
    pub large_usd: Decimal,
    /// … that is critical.
    pub large_critical_usd: Decimal,
    /// Window of the large-liquidation rule.
    pub large_window_secs: u32,
    /// Liquidations in one market within `cascade_window_secs` that form a cascade (high).
    pub cascade_count: u32,
    /// A cascade with at least this many liquidations is critical …
    pub cascade_critical_count: u32,
    /// … or with at least this much notional.
    pub cascade_critical_usd: Decimal,
    /// Window of the cascade rule.
    pub cascade_window_secs: u32,
    /// One account liquidated at least this many times …
    pub coordinated_count: u32,
    /// … for at least this notional (high).
    pub coordinated_usd: Decimal,
    /// Window of the coordinated rule.
    pub coordinated_window_secs: u32,
    /// Market-wide cascade: liquidations across every market in sliding windows. A window
    /// reaches a level when its liquidation count, notional and number of markets all reach
    /// that level's minimums; the highest level of any window is the cascade's severity. One
    /// incident for the cascade; the per-market liquidation incidents are grouped under it and
    /// not alerted separately while it is open. Empty disables the rule.
    pub market_windows: Vec<MarketWindow>,
}

/// One window of the market-wide cascade rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketWindow {
    /// Window length.
    pub secs: u32,
    /// Minimums for high.
    pub high: CascadeMinimums,
    /// Minimums for critical.
    pub critical: CascadeMinimums,
}

/// What a market-wide window must hold to reach a level (all three).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeMinimums {
    /// Liquidation fills (ADL fills are not counted; they have their own rule).
    pub liquidations: u32,
    /// Liquidated notional, USD.
    pub notional_usd: Decimal,
    /// Distinct markets with a liquidation in the window.
    pub coins: u32,
}

impl CascadeMinimums {
    fn new(liquidations: u32, notional_usd: &str, coins: u32) -> Self {
        Self {
            liquidations,
            notional_usd: d(notional_usd),
            coins,
        }
    }
}

/// The default market-wide windows. A median day on Hyperliquid in 2025 saw about $106M
/// liquidated across about 66 markets (the public daily statistics in `testdata/market`), about
/// $1.2k per second on average; high asks for a sizeable share of such a day inside one window
/// across several markets, critical for an order of magnitude more across many. The 2025-10-10
/// cascade (63,637 liquidation fills, $7.61B, 162 markets in 12 minutes) is far beyond critical.
fn default_market_windows() -> Vec<MarketWindow> {
    let w = |secs, high, critical| MarketWindow {
        secs,
        high,
        critical,
    };
    vec![
        w(
            10,
            CascadeMinimums::new(25, "5000000", 3),
            CascadeMinimums::new(250, "50000000", 10),
        ),
        w(
            60,
            CascadeMinimums::new(100, "20000000", 5),
            CascadeMinimums::new(1000, "200000000", 20),
        ),
        w(
            300,
            CascadeMinimums::new(250, "50000000", 10),
            CascadeMinimums::new(2500, "500000000", 30),
        ),
    ]
}

impl Default for LiquidationConfig {
    fn default() -> Self {
        Self {
            large_usd: d("500000"),
            large_critical_usd: d("10000000"),
            large_window_secs: 10,
            cascade_count: 5,
            cascade_critical_count: 15,
            cascade_critical_usd: d("10000000"),
            cascade_window_secs: 300,
            coordinated_count: 3,
            coordinated_usd: d("1000000"),
            coordinated_window_secs: 3600,
            market_windows: default_market_windows(),
        }
    }
}

/// Thin-market manipulation detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThinMarketConfig {
    /// Look-back of the price-move rule.
    pub window_secs: u32,
    /// Mark move (percent) within the window that is high on a thin market.
    pub move_high_pct: Decimal,
    /// Mark move that is critical on a thin market (at most `any_market_critical_pct`).
    pub move_critical_pct: Decimal,
    /// A market is thin below this 24 h notional volume …
    pub thin_volume_usd: Decimal,
    /// … or when its open interest exceeds this multiple of its 24 h volume.
    pub thin_oi_to_volume: Decimal,
    /// Severity-raising move on any market, however deep (critical).
    pub any_market_critical_pct: Decimal,
    /// A book level worth at least this multiple of the side's median level is a wall.
    pub wall_multiple: Decimal,
    /// … and at least this notional.
    pub wall_min_usd: Decimal,
    /// A wall pulled within this long after appearing is suspicious.
    pub wall_pull_secs: u32,
}

impl Default for ThinMarketConfig {
    fn default() -> Self {
        Self {
            window_secs: 600,
            move_high_pct: d("20"),
            move_critical_pct: d("30"),
            thin_volume_usd: d("50000000"),
            thin_oi_to_volume: d("1"),
            any_market_critical_pct: d("40"),
            wall_multiple: d("10"),
            wall_min_usd: d("1000000"),
            wall_pull_secs: 300,
        }
    }
}

/// Whale detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhaleConfig {
    /// Positions below this notional are ignored.
    pub min_notional_usd: Decimal,
    /// Positions above this notional get one severity level more.
    pub huge_notional_usd: Decimal,
    /// Distance to liquidation (percent of mark) that is medium.
    pub medium_pct: Decimal,
    /// … high.
    pub high_pct: Decimal,
    /// … critical.
    pub critical_pct: Decimal,
    /// A withdrawal by the same account within this long raises the severity one level.
    pub withdrawal_window_secs: u32,
}

impl Default for WhaleConfig {
    fn default() -> Self {
        Self {
            min_notional_usd: d("10000000"),
            huge_notional_usd: d("100000000"),
            medium_pct: d("2"),
            high_pct: d("1"),
            critical_pct: d("0.3"),
            withdrawal_window_secs: 3600,
        }
    }
}

/// Feed-health detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Report feed health at all.
    pub enabled: bool,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_overrides_parse() {
        MonitorsConfig::default().validate("monitors").unwrap();
        let c: MonitorsConfig = toml::from_str("[oracle]\nwarn_pct = \"0.8\"\n[oracle.assets.HYPE]\nwarn_pct = \"1.5\"\ncritical_pct = \"3\"\n").unwrap();
        assert_eq!(
            c.oracle.for_coin(&Coin::new("HYPE").unwrap()).warn_pct,
            d("1.5")
        );
        assert_eq!(
            c.oracle.for_coin(&Coin::new("BTC").unwrap()).warn_pct,
            d("0.8")
        );
        let bad: Result<MonitorsConfig, _> = toml::from_str("[oracle]\nwarn_pc = \"0.8\"\n");
        assert!(bad.unwrap_err().to_string().contains("warn_pc"));
        let mut c = MonitorsConfig::default();
        c.hlp.loss_critical_usd = d("5");
        assert_eq!(
            c.validate("monitors").unwrap_err().key,
            "monitors.hlp.loss_critical_usd"
        );
    }

    #[test]
    fn inconsistent_threshold_pairs_are_refused() {
        let bad = |f: fn(&mut MonitorsConfig), key: &str| {
            let mut c = MonitorsConfig::default();
            f(&mut c);
            assert_eq!(
                c.validate("monitors").map_err(|e| e.key),
                Err(format!("monitors.{key}"))
            );
        };
        // The thin-market critical threshold above the any-market one could never fire.
        bad(
            |c| c.thin_market.move_critical_pct = d("45"),
            "thin_market.any_market_critical_pct",
        );
        bad(
            |c| c.thin_market.move_critical_pct = d("10"),
            "thin_market.move_critical_pct",
        );
        bad(|c| c.whales.high_pct = d("0.2"), "whales.high_pct");
        bad(|c| c.whales.medium_pct = d("0.9"), "whales.medium_pct");
        bad(
            |c| c.liquidations.cascade_critical_count = 4,
            "liquidations.cascade_critical_count",
        );
        bad(
            |c| c.hlp.liquidator_loss_critical_pct = d("10"),
            "hlp.liquidator_loss_critical_pct",
        );
        bad(
            |c| c.hlp.exposure_critical_oi_pct = d("120"),
            "hlp.exposure_critical_oi_pct",
        );
        bad(
            |c| c.oracle.thresholds.critical_pct = d("0.4"),
            "oracle.critical_pct",
        );
    }
}
