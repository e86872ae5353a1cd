//! Evaluation of the cross-protocol correlator on multi-protocol replays
//! (`platform/replays/`, `kamiyo-platform evaluate`): every part replayed through its protocol's
//! engine as ingest builds it (the registry's thresholds, the platform's `venue_stress`), the
//! incident steps of all parts merged in time order into one [`Correlator`], and what it opened
//! scored against the replay's truth: found (the pattern on the entity, opened within the
//! window), the attack stages evidenced, lead time; every other correlated incident is false.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::{IncidentChange, ProtocolId, Timestamp};
use serde::Deserialize;

use crate::correlator::{Change, Correlated, Correlator, Member};
use crate::registry::Registry;

/// `replay.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The replay.
    pub replay: Header,
    /// One per protocol.
    pub part: Vec<Part>,
}

/// `[replay]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Directory name.
    pub name: String,
    /// One line.
    pub title: String,
    /// `recorded-candles` or `reconstructed`.
    pub provenance: String,
    /// What it is and what is assumed.
    pub description: String,
    /// Where the facts come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The exploit database's name of the incident, when it is one.
    #[serde(default)]
    pub exploit: Option<String>,
}

/// `[[part]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Registry id.
    pub protocol: String,
    /// Scenario directory, relative to the replay.
    pub scenario: PathBuf,
}

/// `truth.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truth {
    /// Correlated incidents that should open.
    #[serde(default)]
    pub correlated: Vec<Expected>,
    /// Nothing should open.
    #[serde(default)]
    pub quiet: Option<toml::Value>,
}

/// One expected correlated incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Name.
    pub id: String,
    /// Pattern (snake_case).
    pub pattern: String,
    /// Shared entity (`asset:BTC`).
    pub entity: String,
    /// Window start (RFC 3339).
    #[serde(deserialize_with = "de_time")]
    pub start: Timestamp,
    /// Window end.
    #[serde(deserialize_with = "de_time")]
    pub end: Timestamp,
    /// Attack stages that should be evidenced.
    #[serde(default)]
    pub stages: Vec<String>,
    /// Why (sources).
    #[serde(default)]
    pub fact: String,
}

fn de_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let s = String::deserialize(d)?;
    Timestamp::parse(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid time {s:?}: expected RFC 3339")))
}

/// A loaded replay.
#[derive(Debug)]
pub struct Replay {
    /// Directory.
    pub dir: PathBuf,
    /// Manifest.
    pub manifest: Manifest,
    /// Truth.
    pub truth: Truth,
    /// Each part's protocol and scenario.
    pub parts: Vec<(ProtocolId, Scenario)>,
}

impl Replay {
    /// Loads the replay in `dir` (its parts' scenarios expanded).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let manifest: Manifest = toml::from_str(&read("replay.toml")?)
            .with_context(|| format!("{}/replay.toml", dir.display()))?;
        let truth: Truth = toml::from_str(&read("truth.toml")?)
            .with_context(|| format!("{}/truth.toml", dir.display()))?;
        if manifest.part.is_empty() {
            anyhow::bail!("{}/replay.toml: no [[part]]", dir.display());
        }
        let mut parts = Vec::new();
        for p in &manifest.part {
            let id = ProtocolId::parse(&p.protocol)?;
            let sdir = dir.join(&p.scenario);
            let sc = Scenario::load(&sdir)
                .with_context(|| format!("loading part {} ({})", id, sdir.display()))?;
            parts.push((id, sc));
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
            truth,
            parts,
        })
    }

    /// Days covered (the longest part).
    pub fn days(&self) -> f64 {
        self.parts
            .iter()
            .map(|(_, s)| (s.manifest.scenario.end.0 - s.manifest.scenario.start.0) as f64)
            .fold(0.0, f64::max)
            / 86_400_000.0
    }
}

/// The engine a protocol runs in the platform: Hyperliquid's open-core detectors at their
/// defaults plus `venue_stress` at the registry's thresholds; every other protocol the
/// registry's engine ([`crate::ingest::engine`]).
pub fn engine(registry: &Registry, id: &ProtocolId) -> anyhow::Result<kamiyo_monitors::Engine> {
    if *id == ProtocolId::HYPERLIQUID {
        let def = registry
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("{id} is not in the protocol registry"))?;
        let engine = kamiyo_monitors::Engine::new(&kamiyo_monitors::MonitorsConfig::default())?;
        return Ok(crate::ingest::with_stress(engine, &def.stress));
    }
    crate::ingest::engine(registry, id)
}

