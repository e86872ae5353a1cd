//! The engine: one loop over the normalized event stream that updates the market state, runs
//! every detector, ticks them in event time, and folds their detections into incidents.

use kamiyo_core_models::{FeedState, IncidentUpdate, MarketEvent, ProtocolId, Timestamp};

use crate::config::{ConfigError, MonitorsConfig};
use crate::detectors::hlp::{HlpDetector, HlpSummary};
use crate::detectors::{Detector, Observations, Sink};
use crate::incident::IncidentManager;
use crate::registry::{DetectorRegistry, RegistryError};
use crate::state::MarketState;

/// What processing produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOutput {
    /// Incident lifecycle steps, in order.
    pub updates: Vec<IncidentUpdate>,
    /// Observations for storage.
    pub observations: Observations,
}

impl EngineOutput {
    /// True when nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.observations.is_empty()
    }
}

/// The detection engine of one protocol.
pub struct Engine {
    protocol: ProtocolId,
    state: MarketState,
    detectors: Vec<Box<dyn Detector>>,
    incidents: IncidentManager,
    sink: Sink,
    last_tick: Timestamp,
    events: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("protocol", &self.protocol)
            .field(
                "detectors",
                &self.detectors.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

const TICK_MS: i64 = 1_000;

impl Engine {
    /// A Hyperliquid engine with every built-in detector configured by `config`.
    pub fn new(config: &MonitorsConfig) -> Result<Self, ConfigError> {
        Self::for_protocol(
            ProtocolId::HYPERLIQUID,
            &DetectorRegistry::builtin(),
            None,
            config,
        )
        .map_err(|e| match e {
            RegistryError::Config(c) => c,
            other => ConfigError {
                key: "monitors".into(),
                reason: other.to_string(),
            },
        })
    }

    /// An engine for `protocol` running the detectors of `set` from `registry` (all of them
    /// when `set` is `None`). Its detections, incidents and keys carry `protocol`.
    pub fn for_protocol(
        protocol: ProtocolId,
        registry: &DetectorRegistry,
        set: Option<&[&str]>,
        config: &MonitorsConfig,
    ) -> Result<Self, RegistryError> {
        config.validate("monitors")?;
        Ok(Self {
            protocol,
            state: MarketState::new(config),
            detectors: registry.build(config, set)?,
            incidents: IncidentManager::new(&config.incidents),
            sink: Sink::default(),
            last_tick: Timestamp(i64::MIN),
            events: 0,
        })
    }

    /// The names of the detectors this engine runs, in run order.
    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors.iter().map(|d| d.name()).collect()
    }

    /// The protocol this engine watches.
    pub fn protocol(&self) -> &ProtocolId {
        &self.protocol
    }

    /// Adds a detector of your own (it runs after the built-in ones).
    pub fn with_detector(mut self, d: Box<dyn Detector>) -> Self {
        self.detectors.push(d);
        self
    }

    /// The market state.
    pub fn state(&self) -> &MarketState {
        &self.state
    }

    /// Mutable market state (to register discovered HLP children or replay staleness).
    pub fn state_mut(&mut self) -> &mut MarketState {
        &mut self.state
    }

    /// The HLP summary (account value, 24 h PnL, drawdown, Sharpe), when the engine runs the
    /// `hlp_vault` detector.
    pub fn hlp_summary(&self) -> Option<&HlpSummary> {
        self.detectors
            .iter()
            .find_map(|d| d.as_any()?.downcast_ref::<HlpDetector>())
            .map(HlpDetector::summary)
    }

    /// Open incidents.
    pub fn open_incidents(&self) -> impl Iterator<Item = &kamiyo_core_models::Incident> {
        self.incidents.open()
    }

    /// Events processed so far.
    pub fn events_processed(&self) -> u64 {
        self.events
    }

    /// Processes one event; returns what it produced.
    pub fn process(&mut self, event: &MarketEvent) -> EngineOutput {
        let mut out = EngineOutput::default();
        self.process_into(event, &mut out);
        out
    }

    /// Processes one event, appending to `out` (lets callers batch without allocating).
    pub fn process_into(&mut self, event: &MarketEvent, out: &mut EngineOutput) {
        self.events += 1;
        let fresh = self.state.apply(event);
        if let MarketEvent::Feed(f) = event
            && self.is_exchange_feed(&f.feed)
        {
            let blind = self
                .state
                .feeds
                .iter()
                .any(|(name, s)| *s != FeedState::Live && self.is_exchange_feed(name));
            self.incidents.set_blind(blind, f.changed_at);
        }
        if fresh {
            for d in &mut self.detectors {
                d.on_event(event, &self.state, &mut self.sink);
            }
        }
        self.drain(out);
        let now = self.state.now;
        if now.millis_since(self.last_tick) >= TICK_MS {
            self.tick_into(now, out);
        }
    }

    /// Evaluates time-based conditions and resolutions at `now` (the live runner calls this
    /// from a timer so incidents resolve even when no events arrive).
    pub fn tick(&mut self, now: Timestamp) -> EngineOutput {
        let mut out = EngineOutput::default();
        self.tick_into(now, &mut out);
        out
    }

    fn tick_into(&mut self, now: Timestamp, out: &mut EngineOutput) {
        if now < self.last_tick {
            return;
        }
        self.last_tick = now;
        for d in &mut self.detectors {
            d.on_tick(now, &self.state, &mut self.sink);
        }
        self.drain(out);
        self.incidents.on_tick(now, &mut out.updates);
    }

    /// Takes over the incidents a previous run left open (see
    /// [`IncidentManager::restore`](crate::incident::IncidentManager::restore)); returns the
    /// duplicates it resolved, to be stored.
    pub fn restore_incidents(
        &mut self,
        incidents: impl IntoIterator<Item = kamiyo_core_models::Incident>,
        now: Timestamp,
    ) -> Vec<kamiyo_core_models::IncidentUpdate> {
        self.incidents.restore(incidents, now)
    }

    /// Stops tracking an incident an operator resolved (the store holds its resolution); the
    /// next detection of its key opens a new incident. False when it was not open here.
    pub fn forget_incident(&mut self, id: &kamiyo_core_models::StableId) -> bool {
        self.incidents.forget(id)
    }

    /// Resolves everything still open (end of a replay).
    pub fn finish(&mut self, now: Timestamp) -> EngineOutput {
        let mut out = self.tick(now);
        self.incidents.resolve_all(now, &mut out.updates);
        out
    }

    /// The protocol's own feeds (`hyperliquid.ws`, `hyperliquid.rest`, `dydx.rest` …), as
    /// against reference venues: without them the engine cannot see the exchange.
    fn is_exchange_feed(&self, feed: &str) -> bool {
        feed.strip_prefix(self.protocol.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    }

    fn drain(&mut self, out: &mut EngineOutput) {
        for mut d in self.sink.detections.drain(..) {
            // `in_protocol` leaves the default protocol's keys as they are.
            d.key = d.key.in_protocol(&self.protocol);
            d.group = d.group.map(|g| g.in_protocol(&self.protocol));
            d.protocol.clone_from(&self.protocol);
            self.incidents.on_detection(d, &mut out.updates);
        }
        if !self.sink.observations.is_empty() {
            if !self.protocol.is_default() {
                self.sink.observations.stamp(&self.protocol);
            }
            out.observations.append(self.sink.observations.take());
        }
    }
}
