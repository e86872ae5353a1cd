//! `ml train` and `ml evaluate` on the committed real candles (5m, and 1h with the outside
//! venues' reference); a model for another feature set or bar length is refused with a clear
//! message.

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"));
    c.current_dir(crate::support::root())
        .env_remove("KAMIYO_CONFIG")
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "warn");
    c
}

#[test]
fn train_evaluate_and_refuse_a_foreign_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("anomaly.json");
    let text = kamiyo_testing::run_ok(bin().args(["ml", "train", "--out"]).arg(&model));
    assert!(
        text.contains("trained isolation forest on 45168 rows"),
        "{text}"
    );
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    // Candle files carry prices, volume and funding: the 12 core features, nothing else.
    assert_eq!(m["features"]["names"].as_array().unwrap().len(), 12);
    assert!(text.contains("not in the model: oi_change_1 (not in the training data)"));
    assert_eq!(m["trained_on"], "hyperliquid BTC,ETH 5m");
    assert_eq!(m["bar_ms"], 300_000);

    let text = kamiyo_testing::run_ok(bin().args(["ml", "evaluate", "--model"]).arg(&model));
    for needle in [
        "## Calm fortnight 2025-06-01..14",
        "| BTC (Hyperliquid) | 4032 |",
        "ETH whale 2025-03-12",
        "95 % interval coverage",
        // The scenarios through the engine with the anomaly detector (deterministic: seeded
        // training, replay at event time).
        "## Scenarios replayed through the engine",
        "| calm-2025-06-01-14 | 14.00 |",
        "1 of 1 | xpl-squeeze: +15 min (XPL) |",
        // Counted only on the labelled market, by a model trained before the scenario.
        "1 of 1 | jelly-squeeze: +65 min (JELLY) |",
        "jelly-2025-03-26: refitted on the training markets before the window: 6864 rows 2025-03-14T14:00:00.000Z .. 2025-03-26T11:55:00.000Z",
        "xpl-2025-08-26: the model given: 45168 rows",
        // No 5m training data precedes the whale: not evaluated rather than scored in-sample.
        "| eth-whale-2025-03-12 | | | | | not evaluated: no 5m training data before the scenario | |",
        "JELLY 2025-03-26: not evaluated on candles",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }

    // 1h: BTC, ETH and SOL with the Binance USD-M + Coinbase reference, so the basis
    // features are learnt; HYPE and POPCAT have no outside venue here and are scored with the
    // basis marginalised.
    let hourly = dir.path().join("anomaly-1h.json");
    let text = kamiyo_testing::run_ok(
        bin()
            .args(["ml", "train", "--interval", "1h", "--out"])
            .arg(&hourly),
    );
    assert!(
        text.contains("trained isolation forest on 10872 rows of 1h bars"),
        "{text}"
    );
    let h: serde_json::Value = serde_json::from_slice(&std::fs::read(&hourly).unwrap()).unwrap();
    let names: Vec<&str> = h["features"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 14, "{names:?}");
    assert!(
        names.ends_with(&["basis_ref", "basis_ref_change_12"]),
        "{names:?}"
    );
    assert_eq!(h["bar_ms"], 3_600_000);
    let text = kamiyo_testing::run_ok(bin().args(["ml", "evaluate", "--model"]).arg(&hourly));
    for needle in [
        "extended features in the model: basis_ref, basis_ref_change_12",
        "## Calm fortnight 2025-06-01..14, 1h bars",
        "| BTC (Hyperliquid, ref Binance+Coinbase) | 336 | 0 | 0 | 0.00 |",
        "| HYPE (Hyperliquid, no outside reference) | 336 |",
        "| all | | | 2 | 0.03 per market-day |",
        "| ETH whale 2025-03-12 | ETH (Hyperliquid, ref Binance+Coinbase) |",
        "ETH whale 2025-03-12: refitted on the training markets before the window: 4896 rows 2025-01-01T00:00:00.000Z .. 2025-03-09T23:00:00.000Z",
        "xpl-squeeze: — (ends before the model's 49-bar warm-up)",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }
    // A deployment that pins 5-minute bars refuses the hourly model instead of scoring it on
    // the wrong bars.
    let out = bin()
        .args(["replay", "xpl-2025-08-26", "--speed", "max"])
        .env("KAMIYO_ML__ANOMALY_MODEL", &hourly)
        .env("KAMIYO_ML__BAR_SECS", "300")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the model scores 3600 s bars but ml.bar_secs = 300"),
        "{err}"
    );

    // A model trained on another feature set is refused, with what to do.
    let mut v = m.clone();
    v["features"]["version"] = 0.into();
    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, v.to_string()).unwrap();
    let out = bin()
        .args(["ml", "evaluate", "--model"])
        .arg(&foreign)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("feature set v0") && err.contains("ml train"),
        "{err}"
    );
}

