//! Logging setup: pretty on a terminal, JSON when configured; `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

use crate::config::TelemetrySection;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init_logging(t: &TelemetrySection) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&t.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if t.log_format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
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
