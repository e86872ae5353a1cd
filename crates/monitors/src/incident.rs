//! Incident lifecycle: detections with the same key fold into one incident that is opened,
//! escalated (immediately, on a rise in severity or a flip of the signal's direction), updated
//! (same level: at most once per update interval, and only when the evidence changed), and
//! resolved after a quiet period. Pure and deterministic.

use std::collections::BTreeMap;

use kamiyo_core_models::{
    Detection, Direction, Incident, IncidentChange, IncidentKey, IncidentStatus, IncidentUpdate,
    MEMBER_OF, SecurityEvent, StableId, ThreatType, Timestamp,
};

use crate::config::IncidentConfig;

#[derive(Debug, Clone)]
struct Open {
    incident: Incident,
    last_step: Timestamp,
    dirty: bool,
    /// Direction of the latest detection, for signals that have one.
    direction: Option<Direction>,
    /// When watching resumed after a time nobody could see the market: this run taking the
    /// incident over from the store ([`IncidentManager::restore`]), or the exchange's feeds
    /// coming back ([`IncidentManager::set_blind`]). Its quiet period counts from here if that
    /// is later than its last detection: time unobserved is not quiet.
    watched_from: Option<Timestamp>,
}

impl Open {
    /// Since when the incident has been watched without a detection.
    fn quiet_since(&self) -> Timestamp {
        self.watched_from
            .map_or(self.incident.last_seen, |r| r.max(self.incident.last_seen))
    }
}

/// Tracks open incidents.
#[derive(Debug, Clone)]
pub struct IncidentManager {
    open: BTreeMap<IncidentKey, Open>,
    resolve_after_ms: i64,
    update_interval_ms: i64,
    /// The exchange's own feeds are not all live.
    blind: bool,
}

/// Quiet period of `ml_anomaly` incidents (at least; a longer `resolve_after_secs` wins).
pub const ML_ANOMALY_QUIET_MS: i64 = 3_600_000;

/// Quiet period of `risk_forecast` incidents (at least): the forecast is fitted once an hour,
/// and like every periodic piece of evidence a fit must come twice within the quiet period, or
/// a forecast that keeps reaching the loss would resolve between two fits that both show it
/// and open again at the next.
pub const RISK_FORECAST_QUIET_MS: i64 = 2 * 3_600_000;

impl IncidentManager {
    /// A manager with `cfg`.
    pub fn new(cfg: &IncidentConfig) -> Self {
        Self {
            open: BTreeMap::new(),
            resolve_after_ms: i64::from(cfg.resolve_after_secs) * 1000,
            update_interval_ms: i64::from(cfg.update_interval_secs) * 1000,
            blind: false,
        }
    }

    fn quiet_period(&self, t: ThreatType) -> i64 {
        match t {
            ThreatType::FeedHealth => 90_000,
            // Anomaly scores come once per 5-minute bar and an unusual regime crosses the
            // threshold on some bars and not others: one regime, one incident, resolved after
            // an hour without an anomalous bar (the merge window of `ml evaluate`).
            ThreatType::MlAnomaly => self.resolve_after_ms.max(ML_ANOMALY_QUIET_MS),
            ThreatType::RiskForecast => self.resolve_after_ms.max(RISK_FORECAST_QUIET_MS),
            _ => self.resolve_after_ms,
        }
    }

    /// Open incidents, by key.
    pub fn open(&self) -> impl Iterator<Item = &Incident> {
        self.open.values().map(|o| &o.incident)
    }

