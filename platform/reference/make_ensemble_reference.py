"""Reference values from scikit-learn for the platform ensemble's tests (One-Class SVM and
Random Forest). Run once; the outputs are committed next to this script:

    python -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn==1.9.1
    /tmp/skl/bin/python platform/reference/make_ensemble_reference.py

Inputs (committed in the open core, see crates/ml/reference/SOURCES.md):
- `crates/ml/reference/iforest_validation.csv`: the 4,032 real Hyperliquid BTC 5m feature rows
  of the calm fortnight 2025-06-01..14, standardised, plus 40 SYNTHETIC outliers (label 1);
- `crates/ml/reference/iforest_disagree.csv`: SYNTHETIC two correlated clusters with anomalies
  between them and off the correlation line (label 1).

Outputs:
- `ocsvm_sklearn.json`: `OneClassSVM(nu=0.05, gamma=1/(n_features * X.var()))` fitted on the
  even rows of the validation set: gamma, rho, support vectors, dual coefficients, and
  `decision_function` on every row; the same fitted on the disagreement set.
- `rf_sklearn.json`: `RandomForestClassifier(n_estimators=100, random_state=0)`, trained on the
  even rows and scored (`predict_proba[:, 1]`) on the odd rows, of the validation set and of
  `rf_xor.csv`; ROC-AUC of each, and that of a logistic regression (the linear baseline).
- `rf_xor.csv`: SYNTHETIC, seed 13: 3,000 rows of 6 standard normal features labelled by the
  sign of x0 * x1 (an XOR a linear model cannot separate) with 5 % of labels flipped.
"""
import json
import os

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import OneClassSVM

HERE = os.path.dirname(os.path.abspath(__file__))
ML = os.path.join(HERE, "..", "..", "crates", "ml", "reference")


def load(name):
    df = pd.read_csv(os.path.join(ML, name))
    y = df["label"].to_numpy(dtype=int)
    X = df.drop(columns=["label"]).to_numpy(dtype=float)
    return X, y


def ocsvm(X, y):
    train = X[0::2]
    gamma = 1.0 / (train.shape[1] * train.var())
    m = OneClassSVM(nu=0.05, gamma=gamma, tol=1e-6, shrinking=False).fit(train)
    dec = m.decision_function(X)
    return {
        "gamma": gamma,
        "nu": 0.05,
        "rho": float(-m.intercept_[0]),
        "support_vectors": m.support_vectors_.tolist(),
        "dual_coef": m.dual_coef_[0].tolist(),
        "decision": dec.tolist(),
        "auc": float(roc_auc_score(y, -dec)),
    }


def rf(X, y):
    tr, te = slice(0, None, 2), slice(1, None, 2)
    m = RandomForestClassifier(n_estimators=100, random_state=0).fit(X[tr], y[tr])
    p = m.predict_proba(X[te])[:, 1]
    lin = LogisticRegression(max_iter=1000).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    return {"auc": float(roc_auc_score(y[te], p)), "logistic_auc": float(roc_auc_score(y[te], lin))}


rng = np.random.default_rng(13)
Z = rng.normal(0.0, 1.0, size=(3000, 6))
yx = ((Z[:, 0] * Z[:, 1]) > 0).astype(int)
flip = rng.random(3000) < 0.05
yx[flip] = 1 - yx[flip]
pd.DataFrame(np.column_stack([Z, yx]), columns=[f"x{i}" for i in range(6)] + ["label"]).assign(
    label=yx
).to_csv(os.path.join(HERE, "rf_xor.csv"), index=False, float_format="%.17g")

Xv, yv = load("iforest_validation.csv")
Xd, yd = load("iforest_disagree.csv")
with open(os.path.join(HERE, "ocsvm_sklearn.json"), "w") as f:
    json.dump({"sklearn": sklearn.__version__, "validation": ocsvm(Xv, yv),
               "disagree": ocsvm(Xd, yd)}, f, separators=(",", ":"))
with open(os.path.join(HERE, "rf_sklearn.json"), "w") as f:
    json.dump({"sklearn": sklearn.__version__, "validation": rf(Xv, yv), "xor": rf(Z, yx)},
              f, indent=1)
print(open(os.path.join(HERE, "rf_sklearn.json")).read())
