//! A market-wide liquidation burst through the engine, one core.
//!
//! `cargo bench -p kamiyo-monitors --bench cascade`
//!
//! Shaped on the 2025-10-10 peak block (22,558 forced fills with one timestamp: 11,279
//! liquidations, then 11,279 ADL fills): 22,500 **synthetic** forced fills in one second across
//! 120 coins (half liquidations into the Liquidator, half ADL), fed to an engine with every
//! built-in detector. Two cases: the burst into empty windows, and the burst after five minutes
//! of liquidations at 100 fills per second across the same coins (every 300 s window full — the
//! worst case for per-fill window work). Each line: best and median of `KAMIYO_BENCH_PASSES` (9)
//! of engine time for the burst alone, and the incident steps it produced.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use kamiyo_core_models::{
    Address, Coin, Decimal, Fill, FillDir, LiquidationInfo, LiquidationMethod, MarketEvent, Side,
    Timestamp,
};
use kamiyo_monitors::{Engine, MonitorsConfig};

const T0: i64 = 1_760_130_000_000; // 2025-10-10T21:00:00Z
const COINS: usize = 120;
const BURST: usize = 22_500;

fn fill(i: usize, t: i64, adl: bool) -> MarketEvent {
    let coin = Coin::new(&format!("C{:03}", i % COINS)).unwrap_or_else(|e| panic!("{e}"));
    let victim = Address::from_bytes([(i % 251) as u8 + 1; 20]);
    let liquidator = Address::from_bytes([0x2e; 20]);
    MarketEvent::Fill(Fill {
        user: if adl { victim } else { liquidator },
        coin,
        px: Decimal::new(2_000 + (i % 97) as i64, 2),
        sz: Decimal::new(1_000 + (i % 13) as i64 * 100, 0),
        side: if adl { Side::Buy } else { Side::Sell },
        time: Timestamp(t),
        dir: FillDir::from_wire(if adl {
            "Auto-Deleveraging"
        } else {
            "Liquidated Cross Long"
        }),
        closed_pnl: Decimal::ZERO,
        start_position: None,
        tid: Some(i as u64 + 1),
        oid: i as u64 + 1,
        fee: Decimal::ZERO,
        hash: None,
        liquidation: Some(LiquidationInfo {
            liquidated_user: Some(victim),
            mark_px: Decimal::new(2_000, 2),
            method: LiquidationMethod::Market,
        }),
    })
}

fn main() {
    let passes: usize = std::env::var("KAMIYO_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let cfg = MonitorsConfig::default();
    // Five minutes of liquidations at 100 fills/s before the burst.
    let warm: Vec<MarketEvent> = (0..30_000)
        .map(|i| fill(1_000_000 + i, T0 + (i as i64) * 10, false))
        .collect();
    let t_burst = T0 + 300_000;
    let burst: Vec<MarketEvent> = (0..BURST)
        .map(|i| fill(i, t_burst, i >= BURST / 2))
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "burst of {BURST} forced fills in one second across {COINS} coins (synthetic)"
    );
    for (name, warmup) in [
        ("into empty windows", &[][..]),
        ("after 300 s of 100 fills/s (windows full)", &warm[..]),
    ] {
        let mut times = Vec::with_capacity(passes);
        let mut steps = 0usize;
        for _ in 0..passes {
            let mut e = Engine::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
            for ev in warmup {
                black_box(e.process(ev));
            }
            let t = Instant::now();
            steps = 0;
            for ev in &burst {
                steps += e.process(ev).updates.len();
            }
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let _ = writeln!(
            out,
            "{name:<44} best {:>8.1} ms  median {:>8.1} ms  ({:.2} µs/fill best; {steps} incident steps; {passes} passes)",
            times[0] * 1e3,
            times[times.len() / 2] * 1e3,
            times[0] * 1e6 / BURST as f64,
        );
    }
}
