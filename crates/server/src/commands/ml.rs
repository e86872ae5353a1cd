//! `kamiyo-hyperliquid ml train` and `ml evaluate`: the Isolation Forest anomaly model on real
//! Hyperliquid candles, and its event-level evaluation (plus the ARIMA risk forecast's
//! rolling-origin evaluation), printed as the tables of docs/ML_MODELS.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kamiyo_core_models::Decimal;
use kamiyo_ml::eval::{LabelledEvent, alerts, event_metrics};
use kamiyo_ml::features::{self, Bar, FeatureSet};
use kamiyo_ml::iforest::{IsolationForest, Params};
use kamiyo_ml::model::{AnomalyModelFile, FORMAT, Fnv, Scaler};
use kamiyo_ml::{AnomalyModel, Arima};

/// The calm fortnight 2025-06-01 … 2025-06-15.
const CALM: (i64, i64) = (1_748_736_000_000, 1_749_945_600_000);

/// The market-data directory: `--data`, else `./testdata/market`, else the source tree's.
pub fn data_root(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    // A directory the operator names is used or refused, never swapped for the bundled data.
    if let Some(dir) = arg {
        anyhow::ensure!(
            dir.join("hyperliquid").is_dir(),
            "--data {}: not market data (expected the layout of testdata/market: a hyperliquid/ directory of candles and funding, with binance/ and coinbase/ beside it)",
            dir.display()
        );
        return Ok(dir.to_path_buf());
    }
    let candidates = [
        Some(PathBuf::from("testdata/market")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/market")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("hyperliquid").is_dir())
        .context("market data not found: pass --data DIR (the layout of testdata/market)")
}

/// One market's files: candles, the funding series, the outside venues' candles of the same
/// interval (the reference).
#[derive(Debug, Clone)]
struct Market {
    label: String,
    candles: String,
    funding: Option<String>,
    /// (venue, candle file).
    refs: Vec<(&'static str, String)>,
}

fn read(root: &Path, rel: &str) -> anyhow::Result<String> {
    let path = root.join(rel);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// A market's bars with funding and reference applied, and the bytes read (for the data hash).
fn load(root: &Path, m: &Market) -> anyhow::Result<(Vec<Bar>, Vec<u8>)> {
    let text = read(root, &m.candles)?;
    let mut bars = features::parse_candles(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", root.join(&m.candles).display()))?;
    let mut raw = text.into_bytes();
    if let Some(f) = &m.funding {
        let ft = read(root, f)?;
        features::apply_funding(&mut bars, &ft).map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
        raw.extend_from_slice(ft.as_bytes());
    }
    if !m.refs.is_empty() {
        let mut venues = Vec::new();
        let mut weights = Vec::new();
        let oracle = kamiyo_aggregators::aggregate::VenueWeights::default();
        for (venue, r) in &m.refs {
            let rt = read(root, r)?;
            venues.push(features::parse_candles(&rt).map_err(|e| anyhow::anyhow!("{r}: {e}"))?);
            weights.push(oracle.weight(&kamiyo_core_models::Venue::new(venue)?));
            raw.extend_from_slice(rt.as_bytes());
        }
        // The live reference book's rule: the oracle replica (the oracle's venues and weights),
        // the independent venues only when no oracle input has a bar.
        features::apply_reference(&mut bars, &venues, |pts| {
            let pts: Vec<_> = pts
                .iter()
                .filter_map(|(i, px)| Some((Decimal::from_f64_retain(*px)?, *weights.get(*i)?)))
                .collect();
            kamiyo_aggregators::aggregate::replica_median(&pts).and_then(|d| f64::try_from(d).ok())
        });
    }
    Ok((bars, raw))
}

/// The bar intervals `ml train` and `ml evaluate` know, with their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interval {
    M5,
    H1,
}

impl Interval {
    fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "5m" => Ok(Self::M5),
            "1h" => Ok(Self::H1),
            _ => bail!("--interval {s}: expected 5m or 1h"),
        }
    }

    fn of_ms(ms: i64) -> anyhow::Result<Self> {
        match ms {
            300_000 => Ok(Self::M5),
            3_600_000 => Ok(Self::H1),
            _ => bail!("no evaluation data for {ms} ms bars (5m and 1h only)"),
        }
    }

    fn ms(self) -> i64 {
        match self {
            Self::M5 => 300_000,
            Self::H1 => 3_600_000,
        }
    }

    /// The training window: 5m 2025-03-14 .. 2025-06-01 (the 5m files start on the 14th);
    /// 1h 2025-01-01 .. 2025-06-01 (the outside venues' 1h files start 2024-12-31).
    fn train_window(self) -> (i64, i64) {
        match self {
            Self::M5 => (1_741_910_400_000, 1_748_736_000_000),
            Self::H1 => (1_735_689_600_000, 1_748_736_000_000),
        }
    }

    /// A Hyperliquid market; at 1h, BTC/ETH/SOL carry the Binance USD-M + Coinbase reference.
    fn hl(self, coin: &str, window: Option<&str>) -> Market {
        let funding = Some(format!("hyperliquid/funding/hl_funding_{coin}_1h.csv"));
        match self {
            Self::M5 => Market {
                label: format!("{coin} (Hyperliquid)"),
                candles: match window {
                    Some(w) => format!("hyperliquid/candles_5m/hl_perp_{coin}_5m_{w}.csv"),
                    None => {
                        format!(
                            "hyperliquid/candles_5m/hl_perp_{coin}_5m_2025-03-14_2025-07-26.csv"
                        )
                    }
                },
                funding,
                refs: Vec::new(),
            },
            Self::H1 => {
                let refs = if ["BTC", "ETH", "SOL"].contains(&coin) {
                    vec![
                        (
                            "binance",
                            format!(
                                "binance/candles_1h/binance_usdm_{coin}USDT_1h_2024-12-31_2025-07-26.csv"
                            ),
                        ),
                        (
                            "coinbase",
                            format!(
                                "coinbase/candles_1h/coinbase_{coin}-USD_1h_2024-12-31_2025-07-26.csv"
                            ),
                        ),
                    ]
                } else {
                    Vec::new()
                };
                Market {
                    label: if refs.is_empty() {
                        format!("{coin} (Hyperliquid, no outside reference)")
                    } else {
                        format!("{coin} (Hyperliquid, ref Binance+Coinbase)")
                    },
                    candles: format!("hyperliquid/candles_1h/hl_perp_{coin}_1h.csv"),
                    funding,
                    refs,
                }
            }
        }
    }

    fn train_markets(self) -> Vec<Market> {
        match self {
            Self::M5 => vec![self.hl("BTC", None), self.hl("ETH", None)],
            Self::H1 => ["BTC", "ETH", "SOL"]
                .iter()
                .map(|c| self.hl(c, None))
                .collect(),
        }
    }

    fn trained_on(self) -> &'static str {
        match self {
            Self::M5 => "hyperliquid BTC,ETH 5m",
            Self::H1 => "hyperliquid BTC,ETH,SOL 1h; reference binance usd-m + coinbase 1h",
        }
    }

    fn calm_markets(self) -> Vec<Market> {
        match self {
            Self::M5 => vec![
                self.hl("BTC", None),
                self.hl("ETH", None),
                self.hl("SOL", Some("calm_2025-06-01_14")),
                self.hl("HYPE", Some("calm_2025-06-01_14")),
                self.hl("POPCAT", Some("calm_2025-06-01_14")),
            ],
            Self::H1 => ["BTC", "ETH", "SOL", "HYPE", "POPCAT"]
                .iter()
                .map(|c| self.hl(c, None))
                .collect(),
        }
    }

    /// The labelled incidents this interval's data covers on their own market: (name, market,
    /// the window scored, the incident). JELLY is labelled on JELLY, of which the data holds no
    /// candles, so it is not among them.
    fn incidents(self) -> Vec<(&'static str, Market, (i64, i64), LabelledEvent)> {
        let whale = LabelledEvent {
            name: "eth-whale".into(),
            start_ms: 1_741_782_600_000,
            end_ms: 1_741_791_600_000,
        };
        let whale_window = (1_741_564_800_000, 1_741_996_800_000);
        let market = match self {
            // Hyperliquid's own 5m files start two days after the whale: Binance's ETH 5m.
            Self::M5 => Market {
                label: "ETH (Binance USD-M)".into(),
                candles: "binance/candles_5m/binance_usdm_ETHUSDT_5m_2025-03-12_eth_whale.csv"
                    .into(),
                funding: None,
                refs: Vec::new(),
            },
            Self::H1 => self.hl("ETH", None),
        };
        vec![("ETH whale 2025-03-12", market, whale_window, whale)]
    }
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Trains the model of `interval` on the committed candle files and writes it to `out`.
pub fn train(
    data: Option<&Path>,
    interval: &str,
    out: &Path,
    q: f64,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    check_quantile(q)?;
    let iv = Interval::parse(interval)?;
    let root = data_root(data)?;
    writeln!(w, "training on the market data in {}", root.display())?;
    let mut hash = Fnv::default();
    let mut markets = Vec::new();
    for m in iv.train_markets() {
        let (bars, raw) = load(&root, &m)?;
        hash.update(&raw);
        markets.push(bars);
    }
    let spec = Training {
        trained_on: iv.trained_on().into(),
        bar_ms: iv.ms(),
        span: iv.train_window(),
        data_hash: hash.hex(),
        quantile: q,
    };
    fit_and_write(&spec, &markets, out, w)
}

/// Bars read from the store per call (a larger history needs `--coins` or a narrower window).
const STORE_BARS_MAX: u32 = 2_000_000;

/// Trains on the bars the engine recorded in the configured database (`ml.record_bar_secs`):
/// the deployment's own history, which carries the inputs no public candle file has.
pub async fn train_from_store(
    store: &dyn kamiyo_core_models::MarketStore,
    interval: &str,
    coins: &[kamiyo_core_models::Coin],
    span: (i64, i64),
    out: &Path,
    q: f64,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    check_quantile(q)?;
    let bar_ms = parse_interval_ms(interval)?;
    let since = kamiyo_core_models::Timestamp(span.0);
    let until = kamiyo_core_models::Timestamp(span.1);
    // The self-hosted model learns Hyperliquid's markets (the protocol the binary watches); a
    // coin of another protocol is another market.
    let protocol = Some(&kamiyo_core_models::ProtocolId::HYPERLIQUID);
    let mut stored = Vec::new();
    if coins.is_empty() {
        stored = store
            .bars(protocol, None, bar_ms, since, until, STORE_BARS_MAX)
            .await?;
    } else {
        for c in coins {
            stored.extend(
                store
                    .bars(protocol, Some(c), bar_ms, since, until, STORE_BARS_MAX)
                    .await?,
            );
        }
    }
    if stored.len() >= STORE_BARS_MAX as usize {
        bail!(
            "more than {STORE_BARS_MAX} stored bars in the window: narrow it with --since/--until or pick markets with --coins"
        );
    }
    if stored.is_empty() {
        bail!(
            "no {interval} bars in the database for that window: the engine records them while storing (`run`, `replay --store`) when ml.record_bar_secs = {}",
            bar_ms / 1000
        );
    }
    // Per market, in time order (the store returns coin, then time).
    let mut hash = Fnv::default();
    let mut markets: Vec<Vec<Bar>> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for b in &stored {
        if names.last() != Some(&b.coin.as_str()) {
            names.push(b.coin.as_str());
            markets.push(Vec::new());
        }
        hash.update(serde_json::to_string(b)?.as_bytes());
        if let Some(m) = markets.last_mut() {
            m.push(kamiyo_monitors::detectors::bars::ml_bar(b));
        }
    }
    let spec = Training {
        trained_on: format!(
            "stored {} bars of {} markets ({})",
            interval_label(bar_ms),
            names.len(),
            names.join(",")
        ),
        bar_ms,
        span,
        data_hash: hash.hex(),
        quantile: q,
    };
    fit_and_write(&spec, &markets, out, w)
}

/// `--since`/`--until`: RFC 3339, `YYYY-MM-DD` (midnight UTC) or milliseconds; `default` when
/// absent.
pub fn parse_time(s: Option<&str>, default: i64) -> anyhow::Result<i64> {
    let Some(s) = s else {
        return Ok(default);
    };
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    kamiyo_core_models::Timestamp::parse(&full)
        .map(|t| t.0)
        .with_context(|| format!("{s}: expected RFC 3339 (2026-10-01T00:00:00Z) or 2026-10-01"))
}

/// `5m`, `1h`, `300s` → milliseconds.
fn parse_interval_ms(s: &str) -> anyhow::Result<i64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("--interval {s}: expected a length such as 5m, 1h or 300s"))?;
    Ok(n * match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => bail!("--interval {s}: expected a length such as 5m, 1h or 300s"),
    })
}

