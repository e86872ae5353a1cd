//! Decode throughput of Hyperliquid WebSocket frames, one core.
//!
//! `cargo bench -p kamiyo-aggregators --bench decode` (`KAMIYO_BENCH_ONLY=trades` or `others`
//! runs one section; `fills` times `userFills` alone and `trades-cold` cold `trades` alone, without
//! their baselines, for profiling)
//!
//! Corpus: 100,000 `trades` frames in the live wire layout (70 % with one trade, 30 % with two
//! to five; 66-character hashes, two 42-character addresses; values synthetic) and allMids
//! frames: the real 28-coin recording and a 450-key frame in the live layout. Trades are timed
//! cold (100,000 distinct frames, each read from memory once per pass) and hot (1,000 frames,
//! cache-resident, as in the live path where the reader has just copied the payload), both for
//! the decoder alone and for the receive path (UTF-8 check and copy, then decode), beside the
//! floor of any reader: one byte of each cache line of the frames read. Each frame is
//! decoded *and normalized* into `MarketEvent`s (decimals parsed, addresses parsed). Baselines
//! in the same run: generic `serde_json::Value` parsing of the same bytes, and Python's `json`
//! module (subprocess) when `python3` is present (orjson when that interpreter has it).
//! Each kamiyo figure compared with Python is measured in rounds alternating with Python's
//! (three of each), and the median of the rounds' ratios is printed with the ratio of the best
//! rates: a slow spell of the shared VM then falls on both sides.
//! Then `l2Book` (20 levels a side), `activeAssetCtx` built from recorded contexts and
//! `userFills` built from recorded fills, each against Python. (`candle` is not a channel the
//! monitor subscribes to: the engine builds its own bars from trades and contexts.)

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use kamiyo_aggregators::hyperliquid::wire::{WsContext, WsMessage, decode_ws_text};
use kamiyo_aggregators::hyperliquid::ws::payload_text;
use kamiyo_core_models::Timestamp;

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 11
}

/// `frames` each copied into an allocation of its own, one after another, as the Python
/// baseline's list of `bytes` is built (`[l.encode() for l in …]`) and as a reader copies frames
/// off a socket. Building a frame leaves temporaries (the `format!` growth, the joined trades)
/// between the finished frames, so without this copy 40 % of consecutive frames are not
/// neighbours in memory and a cold pass pays a memory latency the baseline's layout does not.
fn laid_out_in_order(frames: Vec<String>) -> Vec<String> {
    frames.iter().map(|f| f.as_str().to_owned()).collect()
}

