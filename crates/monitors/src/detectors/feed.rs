//! Feed health: a feed that is STALE (low) or DOWN (medium; high for the Hyperliquid WebSocket,
//! without which the monitor is blind) is an incident, kept open while the condition lasts and
//! resolved shortly after the feed is LIVE again. Stale data never produces a deviation alert;
//! it produces this.

use std::collections::BTreeMap;

use kamiyo_core_models::{
    Detection, Evidence, FeedState, FeedStatus, IncidentKey, MarketEvent, Severity, ThreatType,
    Timestamp,
};

use super::{Detector, Sink};
use crate::state::MarketState;

/// The feed-health detector.
#[derive(Debug, Default)]
pub struct FeedDetector {
    bad: BTreeMap<String, (FeedStatus, Timestamp)>,
}

impl FeedDetector {
    /// A detector.
    pub fn new() -> Self {
        Self::default()
    }

    fn detection(s: &FeedStatus, now: Timestamp) -> Detection {
        let sev = match (s.state, s.feed.starts_with("hyperliquid")) {
            (FeedState::Down, true) => Severity::High,
            (FeedState::Down, false) => Severity::Medium,
            _ => Severity::Low,
        };
        let mut ev = Evidence::new()
            .with("feed", s.feed.as_str())
            .with("state", s.state.as_str())
            .with("since", s.changed_at.0);
        if let Some(t) = s.last_data_at {
            ev.insert("last_data_at", t.0);
            ev.insert("age_ms", now.millis_since(t));
        }
        if !s.detail.is_empty() {
            ev.insert("detail", s.detail.as_str());
        }
        Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
            key: IncidentKey::new("feed_health", &[&s.feed]),
            detector: "feeds".into(),
            threat_type: ThreatType::FeedHealth,
            severity: sev,
            asset: None,
            title: format!(
                "feed {} is {}{}",
                s.feed,
                s.state,
                if s.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.detail)
                }
            ),
            indicators: vec![format!("feed_{}", s.state.as_str().to_ascii_lowercase())],
            evidence: ev,
            time: now,
        }
    }
}

impl Detector for FeedDetector {
    fn name(&self) -> &'static str {
        "feeds"
    }

    fn on_event(&mut self, event: &MarketEvent, _state: &MarketState, sink: &mut Sink) {
        let MarketEvent::Feed(s) = event else { return };
        if s.state == FeedState::Live {
            self.bad.remove(&s.feed);
        } else {
            sink.detections.push(Self::detection(s, s.changed_at));
            self.bad.insert(s.feed.clone(), (s.clone(), s.changed_at));
        }
    }

    fn on_tick(&mut self, now: Timestamp, _state: &MarketState, sink: &mut Sink) {
        for (s, last) in self.bad.values_mut() {
            // Keep the incident open while the feed is bad (the lifecycle folds these silently).
            if now.millis_since(*last) >= 30_000 {
                *last = now;
                sink.detections.push(Self::detection(s, now));
            }
        }
    }
}