/// The engine records every market's bars while storing; `ml train --from-store` learns from
/// them, with the inputs the candle files lack (here the outside reference of the calm
/// fortnight's replay; its open interest is a constant, so that feature is left out as such).
#[test]
fn train_from_the_bars_a_stored_replay_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let with_store = |c: &mut Command| {
        c.env_remove("DATABASE_URL")
            .env("KAMIYO_SERVER__DATA_DIR", &data);
    };
    let mut replay = bin();
    replay.args(["replay", "calm-2025-06-01-14", "--store", "--speed", "max"]);
    with_store(&mut replay);
    kamiyo_testing::run_ok(&mut replay);

    let model = dir.path().join("stored.json");
    let mut train = bin();
    train
        .args([
            "ml",
            "train",
            "--from-store",
            "--interval",
            "5m",
            "--since",
            "2025-06-02",
            "--out",
        ])
        .arg(&model);
    with_store(&mut train);
    let text = kamiyo_testing::run_ok(&mut train);
    // Five markets of 5m bars from 2025-06-02; POPCAT has no outside venue, so its rows are
    // left out of training and scored with the basis marginalised. The replay has no trades,
    // so the volume features are constant and left out as well; and it replays candles as held
    // closes (no look-ahead), so a 5m bar's price does not move inside it: no range either.
    assert!(
        text.contains("trained isolation forest on") && text.contains("rows of 5m bars"),
        "{text}"
    );
    assert!(
        text.contains("features (11 of 18)") && text.contains("basis_ref, basis_ref_change_12"),
        "{text}"
    );
    assert!(
        text.contains("not in the model: oi_change_1 (constant in the training data)"),
        "{text}"
    );
    assert!(
        text.contains("not in the model: liq_notional_ratio_48 (not in the training data)"),
        "{text}"
    );
    assert!(
        text.contains("not in the model: volume_z_48 (constant in the training data)"),
        "{text}"
    );
    assert!(
        text.contains("not in the model: range_pct (constant in the training data)"),
        "{text}"
    );
    assert!(text.contains("3686 rows left out of training"), "{text}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(m["bar_ms"], 300_000);
    assert_eq!(
        m["trained_on"],
        "stored 5m bars of 5 markets (BTC,ETH,HYPE,POPCAT,SOL)"
    );
    // The model it wrote is one `ml evaluate` (and the server) accept.
    kamiyo_testing::run_ok(bin().args(["ml", "evaluate", "--model"]).arg(&model));

    // Nothing recorded for another interval: a clear error, not an empty model.
    let mut none = bin();
    none.args(["ml", "train", "--from-store", "--interval", "1h", "--out"])
        .arg(dir.path().join("none.json"));
    with_store(&mut none);
    let out = none.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no 1h bars in the database"), "{err}");
}

/// `--data` names the data or is refused — never silently swapped for the bundled candles —
/// and a fatal error is said once (one `error:` line, no duplicate log line).
#[test]
fn a_data_directory_that_is_not_market_data_is_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["ml", "train", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("m.json"))
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--data") && err.contains("not market data"),
        "{err}"
    );
    assert_eq!(
        err.matches("not market data").count(),
        1,
        "said once: {err}"
    );
    assert!(!dir.path().join("m.json").exists(), "no model written");
    // With the bundled data the root is named.
    let text = kamiyo_testing::run_ok(
        bin()
            .args(["ml", "train", "--data", "testdata/market", "--out"])
            .arg(dir.path().join("m.json")),
    );
    assert!(
        text.contains("training on the market data in testdata/market"),
        "{text}"
    );
}
