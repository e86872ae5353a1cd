//! Isolation Forest vs scikit-learn 1.9.1 and ARIMA vs statsmodels 0.15.0, on identical data.
//! References: `crates/ml/reference/make_reference.py` (outputs committed beside it).

use std::path::PathBuf;

use kamiyo_ml::arima::Arima;
use kamiyo_ml::eval::{roc_auc, spearman};
use kamiyo_ml::features::{self, CORE, FEATURES, Row};
use kamiyo_ml::iforest::{IsolationForest, Params, SklearnForest};
use kamiyo_ml::model::{AnomalyModelFile, ModelError};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn csv_rows(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect()
}

const CALM_START: i64 = 1_748_736_000_000; // 2025-06-01
const CALM_END: i64 = 1_749_945_600_000; // 2025-06-15

fn calm_btc_features() -> Vec<(i64, Row)> {
    let mut bars = features::parse_candles(&read(
        "../../testdata/market/hyperliquid/candles_5m/hl_perp_BTC_5m_2025-03-14_2025-07-26.csv",
    ))
    .unwrap();
    features::apply_funding(
        &mut bars,
        &read("../../testdata/market/hyperliquid/funding/hl_funding_BTC_1h.csv"),
    )
    .unwrap();
    features::extract(&bars)
        .into_iter()
        .filter(|(t, _)| (CALM_START..CALM_END).contains(t))
        .collect()
}

/// A forest with scikit-learn's settings (100 trees, 256 rows each) fitted on `x` with `seed`,
/// and its scores of `x`.
fn fitted_scores(x: &[Vec<f64>], seed: u64) -> Vec<f64> {
    let f = IsolationForest::fit(
        x,
        Params {
            trees: 100,
            max_samples: 256,
            seed,
        },
    )
    .unwrap();
    x.iter().map(|r| f.score(r)).collect()
}

