//! The correlator's figures in docs/DETECTION.md, reproduced: every multi-protocol replay
//! (`platform/replays/`) through its protocols' engines and one correlator — the expected
//! correlated incidents found (the Mango Markets one with all four attack stages) and nothing
//! opened in the calm fortnight on two venues.

use kamiyo_platform::evaluate::{Replay, replays, run, score};
use kamiyo_platform::registry::Registry;

#[test]
fn the_replays_correlate_as_documented() {
    kamiyo_platform::detectors::declare_threats().unwrap();
    let registry = Registry::embedded().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("replays");
    let (mut opened, mut true_opened, mut expected, mut found) = (0, 0, 0, 0);
    for dir in replays(&root).unwrap() {
        let r = Replay::load(&dir).unwrap();
        let ran = run(&r, &registry).unwrap();
        let s = score(&r, &ran);
        println!(
            "{}: {} steps, {} opened ({} true), {} of {} expected found",
            r.manifest.replay.name, ran.steps, s.opened, s.true_opened, s.found, s.expected
        );
        if r.truth.quiet.is_some() {
            assert_eq!(
                s.opened, 0,
                "{}: {:?}",
                r.manifest.replay.name, ran.correlated
            );
        }
        for d in &s.detail {
            assert!(d.lead_ms.is_some(), "{} not found", d.id);
            for st in &d.expected {
                assert!(
                    d.stages.contains(st),
                    "{}: stage {st} not evidenced ({:?})",
                    d.id,
                    d.stages
                );
            }
        }
        opened += s.opened;
        true_opened += s.true_opened;
        expected += s.expected;
        found += s.found;
    }
    assert_eq!((true_opened, found), (opened, expected));
    assert!(expected >= 4, "{expected}");
}
