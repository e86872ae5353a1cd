//! The feature catalogue's extended inputs (reference, open interest, liquidations, HLP) and
//! how a forest scores a row with an unknown input. The bar series here are synthetic.

use kamiyo_ml::features::{self, Bar, CORE, FEATURES, FeatureExtractor, FeatureSet, N_FEATURES};
use kamiyo_ml::iforest::{IsolationForest, Node, Params, c};

fn col(name: &str) -> usize {
    FEATURES.iter().position(|f| *f == name).unwrap()
}

/// A synthetic market: a slow sine on price and volume, with every extended input known.
fn synthetic(n: usize, extended: bool) -> Vec<Bar> {
    (0..n)
        .map(|i| {
            let t = i as f64;
            let close = 100.0 + (t / 7.0).sin();
            let mut b = Bar::ohlcv(
                i as i64 * 3_600_000,
                close - 0.1,
                close + 0.3,
                close - 0.4,
                close,
                50.0 + 10.0 * (t / 5.0).cos(),
            );
            b.funding = 1e-5 * (t / 11.0).sin();
            if extended {
                b.ref_px = close * (1.0 - 0.001 * (t / 3.0).sin());
                b.open_interest = 1_000.0 + 5.0 * t;
                b.liq_notional = if i % 10 == 0 { 2_000.0 } else { 0.0 };
                b.hlp_pnl = 1_000.0 * t;
                b.hlp_equity = 1e6;
            }
            b
        })
        .collect()
}

#[test]
fn extended_features_follow_their_definitions_and_leave_the_core_alone() {
    let with = features::extract(&synthetic(120, true));
    let without = features::extract(&synthetic(120, false));
    assert_eq!(with.len(), 120 - features::WARMUP + 1);
    let bars = synthetic(120, true);
    for ((t, a), (_, b)) in with.iter().zip(&without) {
        // The core is the same whether or not the extended inputs are known.
        assert_eq!(a[..CORE], b[..CORE]);
        assert!(b[CORE..].iter().all(|v| v.is_nan()), "{b:?}");
        let i = (*t / 3_600_000) as usize;
        let close = |k: usize| bars[i - k].close;
        let basis = |k: usize| (close(k) / bars[i - k].ref_px).ln();
        assert!((a[col("basis_ref")] - basis(0)).abs() < 1e-12);
        assert!((a[col("basis_ref_change_12")] - (basis(0) - basis(12))).abs() < 1e-12);
        let oi = |k: usize| bars[i - k].open_interest;
        assert!((a[col("oi_change_1")] - (oi(0) / oi(1)).ln()).abs() < 1e-12);
        assert!((a[col("oi_change_12")] - (oi(0) / oi(12)).ln()).abs() < 1e-12);
        let traded: f64 = (1..=48).map(|k| bars[i - k].volume * close(k)).sum::<f64>() / 48.0;
        assert!((a[col("liq_notional_ratio_48")] - bars[i].liq_notional / traded).abs() < 1e-12);
        // 1,000 USD of PnL per bar over 12 bars on 1 M of equity.
        assert!((a[col("hlp_pnl_slope_12")] - 0.012).abs() < 1e-12);
    }
}

#[test]
fn an_unknown_input_stays_unknown_and_bad_inputs_do_not_panic() {
    let mut fx = FeatureExtractor::new();
    let mut last = None;
    for (i, mut b) in synthetic(60, true).into_iter().enumerate() {
        if i == 59 {
            b.ref_px = f64::NAN;
            b.open_interest = 0.0;
            b.liq_notional = -1.0;
            b.hlp_equity = f64::INFINITY;
        }
        last = fx.push(b);
    }
    let row = last.unwrap();
    for name in [
        "basis_ref",
        "basis_ref_change_12",
        "oi_change_1",
        "oi_change_12",
        "liq_notional_ratio_48",
        "hlp_pnl_slope_12",
    ] {
        assert!(row[col(name)].is_nan(), "{name}: {}", row[col(name)]);
    }
    assert!(row[..CORE].iter().all(|v| v.is_finite()));
}