/// `300000` → `5m`, `3600000` → `1h`, `90000` → `90s`.
fn interval_label(ms: i64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

fn check_quantile(q: f64) -> anyhow::Result<()> {
    if !(0.5..1.0).contains(&q) {
        bail!("--quantile {q}: expected a value in [0.5, 1)");
    }
    Ok(())
}

/// What a training run is, besides its bars.
struct Training {
    trained_on: String,
    bar_ms: i64,
    /// Rows whose bar opens in `[span.0, span.1)` are trained on.
    span: (i64, i64),
    data_hash: String,
    quantile: f64,
}

/// A fitted model with what its data left out.
struct Fitted {
    model: AnomalyModelFile,
    /// Features not in the model, with the reason.
    dropped: Vec<(&'static str, &'static str)>,
    /// Rows in the window before rows lacking a model feature were left out.
    all_rows: usize,
}

/// Extracts features per market, keeps the features the data carries, fits and sets the
/// threshold. `None` when the window holds no training row.
fn fit_model(spec: &Training, markets: &[Vec<Bar>]) -> anyhow::Result<Option<Fitted>> {
    let mut full = Vec::new();
    let mut window = (i64::MAX, i64::MIN);
    for bars in markets {
        for (t, x) in features::extract(bars) {
            if (spec.span.0..spec.span.1).contains(&t) {
                window = (window.0.min(t), window.1.max(t));
                full.push(x);
            }
        }
    }
    if full.is_empty() {
        return Ok(None);
    }
    // The features the training data carries: an input no training bar has (open interest,
    // liquidations, HLP in candle files) cannot be learnt, so it is not in the model.
    let (cols, dropped) = features::usable(&full);
    let rows = features::complete(&full, &cols);
    let scaler = Scaler::fit(&rows);
    let scaled: Vec<Vec<f64>> = rows.iter().map(|r| scaler.apply(r)).collect();
    let forest = IsolationForest::fit(&scaled, Params::default())?;
    let scores: Vec<f64> = scaled.iter().map(|r| forest.score(r)).collect();
    let threshold = quantile(scores, spec.quantile);
    Ok(Some(Fitted {
        model: AnomalyModelFile {
            format: FORMAT,
            library_version: env!("CARGO_PKG_VERSION").to_owned(),
            features: FeatureSet::of(&cols),
            trained_on: spec.trained_on.clone(),
            bar_ms: spec.bar_ms,
            window,
            rows: rows.len(),
            data_hash: spec.data_hash.clone(),
            threshold,
            threshold_quantile: spec.quantile,
            scaler,
            forest,
        },
        dropped,
        all_rows: full.len(),
    }))
}

/// Fits (see [`fit_model`]) and writes the model file.
fn fit_and_write(
    spec: &Training,
    markets: &[Vec<Bar>],
    out: &Path,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    let Some(Fitted {
        model,
        dropped,
        all_rows,
    }) = fit_model(spec, markets)?
    else {
        bail!(
            "no training rows in the window (each market needs {} bars before its first row)",
            features::WARMUP
        );
    };
    let (q, threshold, window) = (spec.quantile, model.threshold, model.window);
    let cols = model.features.columns();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, model.to_json())?;
    writeln!(
        w,
        "trained isolation forest on {} rows of {} bars ({} .. {}), threshold {threshold:.4} (quantile {q}); wrote {}",
        model.rows,
        interval_label(spec.bar_ms),
        kamiyo_core_models::Timestamp(window.0),
        kamiyo_core_models::Timestamp(window.1),
        out.display()
    )?;
    writeln!(
        w,
        "features ({} of {}): {}",
        cols.len(),
        features::N_FEATURES,
        model.features.names.join(", ")
    )?;
    for (name, why) in dropped {
        writeln!(w, "  not in the model: {name} ({why})")?;
    }
    if model.rows < all_rows {
        writeln!(
            w,
            "  {} rows left out of training: a feature of the model unknown there (scored with it marginalised)",
            all_rows - model.rows
        )?;
    }
    Ok(())
}

