//! Ingesting protocols into the shared store: each protocol's pipeline (adapter, engine,
//! committer) runs under its own leadership ([`crate::leader`]) in its own supervised task, so
//! a protocol whose adapter panics, stalls or fails to start is restarted on its own while every
//! other protocol's detections flow as usual.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kamiyo_core_models::{Clock, EventStream, ProtocolId};
use tokio_util::sync::CancellationToken;

use crate::adapters::poll::{MsClock, PollConfig};
use crate::adapters::socket::{self, SocketConfig};
use crate::adapters::{binance, drift, dydx, gmx, lighter, paradex, poll};
use crate::registry::Registry;

/// What a protocol's pipeline runs on: its engine (open incidents restored), its event
/// stream, its clock and its observer.
pub type Inputs = (
    kamiyo_monitors::Engine,
    EventStream,
    Arc<dyn Clock>,
    Box<dyn kamiyo_pipeline::Observer>,
);

/// Builds a protocol's inputs over the store fenced at the leader's epoch, with a token
/// cancelled when the lead is lost.
pub type Build = Arc<
    dyn Fn(
            kamiyo_store::Store,
            CancellationToken,
        ) -> Pin<Box<dyn Future<Output = anyhow::Result<Inputs>> + Send>>
        + Send
        + Sync,
>;

/// One protocol to ingest.
#[derive(Clone)]
pub struct Protocol {
    /// Its id.
    pub id: ProtocolId,
    /// How its inputs are built.
    pub build: Build,
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol").field("id", &self.id).finish()
    }
}

/// Where the shared facts go and who this replica is.
#[derive(Debug, Clone)]
pub struct Target {
    /// The owner's database URL (leadership locks are taken on their own connections to it).
    pub url: String,
    /// The shared store.
    pub store: kamiyo_store::Store,
    /// This replica's name (its lock connections' `application_name`).
    pub holder: String,
    /// The platform's database (owner), where the leader of each protocol beats its heartbeat
    /// with its feeds' states ([`crate::status`]).
    pub db: crate::db::Db,
}

/// What a leading ingest reports in its heartbeat: the last status of each feed and the time of
/// its last commit.
#[derive(Debug, Default)]
pub struct FeedBeat {
    feeds: std::sync::Mutex<std::collections::BTreeMap<String, kamiyo_core_models::FeedStatus>>,
    last_commit_ms: std::sync::atomic::AtomicI64,
}

impl FeedBeat {
    /// The heartbeat's detail for a leader at `epoch`.
    pub fn detail(&self, epoch: i64) -> serde_json::Value {
        let feeds: Vec<serde_json::Value> = self
            .feeds
            .lock()
            .map(|m| {
                m.values()
                    .map(|f| {
                        serde_json::json!({"feed": f.feed, "state": f.state.as_str(),
                            "since": f.changed_at.to_string(), "detail": f.detail})
                    })
                    .collect()
            })
            .unwrap_or_default();
        let last = self
            .last_commit_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        serde_json::json!({"epoch": epoch, "feeds": feeds, "last_commit_ms": (last > 0).then_some(last)})
    }
}

