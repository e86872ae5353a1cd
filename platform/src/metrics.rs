//! The platform's metrics, recorded through the global OpenTelemetry meter and exported with
//! the open core's at `/metrics` (Prometheus text; the binary installs the provider). Names
//! and labels are what `deploy/kubernetes/monitoring/` (dashboard, alert rules) and
//! `docs/RUNBOOK.md` use.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

struct Instruments {
    requests: Counter<u64>,
    duration: Histogram<f64>,
    subscriptions: Gauge<u64>,
    detections: Counter<u64>,
    deliveries: Counter<u64>,
    delivery_latency: Histogram<f64>,
    ml: Histogram<f64>,
    pool: Gauge<u64>,
    webhooks: Counter<u64>,
}

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        let m = opentelemetry::global::meter("kamiyo-platform");
        Instruments {
            requests: m
                .u64_counter("kamiyo_platform_requests")
                .with_description("/api/v1 requests by route, method, status and the caller's plan")
                .build(),
            duration: m
                .f64_histogram("kamiyo_platform_request_duration")
                .with_unit("s")
                .with_description("/api/v1 request latency by route and plan")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            subscriptions: m
                .u64_gauge("kamiyo_platform_subscriptions")
                .with_description("Protocol subscriptions of active tenants, by plan")
                .build(),
            detections: m
                .u64_counter("kamiyo_platform_detections")
                .with_description(
                    "Shared incident steps routed, by protocol, severity and lifecycle step",
                )
                .build(),
            deliveries: m
                .u64_counter("kamiyo_platform_alert_deliveries")
                .with_description(
                    "Tenant alert delivery attempts by outcome (delivered, retry, failed)",
                )
                .build(),
            delivery_latency: m
                .f64_histogram("kamiyo_platform_alert_delivery_latency")
                .with_unit("s")
                .with_description("From an alert enqueued to its delivery")
                .with_boundaries(vec![
                    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                ])
                .build(),
            ml: m
                .f64_histogram("kamiyo_platform_ml_score_duration")
                .with_unit("s")
                .with_description("Scoring one bar with an ML detector, by detector")
                .with_boundaries(vec![
                    0.000_005, 0.00001, 0.000_025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                    0.01,
                ])
                .build(),
            pool: m
                .u64_gauge("kamiyo_platform_db_pool_connections")
                .with_description("Database pool connections by pool and state (open, idle)")
                .build(),
            webhooks: m
                .u64_counter("kamiyo_platform_billing_webhooks")
                .with_description("Stripe webhook deliveries by outcome")
                .build(),
        }
    })
}

/// One `/api/v1` request (`route` is the matched pattern, never the raw path).
pub fn record_request(route: &str, method: &str, status: u16, plan: &str, elapsed: Duration) {
    let i = instruments();
    let attrs = [
        KeyValue::new("route", route.to_owned()),
        KeyValue::new("plan", plan.to_owned()),
        KeyValue::new("method", method.to_owned()),
        KeyValue::new("status", i64::from(status)),
    ];
    i.requests.add(1, &attrs);
    i.duration.record(elapsed.as_secs_f64(), &attrs[..2]);
}

/// Subscriptions of active tenants on `plan`.
pub fn set_subscriptions(plan: &str, n: u64) {
    instruments()
        .subscriptions
        .record(n, &[KeyValue::new("plan", plan.to_owned())]);
}

/// A shared incident step the router took.
pub fn record_detection(protocol: &str, severity: &str, change: &str) {
    instruments().detections.add(
        1,
        &[
            KeyValue::new("protocol", protocol.to_owned()),
            KeyValue::new("severity", severity.to_owned()),
            KeyValue::new("change", change.to_owned()),
        ],
    );
}

/// A delivery attempt's outcome, with the time since the alert was enqueued when delivered.
pub fn record_delivery(outcome: &'static str, since_enqueued: Option<Duration>) {
    let i = instruments();
    i.deliveries.add(1, &[KeyValue::new("outcome", outcome)]);
    if let Some(d) = since_enqueued {
        i.delivery_latency.record(d.as_secs_f64(), &[]);
    }
}

/// One bar scored by an ML detector.
pub fn record_ml(detector: &str, elapsed: Duration) {
    instruments().ml.record(
        elapsed.as_secs_f64(),
        &[KeyValue::new("detector", detector.to_owned())],
    );
}

/// A database pool's connections.
pub fn set_pool(pool: &'static str, open: u32, idle: u32) {
    let i = instruments();
    i.pool.record(
        u64::from(open),
        &[KeyValue::new("pool", pool), KeyValue::new("state", "open")],
    );
    i.pool.record(
        u64::from(idle),
        &[KeyValue::new("pool", pool), KeyValue::new("state", "idle")],
    );
}

/// A Stripe webhook delivery's outcome.
pub fn record_webhook(outcome: &'static str) {
    instruments()
        .webhooks
        .add(1, &[KeyValue::new("outcome", outcome)]);
}