/// Reads a model file, refusing one built for other features.
pub fn read_model(path: &Path) -> anyhow::Result<AnomalyModelFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading model {} (train one with `ml train`)",
            path.display()
        )
    })?;
    AnomalyModelFile::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A scored bar: time, the model's features, score.
type Scored = (i64, Vec<f64>, f64);

/// Feature rows in `span` with their scores, extracted once.
fn scored(model: &AnomalyModelFile, bars: &[Bar], span: (i64, i64)) -> Vec<Scored> {
    let cols = model.features.columns();
    features::extract(bars)
        .into_iter()
        .filter(|(t, _)| (span.0..span.1).contains(t))
        .map(|(t, row)| {
            let x = FeatureSet::select(&cols, &row);
            let s = AnomalyModel::score(model, &x);
            (t, x, s)
        })
        .collect()
}

fn scores(rows: &[Scored]) -> Vec<(i64, f64)> {
    rows.iter().map(|(t, _, s)| (*t, *s)).collect()
}

fn ts(ms: i64) -> String {
    kamiyo_core_models::Timestamp(ms).to_rfc3339()
}

/// The time split of `ml evaluate`: every window is scored by a model trained strictly before
/// it. The model given is used where its training rows all precede the window; elsewhere a
/// model with the same settings (interval, training markets, threshold quantile) is fitted on
/// the training data before the window. Where no training data precedes a window, it is not
/// evaluated.
struct HeldOut<'a> {
    given: std::sync::Arc<AnomalyModelFile>,
    iv: Interval,
    root: &'a Path,
    markets: Option<Vec<Vec<Bar>>>,
}

