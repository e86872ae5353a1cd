//! The platform's market-stress detector for every protocol, registered into the open core's
//! detector registry beside the built-in ones (`venue_stress`): four rules that read what any
//! perpetual venue publishes, each with per-protocol thresholds from the protocol registry.
//!
//! - **Funding extremes**: the venue's funding rate normalised to a fraction per hour
//!   (`funding_to_hourly`: venues quote per hour, per 8 h or in percent) beyond
//!   `funding_high`/`funding_critical`. Funding that large means one side is crowded enough to
//!   pay hundreds of percent a year to stay — the setup of squeezes and cascades.
//! - **Open-interest jumps**: open interest rising or falling by `oi_jump_*_pct` within
//!   `oi_window_secs`, on markets holding at least `oi_min_usd`. A jump up is a position being
//!   built faster than the market deepens (the JELLY and POPCAT set-ups); a drop is forced
//!   closing.
//! - **Large-trade bursts**: the notional traded in one market within `burst_window_secs`
//!   beyond `burst_high_usd`/`burst_critical_usd` — venues that name no liquidated account still
//!   show a cascade or a manipulation as a burst of size.
//! - **Execution spread**: the gap between a market's impact (execution) prices over their
//!   middle beyond `spread_*_pct` — on GMX the keepers' min/max oracle spread, the price of
//!   getting in and out, which widens when its sources disagree or liquidity is thin.
//!
//! - **Account flows** (where the venue names accounts, as Hyperliquid's ledger does): a deposit
//!   of at least `deposit_high_usd` (`funding_inflow` — money moved in, the funding stage of an
//!   attack) and a withdrawal of at least `withdrawal_high_usd`/`withdrawal_critical_usd`
//!   (`large_withdrawal` — proceeds moved out, the laundering stage).
//! - **Position builds**: one account's fill (not a liquidation) of at least `position_min_usd`
//!   that is at least `position_high_pct` of the market's open interest before it
//!   (`position_critical_pct`: the position outweighs the market) — the self-matched MNGO-PERP
//!   position before Mango's oracle pump, the JELLY self-trade.
//!
//! - **Spot pushes** (venues whose markets hold no open interest: spot order books and pools,
//!   the markets oracles read): the price moving by `spot_move_high_pct`/`spot_move_critical_pct`
//!   within `spot_window_secs` on a market trading less than `spot_thin_volume_usd` a day —
//!   the open core's thin-market rule leaves markets without open interest alone (on a
//!   perpetual venue nobody is harmed), but a pushed spot price moves every oracle reading it
//!   (MNGO on Serum, AscendEX and FTX before Mango's oracle read $0.91). Off by default; on for
//!   spot venues in the registry.
//!
//! A rule fires when its level rises and is repeated once a minute while it holds, so the
//! incident stays open exactly as long as the condition.

use std::collections::{BTreeMap, VecDeque};

use kamiyo_core_models::{
    Coin, Decimal, Detection, Direction, Evidence, IncidentKey, MarketEvent, Severity, ThreatType,
    Timestamp,
};
use kamiyo_monitors::{Detector, DetectorRegistry, MarketState, Sink};
use serde::{Deserialize, Serialize};

/// The detector's name.
pub const NAME: &str = "venue_stress";

/// The threat types it reports, declared at start by every process that reads them.
pub const THREATS: [&str; 7] = [
    "funding_extreme",
    "open_interest_jump",
    "trade_burst",
    "execution_spread",
    "funding_inflow",
    "large_withdrawal",
    "position_build",
];

/// Declares [`THREATS`] (idempotent): a process reading stored incidents must know them.
pub fn declare_threats() -> Result<(), kamiyo_core_models::ModelError> {
    for t in THREATS {
        ThreatType::custom(t)?;
    }
    ThreatType::custom(crate::fanout::CORRELATED_THREAT)?;
    ThreatType::custom(crate::ensemble::DETECTOR)?;
    Ok(())
}

