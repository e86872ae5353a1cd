//! The stall matrix (issue 18): the ETH-whale replay served by the loopback exchange, read by
//! the live source and judged by the engine, with the exchange's WebSocket failing 10 s before
//! the $306.8M backstop takeover — silent for 5, 12, 20, 45, 85 and 300 s, dropped, or late by
//! 45 s.
//! Every incident of the clean run must still be detected; the detection delay of each (scenario
//! time at which the engine produced it, minus the time of the event it reports) is printed.
//!
//! Time is scaled: the replay runs at 30× and the client's heartbeat, gap and idle timers are
//! the production defaults divided by 30 (ping 5 s → 167 ms, gap 8 s → 267 ms, idle 15 s →
//! 500 ms), as are the pollers and the REST weight budget (1,200 a minute of scenario time), so
//! every duration below is scenario time and each case takes seconds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kamiyo_aggregators::hyperliquid::ws::Backoff;
use kamiyo_aggregators::live::{LiveConfig, LiveSource};
use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::{
    Address, Coin, IncidentChange, MarketDataStream, MarketEvent, Severity, ThreatType, Timestamp,
};
use kamiyo_monitors::config::MonitorsConfig;
use kamiyo_monitors::engine::Engine;
use kamiyo_simulator::SimOptions;
use tokio_util::sync::CancellationToken;

const SPEED: f64 = 30.0;
const START: &str = "2025-03-12T13:16:00Z";
const FAULT_AT: &str = "2025-03-12T13:17:20Z";

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    Stall(u64),
    Drop,
    Delay(u64),
}

impl Fault {
    fn label(self) -> String {
        match self {
            Self::None => "clean".into(),
            Self::Stall(s) => format!("silent {s} s"),
            Self::Drop => "dropped".into(),
            Self::Delay(s) => format!("late {s} s"),
        }
    }

    fn secs(self) -> u64 {
        match self {
            Self::Stall(s) | Self::Delay(s) => s,
            _ => 0,
        }
    }
}

/// (threat, asset) → (highest severity, delay in scenario ms of its first report at that level).
type Found = BTreeMap<(ThreatType, String), (Severity, i64)>;

fn scenario() -> Scenario {
    Scenario::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/eth-whale-2025-03-12"),
    )
    .unwrap()
}

fn scaled(d: Duration) -> Duration {
    d.div_f64(SPEED)
}