impl HeldOut<'_> {
    /// The model for a window starting at `start_ms`, and how it was trained, in words.
    fn before(
        &mut self,
        start_ms: i64,
    ) -> anyhow::Result<Option<(std::sync::Arc<AnomalyModelFile>, String)>> {
        let say = |m: &AnomalyModelFile, how: &str| {
            format!(
                "{how}: {} rows {} .. {} (held out: training ends before the window)",
                m.rows,
                ts(m.window.0),
                ts(m.window.1)
            )
        };
        if self.given.window.1 + self.given.bar_ms <= start_ms {
            return Ok(Some((
                self.given.clone(),
                say(&self.given, "the model given"),
            )));
        }
        if self.markets.is_none() {
            let mut v = Vec::new();
            for m in self.iv.train_markets() {
                v.push(load(self.root, &m)?.0);
            }
            self.markets = Some(v);
        }
        let spec = Training {
            trained_on: format!(
                "{} (refitted before {})",
                self.iv.trained_on(),
                ts(start_ms)
            ),
            bar_ms: self.iv.ms(),
            // A row is the bar opening at its time: the last bar trained on closes by the start.
            span: (self.iv.train_window().0, start_ms - self.iv.ms() + 1),
            data_hash: self.given.data_hash.clone(),
            quantile: self.given.threshold_quantile,
        };
        let fitted = fit_model(&spec, self.markets.as_deref().unwrap_or_default())?;
        Ok(fitted.map(|f| {
            let how = say(
                &f.model,
                "refitted on the training markets before the window",
            );
            (std::sync::Arc::new(f.model), how)
        }))
    }
}