#[test]
fn training_keeps_only_the_features_its_data_carries() {
    let mut rows: Vec<_> = features::extract(&synthetic(200, true))
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let (keep, dropped) = features::usable(&rows);
    // HLP's slope is constant in this series: dropped as such; everything else is kept.
    assert_eq!(keep.len(), N_FEATURES - 1, "{dropped:?}");
    assert_eq!(
        dropped,
        vec![("hlp_pnl_slope_12", "constant in the training data")]
    );
    // A few rows without a reference (a market no outside venue lists): the feature is kept
    // and those rows are left out of training; in most rows unknown, it is dropped.
    let n = rows.len();
    for r in rows.iter_mut().take(3) {
        r[col("basis_ref")] = f64::NAN;
    }
    let (keep, _) = features::usable(&rows);
    assert!(keep.contains(&col("basis_ref")));
    let train = features::complete(&rows, &keep);
    assert_eq!(train.len(), n - 3);
    assert_eq!(train[0].len(), keep.len());
    for r in rows.iter_mut().take(n / 2 + 1) {
        r[col("basis_ref")] = f64::NAN;
    }
    let (keep, dropped) = features::usable(&rows);
    assert!(!keep.contains(&col("basis_ref")));
    assert!(dropped.contains(&("basis_ref", "not in the training data")));
    // The set round-trips through names to the same columns.
    let set = FeatureSet::of(&keep);
    let cols = set.columns();
    assert_eq!(cols, keep.iter().map(|c| Some(*c)).collect::<Vec<_>>());
    let x = FeatureSet::select(&cols, &rows[10]);
    assert_eq!(x.len(), keep.len());
    assert_eq!(x[0], rows[10][keep[0]]);
    // A name this build does not know selects as unknown.
    let other = FeatureSet {
        version: features::FEATURE_VERSION,
        names: vec!["ret_1".into(), "no_such_feature".into()],
    };
    let x = FeatureSet::select(&other.columns(), &rows[10]);
    assert_eq!(x[0], rows[10][0]);
    assert!(x[1].is_nan());
}

#[test]
fn the_reference_comes_from_the_venues_covering_the_bar() {
    let mut bars: Vec<Bar> = (0..3)
        .map(|i| Bar::ohlcv(i * 60_000, 1.0, 1.0, 1.0, 100.0, 1.0))
        .collect();
    let venue = |pxs: &[(i64, f64)]| -> Vec<Bar> {
        pxs.iter()
            .map(|(t, p)| Bar::ohlcv(*t, *p, *p, *p, *p, 1.0))
            .collect()
    };
    let venues = [
        venue(&[(0, 99.0), (60_000, 101.0)]),
        venue(&[(0, 103.0), (60_000, 105.0)]),
        venue(&[(0, 100.0), (120_000, 0.0)]),
    ];
    // The rule is the caller's: here, the lowest-indexed venue that covers the bar.
    features::apply_reference(&mut bars, &venues, |pts| {
        pts.iter().min_by_key(|(i, _)| *i).map(|(_, px)| *px)
    });
    assert_eq!(bars[0].ref_px, 99.0);
    assert_eq!(bars[1].ref_px, 101.0);
    assert!(bars[2].ref_px.is_nan()); // a zero close is no quote
}

#[test]
fn a_split_on_an_unknown_input_takes_both_sides_by_training_weight() {
    // One tree: x0 < 0.5 → leaf of 3 rows at path 2, else leaf of 7 rows at path 3.
    let leaf = |value: f64, size: u32| Node {
        feature: u32::MAX,
        value,
        left: 0,
        right: 0,
        size,
    };
    let forest = IsolationForest {
        params: Params::default(),
        dims: 2,
        samples: 10,
        trees: vec![vec![
            Node {
                feature: 0,
                value: 0.5,
                left: 1,
                right: 2,
                size: 10,
            },
            leaf(2.0, 3),
            leaf(3.0, 7),
        ]],
    };
    let s = |x: &[f64]| forest.score(x);
    let expect = |path: f64| 2f64.powf(-path / c(10));
    assert!((s(&[0.0, 1.0]) - expect(2.0)).abs() < 1e-15);
    assert!((s(&[1.0, 1.0]) - expect(3.0)).abs() < 1e-15);
    assert!((s(&[f64::NAN, 1.0]) - expect(0.3 * 2.0 + 0.7 * 3.0)).abs() < 1e-15);
    // An unknown input isolates nothing.
    assert_eq!(forest.explain(&[f64::NAN, 1.0]), vec![0.0, 0.0]);

    // A fitted forest: a feature constant in training is never split on, so not knowing it
    // changes nothing; not knowing a used one gives a score between the extremes of the
    // known values.
    let rows: Vec<Vec<f64>> = (0..500)
        .map(|i| {
            let t = f64::from(i);
            vec![(t * 0.37).sin(), (t * 0.11).cos(), 4.0]
        })
        .collect();
    let f = IsolationForest::fit(&rows, Params::default()).unwrap();
    let x = [0.2, -0.3, 4.0];
    assert_eq!(f.score(&x), f.score(&[0.2, -0.3, f64::NAN]));
    let grid: Vec<f64> = (-40..=40)
        .map(|k| f.score(&[f64::from(k) * 0.05, -0.3, 4.0]))
        .collect();
    let m = f.score(&[f64::NAN, -0.3, 4.0]);
    let lo = grid.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = grid.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(m > lo && m < hi, "{lo} < {m} < {hi}");
}
