//! `ml train` and `ml evaluate` on the committed real candles; a model for another feature
//! set is refused with a clear message.

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
    assert_eq!(m["features"]["names"].as_array().unwrap().len(), 12);
    assert_eq!(m["trained_on"], "hyperliquid BTC,ETH 5m");

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
        "1 of 1 | jelly-squeeze: +65 min (HYPE) |",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }

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
