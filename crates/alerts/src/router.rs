//! Which channel hears about which incident step.
//!
//! Per channel: a minimum severity, threat-type and asset filters, and the lifecycle steps it
//! wants (by default opened, escalated and resolved — never one message per tick). A
//! resolution goes to every channel that was told the incident opened, whatever its severity,
//! and to no other. Per channel and incident key, a cooldown folds a flapping condition (open,
//! resolve, re-open at the same severity …) into the first alert: the re-opening and its next
//! resolution are recorded as suppressed, while an escalation above what was last sent always
//! goes through. Repeats of one event are dropped by the alert's idempotency key.

use std::collections::HashMap;

use kamiyo_core_models::{
    IncidentChange, OutboxEntry, OutboxStatus, RelatedIncident, SecurityEvent, Severity, StableId,
    ThreatType, Timestamp,
};

use crate::config::ChannelConfig;

/// How the reason of a silenced outbox entry starts.
pub const SILENCED: &str = "silenced by ";
/// How the reason of an inhibited outbox entry starts.
pub const INHIBITED: &str = "inhibited by ";

/// A channel's filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Channel name.
    pub channel: String,
    /// Lowest severity.
    pub min_severity: Severity,
    /// Threat types (empty: all).
    pub threat_types: Vec<ThreatType>,
    /// Assets (empty: all), compared case-insensitively.
    pub assets: Vec<String>,
    /// Lifecycle steps.
    pub changes: Vec<IncidentChange>,
}

impl Route {
    /// The route of a configured channel.
    pub fn of(name: &str, c: &ChannelConfig) -> Self {
        Self {
            channel: name.to_owned(),
            min_severity: c.min_severity,
            threat_types: c.threat_types.clone(),
            assets: c.assets.clone(),
            changes: c.changes.clone(),
        }
    }

    fn topic_matches(&self, e: &SecurityEvent) -> bool {
        (self.threat_types.is_empty() || self.threat_types.contains(&e.threat_type))
            && (self.assets.is_empty()
                || e.asset.as_ref().is_some_and(|a| {
                    self.assets
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(a.as_str()))
                }))
    }
}

/// What the router decided for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deliver.
    Send,
    /// Record as suppressed, with the reason.
    Suppress(String),
    /// Not for this channel (filters).
    Skip,
}

#[derive(Debug, Clone)]
struct KeyState {
    last_sent_at: Timestamp,
    last_severity: Severity,
    open: bool,
    suppressing: bool,
    /// The incident's market, for inhibition.
    asset: Option<String>,
    /// Held back by an open critical on its market: announced when that ends.
    inhibited: bool,
}

/// How the reason of a grouped outbox entry starts.
pub const GROUPED: &str = "grouped with incident ";

/// An incident folded into another's notification thread.
#[derive(Debug, Clone)]
struct Member {
    key: String,
    latest: RelatedIncident,
}

/// Incidents on one market, per channel: one notification thread (Alertmanager's `group_by`
/// asset). The lead was announced on its own; the others are reported in group updates.
#[derive(Debug, Clone)]
struct Group {
    lead_key: String,
    lead_id: StableId,
    lead_open: bool,
    /// Highest severity the channel has been told about in this group.
    sent_max: Severity,
    members: Vec<Member>,
    /// Member news not sent yet.
    pending: bool,
    /// Send at the next flush (news above `sent_max`, or the lead resolved).
    due_now: bool,
    last_sent_at: Timestamp,
    /// Group updates sent.
    seq: u32,
}

/// A group update to send: the lead incident's thread, with the related incidents' state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUpdate {
    /// Channel.
    pub channel: String,
    /// The lead incident (its latest step carries the update).
    pub lead: StableId,
    /// The related incidents, with their latest state.
    pub related: Vec<RelatedIncident>,
    /// Sequence number of this update within the group (for the idempotency key).
    pub seq: u32,
}

/// The router: filters plus per-(channel, incident key) cooldown state, and per-(channel,
/// market) notification groups.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    cooldown_ms: i64,
    state: HashMap<(String, String), KeyState>,
    /// Minimum time between two updates of a group; 0 disables grouping.
    group_interval_ms: i64,
    groups: HashMap<(String, String), Group>,
}

