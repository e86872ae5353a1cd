//! Footprint of `kamiyo-hyperliquid run`: startup time, resident memory and CPU while it follows
//! the live streams of many perp markets from the loopback simulator, and the binary's size.
//!
//! The market is **synthetic** (labelled so in the output): N perps, trades Zipf-distributed
//! over the markets at a fixed total rate, an `activeAssetCtx` per market every 2 s, `allMids`
//! every 500 ms, Binance/Coinbase quotes for BTC, ETH and SOL; HLP's vault and positions are
//! those of the ETH-whale scenario at its start, retimed. The baseline, in the same run, is the
//! default configuration's 7 markets.
//!
//! ```text
//! cargo bench -p kamiyo-server --bench footprint
//! KAMIYO_FOOTPRINT_SECS=600 KAMIYO_FOOTPRINT_BASELINE_SECS=120 cargo bench -p kamiyo-server --bench footprint
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a bench binary reports on stdout and fails loudly"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kamiyo_aggregators::replay::Scenario;
use kamiyo_core_models::{Coin, MarketEvent, Timestamp};
use serde_json::json;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn coins(n: usize) -> Vec<String> {
    let mut c: Vec<String> = ["BTC", "ETH", "SOL", "ARB", "OP", "AVAX", "POL"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    c.truncate(n);
    while c.len() < n {
        c.push(format!("SYN{:03}", c.len()));
    }
    c
}

/// Deterministic synthetic events for `secs` seconds from `start`.
fn synthetic(names: &[String], start: i64, secs: i64, trades_per_sec: u64) -> Vec<MarketEvent> {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let base: Vec<f64> = names
        .iter()
        .enumerate()
        .map(|(i, n)| match n.as_str() {
            "BTC" => 95_000.0,
            "ETH" => 3_500.0,
            "SOL" => 180.0,
            _ => 1.0 + (i as f64 * 7.31) % 90.0,
        })
        .collect();
    // Zipf weights: the first markets trade most.
    let weights: Vec<f64> = (0..names.len()).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    let total: f64 = weights.iter().sum();
    let cdf: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();
    let mut out = Vec::new();
    let mut tid = 1u64;
    let user = |k: u64| format!("0x{:040x}", 0xabc0_0000u64 + k % 500);
    for s in 0..secs {
        let t0 = start + s * 1000;
        for k in 0..trades_per_sec {
            let u = (next() % 1_000_000) as f64 / 1_000_000.0;
            let i = cdf.partition_point(|c| *c < u).min(names.len() - 1);
            let px = base[i] * (1.0 + ((next() % 200) as f64 - 100.0) / 100_000.0);
            tid += 1;
            out.push(json!({"event": "trade", "coin": names[i], "side": if next() % 2 == 0 { "buy" } else { "sell" },
                "px": format!("{px:.6}"), "sz": format!("{:.3}", 1.0 + (next() % 1000) as f64 / 10.0),
                "time": t0 + (k as i64 * 1000) / trades_per_sec as i64, "tid": tid,
                "users": [user(next()), user(next())]}));
        }
        for half in 0..2 {
            let t = t0 + half * 500;
            let mids: Vec<_> = names
                .iter()
                .zip(&base)
                .map(|(n, b)| json!([n, format!("{b:.6}")]))
                .collect();
            out.push(json!({"event": "mids", "time": t, "mids": mids}));
        }
        for (i, n) in names.iter().enumerate() {
            if (i as i64 + s) % 2 != 0 {
                continue;
            }
            let b = base[i];
            out.push(json!({"event": "asset_ctx", "coin": n, "time": t0 + (i as i64 % 1000),
                "oracle_px": format!("{b:.6}"), "mark_px": format!("{:.6}", b * 1.0001),
                "mid_px": format!("{:.6}", b * 1.0001), "open_interest": "1000000",
                "funding": "0.0000125", "day_ntl_vlm": "50000000", "prev_day_px": format!("{b:.6}")}));
        }
        if s % 5 == 0 {
            for (n, b) in names.iter().zip(&base).take(3) {
                for venue in ["binance", "coinbase"] {
                    out.push(json!({"event": "reference", "venue": venue, "coin": n,
                        "price": format!("{b:.6}"), "time": t0}));
                }
            }
        }
    }
    let mut events: Vec<MarketEvent> = out
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    events.sort_by_key(MarketEvent::time);
    events
}

/// HLP's vault and positions of the ETH-whale scenario's start, moved to `start`.
fn hlp_state(start: i64) -> Vec<MarketEvent> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let s = Scenario::load(&root.join("eth-whale-2025-03-12")).unwrap();
    let first = s.events.iter().map(MarketEvent::time).min().unwrap();
    s.events
        .into_iter()
        .filter(|e| e.time() == first)
        .filter(|e| matches!(e, MarketEvent::Vault(_) | MarketEvent::Positions(_)))
        .map(|e| {
            let mut v = serde_json::to_value(&e).unwrap();
            v["time"] = json!(start);
            if let Some(h) = v.get_mut("pnl_history").and_then(|h| h.as_array_mut()) {
                for p in h {
                    p["time"] = json!(start);
                }
            }
            if let Some(h) = v
                .get_mut("account_value_history")
                .and_then(|h| h.as_array_mut())
            {
                for p in h {
                    p["time"] = json!(start);
                }
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn proc_stat(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    (rss_kb, ticks as f64 / 100.0)
}

/// The server under test; killed if the bench fails before stopping it (no orphan).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

struct Report {
    markets: usize,
    secs: u64,
    events: usize,
    frames: u64,
    ready_ms: f64,
    first_data_ms: f64,
    rss_start_mb: f64,
    rss_peak_mb: f64,
    rss_end_mb: f64,
    /// RSS at each tenth of the measured time (MB): whether memory levels off.
    rss_tenths_mb: Vec<f64>,
    cpu_pct: f64,
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn run_one(markets: usize, secs: u64, trades_per_sec: u64) -> Report {
    let names = coins(markets);
    let start = Timestamp::parse("2026-01-05T00:00:00Z").unwrap().0;
    let mut events = hlp_state(start);
    // Keep the stream going past the measurement so the feed never runs dry.
    events.extend(synthetic(&names, start, secs as i64 + 60, trades_per_sec));
    let n_events = events.len();
    let universe: Vec<Coin> = names.iter().map(|n| Coin::new(n).unwrap()).collect();
    let sim = kamiyo_simulator::start(
        events,
        universe,
        Timestamp(start + (secs as i64 + 60) * 1000),
        kamiyo_simulator::SimOptions {
            speed: 1.0,
            start_at: Some(Timestamp(start)),
            ..kamiyo_simulator::SimOptions::default()
        },
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let coins_toml: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[hyperliquid]\nrest_url = \"{u}\"\nws_url = \"{w}/ws\"\ncoins = [{}]\nclock = \"exchange\"\n[references.binance]\nurl = \"{u}\"\n[references.coinbase]\nurl = \"{u}\"\n[references.okx]\nenabled = false\n[references.bybit]\nenabled = false\n[references.kraken]\nenabled = false\n[references.kucoin]\nenabled = false\n[references.gate]\nenabled = false\n[references.mexc]\nenabled = false\n[telemetry]\nlog_level = \"warn\"\n",
        data.path().join("data").display(),
        coins_toml.join(", "),
        u = sim.http_url(),
        w = sim.http_url().replacen("http://", "ws://", 1),
    );
    let cfg_path = data.path().join("kamiyo.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let spawned = Instant::now();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"))
            .args(["--config", cfg_path.to_str().unwrap(), "run"])
            .env_remove("DATABASE_URL")
            .env_remove("KAMIYO_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready_ms = f64::NAN;
    let first_data_ms;
    loop {
        if ready_ms.is_nan()
            && http
                .get(format!("{base}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
        }
        if !ready_ms.is_nan() {
            let m = scrape(&http, &base).await;
            if metric(&m, "kamiyo_ingest_events_total{feed=\"hyperliquid.ws\"}") > 0.0 {
                first_data_ms = spawned.elapsed().as_secs_f64() * 1000.0;
                break;
            }
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the server exited");
        assert!(spawned.elapsed() < Duration::from_secs(60), "no data");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (rss0, cpu0) = proc_stat(pid);
    let t0 = Instant::now();
    let mut peak = rss0;
    let mut last = rss0;
    let mut tenths = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, _) = proc_stat(pid);
        peak = peak.max(rss);
        last = rss;
        let tenth = t0.elapsed().as_secs_f64() * 10.0 / secs.max(1) as f64;
        if tenth >= (tenths.len() + 1) as f64 {
            tenths.push(rss as f64 / 1024.0);
        }
    }
    let (_, cpu1) = proc_stat(pid);
    let wall = t0.elapsed().as_secs_f64();
    let m = scrape(&http, &base).await;
    let frames = metric(&m, "kamiyo_ingest_frames_total{feed=\"hyperliquid.ws\"}") as u64;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.0.wait();
    sim.shutdown();
    Report {
        markets,
        secs,
        events: n_events,
        frames,
        ready_ms,
        first_data_ms,
        rss_start_mb: rss0 as f64 / 1024.0,
        rss_peak_mb: peak as f64 / 1024.0,
        rss_end_mb: last as f64 / 1024.0,
        rss_tenths_mb: tenths,
        cpu_pct: (cpu1 - cpu0) / wall * 100.0,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and expects a quick run.
    kamiyo_aggregators::install_crypto_provider();
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = env_u64("KAMIYO_FOOTPRINT_SECS", if quick { 5 } else { 600 });
    let base_secs = env_u64("KAMIYO_FOOTPRINT_BASELINE_SECS", secs.min(120));
    let markets = env_u64("KAMIYO_FOOTPRINT_ASSETS", 200) as usize;
    let trades = env_u64("KAMIYO_FOOTPRINT_TRADES_PER_SEC", 100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bin = std::fs::metadata(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "footprint of `run` on SYNTHETIC market data ({trades} trades/s total, asset contexts every 2 s per market, allMids every 500 ms); binary {:.1} MB ({})",
        bin as f64 / 1e6,
        env!("CARGO_BIN_EXE_kamiyo-hyperliquid")
    );
    println!(
        "| markets | measured s | ready (/health) ms | first WS data ms | RSS start MB | RSS peak MB | RSS end MB | CPU % of one core | WS frames |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut tenths = Vec::new();
    for (m, s) in [(7usize, base_secs), (markets, secs)] {
        let r = rt.block_on(run_one(m, s, trades));
        let series: Vec<String> = r.rss_tenths_mb.iter().map(|v| format!("{v:.1}")).collect();
        tenths.push(format!(
            "{} markets, RSS (MB) at each tenth of {} s: {}",
            r.markets,
            r.secs,
            series.join(" ")
        ));
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} ({} events generated) |",
            r.markets,
            r.secs,
            r.ready_ms,
            r.first_data_ms,
            r.rss_start_mb,
            r.rss_peak_mb,
            r.rss_end_mb,
            r.cpu_pct,
            r.frames,
            r.events
        );
    }
    for t in tenths {
        println!("{t}");
    }
}
