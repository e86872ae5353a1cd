//! Logging, traces and metrics: logs pretty on a terminal (JSON when configured; `RUST_LOG`
//! overrides the level), spans exported over OTLP/HTTP when `telemetry.otlp_endpoint` is set,
//! metrics through the global OpenTelemetry meter into the Prometheus registry of `/metrics`.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetrySection;

/// Keeps the trace exporter alive; dropping it flushes the spans not yet exported.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take()
            && let Err(e) = t.shutdown()
        {
            tracing::warn!(error = %e, "flushing traces at exit failed");
        }
    }
}

/// The OTLP/HTTP traces URL of an endpoint: `http://collector:4318` becomes
/// `http://collector:4318/v1/traces`; a URL that already names a path is kept.
pub fn otlp_traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1/traces") {
        e.to_owned()
    } else {
        format!("{e}/v1/traces")
    }
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp_traces_url(endpoint))
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| anyhow::anyhow!("OTLP exporter for {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("kamiyo-hyperliquid")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Set once logging writes JSON lines to stderr (see [`logs_as_json`]).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when the log on stderr is JSON lines: a fatal error is then reported as one JSON log
/// event (a plain `error:` line would break the stream); otherwise as one `error:` line.
pub fn logs_as_json() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber (once; later calls are ignored). Call it before building the
/// async runtime: the OTLP exporter runs on its own thread with a blocking HTTP client.
pub fn init_logging(t: &TelemetrySection) -> TelemetryGuard {
    JSON_LOGS.store(t.log_format == "json", std::sync::atomic::Ordering::Relaxed);
    // The OpenTelemetry SDK announces its own set-up at INFO; keep that out of default logs.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},opentelemetry=warn,opentelemetry_sdk=warn",
            t.log_level
        ))
    });
    let mut guard = TelemetryGuard::default();
    let otel = if t.otlp_endpoint.is_empty() {
        None
    } else {
        match tracer_provider(&t.otlp_endpoint) {
            Ok(p) => {
                let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("kamiyo"));
                guard.tracer = Some(p);
                Some(layer)
            }
            Err(e) => {
                let _ = writeln_stderr(&format!("warning: traces not exported: {e:#}"));
                None
            }
        }
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(ClientParseErrors);
    let _ = if t.log_format == "json" {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if guard.tracer.is_some() {
        tracing::info!(otlp.endpoint = %otlp_traces_url(&t.otlp_endpoint), "exporting traces over OTLP/HTTP");
    }
    guard
}

/// actix-http logs a request it cannot parse at ERROR ("stream error: request parse error: …"),
/// but the fault is the client's and it has already been answered 400: those events leave the
/// error log and are reported at DEBUG under `kamiyo::http` instead. Every other event passes.
struct ClientParseErrors;

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClientParseErrors {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let m = event.metadata();
        if *m.level() != tracing::Level::ERROR || !m.target().starts_with("actix_http::h1") {
            return true;
        }
        let mut msg = Message(String::new());
        event.record(&mut msg);
        if msg.0.starts_with("stream error: request parse error") {
            tracing::debug!(target: "kamiyo::http", detail = %msg.0, "malformed request answered with 400");
            return false;
        }
        true
    }
}

fn writeln_stderr(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}

/// Installs the global OpenTelemetry meter provider exporting into a Prometheus registry (what
/// `/metrics` renders). Returns the provider (keep it alive) and the registry.
pub fn init_metrics() -> anyhow::Result<(
    opentelemetry_sdk::metrics::SdkMeterProvider,
    prometheus::Registry,
)> {
    let (provider, registry) =
        kamiyo_api::metrics::prometheus_provider().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok((provider, registry))
}

