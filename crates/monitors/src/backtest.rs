//! Backtests: a scenario through the real engine, its detection timeline, and the comparison
//! with the scenario's ground truth — lead time per expectation (first alert minus incident
//! start; negative = early) and false positives outside the incident windows. The report and
//! the SVG plot are deterministic: the same scenario gives byte-identical output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kamiyo_aggregators::replay::{Expectation, Scenario, TruthIncident};
use kamiyo_core_models::{
    Coin, Decimal, Incident, IncidentChange, IncidentUpdate, MarketEvent, SecurityEvent, Severity,
    ThreatType, Timestamp,
};

use crate::config::{ConfigError, MonitorsConfig};
use crate::engine::Engine;

/// The first detection that satisfied an expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// When.
    pub time: Timestamp,
    /// Severity reached.
    pub severity: Severity,
    /// Threat type.
    pub threat_type: ThreatType,
    /// Title at that step.
    pub title: String,
    /// Lead time: hit time minus incident start, seconds (negative = before the start).
    pub lead_secs: i64,
}

/// One expectation, evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectationResult {
    /// What was expected.
    pub description: String,
    /// Severity asked for.
    pub min_severity: Severity,
    /// Threat types accepted.
    pub threat_types: Vec<ThreatType>,
    /// Deadline, as text ("before start", "within 60 s").
    pub deadline: String,
    /// The first qualifying detection within the window, if any.
    pub hit: Option<Hit>,
    /// The first qualifying detection at any time after `not_before` (even if late).
    pub first_any: Option<Hit>,
}

impl ExpectationResult {
    /// True when satisfied in time.
    pub fn met(&self) -> bool {
        self.hit.is_some()
    }
}

/// One ground-truth incident, evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthResult {
    /// Id.
    pub id: String,
    /// The market concerned.
    pub asset: Option<Coin>,
    /// Title.
    pub title: String,
    /// Start.
    pub start: Timestamp,
    /// Expectations.
    pub expectations: Vec<ExpectationResult>,
}

/// Counts of the quiet budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietResult {
    /// Allowed critical incidents.
    pub max_critical: u32,
    /// Allowed high incidents.
    pub max_high: u32,
    /// Critical incidents seen (peak severity).
    pub critical: u32,
    /// High incidents seen (peak severity).
    pub high: u32,
}

impl QuietResult {
    /// True when within budget.
    pub fn ok(&self) -> bool {
        self.critical <= self.max_critical && self.high <= self.max_high
    }
}

/// Everything a backtest produced.
#[derive(Debug, Clone)]
pub struct BacktestReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario title.
    pub title: String,
    /// Provenance label.
    pub provenance: &'static str,
    /// Window.
    pub start: Timestamp,
    /// Window end.
    pub end: Timestamp,
    /// Events replayed.
    pub events: usize,
    /// Every lifecycle step, in order.
    pub steps: Vec<SecurityEvent>,
    /// Final state of every incident.
    pub incidents: Vec<Incident>,
    /// Ground truth, evaluated.
    pub truth: Vec<TruthResult>,
    /// Incidents that no truth incident explains (see `explains`): outside every expectation's
    /// window, or inside it with a threat type it does not accept, with or without an asset.
    pub false_positives: Vec<Incident>,
    /// The quiet budget, when the scenario has one.
    pub quiet: Option<QuietResult>,
    /// Largest absolute deviation sampled per (coin, comparison): how close the quiet periods
    /// came to the thresholds.
    pub max_deviation: BTreeMap<(Coin, String), Decimal>,
    /// The data behind each market, with its resolution: candle series (held closes, so a
    /// value can be up to one candle late) and reconstructed paths.
    pub data: BTreeMap<Coin, String>,
    plot: PlotData,
}

#[derive(Debug, Clone, Default)]
struct PlotData {
    marks: BTreeMap<Coin, Vec<(i64, Decimal)>>,
    oracles: BTreeMap<Coin, Vec<(i64, Decimal)>>,
    pnl: Vec<(i64, Decimal)>,
}

/// Start of one expectation's window: its `not_before`, else an hour before the incident.
fn expectation_from(t: &TruthIncident, e: &Expectation) -> Timestamp {
    e.not_before
        .unwrap_or(t.start.plus_millis(-Timestamp::HOUR))
}

