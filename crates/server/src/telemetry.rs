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