/// The pipeline's own metrics: detections and open incidents, store commits, the DB pool and
/// ML scoring (ingest and feed metrics are recorded by `kamiyo-aggregators`, API requests by
/// `kamiyo-api`, deliveries by `kamiyo-alerts`).
pub mod pipeline {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use kamiyo_core_models::{IncidentChange, IncidentUpdate};
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Gauge, Histogram};

    struct Instruments {
        events: Counter<u64>,
        open: Gauge<i64>,
        commit: Histogram<f64>,
        commit_rows: Counter<u64>,
        commit_failures: Counter<u64>,
        score: Histogram<f64>,
    }

    fn instruments() -> &'static Instruments {
        static I: OnceLock<Instruments> = OnceLock::new();
        I.get_or_init(|| {
            let m = opentelemetry::global::meter("kamiyo-server");
            Instruments {
                events: m
                    .u64_counter("kamiyo_security_events")
                    .with_description("Incident steps (opened, escalated, updated, resolved) by detector, threat type and severity")
                    .build(),
                open: m
                    .i64_gauge("kamiyo_incidents_open")
                    .with_description("Open incidents by detector and severity")
                    .build(),
                commit: m
                    .f64_histogram("kamiyo_db_commit_duration")
                    .with_unit("s")
                    .with_description("Write-transaction latency of the ingest batches")
                    .with_boundaries(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ])
                    .build(),
                commit_rows: m
                    .u64_counter("kamiyo_db_committed_rows")
                    .with_description("Rows committed by the ingest writer")
                    .build(),
                commit_failures: m
                    .u64_counter("kamiyo_db_commit_failures")
                    .with_description("Failed ingest commits (the batch is kept and retried)")
                    .build(),
                score: m
                    .f64_histogram("kamiyo_ml_score_duration")
                    .with_unit("s")
                    .with_description("Anomaly-model scoring latency per bar")
                    .with_boundaries(vec![
                        0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05,
                        0.000_1, 0.000_25, 0.001,
                    ])
                    .build(),
            }
        })
    }

    /// Counts incident steps and keeps the open-incident gauge.
    #[derive(Debug, Default)]
    pub struct IncidentGauge {
        open: BTreeMap<kamiyo_core_models::StableId, (String, &'static str)>,
        /// Every (detector, severity) series written so far: one that drops to zero is
        /// written as zero, not left at its last value.
        series: BTreeSet<(String, &'static str)>,
    }

    impl IncidentGauge {
        /// Records a batch of incident updates.
        pub fn record(&mut self, updates: &[IncidentUpdate]) {
            if updates.is_empty() {
                return;
            }
            let i = instruments();
            for u in updates {
                let e = &u.event;
                i.events.add(
                    1,
                    &[
                        KeyValue::new("detector", e.detector.clone()),
                        KeyValue::new("threat_type", e.threat_type.as_str()),
                        KeyValue::new("severity", e.severity.as_str()),
                        KeyValue::new("change", e.change.as_str()),
                    ],
                );
                if e.change == IncidentChange::Resolved {
                    self.open.remove(&u.incident.id);
                } else {
                    self.open.insert(
                        u.incident.id.clone(),
                        (e.detector.clone(), e.severity.as_str()),
                    );
                }
            }
            let counts = self.counts();
            self.series.extend(counts.keys().cloned());
            for key in &self.series {
                let n = counts.get(key).copied().unwrap_or(0);
                i.open.record(
                    n,
                    &[
                        KeyValue::new("detector", key.0.clone()),
                        KeyValue::new("severity", key.1),
                    ],
                );
            }
        }

        fn counts(&self) -> BTreeMap<(String, &'static str), i64> {
            let mut m = BTreeMap::new();
            for (d, s) in self.open.values() {
                *m.entry((d.clone(), *s)).or_insert(0) += 1;
            }
            m
        }
    }

    /// One ingest commit.
    pub fn commit(elapsed: Duration, rows: usize, ok: bool) {
        let i = instruments();
        i.commit.record(elapsed.as_secs_f64(), &[]);
        if ok {
            i.commit_rows.add(rows as u64, &[]);
        } else {
            i.commit_failures.add(1, &[]);
        }
    }

    /// Registers the DB pool gauges (read at every scrape).
    pub fn watch_pool(store: kamiyo_store::Store) {
        let m = opentelemetry::global::meter("kamiyo-server");
        let s2 = store.clone();
        let _ = m
            .i64_observable_gauge("kamiyo_db_pool_connections")
            .with_description(
                "Database pool connections: open and idle, with the configured maximum",
            )
            .with_callback(move |o| {
                let p = s2.pool_state();
                o.observe(i64::from(p.connections), &[KeyValue::new("state", "open")]);
                o.observe(i64::from(p.idle), &[KeyValue::new("state", "idle")]);
                o.observe(i64::from(p.max), &[KeyValue::new("state", "max")]);
            })
            .build();
    }

    /// An anomaly model that records its scoring latency.
    #[derive(Debug)]
    pub struct TimedModel(pub std::sync::Arc<kamiyo_ml::AnomalyModelFile>);

    impl kamiyo_ml::AnomalyModel for TimedModel {
        fn name(&self) -> &str {
            kamiyo_ml::AnomalyModel::name(&*self.0)
        }
        fn feature_set(&self) -> kamiyo_ml::features::FeatureSet {
            kamiyo_ml::AnomalyModel::feature_set(&*self.0)
        }
        fn bar_ms(&self) -> i64 {
            self.0.bar_ms
        }
        fn score(&self, x: &[f64]) -> f64 {
            let t = Instant::now();
            let s = self.0.score(x);
            instruments().score.record(t.elapsed().as_secs_f64(), &[]);
            s
        }
        fn threshold(&self) -> f64 {
            self.0.threshold
        }
        fn explain(&self, x: &[f64]) -> Vec<(String, f64)> {
            self.0.explain(x)
        }
    }
}

/// Market gauges on `/metrics` — the HLP vault (account value, PnL, drawdown from the 24-hour
/// PnL peak), price deviations per asset (oracle vs the reference venues, mark vs oracle), open
/// interest per asset, liquidation and ADL fills, open incidents by asset and severity — so
/// Prometheus and Grafana see the market, not only kamiyo's health. Label sets are bounded:
/// at most [`market::MAX_ASSETS`] assets get series; later ones are counted in
/// `kamiyo_market_assets_dropped`.
pub mod market {
    use std::collections::{BTreeMap, BTreeSet, VecDeque};
    use std::sync::OnceLock;

    use kamiyo_core_models::{
        Address, Coin, IncidentChange, IncidentUpdate, MarketEvent, Timestamp,
    };
    use kamiyo_monitors::EngineOutput;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Gauge};

    /// Most assets with their own series.
    pub const MAX_ASSETS: usize = 400;
    /// The drawdown window.
    const DAY_MS: i64 = 86_400_000;

    struct Instruments {
        hlp_value: Gauge<f64>,
        hlp_pnl: Gauge<f64>,
        hlp_drawdown: Gauge<f64>,
        deviation: Gauge<f64>,
        open_interest: Gauge<f64>,
        liquidations: Counter<u64>,
        liquidated: Counter<f64>,
        open: Gauge<i64>,
        dropped: Counter<u64>,
    }

    fn instruments() -> &'static Instruments {
        static I: OnceLock<Instruments> = OnceLock::new();
        I.get_or_init(|| {
            let m = opentelemetry::global::meter("kamiyo-market");
            Instruments {
                hlp_value: m
                    .f64_gauge("kamiyo_hlp_account_value_usd")
                    .with_description("HLP vault account value")
                    .build(),
                hlp_pnl: m
                    .f64_gauge("kamiyo_hlp_pnl_usd")
                    .with_description("HLP vault cumulative PnL")
                    .build(),
                hlp_drawdown: m
                    .f64_gauge("kamiyo_hlp_drawdown_percent")
                    .with_description("HLP vault drawdown: PnL lost since the 24-hour PnL peak, in percent of the account value at that peak")
                    .build(),
                deviation: m
                    .f64_gauge("kamiyo_price_deviation_percent")
                    .with_description("Signed price deviation per asset, in percent: kind oracle_vs_reference (oracle vs the reference venues' weighted median), mark_vs_oracle, mid_vs_oracle")
                    .build(),
                open_interest: m
                    .f64_gauge("kamiyo_open_interest_usd")
                    .with_description("Open interest per asset, at the mark price")
                    .build(),
                liquidations: m
                    .u64_counter("kamiyo_liquidation_fills")
                    .with_description("Liquidation and ADL fills recorded, by asset and kind (liquidation, adl)")
                    .build(),
                liquidated: m
                    .f64_counter("kamiyo_liquidated_notional_usd")
                    .with_description("Notional of the liquidation and ADL fills recorded, by asset and kind")
                    .build(),
                open: m
                    .i64_gauge("kamiyo_incidents_open_by_asset")
                    .with_description("Open incidents by asset and severity (asset \"-\" for market-wide ones, \"other\" beyond the series limit)")
                    .build(),
                dropped: m
                    .u64_counter("kamiyo_market_assets_dropped")
                    .with_description("Observations of assets beyond the series limit (not exported)")
                    .build(),
            }
        })
    }

    fn f(d: kamiyo_core_models::Decimal) -> f64 {
        f64::try_from(d).unwrap_or(f64::NAN)
    }

    /// Turns the pipeline's outputs into market gauges.
    #[derive(Debug)]
    pub struct MarketGauges {
        hlp: Address,
        assets: BTreeSet<Coin>,
        /// HLP (time, PnL, account value) over the last day, for the drawdown.
        pnl: VecDeque<(Timestamp, f64, f64)>,
        open: BTreeMap<kamiyo_core_models::StableId, (String, &'static str)>,
        series: BTreeSet<(String, &'static str)>,
    }

    impl MarketGauges {
        /// Gauges for the HLP vault `hlp`.
        pub fn new(hlp: Address) -> Self {
            Self {
                hlp,
                assets: BTreeSet::new(),
                pnl: VecDeque::new(),
                open: BTreeMap::new(),
                series: BTreeSet::new(),
            }
        }

        /// True when `coin` may have series (bounded label set).
        fn admit(&mut self, coin: &Coin) -> bool {
            if self.assets.contains(coin) {
                return true;
            }
            if self.assets.len() >= MAX_ASSETS {
                instruments().dropped.add(1, &[]);
                return false;
            }
            self.assets.insert(coin.clone());
            true
        }

        /// A market event (open interest from asset contexts).
        pub fn event(&mut self, e: &MarketEvent) {
            if let MarketEvent::AssetCtx(c) = e
                && self.admit(&c.coin)
            {
                instruments().open_interest.record(
                    f(c.open_interest_usd()),
                    &[KeyValue::new("asset", c.coin.to_string())],
                );
            }
        }

        /// An engine output: HLP points, deviations, liquidations, incident steps.
        pub fn output(&mut self, o: &EngineOutput) {
            let i = instruments();
            for p in o
                .observations
                .vault_points
                .iter()
                .filter(|p| p.vault == self.hlp)
            {
                let (value, pnl) = (f(p.account_value), f(p.pnl));
                i.hlp_value.record(value, &[]);
                i.hlp_pnl.record(pnl, &[]);
                self.pnl.push_back((p.time, pnl, value));
                while self
                    .pnl
                    .front()
                    .is_some_and(|(t, _, _)| p.time.millis_since(*t) > DAY_MS)
                {
                    self.pnl.pop_front();
                }
                let peak =
                    self.pnl
                        .iter()
                        .copied()
                        .fold(None::<(Timestamp, f64, f64)>, |best, x| match best {
                            Some(b) if b.1 >= x.1 => Some(b),
                            _ => Some(x),
                        });
                if let Some((_, peak_pnl, peak_value)) = peak
                    && peak_value > 0.0
                {
                    i.hlp_drawdown
                        .record(((peak_pnl - pnl) / peak_value * 100.0).max(0.0), &[]);
                }
            }
            for d in o
                .observations
                .deviations
                .iter()
                .filter(|d| d.venue.is_none())
            {
                if self.admit(&d.coin) {
                    i.deviation.record(
                        f(d.deviation_pct),
                        &[
                            KeyValue::new("asset", d.coin.to_string()),
                            KeyValue::new("kind", d.kind.as_str()),
                        ],
                    );
                }
            }
            for l in &o.observations.liquidations {
                if self.admit(&l.coin) {
                    let labels = [
                        KeyValue::new("asset", l.coin.to_string()),
                        KeyValue::new("kind", if l.is_adl { "adl" } else { "liquidation" }),
                    ];
                    i.liquidations.add(1, &labels);
                    i.liquidated.add(f(l.notional), &labels);
                }
            }
            self.incidents(&o.updates);
        }

        fn incidents(&mut self, updates: &[IncidentUpdate]) {
            if updates.is_empty() {
                return;
            }
            for u in updates {
                let label = match u.event.asset.clone() {
                    None => "-".to_owned(),
                    Some(a) if self.admit(&a) => a.to_string(),
                    Some(_) => "other".to_owned(),
                };
                if u.event.change == IncidentChange::Resolved {
                    self.open.remove(&u.incident.id);
                } else {
                    self.open
                        .insert(u.incident.id.clone(), (label, u.event.severity.as_str()));
                }
            }
            let mut counts: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
            for (a, s) in self.open.values() {
                *counts.entry((a.clone(), *s)).or_insert(0) += 1;
            }
            self.series.extend(counts.keys().cloned());
            for key in &self.series {
                instruments().open.record(
                    counts.get(key).copied().unwrap_or(0),
                    &[
                        KeyValue::new("asset", key.0.clone()),
                        KeyValue::new("severity", key.1),
                    ],
                );
            }
        }
    }
}