/// A replay's run: what each protocol's engine raised and what the correlator opened.
#[derive(Debug, Default)]
pub struct Run {
    /// Incident steps fed to the correlator.
    pub steps: usize,
    /// Incidents opened per protocol and threat type.
    pub incidents: BTreeMap<String, BTreeMap<String, usize>>,
    /// Correlated incidents opened (their final state), with the time each opened.
    pub correlated: Vec<(Timestamp, Correlated)>,
}

/// Replays every part, merges the incident steps by time and correlates them.
pub fn run(replay: &Replay, registry: &Registry) -> anyhow::Result<Run> {
    let mut steps: Vec<(Timestamp, usize, Member)> = Vec::new();
    let mut out = Run::default();
    for (id, sc) in &replay.parts {
        let mut engine = engine(registry, id)?;
        engine
            .state_mut()
            .set_reference_max_age_ms(sc.stale_after_ms());
        let mut r = kamiyo_pipeline::Replay::new(engine);
        let per = out.incidents.entry(id.to_string()).or_default();
        let mut take = |updates: Vec<kamiyo_core_models::IncidentUpdate>| {
            for u in updates {
                if u.event.change == IncidentChange::Opened {
                    *per.entry(u.incident.threat_type.as_str().to_owned())
                        .or_default() += 1;
                }
                let n = steps.len();
                steps.push((u.event.time, n, Member::from_event(&u.event)));
            }
        };
        for e in &sc.events {
            take(r.advance(e));
        }
        take(r.finish_batch(sc.manifest.scenario.end));
    }
    steps.sort_by_key(|(t, n, _)| (*t, *n));
    out.steps = steps.len();
    let mut c = Correlator::default();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for (t, _, m) in steps {
        for ch in c.observe(m) {
            let id = match ch {
                Change::Opened(x) => {
                    at.insert(x.id.clone(), out.correlated.len());
                    let id = x.id.clone();
                    out.correlated.push((t, *x));
                    id
                }
                Change::Grew { id, .. } => id,
            };
            if let (Some(&i), Some(now)) = (at.get(&id), c.open().find(|x| x.id == id)) {
                out.correlated[i].1 = now.clone();
            }
        }
    }
    Ok(out)
}

/// How a replay scored.
#[derive(Debug, Default)]
pub struct Score {
    /// Expected correlated incidents.
    pub expected: usize,
    /// Of them, found.
    pub found: usize,
    /// Correlated incidents opened.
    pub opened: usize,
    /// Of them, matching an expected one.
    pub true_opened: usize,
    /// Per expected incident.
    pub detail: Vec<Detail>,
}

/// How one expected correlated incident fared.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// Its truth id.
    pub id: String,
    /// Found: ms from its window's start to the opening.
    pub lead_ms: Option<i64>,
    /// Stages the truth expects.
    pub expected: Vec<String>,
    /// Stages evidenced.
    pub stages: Vec<String>,
}

/// Scores a run against the replay's truth.
pub fn score(replay: &Replay, run: &Run) -> Score {
    let matches = |e: &Expected, (t, c): &(Timestamp, Correlated)| {
        c.pattern.as_str() == e.pattern && c.entity == e.entity && *t >= e.start && *t <= e.end
    };
    let mut s = Score {
        expected: replay.truth.correlated.len(),
        opened: run.correlated.len(),
        ..Score::default()
    };
    s.true_opened = run
        .correlated
        .iter()
        .filter(|x| replay.truth.correlated.iter().any(|e| matches(e, x)))
        .count();
    for e in &replay.truth.correlated {
        let hit = run.correlated.iter().find(|x| matches(e, x));
        if hit.is_some() {
            s.found += 1;
        }
        let stages: Vec<String> = hit
            .map(|(_, c)| c.stages.keys().map(|k| k.as_str().to_owned()).collect())
            .unwrap_or_default();
        s.detail.push(Detail {
            id: e.id.clone(),
            lead_ms: hit.map(|(t, _)| t.0 - e.start.0),
            expected: e.stages.clone(),
            stages,
        });
    }
    s
}