fn trade_frames(n: usize) -> Vec<String> {
    let mut s = 42u64;
    let coins = ["BTC", "ETH", "SOL", "HYPE", "kPEPE", "XRP", "DOGE", "AVAX"];
    laid_out_in_order((0..n)
        .map(|i| {
            let k = if lcg(&mut s) % 10 < 7 { 1 } else { 2 + (lcg(&mut s) % 4) as usize };
            let coin = coins[(lcg(&mut s) % coins.len() as u64) as usize];
            let trades: Vec<String> = (0..k)
                .map(|j| {
                    let px = 1000 + lcg(&mut s) % 100_000;
                    let sz = 1 + lcg(&mut s) % 100_000;
                    format!(
                        r#"{{"coin":"{coin}","side":"{}","px":"{}.{}","sz":"{}.{:04}","hash":"0x{:064x}","time":{},"tid":{},"users":["0x{:040x}","0x{:040x}"]}}"#,
                        if lcg(&mut s).is_multiple_of(2) { "B" } else { "A" },
                        px,
                        lcg(&mut s) % 10,
                        sz / 10_000,
                        sz % 10_000,
                        lcg(&mut s),
                        1_741_786_800_000u64 + i as u64 * 70 + j as u64,
                        lcg(&mut s) % (1 << 50),
                        lcg(&mut s),
                        lcg(&mut s)
                    )
                })
                .collect();
            format!(r#"{{"channel":"trades","data":[{}]}}"#, trades.join(","))
        })
        .collect())
}

fn mids_frame(keys: usize) -> String {
    let mut s = 7u64;
    let mids: Vec<String> = (0..keys)
        .map(|i| {
            let name = if i < 200 {
                format!("C{i}")
            } else {
                format!("@{}", i - 200)
            };
            format!(
                r#""{name}":"{}.{}""#,
                lcg(&mut s) % 100_000,
                lcg(&mut s) % 10_000
            )
        })
        .collect();
    format!(
        r#"{{"channel":"allMids","data":{{"mids":{{{}}}}}}}"#,
        mids.join(",")
    )
}

/// Times `passes` passes over `frames` and prints the best and the median pass as frames/s
/// (the VM is shared: the best pass shows what the code can do, the median what a busy
/// neighbour leaves of it).
fn bench(name: &str, frames: &[String], passes: usize, f: impl Fn(&str) -> usize) -> f64 {
    let bytes: usize = frames.iter().map(String::len).sum();
    // Warm-up.
    let mut sink = 0;
    for fr in frames.iter().take(frames.len().min(10_000)) {
        sink += f(fr);
    }
    let mut times: Vec<f64> = (0..passes)
        .map(|_| {
            let t = Instant::now();
            for fr in frames {
                sink += f(black_box(fr));
            }
            t.elapsed().as_secs_f64()
        })
        .collect();
    black_box(sink);
    times.sort_by(f64::total_cmp);
    let (best, median) = (times[0], times[times.len() / 2]);
    let rate = frames.len() as f64 / best;
    let _ = writeln!(
        std::io::stdout(),
        "{name:<48} {:>10.0} frames/s {:>6.0} MB/s  median {:>10.0} frames/s  ({passes} passes over {} frames, {} bytes)",
        rate,
        bytes as f64 / best / 1e6,
        frames.len() as f64 / median,
        frames.len(),
        bytes
    );
    rate
}

/// Python's parse rate of `frames` (best of three passes), with orjson when the interpreter has
/// it (`KAMIYO_BENCH_PYTHON` names the interpreter, default `python3`; the load bench's virtual
/// environment has orjson from PyPI), otherwise the standard library's `json`. Returns the rate
/// and the parser's name.
fn python_json(frames: &[String]) -> Option<(f64, String)> {
    let dir = std::env::temp_dir().join("kamiyo-bench-frames.txt");
    std::fs::write(&dir, frames.join("\n")).ok()?;
    let script = format!(
        "import time\ntry:\n  import orjson\n  loads=orjson.loads; name='orjson '+orjson.__version__\nexcept ImportError:\n  import json\n  loads=json.loads; name='json (stdlib)'\nL=[l.encode() for l in open({:?}).read().split('\\n')]\nbest=1e9\nfor _ in range(3):\n  t=time.perf_counter()\n  for l in L: loads(l)\n  best=min(best,time.perf_counter()-t)\nprint(len(L)/best, name)",
        dir.display().to_string()
    );
    let python = std::env::var("KAMIYO_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (rate, name) = text.trim().split_once(' ')?;
    Some((rate.parse().ok()?, name.to_owned()))
}

/// Rounds of [`versus`]: kamiyo then Python, in turn, so a slow spell of the shared VM falls on
/// both sides rather than on one.
const ROUNDS: usize = 3;

/// kamiyo's rate on `frames` (label `label`, `passes` a round) and Python's on the same frames,
/// round after round ([`ROUNDS`]); prints each round's figures and their ratio, then the median
/// ratio of the rounds and the ratio of the best rates. Returns kamiyo's best rate.
fn versus(
    label: &str,
    what: &str,
    frames: &[String],
    passes: usize,
    decode: &dyn Fn(&str) -> usize,
) -> f64 {
    let mut ratios = Vec::new();
    let (mut best_k, mut best_p, mut parser) = (0.0f64, 0.0f64, String::new());
    for _ in 0..ROUNDS {
        let k = bench(label, frames, passes, decode);
        best_k = best_k.max(k);
        let Some((p, name)) = python_json(frames) else {
            continue;
        };
        let _ = writeln!(
            std::io::stdout(),
            "{:<48} {p:>10.0} frames/s  ({name}, same frames, bytes in); kamiyo {:.1}x",
            format!("baseline: Python, {what}"),
            k / p
        );
        best_p = best_p.max(p);
        ratios.push(k / p);
        parser = name;
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        let rounds: Vec<String> = ratios.iter().map(|r| format!("{r:.1}x")).collect();
        let _ = writeln!(
            std::io::stdout(),
            "=> {what}: kamiyo / {parser} median {:.1}x over {} rounds ({}); best {best_k:.0} / best {best_p:.0} = {:.1}x",
            ratios[ratios.len() / 2],
            ratios.len(),
            rounds.join(", "),
            best_k / best_p
        );
    }
    best_k
}

fn main() {
    let ctx = WsContext::default();
    let now = Timestamp(1_741_786_800_000);
    let decode = |fr: &str| match decode_ws_text(fr, now, &ctx) {
        Ok(WsMessage::Events { events, .. }) => events.len(),
        _ => 0,
    };
    // What the WebSocket reader does before decoding: the frame payload becomes an owned
    // String (UTF-8 checked), then it is decoded — so the bytes are in cache when parsed.
    let received = |fr: &str| decode(&payload_text(fr.as_bytes()));
    let value = |fr: &str| {
        serde_json::from_str::<serde_json::Value>(fr)
            .map(|v| v.is_object() as usize)
            .unwrap_or(0)
    };

    // Cold: 100,000 distinct frames (51 MB), each read from memory for the first time in a
    // pass. Hot: 1,000 frames (0.5 MB), cache-resident as a frame is in the live path, where
    // the reader has just copied it out of the socket buffer.
    let only = std::env::var("KAMIYO_BENCH_ONLY").unwrap_or_default();
    match only.as_str() {
        "fills" => {
            bench("kamiyo userFills", &fill_frames(), 2_000, decode);
            return;
        }
        "trades-cold" => {
            bench("kamiyo trades, cold", &trade_frames(100_000), 100, decode);
            return;
        }
        "others" => {}
        _ => trades_section(&decode, &received, &value),
    }
    if only == "trades" {
        return;
    }
    others_section(&decode, &value);
}

/// `trades` frames, cold and hot, and the baselines.
fn trades_section(
    decode: &dyn Fn(&str) -> usize,
    received: &dyn Fn(&str) -> usize,
    value: &dyn Fn(&str) -> usize,
) {
    let trades = trade_frames(100_000);
    let hot = trade_frames(1_000);
    let _ = writeln!(std::io::stdout(), "== trades frames (one core)");
    bench(
        "kamiyo decode+normalize, hot (in cache)",
        &hot,
        2_000,
        decode,
    );
    bench(
        "kamiyo receive path, hot (payload copy + decode)",
        &hot,
        2_000,
        received,
    );
    versus(
        "kamiyo decode+normalize, cold (100k frames)",
        "trades cold (100k frames)",
        &trades,
        20,
        decode,
    );
    bench(
        "kamiyo receive path, cold (payload copy + decode)",
        &trades,
        20,
        received,
    );
    // What any reader pays to bring the frames in from memory: one byte of every 64-byte cache
    // line read (and the last byte), nothing decoded.
    let touch = |fr: &str| {
        let b = fr.as_bytes();
        b.iter()
            .step_by(64)
            .chain(b.last())
            .fold(0usize, |a, &c| a.wrapping_add(usize::from(c)))
    };
    bench("floor: every cache line touched, hot", &hot, 2_000, touch);
    bench("floor: every cache line touched, cold", &trades, 20, touch);
    bench("baseline: serde_json::Value, hot", &hot, 500, value);
    bench(
        "baseline: serde_json::Value, cold (no normalization)",
        &trades,
        10,
        value,
    );
}

/// `allMids`, `l2Book`, `activeAssetCtx` and `userFills` frames against their baselines.
fn others_section(decode: &dyn Fn(&str) -> usize, value: &dyn Fn(&str) -> usize) {
    let real = fixture("allMids_2023-07-17.json");
    // Compact, as the socket sends it (the recording is pretty-printed).
    let real_frame = format!(
        r#"{{"channel":"allMids","data":{{"mids":{}}}}}"#,
        compact(real.trim())
    );
    let small: Vec<String> = std::iter::repeat_n(real_frame, 20_000).collect();
    let big: Vec<String> = std::iter::repeat_n(mids_frame(450), 2_000).collect();
    let _ = writeln!(std::io::stdout(), "== allMids frames (one core)");
    compared(
        "kamiyo allMids, real 28 coins (2023 recording)",
        "real 28 coins",
        &small,
        5,
        decode,
    );
    versus(
        "kamiyo allMids, 450 keys (live layout)",
        "allMids 450 keys",
        &big,
        5,
        decode,
    );
    bench("baseline: serde_json::Value, 450 keys", &big, 5, value);

    // The other subscribed frame types: real recorded frames where they exist (testdata), the
    // live layout with synthetic values otherwise.
    let _ = writeln!(std::io::stdout(), "== other frame types (one core)");
    let books = book_frames(2_000);
    compared(
        "kamiyo l2Book, 20 levels a side",
        "l2Book",
        &books,
        20,
        decode,
    );
    // The contexts as recorded, keys in the server's order (a `serde_json::Value` would sort
    // them), whitespace removed as on the socket.
    let meta_text = fixture("metaAndAssetCtxs_trimmed_BTC-ETH-SOL-HYPE.json");
    let meta: (serde_json::Value, Vec<Box<serde_json::value::RawValue>>) =
        serde_json::from_str(&meta_text).unwrap_or_default();
    let ctx_frames: Vec<String> = (0..20_000)
        .filter_map(|i| {
            let k = i % meta.1.len().max(1);
            let name = meta.0["universe"][k]["name"].as_str()?;
            let ctx = compact(meta.1.get(k)?.get());
            Some(format!(
                r#"{{"channel":"activeAssetCtx","data":{{"coin":"{name}","ctx":{ctx}}}}}"#
            ))
        })
        .collect();
    compared(
        "kamiyo activeAssetCtx (recorded ctxs)",
        "activeAssetCtx",
        &ctx_frames,
        20,
        decode,
    );
    let fill_frames = fill_frames();
    // The recorded `candle` frame (HYPE 1d), compact as the socket sends it.
    let candle = fixture("ws/candle_HYPE_1d_2025-12-04.jsonl");
    let candle_frames: Vec<String> = candle
        .lines()
        .filter(|l| l.contains(r#""channel":"candle""#))
        .flat_map(|l| std::iter::repeat_n(l.to_owned(), 20_000))
        .collect();
    compared(
        "kamiyo candle (recorded frame)",
        "candle",
        &candle_frames,
        20,
        decode,
    );
    compared(
        "kamiyo userFills, 3 recorded fills a frame",
        "userFills",
        &fill_frames,
        200,
        decode,
    );
}

/// `userFills` frames of three recorded fills each (the recording's key order).
fn fill_frames() -> Vec<String> {
    let fills: Vec<serde_json::Value> =
        serde_json::from_str(&fixture("userFills_500.json")).unwrap_or_default();
    laid_out_in_order(fills
        .chunks(3)
        .map(|c| {
            format!(
                r#"{{"channel":"userFills","data":{{"user":"0x2e3d94f0562703b25c83308a05046ddaf9a8dd14","fills":{}}}}}"#,
                serde_json::Value::Array(c.to_vec())
            )
        })
        .collect())
}

/// A recorded Hyperliquid response from testdata (empty when missing).
fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../testdata/fixtures/hyperliquid/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_default()
}

/// kamiyo's rate on `frames`, then Python's on the same frames (nothing when there are none).
fn compared(
    label: &str,
    what: &str,
    frames: &[String],
    passes: usize,
    decode: &dyn Fn(&str) -> usize,
) {
    if frames.is_empty() {
        return;
    }
    versus(label, what, frames, passes, decode);
}

/// JSON text without the whitespace outside strings.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_str, mut escaped) = (false, false);
    for c in json.chars() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_str = c == '"';
            out.push(c);
        }
    }
    out
}

/// `l2Book` frames of 20 levels a side in the server's layout (the recorded frame's), values
/// synthetic.
fn book_frames(n: usize) -> Vec<String> {
    let mut s = 7u64;
    laid_out_in_order((0..n)
        .map(|i| {
            let mid = 30_000 + lcg(&mut s) % 10_000;
            let side = |s: &mut u64, dir: i64| -> String {
                (0..20)
                    .map(|k| {
                        let px = mid as i64 + dir * (k + 1);
                        format!(
                            r#"{{"px":"{}.{}","sz":"{}.{:02}","n":{}}}"#,
                            px / 1000,
                            px % 1000,
                            lcg(s) % 5_000,
                            lcg(s) % 100,
                            1 + lcg(s) % 30
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let (bids, asks) = (side(&mut s, -1), side(&mut s, 1));
            format!(
                r#"{{"channel":"l2Book","data":{{"coin":"HYPE","time":{},"levels":[[{bids}],[{asks}]]}}}}"#,
                1_764_842_873_555u64 + i as u64 * 500
            )
        })
        .collect())
}