/// Per-protocol thresholds (`[protocols.stress]` in the protocol registry). A threshold of zero
/// turns its rule off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StressConfig {
    /// Multiplier from the venue's quoted funding to a fraction per hour (1 for hourly
    /// fractions, 0.125 for 8-hour fractions, 0.01 for hourly percent).
    pub funding_to_hourly: Decimal,
    /// Hourly funding magnitude that is high (0.0005 = 0.05 %/h ≈ 438 %/yr).
    pub funding_high: Decimal,
    /// Hourly funding magnitude that is critical.
    pub funding_critical: Decimal,
    /// Look-back of the open-interest rule.
    pub oi_window_secs: u32,
    /// Open-interest change (percent, either way) that is high.
    pub oi_jump_high_pct: Decimal,
    /// Open-interest change that is critical.
    pub oi_jump_critical_pct: Decimal,
    /// Markets with less open interest (USD at mark) are left out of the rule.
    pub oi_min_usd: Decimal,
    /// Look-back of the burst rule.
    pub burst_window_secs: u32,
    /// Traded notional (USD) in one market within the window that is high.
    pub burst_high_usd: Decimal,
    /// Traded notional that is critical.
    pub burst_critical_usd: Decimal,
    /// Execution spread (percent of the middle) that is high.
    pub spread_high_pct: Decimal,
    /// Execution spread that is critical.
    pub spread_critical_pct: Decimal,
    /// A deposit (USD) this large is reported as a funding inflow.
    pub deposit_high_usd: Decimal,
    /// A withdrawal (USD) this large is high.
    pub withdrawal_high_usd: Decimal,
    /// A withdrawal this large is critical.
    pub withdrawal_critical_usd: Decimal,
    /// Smallest fill (USD) the position rule reads.
    pub position_min_usd: Decimal,
    /// One fill adding this share of the market's open interest (percent) is high.
    pub position_high_pct: Decimal,
    /// One fill adding this share is critical.
    pub position_critical_pct: Decimal,
    /// Look-back of the spot-push rule.
    pub spot_window_secs: u32,
    /// Spot price move (percent, either way) that is high (0: the rule is off).
    pub spot_move_high_pct: Decimal,
    /// Spot price move that is critical.
    pub spot_move_critical_pct: Decimal,
    /// Spot markets trading at least this much a day (USD) are left out of the rule.
    pub spot_thin_volume_usd: Decimal,
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or(Decimal::ZERO)
}

impl Default for StressConfig {
    fn default() -> Self {
        Self {
            funding_to_hourly: Decimal::ONE,
            funding_high: d("0.0005"),
            funding_critical: d("0.002"),
            oi_window_secs: 900,
            oi_jump_high_pct: d("25"),
            oi_jump_critical_pct: d("60"),
            oi_min_usd: d("1000000"),
            burst_window_secs: 60,
            burst_high_usd: d("5000000"),
            burst_critical_usd: d("25000000"),
            spread_high_pct: d("0.5"),
            spread_critical_pct: d("2"),
            deposit_high_usd: d("1000000"),
            withdrawal_high_usd: d("5000000"),
            withdrawal_critical_usd: d("25000000"),
            position_min_usd: d("1000000"),
            position_high_pct: d("25"),
            position_critical_pct: d("100"),
            spot_window_secs: 900,
            spot_move_high_pct: Decimal::ZERO,
            spot_move_critical_pct: Decimal::ZERO,
            spot_thin_volume_usd: d("5000000"),
        }
    }
}

impl StressConfig {
    /// Every bad value, as `(key under prefix, why)`.
    pub fn problems(&self, prefix: &str) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut pair = |name: &str, hi: Decimal, crit: Decimal| {
            if hi < Decimal::ZERO || crit < Decimal::ZERO {
                p.push((format!("{prefix}.{name}"), "must not be negative".into()));
            } else if hi > Decimal::ZERO && crit < hi {
                p.push((
                    format!("{prefix}.{name}"),
                    "the critical threshold must be at least the high one".into(),
                ));
            }
        };
        pair("funding", self.funding_high, self.funding_critical);
        pair("oi_jump", self.oi_jump_high_pct, self.oi_jump_critical_pct);
        pair("burst", self.burst_high_usd, self.burst_critical_usd);
        pair("spread", self.spread_high_pct, self.spread_critical_pct);
        pair(
            "withdrawal",
            self.withdrawal_high_usd,
            self.withdrawal_critical_usd,
        );
        pair(
            "position",
            self.position_high_pct,
            self.position_critical_pct,
        );
        pair(
            "spot_move",
            self.spot_move_high_pct,
            self.spot_move_critical_pct,
        );
        if self.spot_window_secs == 0 {
            p.push((
                format!("{prefix}.spot_window_secs"),
                "must be positive".into(),
            ));
        }
        if self.deposit_high_usd < Decimal::ZERO || self.position_min_usd < Decimal::ZERO {
            p.push((
                format!("{prefix}.deposit_high_usd/position_min_usd"),
                "must not be negative".into(),
            ));
        }
        if self.funding_to_hourly <= Decimal::ZERO {
            p.push((
                format!("{prefix}.funding_to_hourly"),
                "must be positive".into(),
            ));
        }
        if self.oi_window_secs == 0 || self.burst_window_secs == 0 {
            p.push((format!("{prefix}.*_window_secs"), "must be positive".into()));
        }
        p
    }
}

