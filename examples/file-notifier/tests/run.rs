//! The example delivers the JELLY incidents to its file, high and critical only.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

#[test]
fn writes_the_routed_alerts_to_the_file() {
    let dir = std::env::temp_dir().join(format!("kamiyo-file-notifier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("alerts.jsonl");
    let text = kamiyo_testing::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-example-file-notifier")).arg(&path),
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "{text}");
    assert!(
        lines
            .iter()
            .all(|v| v["severity"] == "high" || v["severity"] == "critical")
    );
    assert!(
        lines
            .iter()
            .any(|v| v["change"] == "opened" && v["asset"] == "JELLY"),
        "{text}"
    );
    // One delivery per outbox entry: ids are unique.
    let ids: std::collections::BTreeSet<_> = lines.iter().map(|v| v["id"].to_string()).collect();
    assert_eq!(ids.len(), lines.len());
    let _ = std::fs::remove_dir_all(&dir);
}