impl kamiyo_pipeline::Output for FeedBeat {
    fn committed(&self, _stored: &[kamiyo_core_models::StoredEvent]) {
        self.last_commit_ms.store(
            crate::fanout::now_ms(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn feed(&self, status: &kamiyo_core_models::FeedStatus) {
        if let Ok(mut m) = self.feeds.lock() {
            m.insert(status.feed.clone(), status.clone());
        }
    }
}

/// Runs `protocol`'s pipeline into the shared store whenever this replica leads its ingest,
/// until `shutdown`.
pub async fn led(
    target: &Target,
    protocol: &Protocol,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let fence = crate::leader::name(protocol.id.as_str());
    crate::leader::lead(
        &target.url,
        protocol.id.as_str(),
        &target.holder,
        &target.store,
        shutdown,
        |epoch, stop| {
            let fenced = target.store.fenced(&fence, epoch);
            let id = protocol.id.clone();
            let built = (protocol.build)(fenced.clone(), stop.clone());
            let feeds = Arc::new(FeedBeat::default());
            // The leader's heartbeat, from the moment it leads (the status page sees the
            // takeover before the pipeline has connected).
            let heartbeat = tokio::spawn(crate::status::beat(
                target.db.clone(),
                crate::status::ingest_component(id.as_str()),
                target.holder.clone(),
                {
                    let feeds = feeds.clone();
                    move || feeds.detail(epoch)
                },
                stop.clone(),
            ));
            async move {
                let (engine, stream, clock, observer) = match built.await {
                    Ok(b) => b,
                    Err(e) => {
                        stop.cancel();
                        let _ = heartbeat.await;
                        return Err(e);
                    }
                };
                let mut ctx = kamiyo_pipeline::PipelineContext::new(
                    id.clone(),
                    clock,
                    Arc::new(fenced),
                    stop.clone(),
                );
                ctx.outputs.push(feeds);
                let kamiyo_pipeline::Running {
                    runner, consumer, ..
                } = kamiyo_pipeline::spawn(&ctx, engine, stream, observer)?;
                tracing::info!(protocol = %id, epoch, "ingesting");
                if let Err(e) = runner.await
                    && e.is_panic()
                {
                    tracing::error!(protocol = %id, "the pipeline panicked; restarting it");
                }
                stop.cancel();
                let _ = consumer.await;
                let _ = heartbeat.await;
                Ok(())
            }
        },
    )
    .await
}

/// Runs every protocol of `protocols`, each under its own leadership in its own task,
/// restarted (1 s doubling to 30 s) whenever it panics or returns before `shutdown`. Returns
/// at shutdown.
pub async fn run(target: Target, protocols: Vec<Protocol>, shutdown: CancellationToken) {
    let mut tasks = Vec::new();
    for p in protocols {
        let (target, shutdown) = (target.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = 0u32;
            while !shutdown.is_cancelled() {
                let started = tokio::time::Instant::now();
                let task = {
                    let (target, p, shutdown) = (target.clone(), p.clone(), shutdown.clone());
                    tokio::spawn(async move { led(&target, &p, shutdown).await })
                };
                match task.await {
                    Ok(Ok(())) if shutdown.is_cancelled() => return,
                    Ok(Ok(())) => tracing::warn!(protocol = %p.id, "ingest returned; restarting"),
                    Ok(Err(e)) => tracing::error!(protocol = %p.id, error = %e, "ingest failed; restarting"),
                    Err(e) => tracing::error!(protocol = %p.id, panic = e.is_panic(), "ingest task died; restarting"),
                }
                if started.elapsed() > Duration::from_secs(60) {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let wait = Duration::from_secs(1 << failures.min(5).saturating_sub(1)).min(Duration::from_secs(30));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The protocols with an adapter in this code base (besides Hyperliquid, the open core's).
pub const ADAPTERS: [&str; 6] = [
    "dydx",
    "gmx",
    "paradex",
    "drift",
    "lighter",
    "binance-futures",
];

/// How a venue is read: polled or over a socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    /// Polled REST.
    Poll(PollConfig),
    /// A WebSocket (with a REST bootstrap where the venue needs one).
    Socket(SocketConfig),
}

impl Feed {
    /// The venue's REST bases (a socket's bootstrap base).
    pub fn base_urls(&self) -> Vec<String> {
        match self {
            Self::Poll(p) => p.base_urls.clone(),
            Self::Socket(s) => vec![s.rest_url.clone()],
        }
    }
}

/// A venue's default feed (its public endpoints, followed markets and a share of its published
/// rate budget).
pub fn default_feed(id: &str) -> Option<Feed> {
    Some(match id {
        "dydx" => Feed::Poll(dydx::default_config()),
        "gmx" => Feed::Poll(gmx::default_config()),
        "paradex" => Feed::Poll(paradex::default_config()),
        "drift" => Feed::Poll(drift::default_config()),
        "lighter" => Feed::Socket(lighter::default_config()),
        "binance-futures" => Feed::Socket(binance::default_config()),
        _ => return None,
    })
}

/// A venue's event stream.
pub fn feed_stream(
    id: &str,
    feed: Feed,
    http: reqwest::Client,
    clock: MsClock,
    stop: CancellationToken,
) -> Option<EventStream> {
    Some(match (id, feed) {
        ("dydx", Feed::Poll(c)) => poll::stream(dydx::Dydx::default(), c, http, clock, stop),
        ("gmx", Feed::Poll(c)) => poll::stream(gmx::Gmx::default(), c, http, clock, stop),
        ("paradex", Feed::Poll(c)) => poll::stream(paradex::Paradex, c, http, clock, stop),
        ("drift", Feed::Poll(c)) => poll::stream(drift::Drift::default(), c, http, clock, stop),
        ("lighter", Feed::Socket(c)) => {
            socket::stream(lighter::Lighter::default(), c, http, clock, stop)
        }
        ("binance-futures", Feed::Socket(c)) => {
            socket::stream(binance::Binance, c, http, clock, stop)
        }
        _ => return None,
    })
}

/// A venue's adapter as the open core's source trait ([`kamiyo_core_models::MarketDataStream`]):
/// what the pipeline runs, like the open core's Hyperliquid source.
pub struct VenueSource {
    id: String,
    feed: Feed,
    http: reqwest::Client,
    clock: MsClock,
    stop: CancellationToken,
}

impl std::fmt::Debug for VenueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueSource")
            .field("id", &self.id)
            .field("feed", &self.feed)
            .finish_non_exhaustive()
    }
}

impl VenueSource {
    /// The adapter of `id` reading `feed` until `stop`; `None` when this build has no adapter
    /// of that name reading that kind of feed.
    pub fn new(
        id: &str,
        feed: Feed,
        http: reqwest::Client,
        clock: MsClock,
        stop: CancellationToken,
    ) -> Option<Self> {
        let kind = |f: &Feed| std::mem::discriminant(f);
        (default_feed(id).as_ref().map(kind) == Some(kind(&feed))).then(|| Self {
            id: id.to_owned(),
            feed,
            http,
            clock,
            stop,
        })
    }
}

impl kamiyo_core_models::MarketDataStream for VenueSource {
    fn name(&self) -> &str {
        &self.id
    }

    fn into_stream(self: Box<Self>) -> EventStream {
        let me = *self;
        feed_stream(&me.id, me.feed, me.http, me.clock, me.stop)
            .unwrap_or_else(|| Box::pin(futures_util::stream::empty()))
    }
}

/// The engine a protocol other than Hyperliquid runs: [`crate::detectors::PROTOCOL_SET`] at
/// the registry's thresholds for it.
pub fn engine(registry: &Registry, id: &ProtocolId) -> anyhow::Result<kamiyo_monitors::Engine> {
    let def = registry
        .get(id)
        .ok_or_else(|| anyhow::anyhow!("{id} is not in the protocol registry"))?;
    Ok(kamiyo_monitors::Engine::for_protocol(
        id.clone(),
        &crate::detectors::registry(&def.stress),
        Some(&crate::detectors::PROTOCOL_SET),
        &def.monitors,
    )?)
}

/// `protocol` with the ensemble detector added to the engine each leadership term builds
/// (Pro and Enterprise: its incidents reach plans with advanced ML only).
pub fn with_ensemble(protocol: Protocol, live: Arc<crate::ensemble::LiveEnsemble>) -> Protocol {
    let inner = protocol.build.clone();
    let build: Build = Arc::new(move |fenced, stop| {
        let (inner, live) = (inner.clone(), live.clone());
        Box::pin(async move {
            let (engine, stream, clock, observer) = inner(fenced, stop).await?;
            let engine =
                engine.with_detector(Box::new(crate::ensemble::EnsembleDetector::new(live)));
            Ok((engine, stream, clock, observer))
        })
    });
    Protocol {
        id: protocol.id,
        build,
    }
}

/// `engine` with the platform's `venue_stress` detector at `cfg` added (Hyperliquid's engine is
/// the open core's; the platform adds its account-flow, position and stress rules).
pub fn with_stress(
    engine: kamiyo_monitors::Engine,
    cfg: &crate::detectors::StressConfig,
) -> kamiyo_monitors::Engine {
    engine.with_detector(Box::new(crate::detectors::StressDetector::new(cfg.clone())))
}

/// A protocol's [`Protocol`]: its adapter reading `feed`, the engine from the registry,
/// reference quotes from `references` merged in (for the oracle-versus-reference rule).
pub fn adapter(
    id: ProtocolId,
    feed: Feed,
    registry: Arc<Registry>,
    references: crate::adapters::reference::References,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Protocol> {
    if default_feed(id.as_str()).is_none() {
        anyhow::bail!("no adapter for {id}");
    }
    // Fail at start, not at the first lead, on thresholds the engine refuses.
    engine(&registry, &id)?;
    let build_id = id.clone();
    let build: Build = Arc::new(move |fenced, stop| {
        let (id, feed, registry, references, clock) = (
            build_id.clone(),
            feed.clone(),
            registry.clone(),
            references.clone(),
            clock.clone(),
        );
        Box::pin(async move {
            let mut engine = engine(&registry, &id)?;
            kamiyo_server::run::restore_open_incidents(&fenced, &mut engine, clock.now()).await?;
            // Resume after the newest trade the previous leader committed.
            let resume = kamiyo_core_models::MarketStore::cursor(
                &fenced,
                &kamiyo_pipeline::trade_cursor(&id),
            )
            .await?
            .and_then(|p| p.parse::<i64>().ok())
            .map(kamiyo_core_models::Timestamp);
            let feed = match feed {
                Feed::Poll(c) => Feed::Poll(PollConfig {
                    resume_after: resume,
                    ..c
                }),
                Feed::Socket(c) => Feed::Socket(SocketConfig {
                    resume_after: resume,
                    ..c
                }),
            };
            if let Some(r) = resume {
                tracing::info!(protocol = %id, after = %r, "resuming trades after the committed cursor");
            }
            let ms: MsClock = {
                let clock = clock.clone();
                Arc::new(move || clock.now().0)
            };
            let source =
                VenueSource::new(id.as_str(), feed, reqwest::Client::new(), ms, stop.clone())
                    .ok_or_else(|| anyhow::anyhow!("no adapter for {id} reading that feed"))?;
            let stream = kamiyo_core_models::MarketDataStream::into_stream(Box::new(source));
            let stream = references.merge(stream, stop);
            let observer: Box<dyn kamiyo_pipeline::Observer> =
                Box::new(kamiyo_pipeline::NoObserver);
            Ok((engine, stream, clock, observer))
        })
    });
    Ok(Protocol { id, build })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_polled_protocol_runs_its_registry_thresholds() {
        let r = Registry::embedded().unwrap_or_else(|e| panic!("{e}"));
        for id in ADAPTERS {
            let id = ProtocolId::parse(id).unwrap_or_else(|e| panic!("{e}"));
            let e = engine(&r, &id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                e.detector_names(),
                [
                    "oracle",
                    "liquidations",
                    "thin_market",
                    "feeds",
                    "venue_stress"
                ],
                "{id}"
            );
            assert_eq!(e.protocol(), &id);
            assert_eq!(
                r.get(&id).map(|d| d.adapter.status),
                Some(crate::registry::AdapterStatus::Live),
                "{id}"
            );
        }
        let def = |id: &str| {
            r.get(&ProtocolId::parse(id).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|| panic!("{id}"))
                .clone()
        };
        assert_eq!(
            def("dydx").monitors.liquidations.large_usd.to_string(),
            "100000"
        );
        assert_eq!(def("paradex").stress.funding_to_hourly.to_string(), "0.125");
        assert_eq!(def("drift").stress.funding_to_hourly.to_string(), "0.01");
        // Every adapter is a source of the open core's trait; a feed of the wrong kind is refused.
        kamiyo_aggregators::install_crypto_provider();
        let clock: MsClock = Arc::new(|| 0);
        for id in ADAPTERS {
            let feed = default_feed(id).unwrap_or_else(|| panic!("{id}"));
            let src = VenueSource::new(
                id,
                feed,
                reqwest::Client::new(),
                clock.clone(),
                CancellationToken::new(),
            )
            .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(kamiyo_core_models::MarketDataStream::name(&src), id);
        }
        let poll = default_feed("dydx").unwrap_or_else(|| panic!("dydx"));
        assert!(
            VenueSource::new(
                "lighter",
                poll.clone(),
                reqwest::Client::new(),
                clock.clone(),
                CancellationToken::new()
            )
            .is_none()
        );
        assert!(
            VenueSource::new(
                "nosuch",
                poll,
                reqwest::Client::new(),
                clock,
                CancellationToken::new()
            )
            .is_none()
        );
        // What the file leaves out keeps the defaults.
        assert_eq!(
            def("dydx").monitors.oracle.thresholds,
            kamiyo_monitors::MonitorsConfig::default().oracle.thresholds
        );
    }
}