/// A registry with the built-in detectors and `venue_stress` at `cfg`.
pub fn registry(cfg: &StressConfig) -> DetectorRegistry {
    let mut r = DetectorRegistry::builtin();
    let cfg = cfg.clone();
    // The name is free in a built-in registry.
    let _ = r.register(NAME, move |_| {
        Ok(Some(
            Box::new(StressDetector::new(cfg.clone())) as Box<dyn Detector>
        ))
    });
    r
}

/// The detectors every protocol other than Hyperliquid runs (no HLP vault, no reference-venue
/// disagreement, no whale positions: those read Hyperliquid's own endpoints).
pub const PROTOCOL_SET: [&str; 5] = ["oracle", "liquidations", "thin_market", "feeds", NAME];

/// Once a rule's level is reached it is repeated this often while it holds.
const REPEAT_MS: i64 = 60_000;

/// A rule's level over time: a detection is due when the level rises, and again every
/// repeat interval while it holds; a level gone (`None`) resets it.
#[derive(Debug, Default)]
pub(crate) struct Rule {
    last: Option<(Severity, Timestamp)>,
}

impl Rule {
    /// Whether a detection at `sev` is due at `now` (repeated once a minute).
    fn due(&mut self, sev: Option<Severity>, now: Timestamp) -> bool {
        self.due_every(sev, now, REPEAT_MS)
    }

    /// Whether a detection at `sev` is due at `now`, repeated every `repeat_ms`.
    pub(crate) fn due_every(
        &mut self,
        sev: Option<Severity>,
        now: Timestamp,
        repeat_ms: i64,
    ) -> bool {
        let Some(sev) = sev else {
            self.last = None;
            return false;
        };
        let due = self
            .last
            .is_none_or(|(s, at)| sev > s || now.millis_since(at) >= repeat_ms);
        if due {
            self.last = Some((sev, now));
        }
        due
    }
}

#[derive(Debug, Default)]
struct Market {
    spot: VecDeque<(Timestamp, Decimal)>,
    spot_rule: Rule,
    oi: VecDeque<(Timestamp, Decimal)>,
    trades: VecDeque<(Timestamp, Decimal)>,
    burst_usd: Decimal,
    funding: Rule,
    oi_rule: Rule,
    burst: Rule,
    spread: Rule,
}