/// Whether a truth incident explains `i`. Strict: `i` must open inside the window of one
/// expectation (from that expectation's own `not_before` to the incident's end) with a threat
/// type that expectation accepts, or inside the window of a `related` fact (a precursor or
/// consequence the truth records, with the public fact behind it) with a threat type it lists;
/// and when both name an asset, it must be the same.
/// Everything else is a false positive, with or without an asset.
fn explains(t: &TruthIncident, i: &Incident) -> bool {
    if let (Some(a), Some(b)) = (&t.asset, &i.asset)
        && a != b
    {
        return false;
    }
    let within = |from: Timestamp| i.first_seen >= from && i.first_seen <= t.end;
    t.expect
        .iter()
        .any(|e| within(expectation_from(t, e)) && e.threat_types.contains(&i.threat_type))
        || t.related.iter().any(|r| {
            within(r.not_before.unwrap_or(t.start)) && r.threat_types.contains(&i.threat_type)
        })
}

/// Runs `scenario` through an engine built from `config`, with `progress` called every 64k
/// events with (done, total).
pub fn run(
    scenario: &Scenario,
    config: &MonitorsConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<BacktestReport, ConfigError> {
    let mut engine = Engine::new(config)?;
    engine
        .state_mut()
        .set_reference_max_age_ms(scenario.stale_after_ms());
    let mut updates: Vec<IncidentUpdate> = Vec::new();
    let mut plot = PlotData::default();
    let total = scenario.events.len();
    let mut out = crate::engine::EngineOutput::default();
    let mut max_deviation: BTreeMap<(Coin, String), Decimal> = BTreeMap::new();
    for (i, e) in scenario.events.iter().enumerate() {
        engine.process_into(e, &mut out);
        updates.append(&mut out.updates);
        for d in out.observations.deviations.drain(..) {
            let m = max_deviation
                .entry((d.coin, d.kind.as_str().to_owned()))
                .or_insert(Decimal::ZERO);
            *m = (*m).max(d.deviation_pct.abs());
        }
        out.observations = Default::default();
        match e {
            MarketEvent::AssetCtx(c) => {
                plot.marks
                    .entry(c.coin.clone())
                    .or_default()
                    .push((c.time.0, c.mark_px));
                plot.oracles
                    .entry(c.coin.clone())
                    .or_default()
                    .push((c.time.0, c.oracle_px));
            }
            MarketEvent::Vault(v) if v.vault == engine.state().hlp_vault => {
                if let Some(p) = v.pnl_history.last() {
                    plot.pnl.push((p.time.0, p.value));
                }
            }
            _ => {}
        }
        if i % 65_536 == 0 {
            progress(i, total);
        }
    }
    let end = scenario.manifest.scenario.end;
    updates.extend(engine.finish(end).updates);
    progress(total, total);

    let mut incidents: BTreeMap<String, Incident> = BTreeMap::new();
    for u in &updates {
        incidents.insert(u.incident.id.to_string(), u.incident.clone());
    }
    let mut incidents: Vec<Incident> = incidents.into_values().collect();
    incidents.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.key.cmp(&b.key)));
    let steps: Vec<SecurityEvent> = updates.into_iter().map(|u| u.event).collect();

    let first_seen: BTreeMap<_, Timestamp> = incidents
        .iter()
        .map(|i| (i.id.clone(), i.first_seen))
        .collect();
    let truth = scenario
        .truth
        .incident
        .iter()
        .map(|ti| TruthResult {
            id: ti.id.clone(),
            asset: ti.asset.clone(),
            title: ti.title.clone(),
            start: ti.start,
            expectations: ti
                .expect
                .iter()
                .map(|ex| {
                    let from = expectation_from(ti, ex);
                    let deadline = if ex.before_start {
                        ti.start.plus_millis(-1)
                    } else {
                        ti.start.plus_millis(ex.within_secs.unwrap_or(0) * 1000)
                    };
                    // The alert that meets the expectation: an opening or escalation (not a
                    // throttled same-level update) at the severity asked for, of an incident
                    // that this expectation explains — so an incident opened before the window
                    // is a false positive and none of its later steps can count as a hit.
                    let qualifies = |s: &&SecurityEvent| {
                        matches!(s.change, IncidentChange::Opened | IncidentChange::Escalated)
                            && s.severity >= ex.min_severity
                            && ex.threat_types.contains(&s.threat_type)
                            && ti
                                .asset
                                .as_ref()
                                .is_none_or(|a| s.asset.as_ref().is_none_or(|b| a == b))
                            && first_seen
                                .get(&s.incident_id)
                                .is_some_and(|t| *t >= from && *t <= ti.end)
                    };
                    let to_hit = |s: &SecurityEvent| Hit {
                        time: s.time,
                        severity: s.severity,
                        threat_type: s.threat_type,
                        title: s.title.clone(),
                        lead_secs: s.time.millis_since(ti.start).div_euclid(1000),
                    };
                    let first_any = steps.iter().find(qualifies).map(to_hit);
                    let hit = steps
                        .iter()
                        .filter(qualifies)
                        .find(|s| s.time <= deadline)
                        .map(to_hit);
                    ExpectationResult {
                        description: ex.description.clone(),
                        min_severity: ex.min_severity,
                        threat_types: ex.threat_types.clone(),
                        deadline: if ex.before_start {
                            "before the start".into()
                        } else {
                            format!("within {} s of the start", ex.within_secs.unwrap_or(0))
                        },
                        hit,
                        first_any,
                    }
                })
                .collect(),
        })
        .collect();

    let false_positives: Vec<Incident> = incidents
        .iter()
        .filter(|i| !scenario.truth.incident.iter().any(|t| explains(t, i)))
        .cloned()
        .collect();
    let quiet = scenario.truth.quiet.as_ref().map(|q| QuietResult {
        max_critical: q.max_critical,
        max_high: q.max_high,
        critical: false_positives
            .iter()
            .filter(|i| i.peak_severity == Severity::Critical)
            .count() as u32,
        high: false_positives
            .iter()
            .filter(|i| i.peak_severity == Severity::High)
            .count() as u32,
    });
    let data = data_resolution(&scenario.manifest);
    let m = &scenario.manifest.scenario;
    Ok(BacktestReport {
        scenario: m.name.clone(),
        title: m.title.clone(),
        provenance: m.provenance.label(),
        start: m.start,
        end: m.end,
        events: total,
        steps,
        incidents,
        truth,
        false_positives,
        quiet,
        max_deviation,
        data,
        plot,
    })
}

