//! Two protocols' engines in one process through the pipeline library: Hyperliquid replaying
//! the reconstructed JELLY scenario, and "acme-perps", a made-up perp venue fed synthetic
//! events in which JELLY's mark also runs away from its oracle. Both commit into one SQLite
//! store; one API serves both, and `protocol=` tells them apart.
//!
//! `cargo run -p kamiyo-example-two-protocols` prints what the API answers and exits;
//! with `--serve` it keeps serving on 127.0.0.1 (Ctrl-C to stop).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kamiyo_aggregators::replay::{ReplaySource, Scenario, Speed};
use kamiyo_core_models::{
    AssetCtx, Clock, ManualClock, MarketDataStream, MarketEvent, ProtocolId, Timestamp,
};
use kamiyo_monitors::{DetectorRegistry, Engine, MonitorsConfig};
use kamiyo_pipeline::{NoObserver, PipelineContext};
use tokio_util::sync::CancellationToken;

/// Synthetic (made up for this example): JELLY on acme-perps, its mark 4 % above its oracle
/// for three minutes from `t0`.
fn acme_events(t0: Timestamp) -> anyhow::Result<Vec<MarketEvent>> {
    let mut v = Vec::new();
    for s in 0..=180 {
        let ctx: AssetCtx = serde_json::from_value(serde_json::json!({
            "coin": "JELLY", "time": t0.0 + s * 1000, "oracle_px": "0.0500", "mark_px": "0.0520",
            "open_interest": "40000000", "funding": "0.0000125", "day_ntl_vlm": "900000"
        }))?;
        v.push(MarketEvent::AssetCtx(ctx));
    }
    Ok(v)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    kamiyo_aggregators::install_crypto_provider();
    let serve = std::env::args().any(|a| a == "--serve");
    let scenario_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/jelly-2025-03-26");
    let scenario = Scenario::load(&scenario_dir)?;
    let dir = tempfile::tempdir()?;
    // An empty URL is the zero-setup default: SQLite in the data directory, migrated.
    let store = kamiyo_store::Store::open("", dir.path(), 4).await?;
    let hub = kamiyo_api::Hub::default();
    let shutdown = CancellationToken::new();
    let mut out = std::io::stdout().lock();

    // One pipeline per protocol, each with its own engine and detector set, one store.
    let registry = DetectorRegistry::builtin();
    let mut running = Vec::new();
    let acme = ProtocolId::parse("acme-perps")?;
    for protocol in [ProtocolId::HYPERLIQUID, acme.clone()] {
        let clock = Arc::new(ManualClock::new(scenario.manifest.scenario.start));
        let (engine, stream) = if protocol.is_default() {
            let mut e = Engine::for_protocol(
                protocol.clone(),
                &registry,
                None,
                &MonitorsConfig::default(),
            )?;
            e.state_mut()
                .set_reference_max_age_ms(scenario.stale_after_ms());
            let src =
                ReplaySource::from_scenario(&scenario, Speed::AsFastAsPossible, clock.clone());
            (e, Box::new(src).into_stream())
        } else {
            // acme-perps has no HLP vault: its detector set leaves the HLP detector out.
            let set = ["oracle", "liquidations", "thin_market", "feeds"];
            let e = Engine::for_protocol(
                protocol.clone(),
                &registry,
                Some(&set),
                &MonitorsConfig::default(),
            )?;
            let events = acme_events(scenario.manifest.scenario.start)?;
            let src =
                ReplaySource::new("acme-perps", events, Speed::AsFastAsPossible, clock.clone());
            (e, Box::new(src).into_stream())
        };
        writeln!(
            out,
            "{protocol}: detectors {}",
            engine.detector_names().join(", ")
        )?;
        let ctx = PipelineContext::new(
            protocol,
            clock as Arc<dyn Clock>,
            Arc::new(store.clone()),
            shutdown.clone(),
        )
        .with_output(Arc::new(kamiyo_server::run::HubOutput(hub.clone())));
        running.push(kamiyo_pipeline::spawn(
            &ctx,
            engine,
            stream,
            Box::new(NoObserver),
        )?);
    }
    for r in running {
        let mut engine = r.runner.await?;
        r.consumer.await?;
        // The replay is over: what is still open resolves at its end, like `replay` does.
        let end = engine.finish(scenario.manifest.scenario.end);
        kamiyo_core_models::MarketStore::commit(
            &store,
            &kamiyo_core_models::IngestBatch {
                updates: end.updates,
                ..Default::default()
            },
        )
        .await?;
    }

    // One API over the one store.
    let state = kamiyo_api::ApiState::new(
        kamiyo_api::ApiStores::single(&store),
        Arc::new(kamiyo_server::storage::StoreProbe(store.clone())),
        hub,
        Arc::new(ManualClock::new(scenario.manifest.scenario.end)),
        kamiyo_api::ApiConfig {
            require_keys: false,
            rate_limit_per_minute: 0,
            cors_origins: Vec::new(),
            allowed_hosts: None,
            max_body_bytes: 64 * 1024,
            hlp_vault: MonitorsConfig::default().hlp.vault,
        },
    )
    .shared();
    let app = kamiyo_server::Application::build(SocketAddr::from(([127, 0, 0, 1], 0)), 1, state)?;
    let base = format!("http://{}", app.addr());
    let handle = app.handle();
    let server = tokio::spawn(app.run());
    let http = reqwest::Client::new();
    for protocol in ["hyperliquid", "acme-perps"] {
        let page: serde_json::Value = http
            .get(format!(
                "{base}/security/incidents?protocol={protocol}&limit=500"
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let list = page["incidents"].as_array().cloned().unwrap_or_default();
        writeln!(
            out,
            "GET /security/incidents?protocol={protocol}: {} incidents",
            list.len()
        )?;
        for i in &list {
            writeln!(
                out,
                "  {:<11} {:<8} {:<45} {}",
                i["protocol"].as_str().unwrap_or("?"),
                i["peak_severity"].as_str().unwrap_or("?"),
                i["key"].as_str().unwrap_or("?"),
                i["title"].as_str().unwrap_or("?")
            )?;
        }
    }
    if serve {
        writeln!(out, "serving both at {base}/ (Ctrl-C to stop)")?;
        out.flush()?;
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
    handle.stop(true).await;
    let _ = server.await;
    Ok(())
}