/// The detector.
#[derive(Debug)]
pub struct StressDetector {
    cfg: StressConfig,
    markets: BTreeMap<Coin, Market>,
    /// Per account (and market, for positions): the flow and position rules.
    accounts: BTreeMap<(String, &'static str, Option<Coin>), Rule>,
}

fn level(v: Decimal, high: Decimal, critical: Decimal) -> Option<Severity> {
    if high <= Decimal::ZERO {
        None
    } else if v >= critical {
        Some(Severity::Critical)
    } else if v >= high {
        Some(Severity::High)
    } else {
        None
    }
}

fn threat(name: &str) -> ThreatType {
    // Declared by `declare_threats`; declaring again returns the same type.
    ThreatType::custom(name).unwrap_or(ThreatType::ThinMarketManipulation)
}

impl StressDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: StressConfig) -> Self {
        Self {
            cfg,
            markets: BTreeMap::new(),
            accounts: BTreeMap::new(),
        }
    }

    /// Whether `rule` for `user` (on `coin`) is due at `sev` (bounded: the oldest account
    /// state is dropped past 100k accounts).
    fn account_due(
        &mut self,
        user: &kamiyo_core_models::Address,
        rule: &'static str,
        coin: Option<&Coin>,
        sev: Option<Severity>,
        t: Timestamp,
    ) -> bool {
        if self.accounts.len() > 100_000 {
            self.accounts.clear();
        }
        self.accounts
            .entry((user.to_string(), rule, coin.cloned()))
            .or_default()
            .due(sev, t)
    }

    fn on_ledger(&mut self, l: &kamiyo_core_models::LedgerEvent, sink: &mut Sink) {
        use kamiyo_core_models::LedgerKind;
        let cfg = &self.cfg;
        let (rule, sev, verb) = match l.kind {
            LedgerKind::Deposit => (
                "funding_inflow",
                level(l.usdc, cfg.deposit_high_usd, Decimal::MAX),
                "deposited",
            ),
            LedgerKind::Withdraw => (
                "large_withdrawal",
                level(l.usdc, cfg.withdrawal_high_usd, cfg.withdrawal_critical_usd),
                "withdrew",
            ),
            _ => return,
        };
        if !self.account_due(&l.user, rule, None, sev, l.time) {
            return;
        }
        let Some(sev) = sev else { return };
        let usd = l.usdc.round_dp(0);
        sink.detections.push(Detection {
            key: IncidentKey::new(rule, &[&l.user.to_string()]),
            protocol: kamiyo_core_models::ProtocolId::default(),
            detector: NAME.into(),
            threat_type: threat(rule),
            severity: sev,
            asset: None,
            title: format!("{} {verb} ${usd}", l.user),
            indicators: vec![rule.to_owned()],
            evidence: Evidence::new()
                .with("user", l.user.to_string())
                .with("usd", usd),
            time: l.time,
            direction: None,
            group: None,
        });
    }

    fn on_fill(&mut self, f: &kamiyo_core_models::Fill, state: &MarketState, sink: &mut Sink) {
        let cfg = &self.cfg;
        if f.is_liquidation() || f.is_adl() || f.user.as_bytes() == &[0u8; 20] {
            return;
        }
        let usd = f.notional();
        if cfg.position_high_pct <= Decimal::ZERO || usd < cfg.position_min_usd {
            return;
        }
        // Open interest before the fill (its own size once, if the venue already counts it).
        let oi = state.oi_usd(&f.coin).unwrap_or(Decimal::ZERO);
        let share = if oi > Decimal::ZERO {
            (usd / oi * Decimal::ONE_HUNDRED).round_dp(1)
        } else {
            Decimal::from(1000)
        };
        let sev = level(share, cfg.position_high_pct, cfg.position_critical_pct);
        if !self.account_due(&f.user, "position_build", Some(&f.coin), sev, f.time) {
            return;
        }
        let Some(sev) = sev else { return };
        let mut d = Self::detection(
            &f.coin,
            "position_build",
            sev,
            format!(
                "{} {} {} {} (${}) in one fill, {share}% of open interest",
                f.user,
                if f.side == kamiyo_core_models::Side::Buy {
                    "bought"
                } else {
                    "sold"
                },
                f.sz,
                f.coin,
                usd.round_dp(0)
            ),
            Evidence::new()
                .with("user", f.user.to_string())
                .with("notional_usd", usd.round_dp(0))
                .with("open_interest_usd", oi.round_dp(0))
                .with("share_of_oi_pct", share),
            Some(if f.side == kamiyo_core_models::Side::Buy {
                Direction::Up
            } else {
                Direction::Down
            }),
            f.time,
        );
        d.key = IncidentKey::new("position_build", &[f.coin.as_str(), &f.user.to_string()]);
        sink.detections.push(d);
    }

    fn detection(
        coin: &Coin,
        rule: &str,
        sev: Severity,
        title: String,
        evidence: Evidence,
        direction: Option<Direction>,
        time: Timestamp,
    ) -> Detection {
        Detection {
            key: IncidentKey::new(rule, &[coin.as_str()]),
            protocol: kamiyo_core_models::ProtocolId::default(),
            detector: NAME.into(),
            threat_type: threat(rule),
            severity: sev,
            asset: Some(coin.clone()),
            title,
            indicators: vec![rule.to_owned()],
            evidence,
            time,
            direction,
            group: None,
        }
    }

    fn on_ctx(&mut self, ctx: &kamiyo_core_models::AssetCtx, sink: &mut Sink) {
        let cfg = &self.cfg;
        let m = self.markets.entry(ctx.coin.clone()).or_default();
        let t = ctx.time;
        // Funding.
        let hourly = ctx.funding * cfg.funding_to_hourly;
        let sev = level(hourly.abs(), cfg.funding_high, cfg.funding_critical);
        if m.funding.due(sev, t)
            && let Some(sev) = sev
        {
            let pct_h = (hourly * Decimal::ONE_HUNDRED).round_dp(4);
            let apr = (hourly * Decimal::from(24 * 365 * 100)).round_dp(1);
            sink.detections.push(Self::detection(
                &ctx.coin,
                "funding_extreme",
                sev,
                format!(
                    "{} funding {pct_h}%/h ({apr}%/yr): {} crowded",
                    ctx.coin,
                    if hourly > Decimal::ZERO {
                        "longs"
                    } else {
                        "shorts"
                    }
                ),
                Evidence::new()
                    .with("funding_quoted", ctx.funding)
                    .with("funding_hourly_pct", pct_h)
                    .with("funding_apr_pct", apr),
                Some(if hourly > Decimal::ZERO {
                    Direction::Up
                } else {
                    Direction::Down
                }),
                t,
            ));
        }
        // Open interest.
        if ctx.open_interest > Decimal::ZERO {
            let window = i64::from(cfg.oi_window_secs) * 1000;
            m.oi.push_back((t, ctx.open_interest));
            while m
                .oi
                .front()
                .is_some_and(|(at, _)| t.millis_since(*at) > window)
            {
                m.oi.pop_front();
            }
            let usd = ctx.open_interest * ctx.mark_px;
            let base = m.oi.front().map_or(ctx.open_interest, |x| x.1);
            let change = kamiyo_core_models::deviation_pct_4dp(ctx.open_interest, base);
            let sev = change
                .filter(|_| usd >= cfg.oi_min_usd)
                .and_then(|c| level(c.abs(), cfg.oi_jump_high_pct, cfg.oi_jump_critical_pct));
            if m.oi_rule.due(sev, t)
                && let (Some(sev), Some(c)) = (sev, change)
            {
                sink.detections.push(Self::detection(
                    &ctx.coin,
                    "open_interest_jump",
                    sev,
                    format!(
                        "{} open interest {}{c}% within {} min",
                        ctx.coin,
                        if c > Decimal::ZERO { "+" } else { "" },
                        cfg.oi_window_secs / 60
                    ),
                    Evidence::new()
                        .with("open_interest", ctx.open_interest)
                        .with("open_interest_before", base)
                        .with("open_interest_usd", usd.round_dp(0))
                        .with("change_pct", c),
                    Some(if c > Decimal::ZERO {
                        Direction::Up
                    } else {
                        Direction::Down
                    }),
                    t,
                ));
            }
        }
        // Spot pushes: markets holding no open interest.
        if ctx.open_interest.is_zero()
            && cfg.spot_move_high_pct > Decimal::ZERO
            && ctx.mark_px > Decimal::ZERO
        {
            let window = i64::from(cfg.spot_window_secs) * 1000;
            m.spot.push_back((t, ctx.mark_px));
            while m
                .spot
                .front()
                .is_some_and(|(at, _)| t.millis_since(*at) > window)
            {
                m.spot.pop_front();
            }
            // The largest move from any price in the window.
            let moved = m
                .spot
                .iter()
                .filter_map(|(_, p)| kamiyo_core_models::deviation_pct_4dp(ctx.mark_px, *p))
                .max_by(|a, b| a.abs().cmp(&b.abs()));
            let sev = moved
                .filter(|_| ctx.day_ntl_vlm < cfg.spot_thin_volume_usd)
                .and_then(|mv| level(mv.abs(), cfg.spot_move_high_pct, cfg.spot_move_critical_pct));
            if m.spot_rule.due(sev, t)
                && let (Some(sev), Some(mv)) = (sev, moved)
            {
                let mut det = Self::detection(
                    &ctx.coin,
                    "spot_push",
                    sev,
                    format!(
                        "{} spot {}{}% within {} min on a market trading ${} a day",
                        ctx.coin,
                        if mv > Decimal::ZERO { "+" } else { "" },
                        mv.round_dp(1),
                        cfg.spot_window_secs / 60,
                        ctx.day_ntl_vlm.round_dp(0)
                    ),
                    Evidence::new()
                        .with("move_pct", mv)
                        .with("to_px", ctx.mark_px)
                        .with("day_volume_usd", ctx.day_ntl_vlm.round_dp(0)),
                    Some(if mv > Decimal::ZERO {
                        Direction::Up
                    } else {
                        Direction::Down
                    }),
                    t,
                );
                // A thin market pushed: the open core's threat type.
                det.threat_type = ThreatType::ThinMarketManipulation;
                sink.detections.push(det);
            }
        }
        // Execution spread.
        if let Some([lo, hi]) = ctx.impact_pxs
            && lo > Decimal::ZERO
            && hi >= lo
        {
            let mid = (lo + hi) / Decimal::TWO;
            let spread = ((hi - lo) / mid * Decimal::ONE_HUNDRED).round_dp(4);
            let sev = level(spread, cfg.spread_high_pct, cfg.spread_critical_pct);
            if m.spread.due(sev, t)
                && let Some(sev) = sev
            {
                sink.detections.push(Self::detection(
                    &ctx.coin,
                    "execution_spread",
                    sev,
                    format!(
                        "{} execution spread {spread}% (from {lo} to {hi})",
                        ctx.coin
                    ),
                    Evidence::new()
                        .with("impact_bid", lo)
                        .with("impact_ask", hi)
                        .with("spread_pct", spread),
                    None,
                    t,
                ));
            }
        }
    }

    fn on_trade(&mut self, coin: &Coin, t: Timestamp, usd: Decimal, sink: &mut Sink) {
        let cfg = &self.cfg;
        let m = self.markets.entry(coin.clone()).or_default();
        let window = i64::from(cfg.burst_window_secs) * 1000;
        m.trades.push_back((t, usd));
        m.burst_usd += usd;
        while let Some((at, u)) = m.trades.front().copied() {
            if t.millis_since(at) <= window {
                break;
            }
            m.burst_usd -= u;
            m.trades.pop_front();
        }
        let sev = level(m.burst_usd, cfg.burst_high_usd, cfg.burst_critical_usd);
        if m.burst.due(sev, t)
            && let Some(sev) = sev
        {
            let total = m.burst_usd.round_dp(0);
            sink.detections.push(Self::detection(
                coin,
                "trade_burst",
                sev,
                format!(
                    "{coin}: ${total} traded in {} trades within {} s",
                    m.trades.len(),
                    cfg.burst_window_secs
                ),
                Evidence::new()
                    .with("notional_usd", total)
                    .with("trades", m.trades.len()),
                None,
                t,
            ));
        }
    }
}

