//! Liquidations, from the fills' real `liquidation` field, the Liquidator vaults' backstop
//! fills, and Auto-Deleveraging fills (never from heuristics on `closedPnl`):
//!
//! - large: liquidated notional in one market within 10 s ≥ $500k is high, ≥ $10M critical;
//! - cascade: ≥ 5 liquidations in one market within 300 s is high; ≥ 15, or ≥ $10M, critical;
//! - coordinated: one account liquidated ≥ 3 times for ≥ $1M within an hour is high;
//! - the first ADL fill in a market is critical;
//! - market-wide cascade: liquidations across every market in sliding windows (10 s, 60 s,
//!   300 s by default), high or critical when a window's count, notional and number of markets
//!   all reach that level's minimums. One incident for the cascade; the per-market liquidation
//!   incidents (large, cascade, coordinated, ADL) are grouped under it while it is open.
//!
//! Every window keeps running counts and sums: O(1) amortised work per fill.
//!
//! The same liquidation seen from both sides (the liquidated user's fill and the Liquidator's)
//! is counted once, by `(time, coin, tid)`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use kamiyo_core_models::units::usd;
use kamiyo_core_models::{
    Address, Coin, Decimal, Detection, Evidence, Fill, IncidentKey, LiquidationMethod,
    LiquidationRecord, MarketEvent, Severity, ThreatType, Timestamp,
};

use super::{Detector, Sink};
use crate::config::LiquidationConfig;
use crate::state::MarketState;

/// Liquidations within a sliding window of event time, with their count and notional kept as
/// running totals: adding a fill and evicting expired ones is O(1) amortised, whatever the
/// window holds. Decimal sums are exact, so the totals never drift from a rescan. Each entry
/// carries a key `K` (the market, for the market-wide windows) reported as it enters and
/// leaves, so a caller can keep per-key counts in step.
#[derive(Debug, Clone)]
pub(crate) struct SlidingSum<K = ()> {
    q: VecDeque<(Timestamp, Decimal, K)>,
    sum: Decimal,
    newest: Option<Timestamp>,
}

impl<K> Default for SlidingSum<K> {
    fn default() -> Self {
        Self {
            q: VecDeque::new(),
            sum: Decimal::ZERO,
            newest: None,
        }
    }
}

impl SlidingSum {
    /// Adds one fill and evicts what fell out of `span_ms` before the newest time seen; returns
    /// (count, notional) of the window.
    pub(crate) fn add(&mut self, t: Timestamp, v: Decimal, span_ms: i64) -> (usize, Decimal) {
        self.add_keyed(t, v, (), span_ms, |_, _| {})
    }
}

impl<K> SlidingSum<K> {
    /// Adds one keyed fill (a late one — older than the newest — is placed in time order, so
    /// eviction stays exact) and evicts what fell out of `span_ms`; `changed(key, +1 / -1)` is
    /// called for each entry that enters or leaves. Returns (count, notional).
    pub(crate) fn add_keyed(
        &mut self,
        t: Timestamp,
        v: Decimal,
        key: K,
        span_ms: i64,
        mut changed: impl FnMut(&K, i32),
    ) -> (usize, Decimal) {
        let newest = self.newest.map_or(t, |n| n.max(t));
        self.newest = Some(newest);
        if newest.millis_since(t) <= span_ms {
            let at = self
                .q
                .iter()
                .rposition(|(u, _, _)| *u <= t)
                .map_or(0, |i| i + 1);
            changed(&key, 1);
            self.q.insert(at, (t, v, key));
            self.sum += v;
        }
        while self
            .q
            .front()
            .is_some_and(|(u, _, _)| newest.millis_since(*u) > span_ms)
        {
            if let Some((_, old, k)) = self.q.pop_front() {
                self.sum -= old;
                changed(&k, -1);
            }
        }
        (self.q.len(), self.sum)
    }

    /// The time of the newest fill, if any.
    pub(crate) fn newest(&self) -> Option<Timestamp> {
        self.newest
    }

    /// (count, notional) of the window as it is.
    fn totals(&self) -> (usize, Decimal) {
        (self.q.len(), self.sum)
    }
}

/// One market-wide window: liquidations of every market, with running count, notional and the
/// number of liquidations per market (so the number of markets is known in O(1)).
#[derive(Debug, Clone, Default)]
struct MarketWindowState {
    window: SlidingSum<Coin>,
    per_coin: HashMap<Coin, u32>,
}

