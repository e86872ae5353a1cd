//! Every scenario under `scenarios/` loads, expands deterministically, is time-ordered, is
//! labelled, and its ground truth refers to times inside the window.

use std::path::PathBuf;

use kamiyo_aggregators::replay::{Provenance, Scenario};
use kamiyo_core_models::MarketEvent;

fn scenario_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("scenario.toml").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn all_scenarios_load_and_are_deterministic() {
    let dirs = scenario_dirs();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let a = Scenario::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let b = Scenario::load(&dir).unwrap();
        assert_eq!(
            a.events,
            b.events,
            "{}: expansion is deterministic",
            dir.display()
        );
        assert!(
            a.events.windows(2).all(|w| w[0].time() <= w[1].time()),
            "{}: time-ordered",
            dir.display()
        );
        let m = &a.manifest.scenario;
        assert_eq!(dir.file_name().unwrap().to_string_lossy(), m.name);
        assert!(
            a.events
                .iter()
                .all(|e| e.time() >= m.start && e.time() < m.end)
        );
        assert!(
            a.events
                .iter()
                .any(|e| matches!(e, MarketEvent::AssetCtx(_)))
        );
        for i in &a.truth.incident {
            assert!(
                i.start >= m.start && i.end <= m.end && i.start < i.end,
                "{}: {} inside the window",
                m.name,
                i.id
            );
        }
        if m.provenance != Provenance::RecordedCandles {
            assert!(!a.truth.incident.is_empty() || a.truth.quiet.is_some());
        }
    }
}

/// A "recorded-candles" label is refused when the scenario holds anything reconstructed, so the
/// label on the calm fortnight is checked against its contents, not read back from it.
#[test]
fn a_recorded_label_on_reconstructed_contents_is_refused() {
    let calm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/calm-2025-06-01-14");
    let manifest = std::fs::read_to_string(calm.join("scenario.toml")).unwrap();
    let plant = |extra: &str, events: bool| {
        let dir = tempfile::tempdir().unwrap();
        // The label is checked before any data file is read.
        std::fs::write(
            dir.path().join("scenario.toml"),
            format!("{manifest}\n{extra}"),
        )
        .unwrap();
        if events {
            std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        }
        (
            Scenario::load(dir.path())
                .map(|_| ())
                .map_err(|e| e.to_string()),
            dir,
        )
    };
    let (with_events, _d1) = plant("", true);
    assert!(
        with_events
            .as_ref()
            .is_err_and(|e| e.contains("events.jsonl") && e.contains("reconstructed")),
        "{with_events:?}"
    );
    let (with_path, _d2) = plant(
        "[[path]]\ncoin = \"BTC\"\nfield = \"mark\"\nnote = \"x\"\npoints = [[\"2025-06-01T00:00:00Z\", \"1\"], [\"2025-06-02T00:00:00Z\", \"2\"]]\n",
        false,
    );
    assert!(
        with_path.as_ref().is_err_and(|e| e.contains("[[path]]")),
        "{with_path:?}"
    );
}

#[test]
fn the_calm_fortnight_is_real_candles_only() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/calm-2025-06-01-14");
    let s = Scenario::load(&dir).unwrap();
    assert_eq!(s.manifest.scenario.provenance, Provenance::RecordedCandles);
    assert!(s.truth.incident.is_empty());
    let q = s.truth.quiet.as_ref().unwrap();
    assert_eq!((q.max_critical, q.max_high), (0, 3));
    let ctxs = s
        .events
        .iter()
        .filter(|e| matches!(e, MarketEvent::AssetCtx(_)))
        .count();
    let full = 14 * 24 * 60 * 5;
    assert!(
        ctxs < full && ctxs > full * 99 / 100,
        "one context per minute per market, except in data gaps: {ctxs} of {full}"
    );
    // The Hyperliquid HYPE candles have a zero-volume gap on 2025-06-08 09:45-10:25: no prices
    // are invented inside it.
    let in_gap = |e: &&MarketEvent| {
        matches!(e, MarketEvent::AssetCtx(c) if c.coin.as_str() == "HYPE"
            && c.time.0 > 1_749_376_800_000 && c.time.0 < 1_749_378_600_000)
    };
    assert_eq!(s.events.iter().filter(in_gap).count(), 0);
    assert!(
        !s.events
            .iter()
            .any(|e| matches!(e, MarketEvent::Fill(_) | MarketEvent::Vault(_)))
    );
}

