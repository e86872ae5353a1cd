//! Cross-protocol correlation (Pro and Enterprise): the shared stream of every protocol's
//! incident steps, grouped by a sliding window (300 s by default) and the entities they share —
//! the asset, an account address, an oracle source — into correlated incidents of four
//! patterns:
//!
//! - `oracle_arbitrage`: the same asset's oracle or mark deviating on two or more venues, or
//!   deviating on one while its price is pushed on a thin market of another (one venue's price
//!   pushed while another's is arbitraged against it, as in the JELLY and Mango
//!   manipulations);
//! - `liquidation_cascade`: liquidation cascades on two or more protocols (a market-wide move
//!   forcing positions out everywhere, as on 10 October 2025);
//! - `flash_loan_cascade`: a price pushed on one protocol (thin-market move, mark manipulation,
//!   a flash-loan detection) followed within the window by liquidations on another protocol of
//!   the same asset — borrowed size used to liquidate elsewhere;
//! - `bridge_exploit_chain`: a bridge or key-compromise detection and then outflows or forced
//!   selling on other protocols sharing an address or an asset.
//!
//! A correlated incident gathers its context: the steps of the hour before it opened that share
//! its entity or an account one of its members names (the deposits that funded the accounts,
//! the position they built), and every later step sharing them while it is open (the
//! withdrawals that took the proceeds out), each with its attack stage.
//!
//! Each correlated incident is scored on the attack stages of Forta's published model —
//! funding → preparation → exploitation → laundering — from the stage each member's threat type
//! belongs to, with the evidence of each stage; more stages and more protocols mean a higher
//! score. A correlated incident links its members and is alerted once: [`Correlator::observe`]
//! reports `Opened` the first time a group qualifies and `Grew` after. Pure: no I/O, the
//! caller feeds it steps in time order and stores what it answers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use kamiyo_core_models::{Fnv64, ProtocolId, Severity, StableId, Timestamp};
use serde::Serialize;

/// Default grouping window.
pub const WINDOW_MS: i64 = 300_000;

/// How far back a new correlated incident gathers its context (funding and preparation
/// precede an attack by minutes to hours).
pub const CONTEXT_MS: i64 = 3_600_000;

/// A correlation pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// The same asset deviating on two or more venues.
    OracleArbitrage,
    /// Liquidation cascades on two or more protocols.
    LiquidationCascade,
    /// A push on one protocol, liquidations of the same asset on another.
    FlashLoanCascade,
    /// A bridge or key compromise, then outflows or selling elsewhere.
    BridgeExploitChain,
}

impl Pattern {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OracleArbitrage => "oracle_arbitrage",
            Self::LiquidationCascade => "liquidation_cascade",
            Self::FlashLoanCascade => "flash_loan_cascade",
            Self::BridgeExploitChain => "bridge_exploit_chain",
        }
    }
}

/// An attack stage (Forta's model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Money moved in to pay for the attack.
    Funding,
    /// Positions or contracts set up.
    Preparation,
    /// The attack itself.
    Exploitation,
    /// Proceeds moved out.
    Laundering,
}

impl Stage {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Funding => "funding",
            Self::Preparation => "preparation",
            Self::Exploitation => "exploitation",
            Self::Laundering => "laundering",
        }
    }
}

/// The stage a threat type belongs to (none for health signals).
pub fn stage_of(threat: &str) -> Option<Stage> {
    Some(match threat {
        "whale_deposit" | "funding_inflow" | "mixer_funding" => Stage::Funding,
        "open_interest_jump"
        | "open_interest_cap"
        | "position_build"
        | "whale_liquidation_risk"
        | "funding_extreme"
        | "hlp_exposure" => Stage::Preparation,
        "oracle_deviation"
        | "mark_manipulation"
        | "venue_disagreement"
        | "thin_market_manipulation"
        | "book_wall"
        | "execution_spread"
        | "trade_burst"
        | "large_liquidation"
        | "liquidation_cascade"
        | "market_cascade"
        | "coordinated_liquidation"
        | "auto_deleveraging"
        | "hlp_loss"
        | "hlp_drawdown"
        | "liquidator_stress"
        | "flash_loan"
        | "bridge_exploit"
        | "key_compromise" => Stage::Exploitation,
        "bridge_outflow" | "large_withdrawal" | "laundering" => Stage::Laundering,
        _ => return None,
    })
}