#[test]
fn feature_rows_are_the_ones_the_reference_used() {
    let rows = calm_btc_features();
    // The reference was made from the core features (a candle file has no extended input:
    // those are NaN here, and checked to be).
    let mut text = format!("time_ms,{}\n", FEATURES[..CORE].join(","));
    for (t, f) in &rows {
        assert!(f[CORE..].iter().all(|v| v.is_nan()), "{f:?}");
        let vals: Vec<String> = f[..CORE].iter().map(|v| format!("{v:?}")).collect();
        text.push_str(&format!("{t},{}\n", vals.join(",")));
    }
    let path = root().join("reference/btc_5m_calm_features.csv");
    if std::env::var_os("KAMIYO_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert!(rows.len() > 3_900, "{} rows", rows.len());
    assert_eq!(
        text,
        std::fs::read_to_string(&path).unwrap(),
        "the features changed: bump FEATURE_VERSION, rerun make_reference.py"
    );
}

#[test]
fn isolation_forest_ranks_like_scikit_learn() {
    let data = csv_rows(&read("reference/iforest_validation.csv"));
    let x: Vec<Vec<f64>> = data.iter().map(|r| r[..12].to_vec()).collect();
    let labels: Vec<bool> = data.iter().map(|r| r[12] > 0.5).collect();
    let sk: Vec<f64> = csv_rows(&read("reference/iforest_sklearn_scores.csv"))
        .into_iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(sk.len(), x.len());
    let mut rhos = Vec::new();
    for seed in 0..3 {
        let ours = fitted_scores(&x, seed);
        let rho = spearman(&ours, &sk);
        let (auc_ours, auc_sk) = (roc_auc(&ours, &labels), roc_auc(&sk, &labels));
        assert!(rho >= 0.9, "seed {seed}: Spearman {rho:.4}");
        assert!(
            (auc_ours - auc_sk).abs() <= 0.02,
            "seed {seed}: ROC-AUC {auc_ours:.4} vs scikit-learn {auc_sk:.4}"
        );
        // Scores are on sklearn's scale, not just in its order.
        let mean_abs: f64 = ours
            .iter()
            .zip(&sk)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / ours.len() as f64;
        assert!(mean_abs < 0.02, "seed {seed}: mean |Δscore| {mean_abs:.4}");
        rhos.push((rho, auc_ours, auc_sk));
    }
    eprintln!("(Spearman, our ROC-AUC, scikit-learn ROC-AUC) over 3 seeds: {rhos:?}");
}

/// scikit-learn's own fitted trees, loaded and scored by this crate: every score equals
/// scikit-learn's `-score_samples` to 1e-9 (inputs rounded to f32, as scikit-learn does). This
/// checks the scoring path — leaf path lengths, c(n), normalisation — exactly, which rank
/// statistics alone cannot (a plain distance score also ranks this data like sklearn does).
#[test]
fn scores_scikit_learns_own_trees_exactly() {
    let export: SklearnForest =
        serde_json::from_str(&read("reference/iforest_sklearn_trees.json")).unwrap();
    assert_eq!(export.trees.len(), 100);
    let f = IsolationForest::from_sklearn(&export).unwrap();
    let data = csv_rows(&read("reference/iforest_validation.csv"));
    let sk: Vec<f64> = csv_rows(&read("reference/iforest_sklearn_scores.csv"))
        .into_iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(sk.len(), data.len());
    let as_f32 = |r: &[f64]| -> Vec<f64> { r.iter().map(|v| f64::from(*v as f32)).collect() };
    let mut worst = 0.0_f64;
    for (r, want) in data.iter().zip(&sk) {
        let got = f.score(&as_f32(&r[..12]));
        worst = worst.max((got - want).abs());
    }
    assert!(worst <= 1e-9, "largest |ours - sklearn| = {worst:e}");
    eprintln!("largest difference from scikit-learn's scores: {worst:e}");
    // A malformed export is refused with the tree named, never a panic.
    let mut bad = export.clone();
    bad.trees[3].children_left[0] = 10_000_000;
    assert_eq!(IsolationForest::from_sklearn(&bad).unwrap_err().tree, 3);
}

fn labelled(rel: &str, dims: usize) -> (Vec<Vec<f64>>, Vec<bool>) {
    let data = csv_rows(&read(rel));
    (
        data.iter().map(|r| r[..dims].to_vec()).collect(),
        data.iter().map(|r| r[dims] > 0.5).collect(),
    )
}

/// The assertions a model must pass on data where isolation and distance disagree (two
/// correlated clusters away from the origin; anomalies between them and off the correlation
/// line — synthetic, `make_reference.py`): ranks like scikit-learn's fitted forest, separates
/// the anomalies, and isolates the points between the clusters. Returns the ROC-AUC.
fn check_disagreement_data(scores: &[f64], sk: &[f64], labels: &[bool]) -> Result<f64, String> {
    let rho = spearman(scores, sk);
    let auc = roc_auc(scores, labels);
    // The 15 rows after the 2,000 normal ones sit between the clusters.
    let n = 2015;
    let between: Vec<bool> = (0..n).map(|i| i >= 2000).collect();
    let auc_between = roc_auc(&scores[..n], &between);
    let msg = format!("Spearman {rho:.3}, ROC-AUC {auc:.3}, between the clusters {auc_between:.3}");
    if rho >= 0.9 && auc >= 0.7 && auc_between >= 0.9 {
        Ok(auc)
    } else {
        Err(msg)
    }
}

#[test]
fn fit_isolates_where_distance_cannot() {
    let (x, labels) = labelled("reference/iforest_disagree.csv", 4);
    let sk: Vec<f64> = csv_rows(&read("reference/iforest_disagree_sklearn_scores.csv"))
        .into_iter()
        .map(|r| r[0])
        .collect();
    let sk_aucs = values(
        &serde_json::from_str::<serde_json::Value>(&read(
            "reference/iforest_disagree_sklearn_auc.json",
        ))
        .unwrap()["roc_auc"],
    );
    let sk_mean = sk_aucs.iter().sum::<f64>() / sk_aucs.len() as f64;
    let mut ours = Vec::new();
    for seed in 0..3 {
        let scores = fitted_scores(&x, seed);
        ours.push(
            check_disagreement_data(&scores, &sk, &labels)
                .unwrap_or_else(|m| panic!("seed {seed}: {m}")),
        );
    }
    // As well as scikit-learn does on average (its ROC-AUC over 20 seeds has sd ~0.018).
    let mean = ours.iter().sum::<f64>() / ours.len() as f64;
    assert!(
        (mean - sk_mean).abs() <= 0.03,
        "ROC-AUC {ours:?} (mean {mean:.3}) vs scikit-learn's 20-seed mean {sk_mean:.3}"
    );
    // The baseline that passes the rank checks on the calm data — distance from the mean of
    // the standardised rows — fails these, so the checks can tell the two apart.
    let dims = x[0].len();
    let n = x.len() as f64;
    let mean: Vec<f64> = (0..dims)
        .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let sd: Vec<f64> = (0..dims)
        .map(|j| (x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt())
        .collect();
    let dist: Vec<f64> = x
        .iter()
        .map(|r| {
            (0..dims)
                .map(|j| ((r[j] - mean[j]) / sd[j]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let e = check_disagreement_data(&dist, &sk, &labels).unwrap_err();
    eprintln!(
        "ours ROC-AUC {ours:?}, scikit-learn mean {sk_mean:.3}; distance baseline fails as it should: {e}"
    );
}

#[test]
fn explanations_name_the_shifted_feature() {
    let data = csv_rows(&read("reference/iforest_validation.csv"));
    let x: Vec<Vec<f64>> = data.iter().map(|r| r[..12].to_vec()).collect();
    let f = IsolationForest::fit(&x, Params::default()).unwrap();
    let mut probe = vec![0.0; 12];
    probe[7] = 12.0; // a volume spike, everything else ordinary
    let e = f.explain(&probe);
    let top = (0..12).max_by(|a, b| e[*a].total_cmp(&e[*b])).unwrap();
    assert_eq!(FEATURES[top], "log_volume_ratio_48", "{e:?}");
    assert!(f.score(&probe) > f.score(&[0.0; 12]));
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&read("reference/arima_reference.json")).unwrap()
}

fn values(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn arima_matches_statsmodels() {
    let r = reference();
    for (name, s) in r["series"].as_object().unwrap() {
        let y = values(&s["values"]);
        let d = s["d"].as_u64().unwrap() as usize;
        for label in ["best", "fixed_1_1"] {
            let e = &s[label];
            let order: Vec<usize> = e["order"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let m = Arima::fit(&y, order[0], d, order[2]).unwrap();
            eprintln!(
                "{name} {label} {order:?}: ours ar {:?} ma {:?} llf {:.4}; statsmodels {} llf {:.4}",
                m.ar,
                m.ma,
                m.loglike,
                e["params"],
                e["llf"].as_f64().unwrap()
            );
            let params = e["params"].as_object().unwrap();
            let sm_llf = e["llf"].as_f64().unwrap();
            // Our likelihood is never worse than statsmodels' optimum.
            assert!(
                m.loglike >= sm_llf - 0.01,
                "{name} {label}: llf {} vs {sm_llf}",
                m.loglike
            );
            // Coefficients within 0.02 — unless we found a strictly better optimum on a flat
            // ridge (an ARMA(1,1) whose AR and MA roots nearly cancel, as on a random walk),
            // where statsmodels' optimiser stops early.
            let better = m.loglike > sm_llf + 0.01;
            for (i, a) in m.ar.iter().enumerate() {
                let want = params[&format!("ar.L{}", i + 1)].as_f64().unwrap();
                assert!(
                    better || close(*a, want, 0.02),
                    "{name} {label}: ar.L{} {a} vs {want}",
                    i + 1
                );
            }
            for (i, t) in m.ma.iter().enumerate() {
                let want = params[&format!("ma.L{}", i + 1)].as_f64().unwrap();
                assert!(
                    better || close(*t, want, 0.02),
                    "{name} {label}: ma.L{} {t} vs {want}",
                    i + 1
                );
            }
            let s2 = params["sigma2"].as_f64().unwrap();
            assert!(
                (m.sigma2 / s2 - 1.0).abs() < 0.02,
                "{name} {label}: sigma2 {} vs {s2}",
                m.sigma2
            );
            if let Some(c) = params.get("const") {
                let c = c.as_f64().unwrap();
                assert!(
                    close(m.mean, c, 0.02 * c.abs().max(0.1)),
                    "{name} {label}: const {} vs {c}",
                    m.mean
                );
            }
            let aic = e["aic"].as_f64().unwrap();
            assert!(
                close(m.aic, aic, 0.5),
                "{name} {label}: AIC {} vs {aic}",
                m.aic
            );
            // 24-step forecast and 95 % interval: within 1 % of the interval's width.
            let f = m.forecast(24, 0.95);
            let (fm, lo, hi) = (
                values(&e["forecast"]),
                values(&e["lower"]),
                values(&e["upper"]),
            );
            for h in 0..24 {
                let width = hi[h] - lo[h];
                let tol = 0.01 * width;
                assert!(
                    close(f.mean[h], fm[h], tol),
                    "{name} {label} h{h}: mean {} vs {}",
                    f.mean[h],
                    fm[h]
                );
                assert!(
                    close(f.lower[h], lo[h], 2.0 * tol),
                    "{name} {label} h{h}: lower {} vs {}",
                    f.lower[h],
                    lo[h]
                );
                assert!(
                    close(f.upper[h], hi[h], 2.0 * tol),
                    "{name} {label} h{h}: upper {} vs {}",
                    f.upper[h],
                    hi[h]
                );
            }
        }
        // The order chosen by AIC over p, q in 0..=3.
        let best = Arima::select(&y, 3, d, 3).unwrap();
        let want: Vec<usize> = s["best"]["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let want = [want[0], want[2]];
        let sm_aic = |p: usize, q: usize| s["aic"][format!("{p},{q}")].as_f64().unwrap();
        // The choice is at least as good as statsmodels': its AIC is not above the best
        // statsmodels found; a different order is only chosen where statsmodels' own fit of
        // that order stopped at a worse likelihood (so its AIC there is higher than ours).
        let sm_best = sm_aic(want[0], want[1]);
        eprintln!(
            "{name}: chose ({}, {d}, {}) AIC {:.3}; statsmodels ({}, {d}, {}) AIC {sm_best:.3}, its AIC for our order {:.3}",
            best.p,
            best.q,
            best.aic,
            want[0],
            want[1],
            sm_aic(best.p, best.q)
        );
        assert!(
            best.aic <= sm_best + 0.5,
            "{name}: AIC {} vs {sm_best}",
            best.aic
        );
        if (best.p, best.q) != (want[0], want[1]) {
            assert!(
                best.aic < sm_aic(best.p, best.q) - 0.5,
                "{name}: chose ({}, {d}, {}) where statsmodels fits it as well",
                best.p,
                best.q
            );
        }
    }
}

#[test]
fn model_files_refuse_other_feature_sets() {
    let x: Vec<Vec<f64>> = (0..300).map(|i| vec![f64::from(i % 17); 12]).collect();
    let forest = IsolationForest::fit(&x, Params::default()).unwrap();
    let file = AnomalyModelFile {
        format: kamiyo_ml::model::FORMAT,
        library_version: "test".into(),
        features: kamiyo_ml::FeatureSet::of(&(0..CORE).collect::<Vec<_>>()),
        trained_on: "synthetic".into(),
        bar_ms: 300_000,
        window: (0, 1),
        rows: 300,
        data_hash: "0".into(),
        threshold: 0.6,
        threshold_quantile: 0.99,
        scaler: kamiyo_ml::model::Scaler::fit(&x),
        forest,
    };
    let json = file.to_json();
    let back = AnomalyModelFile::from_json(&json).unwrap();
    for r in x.iter().step_by(7) {
        assert!((back.score(r) - file.score(r)).abs() < 1e-9);
    }
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // A name this build does not compute, a duplicate, another catalogue version: refused.
    for (what, edit) in [
        ("unknown name", ("names", 0, serde_json::json!("ret_5"))),
        ("duplicate", ("names", 1, serde_json::json!("ret_1"))),
    ] {
        let mut bad = v.clone();
        bad["features"][edit.0][edit.1] = edit.2;
        let e = AnomalyModelFile::from_json(&bad.to_string()).unwrap_err();
        assert!(matches!(e, ModelError::Features { .. }), "{what}: {e}");
        assert!(
            e.to_string()
                .contains("retrain with `kamiyo-hyperliquid ml train`"),
            "{e}"
        );
    }
    let mut v = v;
    // Dimensions that disagree with the feature list, or no bar interval: malformed.
    let mut short = v.clone();
    short["scaler"]["mean"].as_array_mut().unwrap().pop();
    assert!(matches!(
        AnomalyModelFile::from_json(&short.to_string()),
        Err(ModelError::Malformed(_))
    ));
    let mut no_bar = v.clone();
    no_bar["bar_ms"] = 0.into();
    assert!(matches!(
        AnomalyModelFile::from_json(&no_bar.to_string()),
        Err(ModelError::Malformed(_))
    ));
    v["features"]["version"] = 1.into();
    let e = AnomalyModelFile::from_json(&v.to_string()).unwrap_err();
    assert!(matches!(e, ModelError::Features { .. }), "{e}");
    // A format-1 file (the previous build's) is refused with the fix.
    let mut old = v.clone();
    old["format"] = 1.into();
    let e = AnomalyModelFile::from_json(&old.to_string()).unwrap_err();
    assert!(matches!(e, ModelError::Format { found: 1 }), "{e}");
    assert!(e.to_string().contains("ml train"), "{e}");
    v["format"] = 99.into();
    assert!(matches!(
        AnomalyModelFile::from_json(&v.to_string()),
        Err(ModelError::Format { found: 99 })
    ));
    assert!(matches!(
        AnomalyModelFile::from_json("{not json"),
        Err(ModelError::Malformed(_))
    ));
    // Bad training input is an error, not a panic.
    assert!(IsolationForest::fit(&[], Params::default()).is_err());
    assert!(IsolationForest::fit(&[vec![1.0, f64::NAN]], Params::default()).is_err());
    assert!(Arima::fit(&[1.0; 5], 1, 0, 1).is_err());
    assert!(Arima::fit(&vec![2.0; 200], 0, 0, 0).is_err());
}