/// The scenarios `ml evaluate` replays through the engine, in this order.
const SCENARIOS: [&str; 4] = [
    "calm-2025-06-01-14",
    "eth-whale-2025-03-12",
    "jelly-2025-03-26",
    "xpl-2025-08-26",
];

/// 2b. The scenarios replayed through the engine with the anomaly detector, as `replay` runs
/// them: the `ml_anomaly` incidents opened, against each scenario's ground truth. An incident
/// counts for a labelled incident only on its labelled market (the truth's asset), opened from
/// an hour before its start to its end; every other one is a false alert. Each scenario is
/// scored by a model trained strictly before it (`HeldOut`).
fn scenario_section(held: &mut HeldOut<'_>, w: &mut impl Write) -> anyhow::Result<()> {
    use kamiyo_aggregators::replay::Scenario;
    use kamiyo_core_models::IncidentChange;

    let bar_ms = held.iv.ms();
    writeln!(
        w,
        "## Scenarios replayed through the engine, {} bars: `ml_anomaly` incidents (bars from replayed mark prices; no traded volume)",
        interval_label(bar_ms)
    )?;
    writeln!(
        w,
        "A detection counts only on the labelled market; each scenario is scored by a model trained before it.\n"
    )?;
    writeln!(
        w,
        "| scenario | days | anomaly incidents | on the labelled market in its window | false alerts/day | labelled incidents detected | lead time (first, per incident) |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|---|---|")?;
    // The detector as `replay` builds it (default configuration).
    let cfg = crate::config::Config::default();
    let mut models = Vec::new();
    for name in SCENARIOS {
        let dir = super::resolve_scenario(name)?;
        let sc = Scenario::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        let Some((model, how)) = held.before(sc.manifest.scenario.start.0)? else {
            writeln!(
                w,
                "| {name} | | | | | not evaluated: no {} training data before the scenario | |",
                interval_label(bar_ms)
            )?;
            continue;
        };
        models.push(format!("{name}: {how}"));
        // The built-in rules and the anomaly detector, from the same registry as `run`.
        let registry = crate::storage::detector_registry(&cfg, Some(&model))?;
        let builtin = kamiyo_monitors::DetectorRegistry::builtin();
        let mut set = builtin.names();
        set.push("ml_anomaly");
        let mut engine = kamiyo_monitors::Engine::for_protocol(
            kamiyo_core_models::ProtocolId::HYPERLIQUID,
            &registry,
            Some(&set),
            &cfg.monitors,
        )?;
        engine
            .state_mut()
            .set_reference_max_age_ms(sc.stale_after_ms());
        // Driven as `replay` drives it, storing nothing.
        let mut replay = kamiyo_pipeline::Replay::new(engine);
        let mut opened = Vec::new();
        let mut collect = |updates: Vec<kamiyo_core_models::IncidentUpdate>| {
            for u in updates {
                if u.event.detector == "ml_anomaly" && u.event.change == IncidentChange::Opened {
                    opened.push((u.incident.first_seen, u.incident.asset.clone()));
                }
            }
        };
        for e in &sc.events {
            collect(replay.advance(e));
        }
        collect(replay.finish_batch(sc.manifest.scenario.end));
        // Attributed to a labelled incident: on its asset, opened from an hour before its
        // start to its end.
        let explains = |(t, asset): &(
            kamiyo_core_models::Timestamp,
            Option<kamiyo_core_models::Coin>,
        ),
                        i: &kamiyo_aggregators::replay::TruthIncident| {
            t.0 >= i.start.0 - 3_600_000
                && t.0 <= i.end.0
                && i.asset.as_ref().is_none_or(|a| asset.as_ref() == Some(a))
        };
        let in_window = opened
            .iter()
            .filter(|o| sc.truth.incident.iter().any(|i| explains(o, i)))
            .count();
        let days =
            (sc.manifest.scenario.end.0 - sc.manifest.scenario.start.0) as f64 / 86_400_000.0;
        // Each labelled incident's first anomaly incident, if any.
        let warm_up_ms = features::WARMUP as i64 * bar_ms;
        let firsts: Vec<_> = sc
            .truth
            .incident
            .iter()
            .map(|i| (i, opened.iter().find(|o| explains(o, i))))
            .collect();
        let n_detected = firsts.iter().filter(|(_, f)| f.is_some()).count();
        let detected: Vec<String> = firsts
            .iter()
            .map(|(i, first)| match first {
                Some((t, asset)) => format!(
                    "{}: {:+.0} min ({})",
                    i.id,
                    (t.0 - i.start.0) as f64 / 60_000.0,
                    asset.as_ref().map_or("-", |c| c.as_str())
                ),
                None if warm_up_ms > i.end.0 - sc.manifest.scenario.start.0 => format!(
                    "{}: — (ends before the model's {}-bar warm-up)",
                    i.id,
                    features::WARMUP
                ),
                None => format!("{}: —", i.id),
            })
            .collect();
        writeln!(
            w,
            "| {name} | {days:.2} | {} | {in_window} | {:.2} | {n_detected} of {} | {} |",
            opened.len(),
            (opened.len() - in_window) as f64 / days.max(1e-9),
            sc.truth.incident.len(),
            if detected.is_empty() {
                "—".to_owned()
            } else {
                detected.join("; ")
            }
        )?;
        for (t, asset) in opened.iter().take(6) {
            writeln!(
                w,
                "|   | opened {} on {} | | | | | |",
                ts(t.0),
                asset.as_ref().map_or("-", |c| c.as_str())
            )?;
        }
    }
    writeln!(w)?;
    for m in models {
        writeln!(w, "- {m}")?;
    }
    writeln!(w)?;
    Ok(())
}