/// One protocol's incident step, as the correlator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its protocol.
    pub protocol: ProtocolId,
    /// Its incident.
    pub incident: StableId,
    /// Threat type name.
    pub threat: String,
    /// Severity now.
    pub severity: Severity,
    /// Market.
    pub asset: Option<String>,
    /// Accounts its evidence names.
    pub addresses: Vec<String>,
    /// Oracle source its evidence names.
    pub oracle: Option<String>,
    /// Event time.
    pub time: Timestamp,
    /// One line for the evidence.
    pub title: String,
    /// The step resolved its incident.
    pub resolved: bool,
}

impl Member {
    /// The correlator's reading of an incident step: its protocol, threat, severity and asset,
    /// the accounts its evidence names (every text value that is an address), the oracle
    /// source it names (`oracle_source`), at the step's time; a resolution closes the member.
    pub fn from_event(e: &kamiyo_core_models::SecurityEvent) -> Self {
        use kamiyo_core_models::EvidenceValue;
        let text = |v: &EvidenceValue| match v {
            EvidenceValue::Text(t) => Some(t.clone()),
            _ => None,
        };
        let mut addresses: Vec<String> = e
            .evidence
            .iter()
            .filter_map(|(_, v)| text(v))
            .filter(|t| kamiyo_core_models::Address::parse(t).is_ok())
            .map(|t| t.to_ascii_lowercase())
            .collect();
        addresses.sort();
        addresses.dedup();
        Self {
            protocol: e.protocol.clone(),
            incident: e.incident_id.clone(),
            threat: e.threat_type.as_str().to_owned(),
            severity: e.severity,
            asset: e.asset.as_ref().map(|a| a.as_str().to_owned()),
            addresses,
            oracle: e.evidence.get("oracle_source").and_then(text),
            time: e.time,
            title: e.title.clone(),
            resolved: e.change == kamiyo_core_models::IncidentChange::Resolved,
        }
    }
}

/// A correlated incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Correlated {
    /// Stable id (`cor_` and 16 hex digits of the pattern, the entity and the first member).
    pub id: String,
    /// Pattern.
    pub pattern: Pattern,
    /// The shared entity (`asset:ETH`, `address:0x…`, `oracle:pyth`).
    pub entity: String,
    /// Member incidents, first seen first.
    pub members: Vec<StableId>,
    #[serde(skip)]
    member_set: std::collections::HashSet<StableId>,
    /// The entities it links: its own and every account its members name.
    #[serde(skip)]
    linked: BTreeSet<String>,
    /// Members whose incidents are still open.
    #[serde(skip)]
    active: std::collections::HashSet<StableId>,
    /// Protocols involved.
    pub protocols: BTreeSet<String>,
    /// Evidence per attack stage.
    pub stages: BTreeMap<Stage, Vec<String>>,
    /// The worst member's severity.
    pub severity: Severity,
    /// 0–1: stages covered, protocols involved and the worst member's severity.
    pub score: f64,
    /// First member's time.
    pub first_seen: Timestamp,
    /// Latest member's time.
    pub last_seen: Timestamp,
}

/// What one observation changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A group qualified: alert once.
    Opened(Box<Correlated>),
    /// A member joined an open correlated incident (no new alert).
    Grew {
        /// The correlated incident.
        id: String,
        /// Its pattern.
        pattern: Pattern,
        /// The member that joined.
        member: StableId,
        /// Members now.
        members: usize,
        /// Its score now.
        score: f64,
    },
}

fn is_liquidation(t: &str) -> bool {
    matches!(
        t,
        "liquidation_cascade" | "market_cascade" | "large_liquidation" | "coordinated_liquidation"
    )
}