impl Router {
    /// A router over `routes` with a cooldown in milliseconds (no grouping).
    pub fn new(routes: Vec<Route>, cooldown_ms: i64) -> Self {
        Self {
            routes,
            cooldown_ms,
            state: HashMap::new(),
            group_interval_ms: 0,
            groups: HashMap::new(),
        }
    }

    /// Groups incidents on the same market into one notification thread per channel: the
    /// first is announced as usual, the others' steps are reported in group updates at most
    /// every `interval_ms` (at once when they raise the group's severity or the lead ends).
    pub fn with_grouping(mut self, interval_ms: i64) -> Self {
        self.group_interval_ms = interval_ms.max(0);
        self
    }

    /// The routes.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Rebuilds the cooldown state (and the groups) from the outbox (oldest first), so a
    /// restart neither re-alerts a flapping incident nor forgets a group's unsent news.
    pub fn restore(&mut self, history: &[OutboxEntry]) {
        self.restore_groups(history);
        for e in history {
            if !e.alert.related.is_empty() {
                continue; // Group updates leave per-incident state as it was.
            }
            let ev = &e.alert.update.event;
            if ev.member_of().is_some() {
                continue; // Grouped steps leave no state of their own.
            }
            let reason = e.last_error.as_deref().unwrap_or_default();
            if reason.starts_with(SILENCED) || reason.starts_with(GROUPED) {
                continue; // Silenced and grouped steps leave no state of their own either.
            }
            let asset = ev.asset.as_ref().map(|a| a.as_str().to_ascii_uppercase());
            let k = (e.channel.clone(), ev.incident_key.to_string());
            if e.status == OutboxStatus::Suppressed && reason.starts_with(INHIBITED) {
                // Held back: announced by its next step once the inhibitor has ended.
                self.state.insert(
                    k,
                    KeyState {
                        last_sent_at: ev.time,
                        last_severity: ev.severity,
                        open: false,
                        suppressing: false,
                        asset,
                        inhibited: true,
                    },
                );
                continue;
            }
            match e.status {
                OutboxStatus::Suppressed => {
                    let st = self.state.entry(k).or_insert(KeyState {
                        last_sent_at: ev.time,
                        last_severity: ev.severity,
                        open: false,
                        suppressing: false,
                        asset,
                        inhibited: false,
                    });
                    st.suppressing = ev.change != IncidentChange::Resolved;
                }
                _ => {
                    self.state.insert(
                        k,
                        KeyState {
                            last_sent_at: ev.time,
                            last_severity: ev.severity,
                            open: ev.change != IncidentChange::Resolved,
                            suppressing: false,
                            asset,
                            inhibited: false,
                        },
                    );
                }
            }
        }
    }

    /// Channels that would hear of `e` by their filters alone (topic, step and severity; a
    /// resolution counts for every channel that takes resolutions). Used for silenced steps,
    /// which leave the cooldown state untouched.
    pub fn listeners(&self, e: &SecurityEvent) -> Vec<String> {
        self.routes
            .iter()
            .filter(|r| {
                r.topic_matches(e)
                    && r.changes.contains(&e.change)
                    && (e.change == IncidentChange::Resolved || e.severity >= r.min_severity)
            })
            .map(|r| r.channel.clone())
            .collect()
    }

    /// Decides, for every channel, what to do with `e`, and updates the state.
    pub fn route(&mut self, e: &SecurityEvent) -> Vec<(String, Decision)> {
        // The routes are taken out for the loop (the decisions borrow the rest of `self`),
        // not copied per event.
        let routes = std::mem::take(&mut self.routes);
        let mut out = Vec::with_capacity(routes.len());
        for r in &routes {
            let d = match self.grouped(r, e) {
                Some(d) => d,
                None => {
                    let d = decide(&mut self.state, self.cooldown_ms, r, e);
                    self.after_decision(r, e, &d);
                    d
                }
            };
            out.push((r.channel.clone(), d));
        }
        self.routes = routes;
        out
    }

    /// The market of a step, for grouping.
    fn market(e: &SecurityEvent) -> Option<String> {
        e.asset.as_ref().map(|a| a.as_str().to_ascii_uppercase())
    }

