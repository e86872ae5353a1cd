//! The ensemble's models against scikit-learn 1.9.1 (`platform/reference/make_ensemble_reference.py`
//! wrote the references; the inputs are the open core's, `crates/ml/reference`):
//! - One-Class SVM: scikit-learn's fitted model, loaded, scores every row as scikit-learn does;
//!   a fit on the same rows ranks them as scikit-learn's does (Spearman ≥ 0.9) and detects
//!   the labelled outliers as well (ROC-AUC within 0.02) — on the real calm-fortnight rows
//!   with synthetic outliers and on synthetic data where distance from the mean fails;
//! - Random Forest: trained and tested on the same split as scikit-learn's, ROC-AUC within 0.02,
//!   on the calm-fortnight rows and on an XOR no linear model separates (logistic ≈ 0.5).

use kamiyo_ml::eval::{roc_auc, spearman};
use kamiyo_platform::ensemble::{Ensemble, OneClassSvm, RandomForest, Settings};
use serde_json::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Rows and labels of a CSV whose last column is `label`.
fn labelled(path: &std::path::Path) -> (Vec<Vec<f64>>, Vec<bool>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for line in text.lines().skip(1) {
        let mut v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        labels.push(v.pop().unwrap() == 1.0);
        rows.push(v);
    }
    (rows, labels)
}

fn reference(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("platform/reference").join(name)).unwrap(),
    )
    .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn even<T: Clone>(v: &[T]) -> Vec<T> {
    v.iter().step_by(2).cloned().collect()
}

fn odd<T: Clone>(v: &[T]) -> Vec<T> {
    v.iter().skip(1).step_by(2).cloned().collect()
}

#[test]
fn one_class_svm_matches_scikit_learn() {
    let refs = reference("ocsvm_sklearn.json");
    for (set, file) in [
        ("validation", "iforest_validation.csv"),
        ("disagree", "iforest_disagree.csv"),
    ] {
        let (rows, labels) = labelled(&root().join("crates/ml/reference").join(file));
        let r = &refs[set];
        let sk = floats(&r["decision"]);
        // scikit-learn's own model, scored by kamiyo's decision function.
        let sv: Vec<Vec<f64>> = r["support_vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let loaded = OneClassSvm::from_parts(
            r["gamma"].as_f64().unwrap(),
            r["rho"].as_f64().unwrap(),
            &sv,
            floats(&r["dual_coef"]),
        )
        .unwrap();
        let worst = rows
            .iter()
            .zip(&sk)
            .map(|(x, s)| (loaded.decision(x) - s).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-9, "{set}: loaded model differs by {worst}");
        // kamiyo's fit on the same (even) rows with the same ν and γ.
        let fit = OneClassSvm::fit(
            &even(&rows),
            r["nu"].as_f64().unwrap(),
            Some(r["gamma"].as_f64().unwrap()),
            1e-6,
        )
        .unwrap();
        let ours: Vec<f64> = rows.iter().map(|x| fit.decision(x)).collect();
        let rho = spearman(&ours, &sk);
        let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<_>>();
        let auc = roc_auc(&neg(&ours), &labels);
        let sk_auc = r["auc"].as_f64().unwrap();
        println!(
            "one-class SVM, {set}: {} support vectors (scikit-learn {}), ρ {:.6} vs {:.6}, Spearman {rho:.4}, ROC-AUC {auc:.4} vs {sk_auc:.4}, loaded model max |Δ| {worst:.1e}",
            fit.support_vectors(),
            sv.len(),
            fit.rho,
            r["rho"].as_f64().unwrap()
        );
        assert!(rho >= 0.9, "{set}: Spearman {rho}");
        assert!((auc - sk_auc).abs() <= 0.02, "{set}: {auc} vs {sk_auc}");
    }
}

#[test]
fn random_forest_matches_scikit_learn() {
    let refs = reference("rf_sklearn.json");
    for (set, path) in [
        (
            "validation",
            root().join("crates/ml/reference/iforest_validation.csv"),
        ),
        ("xor", root().join("platform/reference/rf_xor.csv")),
    ] {
        let (rows, labels) = labelled(&path);
        let forest = RandomForest::fit(&even(&rows), &even(&labels), 100, 0).unwrap();
        let p = forest.proba(&odd(&rows));
        let auc = roc_auc(&p, &odd(&labels));
        let sk = refs[set]["auc"].as_f64().unwrap();
        let linear = refs[set]["logistic_auc"].as_f64().unwrap();
        println!(
            "random forest, {set}: ROC-AUC {auc:.4} vs scikit-learn {sk:.4} (logistic regression {linear:.4})"
        );
        assert!((auc - sk).abs() <= 0.02, "{set}: {auc} vs {sk}");
        // One row at a time agrees with the batch.
        assert_eq!(forest.proba_one(&odd(&rows)[0]), p[0]);
    }
}

#[test]
fn the_ensemble_flags_outliers_with_agreement() {
    let (rows, labels) = labelled(&root().join("crates/ml/reference/iforest_validation.csv"));
    let e = Ensemble::fit(
        &even(&rows),
        &even(&labels),
        Settings {
            trees: 50,
            ..Settings::default()
        },
    )
    .unwrap();
    let v = e.score_all(&odd(&rows));
    let conf: Vec<f64> = v.iter().map(|x| x.confidence).collect();
    let auc = roc_auc(&conf, &odd(&labels));
    let outliers: Vec<_> = v.iter().zip(odd(&labels)).filter(|(_, l)| *l).collect();
    let critical = outliers
        .iter()
        .filter(|(x, _)| x.severity == Some(kamiyo_core_models::Severity::Critical))
        .count();
    let calm_alerts = v
        .iter()
        .zip(odd(&labels))
        .filter(|(x, l)| !l && x.severity >= Some(kamiyo_core_models::Severity::Medium))
        .count();
    println!(
        "ensemble on held-out rows: ROC-AUC {auc:.4}, {critical} of {} outliers critical, {calm_alerts} of {} calm rows alerted",
        outliers.len(),
        v.len() - outliers.len()
    );
    assert!(auc > 0.99, "{auc}");
    // Every outlier is alerted (medium or above); critical needs all three models.
    assert!(
        outliers
            .iter()
            .all(|(x, _)| x.severity >= Some(kamiyo_core_models::Severity::Medium))
    );
    assert!(critical > 0);
    assert!(calm_alerts <= 10, "{calm_alerts}");
    // One row at a time agrees with the batch.
    assert_eq!(e.score(&odd(&rows)[0]), v[0]);
}

#[test]
fn ingest_refuses_a_bad_ensemble_model_file_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("missing.json", None, "reading"),
        (
            "garbage.json",
            Some("{not json"),
            "not an ensemble model file",
        ),
        (
            "format.json",
            Some(
                r#"{"format":9,"features":[],"interval_ms":60000,"settings":{"weights":{"iforest":0.4,"ocsvm":0.3,"forest":0.3},"flag_quantile":0.999,"forest_flag":0.5,"nu":0.05,"trees":10,"seed":0},"trained_on":"x","rows":[],"labels":[]}"#,
            ),
            "another model file format",
        ),
    ];
    for (name, body, why) in cases {
        let path = dir.path().join(name);
        if let Some(b) = body {
            std::fs::write(&path, b).unwrap();
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .args(["ingest", "--protocol", "dydx", "--ensemble-model"])
            .arg(&path)
            .env(
                "KAMIYO_PLATFORM__DATABASE__URL",
                "postgres://kamiyo@127.0.0.1:1/none",
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}