/// Prints the evaluation tables.
pub fn evaluate(data: Option<&Path>, model_path: &Path, w: &mut impl Write) -> anyhow::Result<()> {
    let root = data_root(data)?;
    let model = std::sync::Arc::new(read_model(model_path)?);
    writeln!(
        w,
        "model: {} ({} rows, {} .. {}, threshold {:.4} = training quantile {}, data hash {})\n",
        model.trained_on,
        model.rows,
        ts(model.window.0),
        ts(model.window.1),
        model.threshold,
        model.threshold_quantile,
        model.data_hash
    )?;
    let iv = Interval::of_ms(model.bar_ms)?;
    let unknown: Vec<&str> = model
        .features
        .names
        .iter()
        .map(String::as_str)
        .filter(|n| features::FEATURES[features::CORE..].contains(n))
        .collect();
    if !unknown.is_empty() {
        writeln!(
            w,
            "extended features in the model: {} (where a market's data lacks one, e.g. no outside venue lists it, the forest marginalises it)\n",
            unknown.join(", ")
        )?;
    }
    writeln!(
        w,
        "Method: every window below is scored by a model trained strictly before it (the model given where its training ends before the window, else one refitted with the same settings on the training data before the window); a detection counts only on the labelled market.\n"
    )?;
    let mut held = HeldOut {
        given: model.clone(),
        iv,
        root: &root,
        markets: None,
    };
    // 1. False alerts per day on the calm fortnight (no incident on these markets).
    writeln!(
        w,
        "## Calm fortnight 2025-06-01..14, {} bars: false alerts per day",
        interval_label(iv.ms())
    )?;
    let Some((calm_model, how)) = held.before(CALM.0)? else {
        bail!("no training data before the calm fortnight");
    };
    writeln!(w, "Model: {how}.\n")?;
    let model = calm_model;
    writeln!(
        w,
        "| market | bars | anomalous bars | alerts (1 h merge) | alerts/day |"
    )?;
    writeln!(w, "|---|---:|---:|---:|---:|")?;
    let mut total = (0usize, 0.0f64);
    for m in iv.calm_markets() {
        let (bars, _) = load(&root, &m)?;
        let s = scored(&model, &bars, CALM);
        let a = alerts(&scores(&s), model.threshold, 3_600_000);
        let mm = event_metrics(&a, &[], CALM, 0, 0);
        let hot = s.iter().filter(|(_, _, x)| *x > model.threshold).count();
        total = (total.0 + a.len(), total.1 + mm.days);
        writeln!(
            w,
            "| {} | {} | {hot} | {} | {:.2} |",
            m.label,
            s.len(),
            a.len(),
            mm.false_alerts_per_day
        )?;
    }
    writeln!(
        w,
        "| all | | | {} | {:.2} per market-day |\n",
        total.0,
        total.0 as f64 / total.1.max(1e-9)
    )?;

    // 2. The labelled incidents the data covers.
    writeln!(
        w,
        "## Labelled incident windows, {} bars",
        interval_label(iv.ms())
    )?;
    writeln!(
        w,
        "| incident | market | window scored | alerts | in the incident window | detected | lead time |"
    )?;
    writeln!(w, "|---|---|---|---:|---:|---|---|")?;
    let mut split = Vec::new();
    for (name, market, window, ev) in iv.incidents() {
        let (bars, _) = load(&root, &market)?;
        let span = (
            bars.iter()
                .map(|b| b.time_ms)
                .find(|t| *t >= window.0)
                .unwrap_or(window.0),
            bars.iter()
                .map(|b| b.time_ms + iv.ms())
                .rfind(|t| *t <= window.1)
                .unwrap_or(window.1),
        );
        let Some((model, how)) = held.before(span.0)? else {
            writeln!(
                w,
                "| {name} | {} | {} .. {} | | | not evaluated: no training data before the window | |",
                market.label,
                ts(span.0),
                ts(span.1)
            )?;
            continue;
        };
        split.push(format!("{name}: {how}"));
        let s = scored(&model, &bars, span);
        let a = alerts(&scores(&s), model.threshold, 3_600_000);
        let mm = event_metrics(&a, std::slice::from_ref(&ev), span, 3_600_000, 3_600_000);
        let lead = mm.lead_ms.first().map_or("—".to_owned(), |(_, l)| {
            format!("{:+.0} min", *l as f64 / 60_000.0)
        });
        writeln!(
            w,
            "| {name} | {} | {} .. {} | {} | {} | {} | {lead} |",
            market.label,
            ts(span.0),
            ts(span.1),
            mm.alerts,
            mm.true_alerts,
            if mm.detected > 0 { "yes" } else { "no" }
        )?;
        for t in a.iter().take(8) {
            let why = s.iter().find(|(tt, _, _)| tt == t).map(|(_, x, _)| {
                AnomalyModel::explain(model.as_ref(), x)
                    .into_iter()
                    .take(3)
                    .map(|(n, v)| format!("{n} {:.0}%", v * 100.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            writeln!(
                w,
                "|   | alert at {} | {} | | | | |",
                ts(*t),
                why.unwrap_or_default()
            )?;
        }
    }
    writeln!(w)?;
    for m in split {
        writeln!(w, "- {m}")?;
    }
    writeln!(
        w,
        "- JELLY 2025-03-26: not evaluated on candles — the data holds no JELLY candles, and another market (HYPE) does not count for it.\n"
    )?;
    scenario_section(&mut held, w)?;

    // 3. The 24h risk forecast: rolling origin on the BTC hourly log range.
    writeln!(
        w,
        "## 24h risk forecast: BTC hourly log range, rolling origin (refit daily on the previous 720 h)"
    )?;
    let (bars, _) = load(
        &root,
        &Market {
            label: "BTC".into(),
            candles: "hyperliquid/candles_1h/hl_perp_BTC_1h.csv".into(),
            funding: None,
            refs: Vec::new(),
        },
    )?;
    let y: Vec<(i64, f64)> = bars
        .iter()
        .filter(|b| b.close > 0.0 && b.high > b.low)
        .map(|b| (b.time_ms, ((b.high - b.low) / b.close).ln()))
        .collect();
    let mut covered = 0usize;
    let mut n = 0usize;
    let (mut mae, mut mae_naive, mut mae_mean) = (0.0, 0.0, 0.0);
    let mut orders = std::collections::BTreeMap::new();
    let mut origin = y.iter().position(|(t, _)| *t >= CALM.0).unwrap_or(y.len());
    let stop = y.iter().position(|(t, _)| *t >= CALM.1).unwrap_or(y.len());
    while origin + 24 <= stop && origin >= 720 {
        let hist: Vec<f64> = y[origin - 720..origin].iter().map(|v| v.1).collect();
        let m = Arima::select(&hist, 3, 0, 3)?;
        *orders.entry((m.p, m.q)).or_insert(0) += 1;
        let f = m.forecast(24, 0.95);
        let mean = hist.iter().sum::<f64>() / hist.len() as f64;
        for h in 0..24 {
            let actual = y[origin + h].1;
            covered += usize::from(actual >= f.lower[h] && actual <= f.upper[h]);
            mae += (f.mean[h] - actual).abs();
            mae_naive += (hist[hist.len() - 1] - actual).abs();
            mae_mean += (mean - actual).abs();
            n += 1;
        }
        origin += 24;
    }
    let nf = n.max(1) as f64;
    writeln!(
        w,
        "| origins | forecasts | 95 % interval coverage | MAE ARIMA | MAE last value | MAE 720 h mean | orders chosen |"
    )?;
    writeln!(w, "|---:|---:|---:|---:|---:|---:|---|")?;
    writeln!(
        w,
        "| {} | {n} | {:.1} % | {:.4} | {:.4} | {:.4} | {} |",
        n / 24,
        100.0 * covered as f64 / nf,
        mae / nf,
        mae_naive / nf,
        mae_mean / nf,
        orders
            .iter()
            .map(|((p, q), c)| format!("({p},0,{q})×{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    Ok(())
}