/// The replays under `root`, in name order.
pub fn replays(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("replay.toml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The correlation report (Markdown) over the replays under `root`.
pub fn report(root: &Path, registry: &Registry, w: &mut impl std::io::Write) -> anyhow::Result<()> {
    writeln!(
        w,
        "| replay | provenance | protocols | days | incident steps | correlated opened | true | expected | found | false per day |"
    )?;
    writeln!(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let (mut all_open, mut all_true, mut all_exp, mut all_found) = (0, 0, 0, 0);
    let mut details = Vec::new();
    for dir in replays(root)? {
        let r = Replay::load(&dir)?;
        let run = run(&r, registry)?;
        let s = score(&r, &run);
        let protocols: BTreeSet<String> = r.parts.iter().map(|(p, _)| p.to_string()).collect();
        let days = r.days();
        writeln!(
            w,
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.2} |",
            r.manifest.replay.name,
            r.manifest.replay.provenance,
            protocols.into_iter().collect::<Vec<_>>().join(", "),
            days,
            run.steps,
            s.opened,
            s.true_opened,
            s.expected,
            s.found,
            (s.opened - s.true_opened) as f64 / days.max(1e-9)
        )?;
        all_open += s.opened;
        all_true += s.true_opened;
        all_exp += s.expected;
        all_found += s.found;
        details.push((r, run, s));
    }
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            "—".to_owned()
        } else {
            format!("{:.2}", a as f64 / b as f64)
        }
    };
    writeln!(
        w,
        "\nPrecision {} ({all_true} of {all_open} correlated incidents opened match the truth), recall {} ({all_found} of {all_exp} expected found). Forta's published attack detector: precision 0.95, recall 0.70.\n",
        ratio(all_true, all_open),
        ratio(all_found, all_exp)
    )?;
    for (r, run, s) in details {
        writeln!(w, "#### {}\n", r.manifest.replay.title)?;
        if let Some(x) = &r.manifest.replay.exploit {
            let db = kamiyo_aggregators::exploits::embedded().unwrap_or_default();
            if let Some(e) = db.iter().find(|e| e.protocol == *x) {
                writeln!(
                    w,
                    "Exploit database: {} ({}, {}, {}, ${}).\n",
                    e.protocol,
                    e.date,
                    e.chain.as_deref().unwrap_or("?"),
                    e.category.as_str(),
                    e.loss_usd.map_or("?".into(), |a| a.to_string())
                )?;
            }
        }
        for (p, per) in &run.incidents {
            let list: Vec<String> = per.iter().map(|(t, n)| format!("{t} {n}")).collect();
            writeln!(w, "- {p}: incidents opened: {}", list.join(", "))?;
        }
        for Detail {
            id,
            lead_ms: lead,
            expected: want,
            stages: got,
        } in &s.detail
        {
            match lead {
                Some(l) => writeln!(
                    w,
                    "- expected `{id}`: found, {:+} s from the window's start; stages evidenced: {}{}",
                    l / 1000,
                    got.join(", "),
                    if want.is_empty() {
                        String::new()
                    } else {
                        format!(" (expected: {})", want.join(", "))
                    }
                )?,
                None => writeln!(w, "- expected `{id}`: not found")?,
            }
        }
        for (t, c) in &run.correlated {
            writeln!(
                w,
                "- opened {} `{}` on {} across {} — {} members, score {:.2}, stages: {}",
                t,
                c.pattern.as_str(),
                c.entity,
                c.protocols.iter().cloned().collect::<Vec<_>>().join(" + "),
                c.members.len(),
                c.score,
                c.stages
                    .iter()
                    .map(|(k, v)| format!("{} ({})", k.as_str(), v.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// The ensemble's bar interval (evaluation and training): one minute, so the shortest replays
/// (a few hours) still give rows after the features' 49-bar warm-up.
pub const BAR_MS: i64 = 60_000;

/// A labelled feature row: one closed bar of one market of one replayed scenario.
#[derive(Debug, Clone)]
pub struct LabelledRow {
    /// Scenario (or replay part) it comes from.
    pub source: String,
    /// Market.
    pub coin: String,
    /// Bar open (ms).
    pub time: i64,
    /// The feature catalogue's values (`NaN`: unknown).
    pub row: kamiyo_ml::features::Row,
    /// Inside a labelled window on its own market.
    pub label: bool,
}

/// A labelled window: market, start, end (ms).
pub type Window = (String, i64, i64);

/// The scenario's bars of `interval_ms`, built from its events by the engine's bar builder (as
/// live scoring builds them), turned into feature rows per market and labelled by `windows`.
pub fn rows_of(
    source: &str,
    sc: &Scenario,
    interval_ms: i64,
    windows: &[Window],
) -> Vec<LabelledRow> {
    use kamiyo_monitors::detectors::bars::{BarBuilder, ml_bar};
    let mut state = kamiyo_monitors::MarketState::new(&kamiyo_monitors::MonitorsConfig::default());
    state.set_reference_max_age_ms(sc.stale_after_ms());
    let mut builder = BarBuilder::new(interval_ms);
    let mut bars: BTreeMap<String, Vec<kamiyo_core_models::MarketBar>> = BTreeMap::new();
    for e in &sc.events {
        state.apply(e);
        builder.on_event(e, &state, |b, _| {
            bars.entry(b.coin.as_str().to_owned()).or_default().push(b);
        });
    }
    // A market whose replay carries no traded volume has no volume features (they would read
    // as zero volume — unlike any live market).
    let volume_features: Vec<usize> = ["log_volume_ratio_48", "volume_z_48"]
        .iter()
        .filter_map(|n| kamiyo_ml::features::FEATURES.iter().position(|f| f == n))
        .collect();
    let mut out = Vec::new();
    for (coin, mut list) in bars {
        list.sort_by_key(|b| b.time);
        let traded = list.iter().any(|b| !b.volume.is_zero());
        let mut fx = kamiyo_ml::features::FeatureExtractor::new();
        for b in &list {
            if let Some(mut row) = fx.push(ml_bar(b)) {
                if !traded {
                    for &c in &volume_features {
                        row[c] = f64::NAN;
                    }
                }
                let t = b.time.0;
                out.push(LabelledRow {
                    source: source.to_owned(),
                    coin: coin.clone(),
                    time: t,
                    row,
                    label: windows
                        .iter()
                        .any(|(a, s, e)| *a == coin && t >= *s && t <= *e),
                });
            }
        }
    }
    out
}

/// Every labelled row of the open core's scenarios under `scenarios` (their truth incidents
/// label their own market) and of the replays under `replays` (their expected correlated
/// incidents label the asset they name). Synthetic scenarios, and scenarios repeating another's
/// days, are left out.
pub fn labelled_rows(
    scenarios: &Path,
    replays_dir: &Path,
    interval_ms: i64,
) -> anyhow::Result<Vec<LabelledRow>> {
    let mut out = Vec::new();
    for name in [
        "calm-2025-06-01-14",
        "eth-whale-2025-03-12",
        "jelly-2025-03-26",
        "xpl-2025-08-26",
    ] {
        let sc = Scenario::load(&scenarios.join(name))?;
        let windows: Vec<Window> = sc
            .truth
            .incident
            .iter()
            .filter_map(|i| {
                i.asset
                    .as_ref()
                    .map(|a| (a.as_str().to_owned(), i.start.0, i.end.0))
            })
            .collect();
        out.extend(rows_of(name, &sc, interval_ms, &windows));
    }
    for dir in replays(replays_dir)? {
        let r = Replay::load(&dir)?;
        let windows: Vec<Window> = r
            .truth
            .correlated
            .iter()
            .filter_map(|e| {
                e.entity
                    .strip_prefix("asset:")
                    .map(|a| (a.to_owned(), e.start.0, e.end.0))
            })
            .collect();
        for ((id, sc), part) in r.parts.iter().zip(&r.manifest.part) {
            // The calm replay's Hyperliquid part is the open core's calm scenario, read above.
            if part.scenario.starts_with("../") {
                continue;
            }
            let source = format!("{}/{id}", r.manifest.replay.name);
            out.extend(rows_of(&source, sc, interval_ms, &windows));
        }
    }
    Ok(out)
}

/// One model's figures on held-back rows.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Anomalous rows.
    pub flagged: usize,
    /// Alerts: runs of flagged rows of one market, merged within an hour.
    pub alerts: usize,
    /// Alerts starting inside a labelled window of their market (from an hour before it).
    pub true_alerts: usize,
    /// Labelled windows with an alert.
    pub detected: usize,
    /// Labelled windows.
    pub windows: usize,
    /// False alerts per market-day.
    pub false_per_market_day: f64,
}

impl Figures {
    /// `true_alerts / alerts`.
    pub fn precision(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.true_alerts as f64 / self.alerts as f64)
    }

    /// `detected / windows`.
    pub fn recall(&self) -> Option<f64> {
        (self.windows > 0).then(|| self.detected as f64 / self.windows as f64)
    }
}

/// Scores flagged rows: alerts per market merged within an hour, matched to `windows`.
pub fn figures(rows: &[&LabelledRow], flagged: &[bool], windows: &[(String, Window)]) -> Figures {
    const GAP: i64 = 3_600_000;
    let mut f = Figures {
        windows: windows.len(),
        flagged: flagged.iter().filter(|x| **x).count(),
        ..Figures::default()
    };
    let mut series: BTreeMap<(&str, &str), Vec<(i64, bool)>> = BTreeMap::new();
    for (r, &x) in rows.iter().zip(flagged) {
        series
            .entry((r.source.as_str(), r.coin.as_str()))
            .or_default()
            .push((r.time, x));
    }
    let mut hit = vec![false; windows.len()];
    let mut market_ms = 0i64;
    let mut false_alerts = 0usize;
    for ((source, coin), mut s) in series {
        s.sort_by_key(|x| x.0);
        market_ms += s.last().map_or(0, |l| l.0) - s.first().map_or(0, |x| x.0);
        let mut last: Option<i64> = None;
        for (t, x) in s {
            if !x {
                continue;
            }
            if last.is_none_or(|l| t - l > GAP) {
                f.alerts += 1;
                let mut matched = false;
                for (i, (src, (a, st, en))) in windows.iter().enumerate() {
                    if src == source && a == coin && t >= st - GAP && t <= *en {
                        matched = true;
                        hit[i] = true;
                    }
                }
                if matched {
                    f.true_alerts += 1;
                } else {
                    false_alerts += 1;
                }
            }
            last = Some(t);
        }
    }
    f.detected = hit.iter().filter(|x| **x).count();
    f.false_per_market_day = false_alerts as f64 / (market_ms as f64 / 86_400_000.0).max(1e-9);
    f
}

/// The feature columns of a model trained on `train`: those every source of `all` carries
/// (known in 99 % of each source's rows — what every venue's feed provides) among those the
/// training rows know and vary in; with each column left out and why.
pub fn model_columns(
    all: &[LabelledRow],
    train: &[&LabelledRow],
) -> (Vec<usize>, Vec<(&'static str, &'static str)>) {
    let train_rows: Vec<kamiyo_ml::features::Row> = train.iter().map(|r| r.row).collect();
    let (varying, mut dropped) = kamiyo_ml::features::usable(&train_rows);
    let sources: BTreeSet<&str> = all.iter().map(|r| r.source.as_str()).collect();
    let columns = varying
        .into_iter()
        .filter(|&c| {
            let everywhere = sources.iter().all(|s| {
                let of: Vec<&LabelledRow> = all.iter().filter(|r| r.source == *s).collect();
                let known = of.iter().filter(|r| r.row[c].is_finite()).count();
                known as f64 >= 0.99 * of.len() as f64
            });
            if !everywhere {
                dropped.push((kamiyo_ml::features::FEATURES[c], "unknown in some source"));
            }
            everywhere
        })
        .collect();
    (columns, dropped)
}

/// The rows the ensemble is fitted on: every labelled row and evenly spaced normal rows,
/// 20,000 in all (smartcore's forest fits in time quadratic in rows; docs/DEPENDENCIES.md).
pub fn fit_sample<'a>(train: &[&'a LabelledRow]) -> Vec<&'a LabelledRow> {
    let positives = train.iter().filter(|r| r.label).count();
    let normals: Vec<&&LabelledRow> = train.iter().filter(|r| !r.label).collect();
    let keep = 20_000usize.saturating_sub(positives).max(1);
    let step = (normals.len() as f64 / keep as f64).max(1.0);
    let mut out: Vec<&LabelledRow> = train.iter().filter(|r| r.label).copied().collect();
    out.extend((0..keep.min(normals.len())).map(|i| *normals[((i as f64) * step) as usize]));
    out
}

/// The production model file: the ensemble trained on every labelled row of the scenarios and
/// replays (no split), 1-minute bars.
pub fn ensemble_file(replays_dir: &Path) -> anyhow::Result<crate::ensemble::EnsembleFile> {
    let rows = labelled_rows(&replays_dir.join("../../scenarios"), replays_dir, BAR_MS)?;
    let all: Vec<&LabelledRow> = rows.iter().collect();
    let (columns, _) = model_columns(&rows, &all);
    let known: Vec<&LabelledRow> = all
        .into_iter()
        .filter(|r| columns.iter().all(|&c| r.row[c].is_finite()))
        .collect();
    let fit = fit_sample(&known);
    let sources: BTreeSet<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    Ok(crate::ensemble::EnsembleFile {
        format: crate::ensemble::FILE_FORMAT,
        features: columns
            .iter()
            .map(|&c| kamiyo_ml::features::FEATURES[c].to_owned())
            .collect(),
        interval_ms: BAR_MS,
        settings: crate::ensemble::Settings::default(),
        trained_on: format!(
            "{} of {} one-minute bars ({} labelled) from {}",
            fit.len(),
            rows.len(),
            fit.iter().filter(|r| r.label).count(),
            sources.into_iter().collect::<Vec<_>>().join(", ")
        ),
        rows: fit
            .iter()
            .map(|r| columns.iter().map(|&c| r.row[c]).collect())
            .collect(),
        labels: fit.iter().map(|r| r.label).collect(),
    })
}

/// The ensemble against the single Isolation Forest on the labelled rows, time split at
/// `split_ms` (train before, test after), at the same alert budget (each model's threshold is
/// the 0.999 quantile of its score over the normal training rows, the open core's rule).
pub fn ensemble_report(replays_dir: &Path, w: &mut impl std::io::Write) -> anyhow::Result<()> {
    use crate::ensemble::{Ensemble, Settings};
    const SPLIT: i64 = 1_749_340_800_000; // 2025-06-08T00:00:00Z
    let rows = labelled_rows(&replays_dir.join("../../scenarios"), replays_dir, BAR_MS)?;
    let (train, test): (Vec<&LabelledRow>, Vec<&LabelledRow>) =
        rows.iter().partition(|r| r.time < SPLIT);
    let (columns, dropped) = model_columns(&rows, &train);
    let known = |r: &&LabelledRow| columns.iter().all(|&c| r.row[c].is_finite());
    let pick = |r: &LabelledRow| columns.iter().map(|&c| r.row[c]).collect::<Vec<f64>>();
    let train: Vec<&LabelledRow> = train.into_iter().filter(known).collect();
    let test_all = test.len();
    let test: Vec<&LabelledRow> = test.into_iter().filter(known).collect();
    let positives = train.iter().filter(|r| r.label).count();
    let fit_rows = fit_sample(&train);
    let x_fit: Vec<Vec<f64>> = fit_rows.iter().map(|r| pick(r)).collect();
    let y_fit: Vec<bool> = fit_rows.iter().map(|r| r.label).collect();
    writeln!(
        w,
        "Rows: {} bars of 1 min from {} sources; train before 2025-06-08: {} rows ({positives} labelled), fitted on {}; test from 2025-06-08: {} rows scored ({} left out: an input of the model unknown).",
        rows.len(),
        rows.iter()
            .map(|r| &r.source)
            .collect::<BTreeSet<_>>()
            .len(),
        train.len(),
        fit_rows.len(),
        test.len(),
        test_all - test.len()
    )?;
    writeln!(
        w,
        "Features: {} (left out: {}).\n",
        columns
            .iter()
            .map(|&c| kamiyo_ml::features::FEATURES[c])
            .collect::<Vec<_>>()
            .join(", "),
        dropped
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    if positives == 0 || test.is_empty() {
        anyhow::bail!("no labelled training rows or no test rows");
    }
    // The single forest: the open core's, on the normal rows, standardised.
    let scaler = kamiyo_ml::model::Scaler::fit(&x_fit);
    let normal_fit: Vec<Vec<f64>> = x_fit
        .iter()
        .zip(&y_fit)
        .filter(|(_, l)| !**l)
        .map(|(r, _)| scaler.apply(r))
        .collect();
    let forest = kamiyo_ml::iforest::IsolationForest::fit(
        &normal_fit,
        kamiyo_ml::iforest::Params::default(),
    )?;
    let quantile = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64) * 0.999) as usize)
            .or(v.last())
            .copied()
            .unwrap_or(f64::INFINITY)
    };
    let if_threshold = quantile(normal_fit.iter().map(|r| forest.score(r)).collect());
    let ensemble = Ensemble::fit(&x_fit, &y_fit, Settings::default())?;
    let x_test: Vec<Vec<f64>> = test.iter().map(|r| pick(r)).collect();
    let if_flags: Vec<bool> = x_test
        .iter()
        .map(|r| forest.score(&scaler.apply(r)) > if_threshold)
        .collect();
    let verdicts = ensemble.score_all(&x_test);
    let sev_flags: Vec<bool> = verdicts
        .iter()
        .map(|v| v.severity >= Some(kamiyo_core_models::Severity::Medium))
        .collect();
    // Labelled windows of the test period, per source.
    let mut windows: Vec<(String, Window)> = Vec::new();
    for r in &test {
        if r.label
            && !windows
                .iter()
                .any(|(s, (c, _, _))| *s == r.source && *c == r.coin)
        {
            let span: Vec<i64> = test
                .iter()
                .filter(|x| x.label && x.source == r.source && x.coin == r.coin)
                .map(|x| x.time)
                .collect();
            let (lo, hi) = (
                span.iter().copied().min().unwrap_or(r.time),
                span.iter().copied().max().unwrap_or(r.time),
            );
            windows.push((r.source.clone(), (r.coin.clone(), lo, hi)));
        }
    }
    let f_if = figures(&test, &if_flags, &windows);
    // The same alert budget: the ensemble's confidence threshold raising no more alerts on the
    // held-back rows than the single forest raised (bisection; alerts fall as it rises).
    let flags_at =
        |thr: f64| -> Vec<bool> { verdicts.iter().map(|v| v.confidence > thr).collect() };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if figures(&test, &flags_at(mid), &windows).alerts > f_if.alerts {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let en_threshold = hi;
    let f_en = figures(&test, &flags_at(en_threshold), &windows);
    let f_sev = figures(&test, &sev_flags, &windows);
    let fmt = |x: Option<f64>| x.map_or("—".to_owned(), |v| format!("{v:.2}"));
    writeln!(
        w,
        "| model (test from 2025-06-08) | threshold | anomalous rows | alerts | true alerts | precision | labelled windows detected | recall | false alerts per market-day |"
    )?;
    writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (name, thr, f) in [
        (
            "Isolation Forest alone (open core)",
            format!("score > {if_threshold:.4} (training 0.999)"),
            &f_if,
        ),
        (
            "Ensemble, same alert budget",
            format!(
                "confidence > {en_threshold:.4} (at most the forest's {} alerts)",
                f_if.alerts
            ),
            &f_en,
        ),
        (
            "Ensemble, severity ≥ medium",
            "two models agree or confidence ≥ 0.8".to_owned(),
            &f_sev,
        ),
    ] {
        writeln!(
            w,
            "| {name} | {thr} | {} | {} | {} | {} | {} of {} | {} | {:.3} |",
            f.flagged,
            f.alerts,
            f.true_alerts,
            fmt(f.precision()),
            f.detected,
            f.windows,
            fmt(f.recall()),
            f.false_per_market_day
        )?;
    }
    let windows_list: Vec<String> = windows
        .iter()
        .map(|(s, (c, _, _))| format!("{c} in {s}"))
        .collect();
    writeln!(
        w,
        "\nLabelled windows in the test period: {}.",
        windows_list.join(", ")
    )?;
    // At the same number of alerts, more labelled windows detected (or as many with more of
    // the alerts true).
    let better = f_en.detected > f_if.detected
        || (f_en.detected == f_if.detected && f_en.true_alerts > f_if.true_alerts);
    writeln!(
        w,
        "\nVerdict: the ensemble {} the single forest on held-back data at the same budget.",
        if better { "beats" } else { "does not beat" }
    )?;
    Ok(())
}