fn interval_text(secs: u32) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Per market: its candle series with their intervals, and whether reconstructed paths drive it.
fn data_resolution(m: &kamiyo_aggregators::replay::Manifest) -> BTreeMap<Coin, String> {
    use kamiyo_aggregators::replay::SeriesRole;
    let mut out: BTreeMap<Coin, Vec<String>> = BTreeMap::new();
    for s in &m.series {
        let what = match s.role {
            SeriesRole::Reference => "reference",
            SeriesRole::Mark => "mark",
            SeriesRole::MarkBasis => "mark basis",
        };
        let resolution = match s.resample_secs {
            Some(r) => format!("{}→{}", interval_text(s.interval_secs), interval_text(r)),
            None => interval_text(s.interval_secs),
        };
        out.entry(s.coin.clone())
            .or_default()
            .push(format!("{} {resolution} {what}", s.venue));
    }
    // A synthetic scenario's paths are made up, not reconstructed from facts: say so.
    let label = match m.scenario.provenance {
        kamiyo_aggregators::replay::Provenance::Synthetic => "synthetic",
        _ => "reconstructed",
    };
    for p in &m.path {
        let e = out.entry(p.coin.clone()).or_default();
        let r = format!("{label} {}", p.field);
        if !e.contains(&r) {
            e.push(r);
        }
    }
    out.into_iter().map(|(c, v)| (c, v.join(", "))).collect()
}

fn fmt_lead(s: i64) -> String {
    let sign = if s < 0 { "-" } else { "+" };
    let a = s.unsigned_abs();
    if a >= 3600 {
        format!("{sign}{}h{:02}m{:02}s", a / 3600, (a % 3600) / 60, a % 60)
    } else if a >= 60 {
        format!("{sign}{}m{:02}s", a / 60, a % 60)
    } else {
        format!("{sign}{a}s")
    }
}