    /// A step that belongs to a group of `r`'s channel: its decision.
    fn grouped(&mut self, r: &Route, e: &SecurityEvent) -> Option<Decision> {
        if self.group_interval_ms == 0 || !r.topic_matches(e) || e.member_of().is_some() {
            return None;
        }
        let asset = Self::market(e)?;
        let key = e.incident_key.to_string();
        let announced = self
            .state
            .get(&(r.channel.clone(), key.clone()))
            .is_some_and(|s| s.open);
        let g = self.groups.get_mut(&(r.channel.clone(), asset.clone()))?;
        let member = g.members.iter().position(|m| m.key == key);
        let wanted = r.changes.contains(&e.change) || e.change == IncidentChange::Resolved;
        let joins = member.is_none()
            && g.lead_open
            && g.lead_key != key
            && !announced
            && e.change != IncidentChange::Resolved
            && r.changes.contains(&e.change)
            && e.severity >= r.min_severity;
        if member.is_none() && !joins {
            return None;
        }
        let latest = RelatedIncident {
            incident_id: e.incident_id.clone(),
            title: e.title.clone(),
            severity: e.severity,
            change: e.change,
            time: e.time,
        };
        match member {
            Some(i) => g.members[i].latest = latest,
            None => g.members.push(Member { key, latest }),
        }
        if !wanted {
            return Some(Decision::Skip);
        }
        g.pending = true;
        if e.severity > g.sent_max {
            g.due_now = true;
        }
        Some(Decision::Suppress(format!(
            "{GROUPED}{} on {asset}: reported in the group's next update",
            g.lead_id
        )))
    }

    /// Opens a group when a step is announced on its own; closes the lead when it resolves.
    fn after_decision(&mut self, r: &Route, e: &SecurityEvent, d: &Decision) {
        if self.group_interval_ms == 0 || *d != Decision::Send {
            return;
        }
        let Some(asset) = Self::market(e) else {
            return;
        };
        let key = e.incident_key.to_string();
        let gk = (r.channel.clone(), asset);
        match self.groups.get_mut(&gk) {
            Some(g) if g.lead_key == key => {
                g.sent_max = g.sent_max.max(e.severity);
                g.lead_id = e.incident_id.clone();
                if e.change == IncidentChange::Resolved {
                    g.lead_open = false;
                    if g.members
                        .iter()
                        .any(|m| m.latest.change != IncidentChange::Resolved)
                    {
                        // The thread outlives its lead: say where the others stand now.
                        g.pending = true;
                        g.due_now = true;
                    }
                }
            }
            Some(g) if g.lead_open => g.sent_max = g.sent_max.max(e.severity),
            _ if e.change != IncidentChange::Resolved => {
                self.groups.insert(
                    gk,
                    Group {
                        lead_key: key,
                        lead_id: e.incident_id.clone(),
                        lead_open: true,
                        sent_max: e.severity,
                        members: Vec::new(),
                        pending: false,
                        due_now: false,
                        last_sent_at: e.time,
                        seq: 0,
                    },
                );
            }
            _ => {}
        }
    }

    /// Group updates due at `now`; each is marked sent. Groups whose lead and members have
    /// all resolved and that have nothing left to say are forgotten.
    pub fn due_updates(&mut self, now: Timestamp) -> Vec<GroupUpdate> {
        let mut out = Vec::new();
        let interval = self.group_interval_ms;
        for ((channel, _), g) in &mut self.groups {
            if g.pending && (g.due_now || now.millis_since(g.last_sent_at) >= interval) {
                g.seq += 1;
                g.pending = false;
                g.due_now = false;
                g.last_sent_at = now;
                g.sent_max = g
                    .members
                    .iter()
                    .map(|m| m.latest.severity)
                    .fold(g.sent_max, Severity::max);
                out.push(GroupUpdate {
                    channel: channel.clone(),
                    lead: g.lead_id.clone(),
                    related: g.members.iter().map(|m| m.latest.clone()).collect(),
                    seq: g.seq,
                });
            }
        }
        self.groups.retain(|_, g| {
            g.pending
                || g.lead_open
                || g.members
                    .iter()
                    .any(|m| m.latest.change != IncidentChange::Resolved)
        });
        out.sort_by(|a, b| (&a.channel, &a.lead).cmp(&(&b.channel, &b.lead)));
        out
    }