fn is_deviation(t: &str) -> bool {
    matches!(t, "oracle_deviation" | "mark_manipulation")
}

fn is_price_move(t: &str) -> bool {
    is_deviation(t) || t == "thin_market_manipulation"
}

fn is_push(t: &str) -> bool {
    matches!(
        t,
        "thin_market_manipulation" | "mark_manipulation" | "flash_loan" | "trade_burst"
    )
}

fn is_breach(t: &str) -> bool {
    matches!(t, "bridge_exploit" | "key_compromise")
}

fn is_outflow(t: &str) -> bool {
    matches!(t, "bridge_outflow" | "large_withdrawal" | "laundering") || is_liquidation(t)
}

/// The correlator's state: the members of the last hour, bucketed by the entities they name
/// (so a step is compared with its own asset's, account's and oracle's members only), and the
/// open correlated incidents.
#[derive(Debug)]
pub struct Correlator {
    window_ms: i64,
    context_ms: i64,
    recent: HashMap<String, VecDeque<Member>>,
    open: BTreeMap<(Pattern, String), Correlated>,
    last_sweep: i64,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new(WINDOW_MS)
    }
}

impl Correlator {
    /// A correlator grouping within `window_ms` (context: [`CONTEXT_MS`] or the window, if
    /// longer).
    pub fn new(window_ms: i64) -> Self {
        let window_ms = window_ms.max(1);
        Self {
            window_ms,
            context_ms: CONTEXT_MS.max(window_ms),
            recent: HashMap::new(),
            open: BTreeMap::new(),
            last_sweep: i64::MIN,
        }
    }

    /// The open correlated incidents.
    pub fn open(&self) -> impl Iterator<Item = &Correlated> {
        self.open.values()
    }