#[test]
fn the_fast_event_decoder_agrees_with_serde_on_every_scenario_event() {
    for dir in scenario_dirs() {
        let s = Scenario::load(&dir).unwrap();
        for e in &s.events {
            let line = serde_json::to_string(e).unwrap();
            let fast = kamiyo_aggregators::replay::decode_event_json(&line).unwrap();
            assert_eq!(&fast, e);
            // Equal as text too: every decimal keeps its scale.
            assert_eq!(serde_json::to_string(&fast).unwrap(), line);
            assert_eq!(serde_json::from_str::<MarketEvent>(&line).unwrap(), fast);
        }
    }
    // A line with the tag elsewhere still decodes (slow path), and garbage is an error.
    let e = kamiyo_aggregators::replay::decode_event_json(
        r#"{"coin":"BTC","time":1,"mids":[],"event":"mids"}"#,
    );
    assert!(e.is_err() || matches!(e, Ok(MarketEvent::Mids(_))));
    assert!(
        kamiyo_aggregators::replay::decode_event_json(r#"{"event":"asset_ctx","coin":"BTC"}"#)
            .is_err()
    );
}

mod event_lines {
    use kamiyo_aggregators::replay::decode_event_json;
    use kamiyo_core_models::MarketEvent;
    use proptest::prelude::*;

    /// Lines in serde's layout for the event kinds read straight through, with and without
    /// their optional fields.
    const LINES: [&str; 6] = [
        r#"{"event":"reference","venue":"binance","coin":"BTC","price":"104544.6","time":1748736000000}"#,
        r#"{"event":"reference","venue":"coinbase","coin":"kPEPE","price":"0.0000123","bid":"0.0000122","ask":"0.0000124","time":1748736000001}"#,
        r#"{"event":"asset_ctx","coin":"BTC","time":1748736000000,"oracle_px":"104544.6","mark_px":"104585","mid_px":"104585","open_interest":"38000","funding":"-0.0000125","day_ntl_vlm":"1624599372.03","prev_day_px":"104005"}"#,
        r#"{"event":"asset_ctx","coin":"xyz:XYZ100","time":1,"oracle_px":"1.50","mark_px":"1.5","open_interest":"0","funding":"0","day_ntl_vlm":"0.0","premium":"0.001","impact_pxs":["1.49","1.51"]}"#,
        r#"{"event":"mids","time":1748736000000,"mids":[["BTC","104585"],["@107","32.692"],["POPCAT","0.36429"]]}"#,
        r#"{"event":"mids","time":5,"mids":[]}"#,
    ];

    #[test]
    fn straight_through_lines_decode_like_serde() {
        for line in LINES {
            let fast = decode_event_json(line).unwrap();
            assert_eq!(
                fast,
                serde_json::from_str::<MarketEvent>(line).unwrap(),
                "{line}"
            );
            assert_eq!(serde_json::to_string(&fast).unwrap(), line);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn mutated_lines_decode_like_serde_or_not_at_all(which in 0usize..6, cut in any::<usize>(), junk in "[\\[\\]{}\",:0-9a-zA-Z._\\\\ \n\u{1}-]{0,4}") {
            let line = LINES[which];
            let at = cut % (line.len() + 1);
            let mutated = format!("{}{}{}", &line[..at], junk, &line[at..]);
            let general = serde_json::from_str::<MarketEvent>(&mutated).ok();
            if let Ok(fast) = decode_event_json(&mutated) {
                prop_assert_eq!(Some(&fast), general.as_ref(), "{}", mutated);
            }
        }
    }
}
