//! Both protocols' incidents are stored in one store and served by one API, kept apart.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

#[test]
fn two_protocols_one_store_one_api() {
    let text = kamiyo_testing::run_ok(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_kamiyo-example-two-protocols"
    )));
    let section = |p: &str| -> Vec<String> {
        let head = format!("GET /security/incidents?protocol={p}: ");
        let start = text.lines().position(|l| l.starts_with(&head)).unwrap();
        text.lines()
            .skip(start + 1)
            .take_while(|l| l.starts_with("  "))
            .map(str::to_owned)
            .collect()
    };
    let hl = section("hyperliquid");
    let acme = section("acme-perps");
    assert!(hl.len() >= 5, "{text}");
    assert!(
        hl.iter()
            .all(|l| l.trim_start().starts_with("hyperliquid ")),
        "{text}"
    );
    assert!(!acme.is_empty(), "{text}");
    assert!(
        acme.iter()
            .all(|l| l.trim_start().starts_with("acme-perps ")),
        "{text}"
    );
    // The same detector on the same market on both venues: two incidents, two keys.
    assert!(
        hl.iter().any(|l| l.contains(" mark_deviation:JELLY ")),
        "{text}"
    );
    assert!(
        acme.iter()
            .any(|l| l.contains(" acme-perps/mark_deviation:JELLY ")),
        "{text}"
    );
    assert!(
        !acme.iter().any(|l| l.contains("hlp_")),
        "acme-perps runs no HLP detector: {text}"
    );
    assert!(
        text.contains("acme-perps: detectors oracle, liquidations, thin_market, feeds"),
        "{text}"
    );
}