    /// Rebuilds the groups from the delivery log (oldest first), with [`Router::restore`].
    fn restore_groups(&mut self, history: &[OutboxEntry]) {
        if self.group_interval_ms == 0 {
            return;
        }
        let routes = std::mem::take(&mut self.routes);
        for e in history {
            let ev = &e.alert.update.event;
            let Some(r) = routes.iter().find(|r| r.channel == e.channel) else {
                continue;
            };
            let Some(asset) = Self::market(ev) else {
                continue;
            };
            let gk = (e.channel.clone(), asset);
            let reason = e.last_error.as_deref().unwrap_or_default();
            if !e.alert.related.is_empty() {
                // A group update: what it reported is no longer pending.
                if let Some(g) = self.groups.get_mut(&gk) {
                    g.pending = false;
                    g.due_now = false;
                    g.last_sent_at = e.created_at;
                    g.seq += 1;
                }
            } else if e.status == OutboxStatus::Suppressed && reason.starts_with(GROUPED) {
                let _ = self.grouped(r, ev);
            } else if e.status != OutboxStatus::Suppressed {
                self.after_decision(r, ev, &Decision::Send);
            }
        }
        self.routes = routes;
    }
}

fn decide(
    state: &mut HashMap<(String, String), KeyState>,
    cooldown_ms: i64,
    r: &Route,
    e: &SecurityEvent,
) -> Decision {
    if !r.topic_matches(e) {
        return Decision::Skip;
    }
    let k = (r.channel.clone(), e.incident_key.to_string());
    // Grouped under an open incident that is alerted on its own (a market's liquidations under
    // the market-wide cascade): recorded in the delivery log, not sent, so the cascade pages
    // once. A channel that was told about it before it was grouped no longer counts it open.
    if let Some(parent) = e.member_of() {
        if e.change == IncidentChange::Resolved
            && let Some(p) = state.get_mut(&k)
        {
            p.open = false;
        }
        return Decision::Suppress(format!("grouped under incident {parent}, alerted with it"));
    }
    let prev = state.get(&k).cloned();
    let asset = e.asset.as_ref().map(|a| a.as_str().to_ascii_uppercase());
    // Inhibition (Alertmanager's inhibit_rules, source critical, equal asset): while this
    // channel has an open critical incident on the market, another incident's lower-severity
    // steps there are recorded, not sent — unless that incident was announced already. When
    // the critical ends, the held-back incident's next step announces it.
    let inhibitor = (e.severity < Severity::Critical && asset.is_some())
        .then(|| {
            state.iter().find(|((ch, key), st)| {
                *ch == r.channel
                    && *key != k.1
                    && st.open
                    && st.last_severity == Severity::Critical
                    && st.asset == asset
            })
        })
        .flatten()
        .map(|((_, source), _)| source.clone());
    if let Some(source) = inhibitor
        && prev.as_ref().is_none_or(|p| !p.open)
    {
        if e.change == IncidentChange::Resolved {
            state.remove(&k);
            return Decision::Skip;
        }
        let wanted = r.changes.contains(&e.change) && e.severity >= r.min_severity;
        state.insert(
            k.clone(),
            KeyState {
                last_sent_at: e.time,
                last_severity: e.severity,
                open: false,
                suppressing: false,
                asset: asset.clone(),
                inhibited: true,
            },
        );
        return if wanted {
            Decision::Suppress(format!(
                "{INHIBITED}the open critical incident {source} on {}",
                asset.as_deref().unwrap_or_default()
            ))
        } else {
            Decision::Skip
        };
    }
    if prev.as_ref().is_some_and(|p| p.inhibited) {
        // Its inhibitor has ended.
        if e.change == IncidentChange::Resolved {
            state.remove(&k);
            return Decision::Skip;
        }
        if e.severity >= r.min_severity {
            state.insert(
                k,
                KeyState {
                    last_sent_at: e.time,
                    last_severity: e.severity,
                    open: true,
                    suppressing: false,
                    asset,
                    inhibited: false,
                },
            );
            return Decision::Send;
        }
    }
    let sent = |sev: Severity, open: bool| KeyState {
        last_sent_at: e.time,
        last_severity: sev,
        open,
        suppressing: false,
        asset: asset.clone(),
        inhibited: false,
    };
    match e.change {
        IncidentChange::Resolved => {
            // Only channels that were told about the incident hear that it is over.
            let Some(p) = prev else {
                return Decision::Skip;
            };
            let p = p.clone();
            if p.suppressing {
                state.insert(
                    k,
                    KeyState {
                        suppressing: false,
                        open: false,
                        ..p
                    },
                );
                return Decision::Suppress(
                    "resolution of a re-opening suppressed by the cooldown".into(),
                );
            }
            if !p.open || !r.changes.contains(&IncidentChange::Resolved) {
                if p.open {
                    state.insert(k, KeyState { open: false, ..p });
                }
                return Decision::Skip;
            }
            state.insert(
                k,
                KeyState {
                    last_sent_at: e.time,
                    open: false,
                    ..p
                },
            );
            Decision::Send
        }
        change => {
            if e.severity < r.min_severity || !r.changes.contains(&change) {
                // An escalation to the channel's level is still "news" even when the step
                // type is filtered: treat the first qualifying step as the opening.
                if e.severity >= r.min_severity
                    && prev.is_none_or(|p| !p.open)
                    && r.changes.contains(&IncidentChange::Opened)
                    && change != IncidentChange::Updated
                {
                    state.insert(k, sent(e.severity, true));
                    return Decision::Send;
                }
                return Decision::Skip;
            }
            match prev {
                Some(p) if p.open && !p.suppressing => {
                    state.insert(
                        k,
                        KeyState {
                            last_sent_at: e.time,
                            last_severity: p.last_severity.max(e.severity),
                            ..p
                        },
                    );
                    Decision::Send
                }
                Some(p)
                    if e.time.0 - p.last_sent_at.0 < cooldown_ms
                        && e.severity <= p.last_severity =>
                {
                    state.insert(
                        k,
                        KeyState {
                            suppressing: true,
                            open: true,
                            ..p
                        },
                    );
                    Decision::Suppress(format!(
                        "{} within the {} s cooldown of the last alert for {} at {} severity",
                        change.as_str(),
                        cooldown_ms / 1000,
                        e.incident_key,
                        p.last_severity.as_str()
                    ))
                }
                _ => {
                    state.insert(k, sent(e.severity, true));
                    Decision::Send
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use kamiyo_core_models::{Evidence, Incident, IncidentKey, IncidentStatus};

    use super::*;

    fn ev(change: IncidentChange, sev: Severity, t_min: i64) -> SecurityEvent {
        let key = IncidentKey::parse("oracle_deviation:ETH").unwrap();
        let i = Incident {
            protocol: Default::default(),
            id: Incident::derive_id(&key, Timestamp(0)),
            key,
            detector: "oracle".into(),
            threat_type: ThreatType::OracleDeviation,
            severity: sev,
            peak_severity: sev,
            asset: Some(kamiyo_core_models::Coin::new("ETH").unwrap()),
            status: IncidentStatus::Open,
            title: "ETH oracle".into(),
            indicators: vec![],
            evidence: Evidence::new(),
            first_seen: Timestamp(0),
            last_seen: Timestamp(t_min * 60_000),
            resolved_at: None,
            detections: 1,
        };
        SecurityEvent::from_incident(&i, change, Timestamp(t_min * 60_000))
    }

    fn route(min: Severity) -> Route {
        Route {
            channel: "ops".into(),
            min_severity: min,
            threat_types: vec![],
            assets: vec![],
            changes: vec![
                IncidentChange::Opened,
                IncidentChange::Escalated,
                IncidentChange::Resolved,
            ],
        }
    }

    fn one(r: &mut Router, e: &SecurityEvent) -> Decision {
        r.route(e).remove(0).1
    }

    /// `ev` for another incident (detector, asset) of the same scenario.
    fn other(
        change: IncidentChange,
        sev: Severity,
        t_min: i64,
        detector: &str,
        asset: &str,
    ) -> SecurityEvent {
        let mut e = ev(change, sev, t_min);
        e.incident_key = IncidentKey::new(detector, &[asset]);
        e.detector = detector.into();
        e.asset = Some(kamiyo_core_models::Coin::new(asset).unwrap());
        e
    }

    #[test]
    fn an_open_critical_inhibits_lower_steps_on_its_market_until_it_ends() {
        use IncidentChange::*;
        use Severity::{Critical, High, Medium};
        #[derive(Debug, PartialEq)]
        enum Want {
            Send,
            Skip,
            Inhibited,
        }
        let steps = [
            // The critical incident on JELLY is announced.
            (Opened, Critical, 0, "thin_market", "JELLY", Want::Send),
            // A high incident on JELLY is held back; one on ETH is not; a critical is not.
            (Opened, High, 1, "oracle", "JELLY", Want::Inhibited),
            (Opened, High, 1, "oracle", "ETH", Want::Send),
            (Opened, Critical, 2, "liquidation", "JELLY", Want::Send),
            // Its updates stay quiet (not recorded: the channel takes no updates).
            (Updated, High, 3, "oracle", "JELLY", Want::Skip),
            // The criticals resolve; the held-back incident's next step announces it.
            (Resolved, Critical, 4, "thin_market", "JELLY", Want::Send),
            (Updated, High, 5, "oracle", "JELLY", Want::Skip), // one critical still open
            (Resolved, Critical, 6, "liquidation", "JELLY", Want::Send),
            (Updated, High, 7, "oracle", "JELLY", Want::Send),
            (Resolved, High, 8, "oracle", "JELLY", Want::Send),
            // Held back until it resolved: never announced, nor its resolution.
            (Opened, Critical, 9, "thin_market", "JELLY", Want::Send),
            (Opened, Medium, 10, "whale", "JELLY", Want::Inhibited),
            (Resolved, Medium, 11, "whale", "JELLY", Want::Skip),
        ];
        let mut r = Router::new(vec![route(Severity::Medium)], 0);
        for (i, (change, sev, t, detector, asset, want)) in steps.into_iter().enumerate() {
            let got = match one(&mut r, &other(change, sev, t, detector, asset)) {
                Decision::Send => Want::Send,
                Decision::Skip => Want::Skip,
                Decision::Suppress(why) => {
                    assert!(why.starts_with(INHIBITED) && why.contains(asset), "{why}");
                    Want::Inhibited
                }
            };
            assert_eq!(got, want, "step {i}: {change:?} {sev:?} {detector} {asset}");
        }
    }

    #[test]
    fn lifecycle_not_ticks_and_flapping_is_folded() {
        use IncidentChange::*;
        let mut r = Router::new(vec![route(Severity::High)], 15 * 60_000);
        assert_eq!(one(&mut r, &ev(Opened, Severity::High, 0)), Decision::Send);
        assert_eq!(one(&mut r, &ev(Updated, Severity::High, 1)), Decision::Skip);
        assert_eq!(
            one(&mut r, &ev(Escalated, Severity::Critical, 2)),
            Decision::Send
        );
        assert_eq!(
            one(&mut r, &ev(Resolved, Severity::Critical, 5)),
            Decision::Send
        );
        // Re-opens 3 minutes later at a lower severity: folded.
        assert!(matches!(
            one(&mut r, &ev(Opened, Severity::High, 8)),
            Decision::Suppress(_)
        ));
        assert!(matches!(
            one(&mut r, &ev(Resolved, Severity::High, 9)),
            Decision::Suppress(_)
        ));
        // After the cooldown, a re-opening is news again.
        assert_eq!(one(&mut r, &ev(Opened, Severity::High, 30)), Decision::Send);
    }

    #[test]
    fn severity_filter_escalation_and_resolution_follow_the_opening() {
        use IncidentChange::*;
        let mut r = Router::new(vec![route(Severity::Critical)], 15 * 60_000);
        // Opened at high: below this channel's level.
        assert_eq!(one(&mut r, &ev(Opened, Severity::High, 0)), Decision::Skip);
        // Escalates to critical: the channel hears about it now.
        assert_eq!(
            one(&mut r, &ev(Escalated, Severity::Critical, 1)),
            Decision::Send
        );
        assert_eq!(
            one(&mut r, &ev(Resolved, Severity::High, 2)),
            Decision::Send
        );
        // A high-only incident never reached the channel, so neither does its resolution.
        let mut r = Router::new(vec![route(Severity::Critical)], 0);
        assert_eq!(one(&mut r, &ev(Opened, Severity::High, 0)), Decision::Skip);
        assert_eq!(
            one(&mut r, &ev(Resolved, Severity::High, 1)),
            Decision::Skip
        );
    }

    #[test]
    fn topic_filters() {
        let mut rt = route(Severity::Info);
        rt.assets = vec!["btc".into()];
        let mut r = Router::new(vec![rt], 0);
        assert_eq!(
            one(&mut r, &ev(IncidentChange::Opened, Severity::Critical, 0)),
            Decision::Skip
        );
        let mut rt = route(Severity::Info);
        rt.threat_types = vec![ThreatType::OracleDeviation];
        let mut r = Router::new(vec![rt], 0);
        assert_eq!(
            one(&mut r, &ev(IncidentChange::Opened, Severity::Low, 0)),
            Decision::Send
        );
    }

    #[test]
    fn steps_grouped_under_an_open_incident_are_recorded_not_sent() {
        use IncidentChange::*;
        let mut r = Router::new(vec![route(Severity::High)], 15 * 60_000);
        // Told about before it was grouped …
        assert_eq!(one(&mut r, &ev(Opened, Severity::High, 0)), Decision::Send);
        let grouped = |change, sev, t| {
            let mut e = ev(change, sev, t);
            e.indicators
                .push(format!("{}inc_market", kamiyo_core_models::MEMBER_OF));
            e
        };
        // … then part of the market-wide cascade: its escalation and resolution are not sent.
        match one(&mut r, &grouped(Escalated, Severity::Critical, 1)) {
            Decision::Suppress(why) => assert!(why.contains("inc_market"), "{why}"),
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            one(&mut r, &grouped(Resolved, Severity::Critical, 9)),
            Decision::Suppress(_)
        ));
        // The channel no longer counts it open: a later, ungrouped opening is news again.
        assert_eq!(
            one(&mut r, &ev(Opened, Severity::Critical, 40)),
            Decision::Send
        );
    }

    #[test]
    fn restore_keeps_the_cooldown_across_restarts() {
        use IncidentChange::*;
        let mut a = Router::new(vec![route(Severity::High)], 15 * 60_000);
        let mut log = Vec::new();
        for e in [
            ev(Opened, Severity::High, 0),
            ev(Resolved, Severity::High, 2),
        ] {
            assert_eq!(one(&mut a, &e), Decision::Send);
            let upd = kamiyo_core_models::IncidentUpdate {
                incident: Incident {
                    protocol: Default::default(),
                    id: e.incident_id.clone(),
                    key: e.incident_key.clone(),
                    detector: e.detector.clone(),
                    threat_type: e.threat_type,
                    severity: e.severity,
                    peak_severity: e.severity,
                    asset: e.asset.clone(),
                    status: IncidentStatus::Open,
                    title: e.title.clone(),
                    indicators: vec![],
                    evidence: Evidence::new(),
                    first_seen: Timestamp(0),
                    last_seen: e.time,
                    resolved_at: None,
                    detections: 1,
                },
                event: e.clone(),
            };
            let alert = kamiyo_core_models::Alert::new(upd, "ops", None);
            log.push(OutboxEntry {
                id: alert.idempotency_key.clone(),
                channel: "ops".into(),
                alert,
                status: OutboxStatus::Delivered,
                attempts: 1,
                next_attempt_at: e.time,
                created_at: e.time,
                delivered_at: Some(e.time),
                last_error: None,
                consumer: crate::service::CURSOR.into(),
            });
        }
        let mut b = Router::new(vec![route(Severity::High)], 15 * 60_000);
        b.restore(&log);
        assert!(matches!(
            one(&mut b, &ev(Opened, Severity::High, 5)),
            Decision::Suppress(_)
        ));
    }
}