    /// Takes one step (in time order); what it opened or grew.
    pub fn observe(&mut self, m: Member) -> Vec<Change> {
        let now = m.time;
        let window = self.window_ms;
        let keep = self.context_ms;
        let mine = entities(&m);
        // The buckets this step reads lose what left the context; every window, all of them do.
        for key in &mine {
            if let Some(b) = self.recent.get_mut(key) {
                while b.front().is_some_and(|x| now.0 - x.time.0 > keep) {
                    b.pop_front();
                }
            }
        }
        if now.0.saturating_sub(self.last_sweep) > window {
            self.last_sweep = now.0;
            self.recent.retain(|_, b| {
                b.retain(|x| now.0 - x.time.0 <= keep);
                !b.is_empty()
            });
            // A correlated incident closes once its members' incidents are resolved and nothing
            // joined it for a window.
            self.open.retain(|_, c| !c.is_stale(now, window));
        }
        if m.resolved {
            for c in self.open.values_mut() {
                c.active.remove(&m.incident);
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut joined = BTreeSet::new();
        for (pattern, entity, group) in self.groups(&m) {
            let key = (pattern, entity.clone());
            if self.open.get(&key).is_some_and(|c| c.is_stale(now, window)) {
                self.open.remove(&key);
            }
            if let Some(c) = self.open.get_mut(&key) {
                if let Some(ch) = join(c, &m) {
                    out.push(ch);
                }
                joined.insert(key);
                continue;
            }
            let mut all: Vec<&Member> = group.iter().collect();
            all.push(&m);
            let first = all.iter().map(|x| x.time).min().unwrap_or(now);
            let mut h = Fnv64::new();
            h.write(
                format!(
                    "{}|{entity}|{}|{}",
                    pattern.as_str(),
                    all[0].incident,
                    first.0
                )
                .as_bytes(),
            );
            let mut c = Correlated {
                id: format!("cor_{:016x}", h.finish()),
                pattern,
                entity: entity.clone(),
                members: Vec::new(),
                member_set: std::collections::HashSet::new(),
                linked: BTreeSet::from([entity]),
                active: std::collections::HashSet::new(),
                protocols: BTreeSet::new(),
                stages: BTreeMap::new(),
                severity: Severity::Info,
                score: 0.0,
                first_seen: first,
                last_seen: now,
            };
            for x in all {
                let _ = join(&mut c, x);
            }
            self.gather(&mut c, now);
            self.open.insert(key.clone(), c.clone());
            joined.insert(key);
            out.push(Change::Opened(Box::new(c)));
        }
        // A later step sharing an open correlated incident's entities joins it as evidence of
        // its stage (the withdrawal that takes the proceeds out).
        if stage_of(&m.threat).is_some() {
            for (key, c) in &mut self.open {
                if joined.contains(key)
                    || c.is_stale(now, window)
                    || !mine.iter().any(|e| c.linked.contains(e))
                {
                    continue;
                }
                if let Some(ch) = join(c, &m) {
                    out.push(ch);
                }
            }
        }
        for key in mine {
            self.recent.entry(key).or_default().push_back(m.clone());
        }
        out
    }

    /// Adds to `c` the steps of the context before `now` that share its linked entities and
    /// have an attack stage, following the accounts they name in turn.
    fn gather(&self, c: &mut Correlated, now: Timestamp) {
        loop {
            let found: Vec<Member> = c
                .linked
                .iter()
                .flat_map(|e| self.bucket(e))
                .filter(|x| {
                    now.0 - x.time.0 <= self.context_ms
                        && stage_of(&x.threat).is_some()
                        && !c.member_set.contains(&x.incident)
                })
                .cloned()
                .collect();
            if found.is_empty() {
                return;
            }
            for x in &found {
                let _ = join(c, x);
            }
        }
    }

    /// Whether a correlated incident of `pattern` on `entity` is open at `now`.
    fn is_open(&self, pattern: Pattern, entity: String, now: Timestamp) -> bool {
        self.open
            .get(&(pattern, entity))
            .is_some_and(|c| !c.is_stale(now, self.window_ms))
    }

    /// The recent members of `entity` (within the window of the latest step read there).
    fn bucket(&self, entity: &str) -> impl Iterator<Item = &Member> {
        self.recent.get(entity).into_iter().flatten()
    }

    /// The patterns `m` completes: (pattern, entity, the recent members it completes it with —
    /// none when the correlated incident is already open, which `m` then joins).
    fn groups(&self, m: &Member) -> Vec<(Pattern, String, Vec<Member>)> {
        let mut out = Vec::new();
        // `pattern` on `entity` with the bucket's members matching `f` (from other protocols,
        // in the window); an open correlation is joined without looking.
        let mut try_group = |pattern: Pattern, entity: String, f: &dyn Fn(&Member) -> bool| {
            if self.is_open(pattern, entity.clone(), m.time) {
                out.push((pattern, entity, Vec::new()));
                return;
            }
            let g: Vec<Member> = self
                .bucket(&entity)
                .filter(|x| {
                    m.time.0 - x.time.0 <= self.window_ms && x.protocol != m.protocol && f(x)
                })
                .cloned()
                .collect();
            if !g.is_empty() {
                out.push((pattern, entity, g));
            }
        };
        if let Some(asset) = &m.asset {
            let entity = format!("asset:{asset}");
            // A deviation with a deviation or a thin-market push elsewhere; a push with a
            // deviation elsewhere.
            if is_deviation(&m.threat) {
                try_group(Pattern::OracleArbitrage, entity.clone(), &|x| {
                    is_price_move(&x.threat)
                });
            } else if is_price_move(&m.threat) {
                try_group(Pattern::OracleArbitrage, entity.clone(), &|x| {
                    is_deviation(&x.threat)
                });
            }
            if is_liquidation(&m.threat) {
                try_group(Pattern::LiquidationCascade, entity.clone(), &|x| {
                    is_liquidation(&x.threat)
                });
                // Liquidations after a push of the same asset elsewhere.
                try_group(Pattern::FlashLoanCascade, entity.clone(), &|x| {
                    is_push(&x.threat)
                });
            }
            if is_outflow(&m.threat) {
                try_group(Pattern::BridgeExploitChain, entity, &|x| {
                    is_breach(&x.threat)
                });
            }
        }
        // A breach and outflows sharing an account, whatever the assets.
        if is_outflow(&m.threat) {
            for a in &m.addresses {
                try_group(Pattern::BridgeExploitChain, format!("address:{a}"), &|x| {
                    is_breach(&x.threat)
                });
            }
        }
        // The same oracle source deviating on two protocols.
        if is_deviation(&m.threat)
            && let Some(o) = &m.oracle
        {
            try_group(Pattern::OracleArbitrage, format!("oracle:{o}"), &|x| {
                is_deviation(&x.threat)
            });
        }
        // Dedupe (an asset group and an oracle group may name the same pattern twice).
        let mut seen = BTreeSet::new();
        out.retain(|(p, e, _)| seen.insert((*p, e.clone())));
        out
    }
}

/// The entities a member names: its asset, its accounts, its oracle source.
fn entities(m: &Member) -> Vec<String> {
    let mut out: Vec<String> = m.asset.iter().map(|a| format!("asset:{a}")).collect();
    out.extend(m.addresses.iter().map(|a| format!("address:{a}")));
    out.extend(m.oracle.iter().map(|o| format!("oracle:{o}")));
    out
}

fn weight(s: Severity) -> f64 {
    match s {
        Severity::Critical => 1.0,
        Severity::High => 0.75,
        Severity::Medium => 0.5,
        Severity::Low => 0.25,
        Severity::Info => 0.1,
    }
}

impl Correlated {
    /// Closed: every member's incident resolved and nothing joined for a window.
    fn is_stale(&self, now: Timestamp, window: i64) -> bool {
        self.active.is_empty() && now.0 - self.last_seen.0 > window
    }
}

/// `m` joins `c` (a member, the accounts it names linked); the change, when it is a new member
/// or moved the score.
fn join(c: &mut Correlated, m: &Member) -> Option<Change> {
    if !m.resolved {
        c.active.insert(m.incident.clone());
    }
    let new = c.member_set.insert(m.incident.clone());
    if new {
        c.members.push(m.incident.clone());
    }
    c.linked
        .extend(m.addresses.iter().map(|a| format!("address:{a}")));
    let before = c.score;
    absorb(c, m);
    (new || c.score != before).then(|| Change::Grew {
        id: c.id.clone(),
        pattern: c.pattern,
        member: m.incident.clone(),
        members: c.members.len(),
        score: c.score,
    })
}

/// Adds `m`'s protocol, stage evidence and time to `c`, and rescores it.
fn absorb(c: &mut Correlated, m: &Member) {
    c.protocols.insert(m.protocol.to_string());
    if let Some(stage) = stage_of(&m.threat) {
        let line = format!("{} on {}: {}", m.threat, m.protocol, m.title);
        let ev = c.stages.entry(stage).or_default();
        if !ev.contains(&line) {
            ev.push(line);
        }
    }
    c.last_seen = c.last_seen.max(m.time);
    c.first_seen = c.first_seen.min(m.time);
    c.severity = c.severity.max(m.severity);
    // Stages covered (half the score), protocols beyond the first (up to four), and the worst
    // member's severity.
    let stages = c.stages.len() as f64 / 4.0;
    let spread = ((c.protocols.len() as f64 - 1.0) / 3.0).min(1.0);
    c.score = (0.5 * stages + 0.3 * spread + 0.2 * weight(c.severity)).clamp(0.0, 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, id: &str, threat: &str, asset: &str, t: i64) -> Member {
        Member {
            protocol: ProtocolId::parse(p).unwrap_or_else(|e| panic!("{e}")),
            incident: StableId::parse(id).unwrap_or_else(|e| panic!("{e}")),
            threat: threat.into(),
            severity: Severity::High,
            asset: Some(asset.into()),
            addresses: Vec::new(),
            oracle: None,
            time: Timestamp(t),
            title: format!("{threat} {asset}"),
            resolved: false,
        }
    }

    #[test]
    fn the_same_asset_deviating_on_two_venues_is_one_oracle_arbitrage_alerted_once() {
        let mut c = Correlator::default();
        assert!(
            c.observe(m(
                "hyperliquid",
                "inc_0000000000000001",
                "mark_manipulation",
                "JELLY",
                0
            ))
            .is_empty()
        );
        let out = c.observe(m(
            "binance-futures",
            "inc_0000000000000002",
            "oracle_deviation",
            "JELLY",
            60_000,
        ));
        let [Change::Opened(x)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            (x.pattern, x.entity.as_str(), x.members.len()),
            (Pattern::OracleArbitrage, "asset:JELLY", 2)
        );
        assert_eq!(x.protocols.len(), 2);
        // A third venue joins: it grows, no second alert.
        let out = c.observe(m(
            "dydx",
            "inc_0000000000000003",
            "oracle_deviation",
            "JELLY",
            120_000,
        ));
        assert!(matches!(out.as_slice(), [Change::Grew { id, members: 3, .. }] if *id == x.id));
        // Other assets and the same protocol do not correlate.
        assert!(
            c.observe(m(
                "dydx",
                "inc_0000000000000004",
                "oracle_deviation",
                "BTC",
                130_000
            ))
            .is_empty()
        );
        assert!(
            c.observe(m(
                "dydx",
                "inc_0000000000000005",
                "oracle_deviation",
                "BTC",
                131_000
            ))
            .is_empty()
        );
    }

    #[test]
    fn cascades_on_two_protocols_and_pushes_before_liquidations_correlate_within_the_window() {
        let mut c = Correlator::default();
        let _ = c.observe(m(
            "paradex",
            "inc_0000000000000011",
            "thin_market_manipulation",
            "ETH",
            0,
        ));
        let _ = c.observe(m(
            "hyperliquid",
            "inc_0000000000000012",
            "liquidation_cascade",
            "ETH",
            100_000,
        ));
        let out = c.observe(m(
            "dydx",
            "inc_0000000000000013",
            "liquidation_cascade",
            "ETH",
            200_000,
        ));
        let pats: BTreeSet<Pattern> = out
            .iter()
            .map(|ch| match ch {
                Change::Opened(x) => x.pattern,
                Change::Grew { pattern, .. } => *pattern,
            })
            .collect();
        assert!(pats.contains(&Pattern::LiquidationCascade), "{out:?}");
        assert!(pats.contains(&Pattern::FlashLoanCascade), "{out:?}");
        // While a member's incident is open the correlated one stays open; once all are
        // resolved, outside the window nothing joins and it closes.
        for (id, threat) in [
            ("inc_0000000000000011", "thin_market_manipulation"),
            ("inc_0000000000000012", "liquidation_cascade"),
            ("inc_0000000000000013", "liquidation_cascade"),
        ] {
            let mut r = m("hyperliquid", id, threat, "ETH", 500_000);
            r.resolved = true;
            assert!(c.observe(r).is_empty());
        }
        assert_eq!(c.open().count(), 2);
        let late = c.observe(m(
            "drift",
            "inc_0000000000000014",
            "liquidation_cascade",
            "ETH",
            900_000,
        ));
        assert!(late.is_empty(), "{late:?}");
        assert_eq!(c.open().count(), 0);
    }

    #[test]
    fn context_of_the_hour_before_adds_its_stages_and_raises_the_score() {
        let deviate = |c: &mut Correlator| {
            let _ = c.observe(m(
                "hyperliquid",
                "inc_0000000000000022",
                "mark_manipulation",
                "XPL",
                1_800_000,
            ));
            let out = c.observe(m(
                "lighter",
                "inc_0000000000000023",
                "oracle_deviation",
                "XPL",
                1_810_000,
            ));
            match out.first() {
                Some(Change::Opened(x)) => (**x).clone(),
                _ => panic!("{out:?}"),
            }
        };
        // Without context: exploitation only.
        let bare = deviate(&mut Correlator::default());
        assert_eq!(
            bare.stages.keys().copied().collect::<Vec<_>>(),
            [Stage::Exploitation]
        );
        // A position built on the asset 30 min before (outside the 300 s window, inside the
        // hour of context) joins as preparation.
        let mut c = Correlator::default();
        let _ = c.observe(m(
            "hyperliquid",
            "inc_0000000000000021",
            "open_interest_jump",
            "XPL",
            0,
        ));
        let x = deviate(&mut c);
        assert_eq!(
            x.stages.keys().copied().collect::<Vec<_>>(),
            [Stage::Preparation, Stage::Exploitation]
        );
        assert!(x.stages[&Stage::Preparation][0].contains("open_interest_jump on hyperliquid"));
        assert!(x.score > bare.score, "{} > {}", x.score, bare.score);
        assert_eq!(x.first_seen, Timestamp(0));
        assert_eq!(stage_of("feed_health"), None);
    }

    #[test]
    fn accounts_link_funding_before_and_withdrawals_after() {
        let mut c = Correlator::default();
        let mut deposit = m(
            "mango-markets",
            "inc_00000000000000a1",
            "funding_inflow",
            "",
            0,
        );
        deposit.asset = None;
        deposit.addresses = vec!["0xb".into()];
        let _ = c.observe(deposit);
        let mut build = m(
            "mango-markets",
            "inc_00000000000000a2",
            "position_build",
            "MNGO",
            600_000,
        );
        build.addresses = vec!["0xa".into(), "0xb".into()];
        let _ = c.observe(build);
        let _ = c.observe(m(
            "serum",
            "inc_00000000000000a3",
            "thin_market_manipulation",
            "MNGO",
            700_000,
        ));
        let out = c.observe(m(
            "mango-markets",
            "inc_00000000000000a4",
            "mark_manipulation",
            "MNGO",
            760_000,
        ));
        let Some(Change::Opened(x)) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(x.pattern, Pattern::OracleArbitrage);
        assert_eq!(
            x.stages.keys().copied().collect::<Vec<_>>(),
            [Stage::Funding, Stage::Preparation, Stage::Exploitation]
        );
        // The withdrawal from the linked account joins it: all four stages, one alert.
        let mut out_flow = m(
            "mango-markets",
            "inc_00000000000000a5",
            "large_withdrawal",
            "",
            900_000,
        );
        out_flow.asset = None;
        out_flow.addresses = vec!["0xb".into()];
        let out = c.observe(out_flow);
        assert!(
            matches!(out.as_slice(), [Change::Grew { id, members: 5, .. }] if *id == x.id),
            "{out:?}"
        );
        let now = c.open().next().unwrap_or_else(|| panic!("open"));
        assert_eq!(now.stages.len(), 4);
        assert!(now.score > x.score);
        // An unrelated account's withdrawal does not join.
        let mut other = m(
            "mango-markets",
            "inc_00000000000000a6",
            "large_withdrawal",
            "",
            910_000,
        );
        other.asset = None;
        other.addresses = vec!["0xc".into()];
        assert!(c.observe(other).is_empty());
    }

    #[test]
    fn a_breach_and_outflows_sharing_an_account_chain() {
        let mut c = Correlator::default();
        let mut breach = m(
            "wormhole",
            "inc_0000000000000031",
            "bridge_exploit",
            "WETH",
            0,
        );
        breach.addresses = vec!["0xabc".into()];
        let _ = c.observe(breach);
        let mut out_flow = m(
            "hyperliquid",
            "inc_0000000000000032",
            "large_withdrawal",
            "USDC",
            30_000,
        );
        out_flow.addresses = vec!["0xabc".into()];
        let out = c.observe(out_flow);
        assert!(
            out.iter().any(|ch| matches!(ch, Change::Opened(x) if x.pattern == Pattern::BridgeExploitChain && x.entity == "address:0xabc")),
            "{out:?}"
        );
    }
}