impl BacktestReport {
    /// True when every expectation is met and the quiet budget holds.
    pub fn passed(&self) -> bool {
        self.truth
            .iter()
            .all(|t| t.expectations.iter().all(ExpectationResult::met))
            && self.quiet.as_ref().is_none_or(QuietResult::ok)
    }

    /// False positives by peak severity.
    pub fn false_positive_counts(&self) -> BTreeMap<Severity, usize> {
        let mut m = BTreeMap::new();
        for i in &self.false_positives {
            *m.entry(i.peak_severity).or_default() += 1;
        }
        m
    }

    /// The human-readable report (timeline, ground truth, false positives).
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "kamiyo backtest: {} [{}]",
            self.scenario, self.provenance
        );
        let _ = writeln!(s, "{}", self.title);
        let _ = writeln!(
            s,
            "window {} .. {}, {} events replayed",
            self.start, self.end, self.events
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Data (candles are replayed as held closes: a value is up to one candle late, never early)"
        );
        for (c, d) in &self.data {
            let _ = writeln!(s, "  {:<8} {d}", c.as_str());
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Detection timeline (opened / escalated / resolved; updates omitted)"
        );
        for e in self
            .steps
            .iter()
            .filter(|e| e.change != IncidentChange::Updated)
        {
            let _ = writeln!(
                s,
                "  {}  {:<9} {:<8} {:<24} {:<7} {}",
                e.time,
                e.change.as_str(),
                e.severity.as_str(),
                e.threat_type.as_str(),
                e.asset.as_ref().map_or("-", Coin::as_str),
                e.title
            );
        }
        if self.steps.is_empty() {
            let _ = writeln!(s, "  (no detections)");
        }
        let _ = writeln!(s);
        if !self.truth.is_empty() {
            let _ = writeln!(s, "Ground truth");
            for t in &self.truth {
                let _ = writeln!(s, "  {}: {} (start {})", t.id, t.title, t.start);
                if let Some(d) = t.asset.as_ref().and_then(|a| self.data.get(a)) {
                    let _ = writeln!(s, "    data for the lead times: {d}");
                }
                for e in &t.expectations {
                    let types: Vec<&str> = e.threat_types.iter().map(|x| x.as_str()).collect();
                    let _ = writeln!(
                        s,
                        "    [{}] {}+ {} {}",
                        if e.met() { "MET " } else { "MISS" },
                        e.min_severity,
                        e.deadline,
                        e.description
                    );
                    let _ = writeln!(s, "           accepted: {}", types.join(", "));
                    match (&e.hit, &e.first_any) {
                        (Some(h), _) => {
                            let _ = writeln!(
                                s,
                                "           first: {} {} {} — lead {} — {}",
                                h.time,
                                h.severity,
                                h.threat_type,
                                fmt_lead(h.lead_secs),
                                h.title
                            );
                        }
                        (None, Some(h)) => {
                            let _ = writeln!(
                                s,
                                "           too late: {} {} {} — lead {} — {}",
                                h.time,
                                h.severity,
                                h.threat_type,
                                fmt_lead(h.lead_secs),
                                h.title
                            );
                        }
                        (None, None) => {
                            let _ = writeln!(s, "           no qualifying detection");
                        }
                    }
                }
            }
            let _ = writeln!(s);
        }
        let counts = self.false_positive_counts();
        let _ = writeln!(
            s,
            "False positives (incidents that no expectation or related fact explains, with or without an asset): {} critical, {} high, {} medium, {} low, {} info",
            counts.get(&Severity::Critical).unwrap_or(&0),
            counts.get(&Severity::High).unwrap_or(&0),
            counts.get(&Severity::Medium).unwrap_or(&0),
            counts.get(&Severity::Low).unwrap_or(&0),
            counts.get(&Severity::Info).unwrap_or(&0)
        );
        for i in &self.false_positives {
            let _ = writeln!(
                s,
                "  {}  peak {:<8} {:<24} {:<7} {}",
                i.first_seen,
                i.peak_severity.as_str(),
                i.threat_type.as_str(),
                i.asset.as_ref().map_or("-", Coin::as_str),
                i.title
            );
        }
        if !self.max_deviation.is_empty() {
            let _ = writeln!(
                s,
                "Largest sampled deviation per market (percent, absolute):"
            );
            for ((c, k), v) in &self.max_deviation {
                let _ = writeln!(s, "  {:<8} {:<22} {}", c.as_str(), k, v.round_dp(3));
            }
        }
        if let Some(q) = &self.quiet {
            let _ = writeln!(
                s,
                "Quiet budget: {} critical (max {}), {} high (max {}) — {}",
                q.critical,
                q.max_critical,
                q.high,
                q.max_high,
                if q.ok() { "OK" } else { "EXCEEDED" }
            );
        }
        let _ = writeln!(s, "Result: {}", if self.passed() { "PASS" } else { "FAIL" });
        s
    }

    /// An SVG plot: prices (normalised) of the incident assets, HLP PnL, and alert markers.
    pub fn render_svg(&self) -> String {
        let (w, left, right) = (1200.0_f64, 70.0, 20.0);
        let price_top = 72.0;
        let price_h = 300.0;
        let pnl_top = price_top + price_h + 40.0;
        let pnl_h = 160.0;
        let marks_top = pnl_top + pnl_h + 30.0;
        let h = marks_top + 70.0;
        let (t0, t1) = (self.start.0 as f64, self.end.0 as f64);
        let x = |t: i64| left + (t as f64 - t0) / (t1 - t0).max(1.0) * (w - left - right);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="22" font-size="16" font-weight="bold">{} [{}]</text>"##,
            esc(&self.scenario),
            self.provenance
        );
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="40" fill="#555">{}</text>"##,
            esc(&self.title)
        );
        // Which coins: truth assets first, then up to four others.
        let mut coins: Vec<Coin> = Vec::new();
        let truth_assets: BTreeSet<Coin> = self
            .incidents
            .iter()
            .filter(|i| i.peak_severity >= Severity::High)
            .filter_map(|i| i.asset.clone())
            .collect();
        coins.extend(
            truth_assets
                .iter()
                .filter(|&c| self.plot.marks.contains_key(c))
                .cloned(),
        );
        for c in self.plot.marks.keys() {
            if coins.len() >= 5 {
                break;
            }
            if !coins.contains(c) {
                coins.push(c.clone());
            }
        }
        let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"];
        // Normalise each coin to its first mark = 100.
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        type Line = Vec<(i64, f64)>;
        let norm: Vec<(Coin, Line, Line)> = coins
            .iter()
            .map(|c| {
                let m = &self.plot.marks[c];
                let base = m
                    .first()
                    .map_or(1.0, |p| dec_f64(p.1).max(f64::MIN_POSITIVE));
                let f = |v: &[(i64, Decimal)]| -> Vec<(i64, f64)> {
                    downsample(v, 1500)
                        .into_iter()
                        .map(|(t, p)| (t, dec_f64(p) / base * 100.0))
                        .collect()
                };
                let mm = f(m);
                let oo = f(self
                    .plot
                    .oracles
                    .get(c)
                    .map(Vec::as_slice)
                    .unwrap_or_default());
                for (_, v) in mm.iter().chain(oo.iter()) {
                    lo = lo.min(*v);
                    hi = hi.max(*v);
                }
                (c.clone(), mm, oo)
            })
            .collect();
        if !lo.is_finite() {
            lo = 99.0;
            hi = 101.0;
        }
        let pad = ((hi - lo) * 0.05).max(0.01);
        let (lo, hi) = (lo - pad, hi + pad);
        let y = |v: f64| price_top + price_h - (v - lo) / (hi - lo) * price_h;
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{price_top}" width="{}" height="{price_h}" fill="none" stroke="#ccc"/>"##,
            w - left - right
        );
        let _ = writeln!(
            s,
            r##"<text x="5" y="{}" fill="#333">{:.1}</text><text x="5" y="{}" fill="#333">{:.1}</text>"##,
            price_top + 10.0,
            hi,
            price_top + price_h,
            lo
        );
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{}" fill="#333">mark (solid) and oracle (dashed), first value = 100</text>"##,
            price_top - 2.0
        );
        for (i, (c, mm, oo)) in norm.iter().enumerate() {
            let color = palette[i % palette.len()];
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.3" points="{}"/>"#,
                pts(mm, &x, &y)
            );
            if !oo.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1" stroke-dasharray="4 3" points="{}"/>"#,
                    pts(oo, &x, &y)
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
                w - right - 60.0,
                price_top + 15.0 + 14.0 * i as f64,
                esc(c.as_str())
            );
        }
        // HLP PnL.
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{pnl_top}" width="{}" height="{pnl_h}" fill="none" stroke="#ccc"/>"##,
            w - left - right
        );
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{}" fill="#333">HLP cumulative PnL (USD, from pnlHistory)</text>"##,
            pnl_top - 4.0
        );
        let pnl: Vec<(i64, f64)> = downsample(&self.plot.pnl, 1500)
            .into_iter()
            .map(|(t, v)| (t, dec_f64(v)))
            .collect();
        if pnl.is_empty() {
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" fill="#888">no vault data in this scenario</text>"##,
                left + 10.0,
                pnl_top + 20.0
            );
        } else {
            let plo = pnl.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let phi = pnl.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let ppad = ((phi - plo) * 0.05).max(1.0);
            let (plo, phi) = (plo - ppad, phi + ppad);
            let py = |v: f64| pnl_top + pnl_h - (v - plo) / (phi - plo) * pnl_h;
            let _ = writeln!(
                s,
                r##"<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="{}"/>"##,
                pts(&pnl, &x, &py)
            );
            let _ = writeln!(
                s,
                r##"<text x="5" y="{}" fill="#333">{:.1}M</text><text x="5" y="{}" fill="#333">{:.1}M</text>"##,
                pnl_top + 10.0,
                phi / 1e6,
                pnl_top + pnl_h,
                plo / 1e6
            );
        }
        // Alert markers.
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{}" fill="#333">alerts (opened / escalated): critical red, high orange, medium yellow, low grey</text>"##,
            marks_top - 4.0
        );
        for e in self
            .steps
            .iter()
            .filter(|e| matches!(e.change, IncidentChange::Opened | IncidentChange::Escalated))
        {
            let (color, row) = match e.severity {
                Severity::Critical => ("#d62728", 0.0),
                Severity::High => ("#ff7f0e", 1.0),
                Severity::Medium => ("#e6c200", 2.0),
                _ => ("#999999", 3.0),
            };
            let cx = x(e.time.0);
            let _ = writeln!(
                s,
                r#"<circle cx="{cx:.1}" cy="{:.1}" r="4" fill="{color}"><title>{} {} {}</title></circle>"#,
                marks_top + 8.0 + row * 14.0,
                e.time,
                e.severity,
                esc(&e.title)
            );
        }
        for t in &self.truth {
            let tx = x(t.start.0);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.1}" y1="{price_top}" x2="{tx:.1}" y2="{}" stroke="#000" stroke-dasharray="2 4"/>"##,
                marks_top + 60.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{}" fill="#000">{}</text>"##,
                tx + 3.0,
                price_top + price_h - 5.0,
                esc(&t.id)
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{}" fill="#555">{}</text><text x="{}" y="{}" fill="#555" text-anchor="end">{}</text>"##,
            h - 5.0,
            self.start,
            w - right,
            h - 5.0,
            self.end
        );
        let _ = writeln!(s, "</svg>");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn dec_f64(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

fn downsample(v: &[(i64, Decimal)], n: usize) -> Vec<(i64, Decimal)> {
    if v.len() <= n {
        return v.to_vec();
    }
    let step = v.len().div_ceil(n);
    let mut out: Vec<(i64, Decimal)> = v.iter().step_by(step).copied().collect();
    if let Some(l) = v.last()
        && out.last() != Some(l)
    {
        out.push(*l);
    }
    out
}

fn pts(v: &[(i64, f64)], x: &impl Fn(i64) -> f64, y: &impl Fn(f64) -> f64) -> String {
    let mut s = String::with_capacity(v.len() * 14);
    for (t, p) in v {
        let _ = write!(s, "{:.1},{:.1} ", x(*t), y(*p));
    }
    s
}
