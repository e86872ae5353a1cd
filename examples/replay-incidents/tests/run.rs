//! The example runs and finds the JELLY squeeze.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

#[test]
fn replays_jelly_and_meets_its_ground_truth() {
    let text = kamiyo_testing::run_ok(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_kamiyo-example-replay-incidents"
    )));
    assert!(text.contains("jelly-2025-03-26 (reconstructed)"), "{text}");
    assert!(
        text.contains("peak critical  mark_manipulation")
            || text.contains("peak critical  oracle_deviation"),
        "{text}"
    );
    assert!(!text.contains("MISSED"), "{text}");
    assert!(
        text.contains("  latest: "),
        "the title shown is the latest: {text}"
    );
}
