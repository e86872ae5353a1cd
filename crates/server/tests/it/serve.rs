//! `replay --serve` of a scenario that is already stored serves what is stored (and says so)
//! instead of exiting: the README's try-it command works more than once per data directory.

use std::process::Command;

use crate::support::{root, serve};

fn replay(data: &std::path::Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"));
    c.current_dir(root())
        .args(["replay", "xpl-2025-08-26"])
        .args(extra)
        .env_remove("DATABASE_URL")
        .env_remove("KAMIYO_CONFIG")
        .env("KAMIYO_SERVER__DATA_DIR", data)
        .env("KAMIYO_SERVER__BIND", "127.0.0.1:0")
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "warn");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_a_stored_replay_serves_what_is_stored() {
    kamiyo_aggregators::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    kamiyo_testing::run_ok(&mut replay(&data, &["--store"]));

    let crate::support::Serving {
        mut server,
        base,
        before,
        ..
    } = serve(replay(&data, &["--serve"]));
    let said_stored = before
        .iter()
        .any(|l| l.starts_with("already stored completely"));
    assert!(said_stored, "it says it serves what is stored");
    let body: serde_json::Value = reqwest::get(format!("{base}/security/incidents?limit=50"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incidents = body["incidents"].as_array().unwrap();
    assert!(
        incidents
            .iter()
            .any(|i| i["asset"] == "XPL" && i["peak_severity"] == "critical"),
        "{body}"
    );
    // Still serving: not an exit after the message.
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server keeps running"
    );
}
