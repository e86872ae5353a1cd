//! Ingest metrics, recorded through the global OpenTelemetry meter (the host installs an
//! exporter; without one these calls are no-ops).

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

use kamiyo_core_models::{FeedState, FeedStatus};

struct Instruments {
    frames: Counter<u64>,
    events: Counter<u64>,
    duplicates: Counter<u64>,
    lag: Histogram<f64>,
    state: Gauge<i64>,
    restarts: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        let m = opentelemetry::global::meter("kamiyo-aggregators");
        Instruments {
            frames: m
                .u64_counter("kamiyo_ingest_frames")
                .with_description("WebSocket frames and REST responses carrying data, by feed")
                .build(),
            events: m
                .u64_counter("kamiyo_ingest_events")
                .with_description("Normalized events admitted, by feed")
                .build(),
            duplicates: m
                .u64_counter("kamiyo_ingest_duplicates")
                .with_description(
                    "Events dropped as duplicates (reconnect backfill overlap), by feed",
                )
                .build(),
            lag: m
                .f64_histogram("kamiyo_ingest_lag")
                .with_unit("s")
                .with_description(
                    "Source clock now minus the newest event time of a frame, by feed",
                )
                .with_boundaries(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                ])
                .build(),
            state: m
                .i64_gauge("kamiyo_feed_state")
                .with_description("Feed freshness: 0 LIVE, 1 STALE, 2 DOWN")
                .build(),
            restarts: m
                .u64_counter("kamiyo_task_restarts")
                .with_description(
                    "Supervised tasks restarted after a panic or an unexpected return",
                )
                .build(),
        }
    })
}

/// One frame (or REST response) of `feed` with `events` admitted, `duplicates` dropped, and
/// `lag_ms` between the source clock and its newest event.
pub fn frame(feed: &str, events: usize, duplicates: usize, lag_ms: Option<i64>) {
    let i = instruments();
    let attrs = [KeyValue::new("feed", feed.to_owned())];
    i.frames.add(1, &attrs);
    if events > 0 {
        i.events.add(events as u64, &attrs);
    }
    if duplicates > 0 {
        i.duplicates.add(duplicates as u64, &attrs);
    }
    if let Some(ms) = lag_ms {
        i.lag.record(ms.max(0) as f64 / 1000.0, &attrs);
    }
}

/// A feed's new freshness state.
pub fn feed_state(s: &FeedStatus) {
    let v = match s.state {
        FeedState::Live => 0,
        FeedState::Stale => 1,
        FeedState::Down => 2,
    };
    instruments()
        .state
        .record(v, &[KeyValue::new("feed", s.feed.clone())]);
}

/// A supervised task restarted.
pub fn task_restarted(task: &'static str) {
    instruments()
        .restarts
        .add(1, &[KeyValue::new("task", task)]);
}