impl Detector for StressDetector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::AssetCtx(c) => self.on_ctx(c, sink),
            MarketEvent::Trade(t) => self.on_trade(&t.coin, t.time, t.px * t.sz, sink),
            MarketEvent::Ledger(l) => self.on_ledger(l, sink),
            MarketEvent::Fill(f) => self.on_fill(f, state, sink),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use kamiyo_core_models::{AssetCtx, Side, Trade};

    use super::*;

    fn ctx(
        t: i64,
        coin: &str,
        funding: &str,
        oi: &str,
        impact: Option<(&str, &str)>,
    ) -> MarketEvent {
        MarketEvent::AssetCtx(AssetCtx {
            coin: Coin::new(coin).unwrap_or_else(|e| panic!("{e}")),
            time: Timestamp(t),
            oracle_px: d("100"),
            mark_px: d("100"),
            mid_px: None,
            open_interest: d(oi),
            funding: d(funding),
            day_ntl_vlm: d("1000000000"),
            prev_day_px: None,
            premium: None,
            impact_pxs: impact.map(|(a, b)| [d(a), d(b)]),
        })
    }

    fn run(det: &mut StressDetector, events: &[MarketEvent]) -> Vec<Detection> {
        declare_threats().unwrap_or_else(|e| panic!("{e}"));
        let state = MarketState::new(&kamiyo_monitors::MonitorsConfig::default());
        let mut sink = Sink::default();
        for e in events {
            det.on_event(e, &state, &mut sink);
        }
        sink.detections
    }

    #[test]
    fn funding_is_normalised_to_hourly_before_the_thresholds() {
        // 0.008 per 8 h = 0.001/h: high (≥ 0.0005), not critical (< 0.002).
        let mut eight = StressDetector::new(StressConfig {
            funding_to_hourly: d("0.125"),
            ..StressConfig::default()
        });
        let out = run(&mut eight, &[ctx(0, "BTC", "0.008", "0", None)]);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                out[0].severity,
                out[0].threat_type.as_str(),
                out[0].direction
            ),
            (Severity::High, "funding_extreme", Some(Direction::Up))
        );
        // The same number quoted hourly is critical; a calm rate is silent; negative is shorts.
        let mut hourly = StressDetector::new(StressConfig::default());
        let out = run(
            &mut hourly,
            &[
                ctx(0, "BTC", "0.008", "0", None),
                ctx(0, "ETH", "0.00001", "0", None),
                ctx(0, "SOL", "-0.0006", "0", None),
            ],
        );
        let got: Vec<(&str, Severity)> = out
            .iter()
            .map(|x| (x.asset.as_ref().map_or("", |c| c.as_str()), x.severity))
            .collect();
        assert_eq!(got, [("BTC", Severity::Critical), ("SOL", Severity::High)]);
        assert!(out[1].title.contains("shorts crowded"), "{}", out[1].title);
    }

    #[test]
    fn open_interest_jumps_fire_within_the_window_on_large_markets_only() {
        let mut det = StressDetector::new(StressConfig::default());
        // 20,000 → 26,000 contracts at $100 ($2.6M) in 10 minutes: +30 %, high.
        let out = run(
            &mut det,
            &[
                ctx(0, "BTC", "0", "20000", None),
                ctx(600_000, "BTC", "0", "26000", None),
            ],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].severity, Severity::High);
        assert_eq!(
            out[0].evidence.get("change_pct").map(ToString::to_string),
            Some("30".into())
        );
        // Repeated only a minute later while it holds; gone when it no longer holds.
        let more = run(&mut det, &[ctx(610_000, "BTC", "0", "26000", None)]);
        assert!(more.is_empty());
        let later = run(&mut det, &[ctx(1_700_000, "BTC", "0", "26000", None)]);
        assert!(
            later.is_empty(),
            "outside the window the base is the recent level"
        );
        // A small market moving the same is left out ($260k < oi_min_usd).
        let mut det = StressDetector::new(StressConfig::default());
        let out = run(
            &mut det,
            &[
                ctx(0, "X", "0", "2000", None),
                ctx(60_000, "X", "0", "2600", None),
            ],
        );
        assert!(out.is_empty());
    }

    #[test]
    fn trade_bursts_sum_notional_in_the_window() {
        let mut det = StressDetector::new(StressConfig::default());
        let trade = |t: i64, sz: &str| {
            MarketEvent::Trade(Trade {
                coin: Coin::new("ETH").unwrap_or_else(|e| panic!("{e}")),
                side: Side::Sell,
                px: d("2000"),
                sz: d(sz),
                time: Timestamp(t),
                tid: u64::try_from(t).unwrap_or(0),
                users: None,
            })
        };
        // 2,000 ETH × $2,000 = $4M each: the second within 60 s makes $8M (high), the third
        // two minutes later starts a fresh window.
        let out = run(
            &mut det,
            &[
                trade(0, "2000"),
                trade(30_000, "2000"),
                trade(150_000, "2000"),
            ],
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].severity, Severity::High);
        assert_eq!(out[0].threat_type.as_str(), "trade_burst");
        // $4M + $20M (high) + $4M = $28M within a minute is critical.
        let out = run(&mut det, &[trade(160_000, "10000"), trade(170_000, "2000")]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out.last().map(|x| x.severity), Some(Severity::Critical));
    }

    #[test]
    fn execution_spread_reads_impact_prices() {
        let mut det = StressDetector::new(StressConfig::default());
        let out = run(
            &mut det,
            &[
                ctx(0, "SOL", "0", "0", Some(("79.992", "80.001"))),
                ctx(0, "APE", "0", "0", Some(("0.995", "1.005"))),
                ctx(0, "DOGE", "0", "0", Some(("0.9", "1.1"))),
            ],
        );
        let got: Vec<(&str, Severity)> = out
            .iter()
            .map(|x| (x.asset.as_ref().map_or("", |c| c.as_str()), x.severity))
            .collect();
        assert_eq!(got, [("APE", Severity::High), ("DOGE", Severity::Critical)]);
    }

    #[test]
    fn bad_thresholds_are_named() {
        let bad = StressConfig {
            funding_high: d("0.01"),
            funding_critical: d("0.001"),
            funding_to_hourly: Decimal::ZERO,
            ..StressConfig::default()
        };
        let p = bad.problems("stress");
        assert!(p.iter().any(|(k, _)| k == "stress.funding"), "{p:?}");
        assert!(
            p.iter().any(|(k, _)| k == "stress.funding_to_hourly"),
            "{p:?}"
        );
        assert!(StressConfig::default().problems("stress").is_empty());
    }
}