impl MarketWindowState {
    /// Adds one liquidation; returns (liquidations, notional, markets) in the window.
    fn add(
        &mut self,
        t: Timestamp,
        coin: &Coin,
        v: Decimal,
        span_ms: i64,
    ) -> (usize, Decimal, usize) {
        let per_coin = &mut self.per_coin;
        let (n, usd) = self.window.add_keyed(t, v, coin.clone(), span_ms, |c, d| {
            if d > 0 {
                *per_coin.entry(c.clone()).or_default() += 1;
            } else if let Some(k) = per_coin.get_mut(c) {
                *k -= 1;
                if *k == 0 {
                    per_coin.remove(c);
                }
            }
        });
        (n, usd, per_coin.len())
    }

    /// (liquidations, notional, markets) of the window as it is.
    fn totals(&self) -> (usize, Decimal, usize) {
        let (n, usd) = self.window.totals();
        (n, usd, self.per_coin.len())
    }

    /// The markets with the most liquidations in the window, most first (ties by name).
    fn top(&self, n: usize) -> Vec<(Coin, u32)> {
        let mut v: Vec<(Coin, u32)> = self.per_coin.iter().map(|(c, k)| (c.clone(), *k)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// The incident key of the market-wide cascade.
fn market_key() -> IncidentKey {
    IncidentKey::new("market_cascade", &["all"])
}

/// The per-market windows (large-liquidation and cascade), what was last emitted for each, and
/// the newest state not emitted yet.
#[derive(Debug, Clone, Default)]
struct CoinWindows {
    large: SlidingSum,
    cascade: SlidingSum,
    large_out: Emitted,
    cascade_out: Emitted,
    large_pending: Option<Large>,
    cascade_pending: Option<Cascade>,
}

/// Coalescing of one rule's detections: a detection is built and emitted at once when the
/// severity rises or a second of event time has passed since the last one; in between only the
/// newest numbers are kept, and emitted at the next tick (at most a second of event time
/// later, with their own time). In a burst of thousands of fills per second this builds a few
/// detections per market instead of one per fill; the incident sees every level change at once
/// and the final numbers exactly.
#[derive(Debug, Clone, Copy, Default)]
struct Emitted(Option<(Severity, Timestamp)>);

impl Emitted {
    fn due(self, sev: Severity, now: Timestamp) -> bool {
        self.0
            .is_none_or(|(s, at)| sev > s || now.millis_since(at) >= 1_000)
    }

    fn emitted(&mut self, sev: Severity, now: Timestamp) {
        self.0 = Some((sev, now));
    }

    /// Returns `value` to emit now when due (and records the emission); otherwise keeps it in
    /// `pending` for the next tick.
    fn emit_or_hold<T>(
        &mut self,
        sev: Severity,
        now: Timestamp,
        value: T,
        pending: &mut Option<T>,
    ) -> Option<T> {
        if self.due(sev, now) {
            self.emitted(sev, now);
            *pending = None;
            Some(value)
        } else {
            *pending = Some(value);
            None
        }
    }
}

fn high_or_critical(critical: bool) -> Severity {
    if critical {
        Severity::Critical
    } else {
        Severity::High
    }
}

/// The large-liquidation rule's numbers at one fill.
#[derive(Debug, Clone)]
struct Large {
    time: Timestamp,
    n: usize,
    usd: Decimal,
    fill_usd: Decimal,
    px: Decimal,
    method: Option<LiquidationMethod>,
    victim: Option<Address>,
    user: Address,
    backstop: bool,
    critical: bool,
    group: Option<IncidentKey>,
}

impl Large {
    fn severity(&self) -> Severity {
        high_or_critical(self.critical)
    }

    fn detection(&self, coin: &Coin, cfg: &LiquidationConfig) -> Detection {
        let mut ev = Evidence::new()
            .with("window_notional_usd", self.usd.round_dp(2))
            .with("window_liquidations", self.n)
            .with("window_secs", i64::from(cfg.large_window_secs))
            .with("largest_fill_usd", self.fill_usd.round_dp(2))
            .with("px", self.px)
            .with(
                "method",
                self.method.as_ref().map_or("liquidated", |m| m.as_str()),
            );
        if let Some(v) = self.victim {
            ev.insert("liquidated_user", v.to_string());
        }
        ev.insert("fill_user", self.user.to_string());
        Detection {
            protocol: Default::default(),
            direction: None,
            group: self.group.clone(),
            key: IncidentKey::new("large_liquidation", &[coin.as_str()]),
            detector: "liquidations".into(),
            threat_type: ThreatType::LargeLiquidation,
            severity: self.severity(),
            asset: Some(coin.clone()),
            title: format!(
                "{coin}: {} liquidated within {} s{}",
                usd(self.usd),
                cfg.large_window_secs,
                if self.backstop {
                    " (backstop takeover by the Liquidator)"
                } else {
                    ""
                }
            ),
            indicators: vec![if self.backstop {
                "backstop".into()
            } else {
                "market".into()
            }],
            evidence: ev,
            time: self.time,
        }
    }
}

/// The cascade rule's numbers at one fill.
#[derive(Debug, Clone)]
struct Cascade {
    time: Timestamp,
    n: usize,
    usd: Decimal,
    critical: bool,
    group: Option<IncidentKey>,
}

impl Cascade {
    fn severity(&self) -> Severity {
        high_or_critical(self.critical)
    }

    fn detection(&self, coin: &Coin, cfg: &LiquidationConfig) -> Detection {
        Detection {
            protocol: Default::default(),
            direction: None,
            group: self.group.clone(),
            key: IncidentKey::new("liquidation_cascade", &[coin.as_str()]),
            detector: "liquidations".into(),
            threat_type: ThreatType::LiquidationCascade,
            severity: self.severity(),
            asset: Some(coin.clone()),
            title: format!(
                "{coin}: {} liquidations ({}) within {} s",
                self.n,
                usd(self.usd),
                cfg.cascade_window_secs
            ),
            indicators: vec!["cascade".into()],
            evidence: Evidence::new()
                .with("liquidations", self.n)
                .with("notional_usd", self.usd.round_dp(2))
                .with("window_secs", i64::from(cfg.cascade_window_secs)),
            time: self.time,
        }
    }
}

/// The liquidation detector.
#[derive(Debug)]
pub struct LiquidationDetector {
    cfg: LiquidationConfig,
    seen: BTreeSet<(Timestamp, Coin, u64)>,
    seen_order: VecDeque<(Timestamp, Coin, u64)>,
    by_coin: BTreeMap<Coin, CoinWindows>,
    by_user: BTreeMap<Address, UserWindow>,
    /// Accounts with coordinated-rule numbers held back (see `Emitted`).
    users_pending: Vec<Address>,
    adl: BTreeMap<Coin, Adl>,
    /// One state per configured market-wide window.
    market: Vec<MarketWindowState>,
    /// The last market-wide detection: its severity and time.
    market_last: Emitted,
    /// A market-wide state not emitted yet (time, severity, the window that set it).
    market_pending: Option<(Timestamp, Severity, usize)>,
}

impl LiquidationDetector {
    /// A detector with `cfg`.
    pub fn new(cfg: LiquidationConfig) -> Self {
        Self {
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            by_coin: BTreeMap::new(),
            by_user: BTreeMap::new(),
            users_pending: Vec::new(),
            adl: BTreeMap::new(),
            market: vec![MarketWindowState::default(); cfg.market_windows.len()],
            market_last: Emitted::default(),
            market_pending: None,
            cfg,
        }
    }

    /// The market-wide detection from the windows as they are now, at level `severity` set by
    /// window `i`.
    fn market_detection(&self, t: Timestamp, severity: Severity, i: usize) -> Detection {
        let stats: Vec<(usize, Decimal, usize)> =
            self.market.iter().map(MarketWindowState::totals).collect();
        let (n, usd, coins) = stats[i];
        let secs = self.cfg.market_windows[i].secs;
        let mut ev = Evidence::new();
        for (w, (n, usd, coins)) in self.cfg.market_windows.iter().zip(&stats) {
            ev.insert(&format!("liquidations_{}s", w.secs), *n);
            ev.insert(&format!("notional_usd_{}s", w.secs), usd.round_dp(2));
            ev.insert(&format!("markets_{}s", w.secs), *coins);
        }
        let widest = self
            .cfg
            .market_windows
            .iter()
            .enumerate()
            .max_by_key(|(_, w)| w.secs)
            .map_or(i, |(j, _)| j);
        let top: Vec<String> = self.market[widest]
            .top(5)
            .into_iter()
            .map(|(c, k)| format!("{c} {k}"))
            .collect();
        ev.insert("most_liquidated_markets", top.join(", "));
        Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
            key: market_key(),
            detector: "liquidations".into(),
            threat_type: ThreatType::MarketCascade,
            severity,
            asset: None,
            title: format!(
                "Market-wide liquidation cascade: {n} liquidations ({}) across {coins} markets within {secs} s",
                kamiyo_core_models::units::usd(usd)
            ),
            indicators: vec!["market_wide".into(), format!("window_{secs}s")],
            evidence: ev,
            time: t,
        }
    }

    /// The market-wide cascade rule, fed with every liquidation fill: the detection (pushed
    /// before the per-market ones of the same fill, so they fold under it) when a window
    /// reaches a level — at once when the level rises, else at most once per second of event
    /// time. Returns the key the per-market incidents are grouped under, when the rule is on.
    fn on_market(
        &mut self,
        t: Timestamp,
        coin: &Coin,
        notional: Decimal,
        sink: &mut Sink,
    ) -> Option<IncidentKey> {
        if self.cfg.market_windows.is_empty() {
            return None;
        }
        let mut best: Option<(Severity, usize)> = None;
        for (i, (w, st)) in self
            .cfg
            .market_windows
            .iter()
            .zip(&mut self.market)
            .enumerate()
        {
            let (n, usd, coins) = st.add(t, coin, notional, i64::from(w.secs) * 1000);
            let meets = |m: &crate::config::CascadeMinimums| {
                n >= m.liquidations as usize && usd >= m.notional_usd && coins >= m.coins as usize
            };
            let level = if meets(&w.critical) {
                Severity::Critical
            } else if meets(&w.high) {
                Severity::High
            } else {
                continue;
            };
            if best.is_none_or(|(b, _)| level > b) {
                best = Some((level, i));
            }
        }
        let key = market_key();
        let Some((severity, i)) = best else {
            return Some(key);
        };
        if !self.market_last.due(severity, t) {
            self.market_pending = Some((t, severity, i));
            return Some(key);
        }
        self.market_pending = None;
        self.market_last.emitted(severity, t);
        sink.detections.push(self.market_detection(t, severity, i));
        Some(key)
    }

    fn first_time(&mut self, f: &Fill) -> bool {
        let k = (f.time, f.coin.clone(), f.tid.unwrap_or(f.oid));
        if !self.seen.insert(k.clone()) {
            return false;
        }
        self.seen_order.push_back(k);
        while self.seen_order.len() > 100_000 {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn record(f: &Fill, sink: &mut Sink) {
        sink.observations.liquidations.push(LiquidationRecord {
            protocol: kamiyo_core_models::ProtocolId::default(),
            time: f.time,
            coin: f.coin.clone(),
            user: f.user,
            liquidated_user: f.liquidation.as_ref().and_then(|l| l.liquidated_user),
            side: f.side,
            px: f.px,
            sz: f.sz,
            notional: f.notional(),
            method: f.liquidation.as_ref().map(|l| l.method.clone()),
            is_adl: f.is_adl(),
            tid: f.tid.unwrap_or(f.oid),
        });
    }

    fn on_liquidation(&mut self, f: &Fill, sink: &mut Sink) {
        let now = f.time;
        let notional = f.notional();
        let victim = f.liquidation.as_ref().and_then(|l| l.liquidated_user);
        let backstop = f
            .liquidation
            .as_ref()
            .is_some_and(|l| l.method == LiquidationMethod::Backstop);
        let coin = f.coin.clone();
        let group = self.on_market(now, &coin, notional, sink);
        let w = self.by_coin.entry(coin.clone()).or_default();
        let large_ms = i64::from(self.cfg.large_window_secs) * 1000;
        let cascade_ms = i64::from(self.cfg.cascade_window_secs) * 1000;
        let (n10, usd10) = w.large.add(now, notional, large_ms);
        let (n_c, usd_c) = w.cascade.add(now, notional, cascade_ms);

        let large = (usd10 >= self.cfg.large_usd || (backstop && notional >= self.cfg.large_usd))
            .then(|| Large {
                time: now,
                n: n10,
                usd: usd10,
                fill_usd: notional,
                px: f.px,
                method: f.liquidation.as_ref().map(|l| l.method.clone()),
                victim,
                user: f.user,
                backstop,
                critical: usd10 >= self.cfg.large_critical_usd
                    || (backstop && notional >= self.cfg.large_critical_usd),
                group: group.clone(),
            });
        let cascade = (n_c >= self.cfg.cascade_count as usize).then(|| Cascade {
            time: now,
            n: n_c,
            usd: usd_c,
            critical: n_c >= self.cfg.cascade_critical_count as usize
                || usd_c >= self.cfg.cascade_critical_usd,
            group: group.clone(),
        });
        if let Some(l) = large
            && let Some(l) = w
                .large_out
                .emit_or_hold(l.severity(), now, l, &mut w.large_pending)
        {
            sink.detections.push(l.detection(&coin, &self.cfg));
        }
        if let Some(c) = cascade
            && let Some(c) =
                w.cascade_out
                    .emit_or_hold(c.severity(), now, c, &mut w.cascade_pending)
        {
            sink.detections.push(c.detection(&coin, &self.cfg));
        }
        if let Some(v) = victim {
            self.on_victim(v, now, notional, Some(&coin), group, sink);
        }
    }

    fn on_victim(
        &mut self,
        v: Address,
        now: Timestamp,
        notional: Decimal,
        coin: Option<&Coin>,
        group: Option<IncidentKey>,
        sink: &mut Sink,
    ) {
        let horizon = i64::from(self.cfg.coordinated_window_secs) * 1000;
        let u = self.by_user.entry(v).or_default();
        let (n, usd) = u.window.add(now, notional, horizon);
        if n >= self.cfg.coordinated_count as usize && usd >= self.cfg.coordinated_usd {
            let c = Coordinated {
                time: now,
                n,
                usd,
                coin: coin.cloned(),
                group,
            };
            if u.out.due(Severity::High, now) {
                u.out.emitted(Severity::High, now);
                sink.detections.push(c.detection(v, &self.cfg));
            } else {
                if u.pending.is_none() {
                    self.users_pending.push(v);
                }
                u.pending = Some(c);
            }
        }
        if self.by_user.len() > 50_000 {
            self.by_user.retain(|_, u| {
                u.pending.is_some()
                    || u.window
                        .newest()
                        .is_some_and(|t| now.millis_since(t) <= horizon)
            });
        }
    }

    fn on_adl(&mut self, f: &Fill, sink: &mut Sink) {
        let group = (!self.cfg.market_windows.is_empty()).then(market_key);
        let a = self.adl.entry(f.coin.clone()).or_insert_with(|| Adl {
            first: f.time,
            time: f.time,
            n: 0,
            usd: Decimal::ZERO,
            px: f.px,
            underwater: None,
            group: None,
            out: Emitted::default(),
            pending: false,
        });
        a.n += 1;
        a.usd += f.notional();
        a.time = f.time;
        a.px = f.px;
        a.underwater = f.liquidation.as_ref().and_then(|l| l.liquidated_user);
        a.group = group;
        // Critical from the first fill: later fills only update the numbers.
        if a.out.due(Severity::Critical, f.time) {
            a.out.emitted(Severity::Critical, f.time);
            a.pending = false;
            sink.detections.push(a.detection(&f.coin));
        } else {
            a.pending = true;
        }
    }
}

/// One market's ADL streak.
#[derive(Debug, Clone)]
struct Adl {
    first: Timestamp,
    time: Timestamp,
    n: u32,
    usd: Decimal,
    px: Decimal,
    underwater: Option<Address>,
    group: Option<IncidentKey>,
    out: Emitted,
    pending: bool,
}

impl Adl {
    fn detection(&self, coin: &Coin) -> Detection {
        let mut ev = Evidence::new()
            .with("adl_fills", i64::from(self.n))
            .with("adl_notional_usd", self.usd.round_dp(2))
            .with("first_adl_at", self.first.0)
            .with("px", self.px);
        if let Some(u) = self.underwater {
            ev.insert("underwater_account", u.to_string());
        }
        Detection {
            protocol: Default::default(),
            direction: None,
            group: self.group.clone(),
            key: IncidentKey::new("auto_deleveraging", &[coin.as_str()]),
            detector: "liquidations".into(),
            threat_type: ThreatType::AutoDeleveraging,
            severity: Severity::Critical,
            asset: Some(coin.clone()),
            title: format!(
                "{coin}: auto-deleveraging — {} ADL fill(s), {} (the backstop could not absorb the losses)",
                self.n,
                usd(self.usd)
            ),
            indicators: vec!["adl".into()],
            evidence: ev,
            time: self.time,
        }
    }
}

/// One account's liquidations within the coordinated window, with the coalescing state.
#[derive(Debug, Clone, Default)]
struct UserWindow {
    window: SlidingSum,
    out: Emitted,
    pending: Option<Coordinated>,
}

/// The coordinated rule's numbers at one fill.
#[derive(Debug, Clone)]
struct Coordinated {
    time: Timestamp,
    n: usize,
    usd: Decimal,
    coin: Option<Coin>,
    group: Option<IncidentKey>,
}

impl Coordinated {
    fn detection(&self, v: Address, cfg: &LiquidationConfig) -> Detection {
        Detection {
            protocol: Default::default(),
            direction: None,
            group: self.group.clone(),
            key: IncidentKey::new("coordinated_liquidation", &[&v.to_string()]),
            detector: "liquidations".into(),
            threat_type: ThreatType::CoordinatedLiquidation,
            severity: Severity::High,
            asset: self.coin.clone(),
            title: format!(
                "{} liquidated {} times for {} within {} min",
                v.short(),
                self.n,
                usd(self.usd),
                cfg.coordinated_window_secs / 60
            ),
            indicators: vec!["repeat_liquidation".into()],
            evidence: Evidence::new()
                .with("liquidated_user", v.to_string())
                .with("liquidations", self.n)
                .with("notional_usd", self.usd.round_dp(2)),
            time: self.time,
        }
    }
}

impl Detector for LiquidationDetector {
    fn name(&self) -> &'static str {
        "liquidations"
    }

    fn on_event(&mut self, event: &MarketEvent, _state: &MarketState, sink: &mut Sink) {
        match event {
            MarketEvent::Fill(f) if f.is_adl() && self.first_time(f) => {
                Self::record(f, sink);
                self.on_adl(f, sink);
            }
            MarketEvent::Fill(f) if f.is_liquidation() && self.first_time(f) => {
                Self::record(f, sink);
                self.on_liquidation(f, sink);
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Timestamp, _state: &MarketState, sink: &mut Sink) {
        // The newest numbers held back since the last emission of each rule.
        for v in std::mem::take(&mut self.users_pending) {
            if let Some(u) = self.by_user.get_mut(&v)
                && let Some(c) = u.pending.take()
            {
                u.out.emitted(Severity::High, c.time);
                sink.detections.push(c.detection(v, &self.cfg));
            }
        }
        for (coin, a) in &mut self.adl {
            if a.pending {
                a.pending = false;
                a.out.emitted(Severity::Critical, a.time);
                sink.detections.push(a.detection(coin));
            }
        }
        if let Some((t, sev, i)) = self.market_pending.take() {
            self.market_last.emitted(sev, t);
            sink.detections.push(self.market_detection(t, sev, i));
        }
        for (coin, w) in &mut self.by_coin {
            if let Some(l) = w.large_pending.take() {
                w.large_out.emitted(l.severity(), l.time);
                sink.detections.push(l.detection(coin, &self.cfg));
            }
            if let Some(c) = w.cascade_pending.take() {
                w.cascade_out.emitted(c.severity(), c.time);
                sink.detections.push(c.detection(coin, &self.cfg));
            }
        }
        // Forget ADL streaks that ended an hour ago, so a later ADL is "first" again.
        self.adl
            .retain(|_, a| now.millis_since(a.first) < 6 * Timestamp::HOUR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running totals equal a rescan of every fill within the span before the newest time,
    /// for random sequences with late (out-of-order) fills.
    #[test]
    fn sliding_sums_equal_a_rescan() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for span_ms in [0_i64, 10_000, 300_000] {
            let mut w = SlidingSum::default();
            let mut all: Vec<(i64, Decimal)> = Vec::new();
            let mut t = 0_i64;
            for _ in 0..5_000 {
                t += (next() % 4_000) as i64;
                // One fill in ten is up to 20 s late.
                let at = if next() % 10 == 0 {
                    t - (next() % 20_000) as i64
                } else {
                    t
                };
                let v = Decimal::new((next() % 10_000_000) as i64, 2);
                all.push((at, v));
                let (n, sum) = w.add(Timestamp(at), v, span_ms);
                let newest = all.iter().map(|(u, _)| *u).max().unwrap_or(at);
                let inside: Vec<&(i64, Decimal)> =
                    all.iter().filter(|(u, _)| newest - u <= span_ms).collect();
                assert_eq!(n, inside.len(), "count, span {span_ms}");
                assert_eq!(sum, inside.iter().map(|(_, v)| *v).sum::<Decimal>(), "sum");
            }
        }
    }
}