async fn run_case(s: &Scenario, fault: Fault) -> Found {
    let universe: Vec<Coin> = s.manifest.market.iter().map(|m| m.coin.clone()).collect();
    let opts = SimOptions {
        speed: SPEED,
        start_at: Timestamp::parse(START),
        ..SimOptions::default()
    };
    let h = kamiyo_simulator::start(s.events.clone(), universe, s.manifest.scenario.end, opts)
        .await
        .unwrap();
    let mut cfg = LiveConfig::new(
        &h.http_url(),
        &h.ws_url(),
        vec![Coin::new("ETH").unwrap()],
        Address::parse("0xdfc24b077bc1425ad1dea75bcb6f8158e10df303").unwrap(),
    );
    cfg.references = h.reference_sources(&["binance", "coinbase"]);
    let defaults = LiveConfig::new("", "", Vec::new(), Address::from_bytes([0; 20]));
    cfg.ping_interval = scaled(defaults.ping_interval);
    cfg.gap_after = scaled(defaults.gap_after);
    cfg.idle_timeout = scaled(defaults.idle_timeout);
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    // Every poller and the REST weight budget (1,200 per minute) scaled the same way.
    cfg.reference_interval = scaled(defaults.reference_interval);
    cfg.vault_interval = scaled(defaults.vault_interval);
    cfg.hlp_positions_interval = scaled(defaults.hlp_positions_interval);
    cfg.market_interval = scaled(defaults.market_interval);
    cfg.whale_interval = scaled(defaults.whale_interval);
    cfg.budget = Arc::new(kamiyo_aggregators::hyperliquid::budget::WeightBudget::new(
        1200,
        (60_000.0 / SPEED) as i64,
        Duration::from_secs(1),
    ));
    // As `run` does against a replaying exchange: the exchange's clock, fed by its timestamps.
    let clock = Arc::new(kamiyo_aggregators::clock::ExchangeClock::new(
        h.now(),
        SPEED,
        2_000.0,
    ));
    cfg.exchange_clock = Some(clock.clone());
    let cancel = CancellationToken::new();
    let mut stream = Box::new(LiveSource::new(cfg, clock, cancel.clone())).into_stream();

    let mut mc = MonitorsConfig::default();
    mc.feeds.enabled = false;
    let mut engine = Engine::new(&mc).unwrap();
    engine
        .state_mut()
        .set_reference_max_age_ms(s.stale_after_ms());

    let fault_at = Timestamp::parse(FAULT_AT).unwrap();
    let end = fault_at.plus_millis(i64::try_from(fault.secs()).unwrap() * 1000 + 150_000);
    let mut injected = matches!(fault, Fault::None);
    let mut found = Found::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while h.now() < end && tokio::time::Instant::now() < deadline {
        if !injected && h.now() >= fault_at {
            injected = true;
            match fault {
                Fault::Stall(secs) => h.stall(scaled(Duration::from_secs(secs))),
                Fault::Delay(secs) => h.delay(scaled(Duration::from_secs(secs))),
                Fault::Drop => h.drop_connections(),
                Fault::None => {}
            }
        }
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), stream.next()).await
        else {
            continue;
        };
        if matches!(e, MarketEvent::Feed(_)) {
            continue;
        }
        let out = engine.process(&e);
        let seen = h.now();
        for u in out.updates {
            let ev = u.event;
            if !matches!(
                ev.change,
                IncidentChange::Opened | IncidentChange::Escalated
            ) {
                continue;
            }
            let key = (
                ev.threat_type,
                ev.asset.as_ref().map_or("-".to_owned(), |a| a.to_string()),
            );
            let delay = seen.millis_since(ev.time).max(0);
            let slot = found.entry(key).or_insert((ev.severity, delay));
            if ev.severity > slot.0 {
                *slot = (ev.severity, delay);
            }
        }
    }
    cancel.cancel();
    h.shutdown();
    assert!(injected, "{}: the run reached the fault", fault.label());
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_incident_of_the_clean_run_survives_stalls_drops_and_late_frames() {
    let s = Arc::new(scenario());
    let faults = [
        Fault::None,
        Fault::Stall(5),
        // Longer than the gap threshold (8 s), shorter than the idle timeout (15 s): the
        // connection survives, the gap is noticed when frames resume, and backfilled.
        Fault::Stall(12),
        Fault::Stall(20),
        Fault::Stall(45),
        Fault::Stall(85),
        Fault::Stall(300),
        Fault::Drop,
        Fault::Delay(45),
    ];
    // Two at a time: the timers are scaled to milliseconds, and eight replays at once on two
    // cores would starve them.
    let mut runs = Vec::new();
    for pair in faults.chunks(2) {
        runs.extend(
            futures_util::future::join_all(pair.iter().map(|f| {
                let s = s.clone();
                let f = *f;
                async move { (f, run_case(&s, f).await) }
            }))
            .await,
        );
    }
    let clean = runs[0].1.clone();
    assert!(
        clean
            .get(&(ThreatType::LargeLiquidation, "ETH".to_owned()))
            .is_some_and(|(sev, _)| *sev == Severity::Critical),
        "the clean run sees the critical takeover: {clean:?}"
    );
    let mut table = String::from(
        "| fault | incident | severity | detection delay (scenario s) |\n|---|---|---|---:|\n",
    );
    let mut missing = Vec::new();
    for (fault, found) in &runs {
        for ((threat, asset), (sev, _)) in &clean {
            match found.get(&(*threat, asset.clone())) {
                Some((got, delay)) if got >= sev => table.push_str(&format!(
                    "| {} | {threat} {asset} | {got} | {:.1} |\n",
                    fault.label(),
                    *delay as f64 / 1000.0
                )),
                other => missing.push(format!(
                    "{}: {threat} {asset} {sev} → {other:?}",
                    fault.label()
                )),
            }
        }
    }
    eprintln!("{table}");
    assert!(
        missing.is_empty(),
        "incidents lost:\n{}\n{table}",
        missing.join("\n")
    );
}
