//! The example's detector opens exactly one incident, when the venue diverges.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

#[test]
fn the_custom_detector_fires_on_the_custom_venue() {
    let text = kamiyo_testing::run_ok(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_kamiyo-example-custom-venue"
    )));
    assert_eq!(text.matches("poll ").count(), 5, "{text}");
    assert_eq!(
        text.matches(" opened [high] (acme_divergence) ETH: acme 2031")
            .count(),
        1,
        "{text}"
    );
    let first_incident = text.lines().position(|l| l.contains("incident")).unwrap();
    assert!(
        text.lines()
            .nth(first_incident - 1)
            .unwrap()
            .starts_with("poll 3:"),
        "{text}"
    );
    assert!(!text.contains("BTC"), "the venue does not list BTC: {text}");
}