    /// Folds one detection in.
    pub fn on_detection(&mut self, mut d: Detection, out: &mut Vec<IncidentUpdate>) {
        // Grouped under an open incident (a market's liquidations under the market-wide
        // cascade): the steps name it, and alert routing reports them as part of it.
        if let Some(parent) = d
            .group
            .as_ref()
            .filter(|g| **g != d.key)
            .and_then(|g| self.open.get(g))
        {
            d.indicators
                .push(format!("{MEMBER_OF}{}", parent.incident.id.as_str()));
        }
        match self.open.get_mut(&d.key) {
            None => {
                let incident = Incident {
                    protocol: d.protocol,
                    id: Incident::derive_id(&d.key, d.time),
                    key: d.key.clone(),
                    detector: d.detector,
                    threat_type: d.threat_type,
                    severity: d.severity,
                    peak_severity: d.severity,
                    asset: d.asset,
                    status: IncidentStatus::Open,
                    title: d.title,
                    indicators: d.indicators,
                    evidence: d.evidence,
                    first_seen: d.time,
                    last_seen: d.time,
                    resolved_at: None,
                    detections: 1,
                };
                out.push(IncidentUpdate {
                    event: SecurityEvent::from_incident(&incident, IncidentChange::Opened, d.time),
                    incident: incident.clone(),
                });
                self.open.insert(
                    d.key,
                    Open {
                        incident,
                        last_step: d.time,
                        dirty: false,
                        direction: d.direction,
                        watched_from: None,
                    },
                );
            }
            Some(o) => {
                let inc = &mut o.incident;
                if d.time < inc.last_seen {
                    // A late detection: count it, keep the newer evidence.
                    inc.detections += 1;
                    return;
                }
                let changed = inc.evidence != d.evidence || inc.title != d.title;
                // A move the other way (a crash inside an incident opened for a small rise) is
                // news: it is reported at once, like a rise in severity.
                let flipped = matches!((o.direction, d.direction), (Some(a), Some(b)) if a != b);
                if d.direction.is_some() {
                    o.direction = d.direction;
                }
                inc.last_seen = d.time;
                inc.detections += 1;
                inc.title = d.title;
                inc.indicators = d.indicators;
                inc.evidence = d.evidence;
                inc.threat_type = d.threat_type;
                if d.severity > inc.severity || flipped {
                    inc.severity = inc.severity.max(d.severity);
                    inc.peak_severity = inc.peak_severity.max(d.severity);
                    o.last_step = d.time;
                    o.dirty = false;
                    out.push(IncidentUpdate {
                        event: SecurityEvent::from_incident(inc, IncidentChange::Escalated, d.time),
                        incident: inc.clone(),
                    });
                } else {
                    o.dirty |= changed;
                    if o.dirty && d.time.millis_since(o.last_step) >= self.update_interval_ms {
                        o.last_step = d.time;
                        o.dirty = false;
                        out.push(IncidentUpdate {
                            event: SecurityEvent::from_incident(
                                inc,
                                IncidentChange::Updated,
                                d.time,
                            ),
                            incident: inc.clone(),
                        });
                    }
                }
            }
        }
    }

