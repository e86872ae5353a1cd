//! OpenTelemetry metrics exposed as Prometheus text at `/metrics`.
//!
//! The host installs a meter provider whose reader is a Prometheus exporter writing into a
//! [`prometheus::Registry`] ([`prometheus_provider`]); every crate records through the global
//! OpenTelemetry meter, and `/metrics` encodes the registry.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// Builds a meter provider exporting into a fresh registry (install it with
/// `opentelemetry::global::set_meter_provider`).
pub fn prometheus_provider() -> Result<(SdkMeterProvider, prometheus::Registry), String> {
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false)
        .without_target_info()
        .build()
        .map_err(|e| e.to_string())?;
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();
    Ok((provider, registry))
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let enc = prometheus::TextEncoder::new();
    if enc.encode(&registry.gather(), &mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

struct Instruments {
    requests: Counter<u64>,
    duration: Histogram<f64>,
    ws_dropped: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        let m = opentelemetry::global::meter("kamiyo-api");
        Instruments {
            requests: m
                .u64_counter("kamiyo_api_requests")
                .with_description("HTTP requests by route, method and status")
                .build(),
            duration: m
                .f64_histogram("kamiyo_api_request_duration")
                .with_unit("s")
                .with_description("HTTP request latency by route")
                .with_boundaries(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .build(),
            ws_dropped: m
                .u64_counter("kamiyo_ws_dropped_clients")
                .with_description("WebSocket subscribers dropped for falling behind")
                .build(),
        }
    })
}

/// Records one request.
pub fn record_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let i = instruments();
    let attrs = [
        KeyValue::new("route", route.to_owned()),
        KeyValue::new("method", method.to_owned()),
        KeyValue::new("status", i64::from(status)),
    ];
    i.requests.add(1, &attrs);
    i.duration.record(elapsed.as_secs_f64(), &attrs[..2]);
}

/// Records a dropped slow WebSocket client.
pub fn record_ws_dropped() {
    instruments().ws_dropped.add(1, &[]);
}