    /// Takes over the incidents a previous run left open (from the store, at start-up), so a
    /// restart continues them instead of opening copies: one open incident per key. Each is
    /// re-evaluated from here (a detection of the same key updates it; quiet for its period
    /// counted from `now` — the time between the last run's end and this one's start is not
    /// quiet, nobody was looking — it resolves). Where the store holds several open incidents
    /// of one key (left by runs before this), the newest is kept and the others are returned
    /// resolved at `now`.
    pub fn restore(
        &mut self,
        incidents: impl IntoIterator<Item = Incident>,
        now: Timestamp,
    ) -> Vec<IncidentUpdate> {
        let mut open: Vec<Incident> = incidents
            .into_iter()
            .filter(|i| i.status == IncidentStatus::Open)
            .collect();
        open.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.id.cmp(&a.id)));
        let mut closed = Vec::new();
        for mut incident in open {
            if self.open.contains_key(&incident.key) {
                incident.status = IncidentStatus::Resolved;
                incident.resolved_at = Some(now);
                closed.push(IncidentUpdate {
                    event: SecurityEvent::from_incident(&incident, IncidentChange::Resolved, now),
                    incident,
                });
                continue;
            }
            self.open.insert(
                incident.key.clone(),
                Open {
                    last_step: incident.last_seen,
                    dirty: false,
                    direction: None,
                    watched_from: Some(now),
                    incident,
                },
            );
        }
        closed
    }

    /// Whether the exchange's own feeds are blind (stale or down) as of `at`. While they are,
    /// no incident resolves but feed-health ones: no detection then is no evidence that a
    /// condition ended. When they are live again, every open incident's quiet period starts
    /// over from `at`.
    pub fn set_blind(&mut self, blind: bool, at: Timestamp) {
        if self.blind && !blind {
            for o in self.open.values_mut() {
                if o.incident.threat_type != ThreatType::FeedHealth {
                    o.watched_from = Some(o.watched_from.map_or(at, |w| w.max(at)));
                }
            }
        }
        self.blind = blind;
    }

    /// Resolves incidents quiet for their period at `now` (while the exchange's feeds are
    /// blind, only feed-health ones).
    pub fn on_tick(&mut self, now: Timestamp, out: &mut Vec<IncidentUpdate>) {
        let due: Vec<IncidentKey> = self
            .open
            .iter()
            .filter(|(_, o)| {
                (!self.blind || o.incident.threat_type == ThreatType::FeedHealth)
                    && now.millis_since(o.quiet_since())
                        >= self.quiet_period(o.incident.threat_type)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(mut o) = self.open.remove(&k) {
                let at = o
                    .quiet_since()
                    .plus_millis(self.quiet_period(o.incident.threat_type));
                o.incident.status = IncidentStatus::Resolved;
                o.incident.resolved_at = Some(at);
                out.push(IncidentUpdate {
                    event: SecurityEvent::from_incident(&o.incident, IncidentChange::Resolved, at),
                    incident: o.incident,
                });
            }
        }
    }

    /// Drops the open incident `id` without a step (an operator resolved it; the store has the
    /// resolution). False when no open incident has that id.
    pub fn forget(&mut self, id: &StableId) -> bool {
        let key = self
            .open
            .iter()
            .find(|(_, o)| o.incident.id == *id)
            .map(|(k, _)| k.clone());
        key.is_some_and(|k| self.open.remove(&k).is_some())
    }

    /// Resolves every open incident at `now` (end of a replay).
    pub fn resolve_all(&mut self, now: Timestamp, out: &mut Vec<IncidentUpdate>) {
        for (_, mut o) in std::mem::take(&mut self.open) {
            o.incident.status = IncidentStatus::Resolved;
            o.incident.resolved_at = Some(now);
            out.push(IncidentUpdate {
                event: SecurityEvent::from_incident(&o.incident, IncidentChange::Resolved, now),
                incident: o.incident,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_core_models::{Evidence, Severity};

    fn det(t: i64, sev: Severity, dev: i64) -> Detection {
        Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
            key: IncidentKey::new("oracle_deviation", &["ETH"]),
            detector: "oracle".into(),
            threat_type: ThreatType::OracleDeviation,
            severity: sev,
            asset: None,
            title: "t".into(),
            indicators: vec![],
            evidence: Evidence::new().with("dev", dev),
            time: Timestamp(t),
        }
    }

    fn ten_minutes_quiet() -> IncidentConfig {
        IncidentConfig {
            resolve_after_secs: 600,
            update_interval_secs: 900,
        }
    }

    /// The incident a first run opens at 0 and leaves open when it stops (as stored).
    fn opened_by_a_first_run(cfg: &IncidentConfig) -> Incident {
        let mut first = IncidentManager::new(cfg);
        let mut out = Vec::new();
        first.on_detection(det(0, Severity::High, 1), &mut out);
        out.remove(0).incident
    }

    #[test]
    fn a_restart_continues_open_incidents_and_folds_duplicates() {
        let cfg = ten_minutes_quiet();
        // A first run opens an incident and stops mid-incident (nothing resolved).
        let stored = opened_by_a_first_run(&cfg);
        // An older run left a copy of the same key open too (the bug this fixes).
        let mut copy = stored.clone();
        copy.id = Incident::derive_id(&copy.key, Timestamp(-5_000));
        copy.last_seen = Timestamp(-5_000);

        // The restart restores from the store: one incident per key, the copy resolved.
        let mut second = IncidentManager::new(&cfg);
        let closed = second.restore(vec![copy.clone(), stored.clone()], Timestamp(60_000));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].incident.id, copy.id);
        assert_eq!(closed[0].event.change, IncidentChange::Resolved);
        assert_eq!(second.open().count(), 1);
        // The condition still holds after the restart: the same incident, not a new one.
        let mut out = Vec::new();
        second.on_detection(det(61_000, Severity::Critical, 2), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event.change, IncidentChange::Escalated);
        assert_eq!(out[0].incident.id, stored.id);
        // And it resolves after its quiet period like any other.
        let mut out = Vec::new();
        second.on_tick(Timestamp(61_000 + 600_000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].incident.id, stored.id);
        assert_eq!(out[0].event.change, IncidentChange::Resolved);
    }

    #[test]
    fn a_restored_incident_is_not_resolved_for_the_time_no_run_was_watching() {
        let cfg = ten_minutes_quiet();
        let stored = opened_by_a_first_run(&cfg);
        // The next run starts 15 minutes later (a takeover, a long restart): longer than the
        // quiet period, all of it unobserved.
        let mut second = IncidentManager::new(&cfg);
        assert!(
            second
                .restore(vec![stored.clone()], Timestamp(900_000))
                .is_empty()
        );
        let mut out = Vec::new();
        second.on_tick(Timestamp(900_000), &mut out);
        second.on_tick(Timestamp(900_000 + 599_999), &mut out);
        assert!(
            out.is_empty(),
            "resolved before this run watched it: {out:?}"
        );
        // The condition still holds: the same incident goes on.
        second.on_detection(det(960_000, Severity::High, 1), &mut out);
        assert!(out.is_empty(), "same level, same evidence: folded");
        // Quiet for the period after the restart's last detection: resolved then.
        second.on_tick(Timestamp(960_000 + 600_000), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event.change, IncidentChange::Resolved);
        assert_eq!(out[0].incident.id, stored.id);
        assert_eq!(out[0].incident.resolved_at, Some(Timestamp(1_560_000)));
        // Never seen again after a restart: resolved a quiet period after the restart.
        let mut third = IncidentManager::new(&cfg);
        third.restore(vec![stored], Timestamp(900_000));
        let mut out = Vec::new();
        third.on_tick(Timestamp(1_500_000), &mut out);
        assert_eq!(out[0].incident.resolved_at, Some(Timestamp(1_500_000)));
    }

    #[test]
    fn open_escalate_rate_limited_update_resolve_reopen() {
        let cfg = ten_minutes_quiet();
        let mut m = IncidentManager::new(&cfg);
        let mut out = Vec::new();
        m.on_detection(det(0, Severity::High, 1), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event.change, IncidentChange::Opened);
        // Same severity, new evidence, within the update interval: folded silently.
        for t in 1..100 {
            m.on_detection(det(t * 1000, Severity::High, t), &mut out);
        }
        assert_eq!(out.len(), 1, "no alert storm");
        // Escalation is immediate.
        m.on_detection(det(100_000, Severity::Critical, 200), &mut out);
        assert_eq!(out[1].event.change, IncidentChange::Escalated);
        assert_eq!(out[1].incident.peak_severity, Severity::Critical);
        // After the update interval, changed evidence gives one update.
        m.on_detection(det(1_100_000, Severity::High, 300), &mut out);
        assert_eq!(out[2].event.change, IncidentChange::Updated);
        assert_eq!(
            out[2].incident.severity,
            Severity::Critical,
            "severity never drops while open"
        );
        // Quiet for 10 minutes: resolved, at last_seen + quiet period.
        m.on_tick(Timestamp(1_100_000 + 599_999), &mut out);
        assert_eq!(out.len(), 3);
        m.on_tick(Timestamp(1_100_000 + 600_000), &mut out);
        assert_eq!(out[3].event.change, IncidentChange::Resolved);
        assert_eq!(out[3].incident.resolved_at, Some(Timestamp(1_700_000)));
        // A new detection opens a new incident with a new id.
        m.on_detection(det(2_000_000, Severity::High, 1), &mut out);
        assert_eq!(out[4].event.change, IncidentChange::Opened);
        assert_ne!(out[4].incident.id, out[0].incident.id);
        assert_eq!(m.open().count(), 1);
    }

    #[test]
    fn anomaly_bars_of_one_regime_make_one_incident() {
        let mut m = IncidentManager::new(&IncidentConfig::default());
        let mut out = Vec::new();
        let anomalous_bar = |t: i64| Detection {
            direction: None,
            group: None,
            key: IncidentKey::new("ml_anomaly", &["ETH"]),
            detector: "ml_anomaly".into(),
            threat_type: ThreatType::MlAnomaly,
            ..det(t, Severity::Medium, 1)
        };
        // Anomalous bars 25 and 40 minutes apart, with normal bars in between.
        for t in [0, 25 * 60_000, 65 * 60_000] {
            m.on_detection(anomalous_bar(t), &mut out);
            m.on_tick(Timestamp(t + 20 * 60_000), &mut out);
        }
        assert_eq!(out.len(), 1, "one incident, not three: {out:?}");
        m.on_tick(Timestamp(65 * 60_000 + ML_ANOMALY_QUIET_MS - 1), &mut out);
        assert_eq!(out.len(), 1);
        m.on_tick(Timestamp(65 * 60_000 + ML_ANOMALY_QUIET_MS), &mut out);
        assert_eq!(out[1].event.change, IncidentChange::Resolved);
        // Other detectors keep their shorter quiet period.
        m.on_detection(det(0, Severity::High, 1), &mut out);
        m.on_tick(
            Timestamp(IncidentConfig::default().resolve_after_secs as i64 * 1000),
            &mut out,
        );
        assert_eq!(out[3].event.change, IncidentChange::Resolved);
    }

    #[test]
    fn a_flip_of_direction_is_reported_at_once_and_same_level_updates_are_throttled() {
        let mut m = IncidentManager::new(&IncidentConfig::default());
        let mut out = Vec::new();
        let with = |t: i64, sev: Severity, dir: Direction| Detection {
            direction: Some(dir),
            group: None,
            ..det(t, sev, t)
        };
        m.on_detection(with(0, Severity::Critical, Direction::Up), &mut out);
        m.on_detection(with(1_000, Severity::Critical, Direction::Up), &mut out);
        assert_eq!(out.len(), 1, "same level, same way: folded");
        m.on_detection(with(2_000, Severity::High, Direction::Down), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].event.change, IncidentChange::Escalated);
        assert_eq!(
            out[1].incident.severity,
            Severity::Critical,
            "severity never drops while open"
        );
        m.on_detection(with(3_000, Severity::High, Direction::Down), &mut out);
        assert_eq!(out.len(), 2, "the new direction holds: throttled again");
        // Detections without a direction never count as a flip.
        m.on_detection(det(4_000, Severity::High, 9), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn late_detections_do_not_rewind() {
        let mut m = IncidentManager::new(&IncidentConfig::default());
        let mut out = Vec::new();
        m.on_detection(det(10_000, Severity::High, 1), &mut out);
        m.on_detection(det(5_000, Severity::Critical, 2), &mut out);
        assert_eq!(out.len(), 1, "an out-of-order detection does not escalate");
        assert_eq!(m.open().next().unwrap().last_seen, Timestamp(10_000));
    }
}
