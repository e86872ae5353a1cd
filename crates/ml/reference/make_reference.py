"""Reference values from scikit-learn and statsmodels for kamiyo-ml's tests.

Run once (the outputs are committed next to this script):

    python -m venv /tmp/mlvenv && /tmp/mlvenv/bin/pip install scikit-learn==1.9.1 statsmodels==0.15.0
    /tmp/mlvenv/bin/python crates/ml/reference/make_reference.py

Inputs: `btc_5m_calm_features.csv`, the feature rows kamiyo computes from the real Hyperliquid
BTC 5m candles of the calm fortnight 2025-06-01..14 (written by `KAMIYO_BLESS=1 cargo test -p
kamiyo-ml`), and the real Hyperliquid BTC/ETH 1h candles under testdata/market.

Outputs:
- `iforest_validation.csv`: those rows standardised, plus 1 % SYNTHETIC outliers (each
  feature shifted by N(0, 6), seed 7), with a `label` column (1 = synthetic outlier);
- `iforest_sklearn_scores.csv`: `-IsolationForest(n_estimators=100, random_state=0)
  .fit(X).score_samples(X)` on it (higher = more anomalous, as kamiyo reports);
- `arima_reference.json`: statsmodels ARIMA fits and 24-step forecasts with 95 % intervals.
"""
import json
import math
import os

import numpy as np
import pandas as pd
import sklearn
import statsmodels
from sklearn.ensemble import IsolationForest
from statsmodels.tsa.arima.model import ARIMA

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# --- Isolation Forest -------------------------------------------------------------------
feat = pd.read_csv(os.path.join(HERE, "btc_5m_calm_features.csv"))
names = [c for c in feat.columns if c != "time_ms"]
X = feat[names].to_numpy(dtype=float)
X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
rng = np.random.default_rng(7)
n_out = max(1, len(X) // 100)
outliers = X[rng.choice(len(X), n_out, replace=False)] + rng.normal(0.0, 6.0, size=(n_out, X.shape[1]))
data = np.vstack([X, outliers])
labels = np.concatenate([np.zeros(len(X), dtype=int), np.ones(n_out, dtype=int)])
pd.DataFrame(np.column_stack([data, labels]), columns=names + ["label"]).assign(
    label=labels
).to_csv(os.path.join(HERE, "iforest_validation.csv"), index=False, float_format="%.17g")
forest = IsolationForest(n_estimators=100, random_state=0).fit(data)
scores = -forest.score_samples(data)
pd.DataFrame({"score": scores}).to_csv(
    os.path.join(HERE, "iforest_sklearn_scores.csv"), index=False, float_format="%.17g"
)


def export_trees(forest):
    """The fitted trees exactly as scikit-learn stores them, for kamiyo to score."""
    trees = []
    for est, feats in zip(forest.estimators_, forest.estimators_features_):
        t = est.tree_
        trees.append({
            "features": [int(f) for f in feats],
            "children_left": [int(v) for v in t.children_left],
            "children_right": [int(v) for v in t.children_right],
            "feature": [int(v) for v in t.feature],
            "threshold": [float(v) for v in t.threshold],
            "n_node_samples": [int(v) for v in t.n_node_samples],
        })
    return {"sklearn": sklearn.__version__, "max_samples": int(forest.max_samples_),
            "n_features": int(forest.n_features_in_), "trees": trees}


with open(os.path.join(HERE, "iforest_sklearn_trees.json"), "w") as f:
    json.dump(export_trees(forest), f, separators=(",", ":"))

# --- Isolation vs distance: data on which the two disagree (SYNTHETIC) --------------------
# Two clusters away from the origin with correlated coordinates. The anomalies sit where
# nothing lives but close to the centre of mass (between the clusters) or inside a cluster's
# range but off its correlation line: a distance-from-the-mean score ranks them as ordinary.
rng = np.random.default_rng(11)
n_per = 1000
def cluster(centre, n):
    z = rng.normal(0.0, 1.0, size=(n, 4))
    x = np.empty((n, 4))
    x[:, 0] = centre + z[:, 0]
    x[:, 1] = centre + 0.9 * z[:, 0] + 0.3 * z[:, 1]   # correlated with x0
    x[:, 2] = 3.0 * z[:, 2]
    x[:, 3] = x[:, 2] + 0.3 * z[:, 3]                   # correlated with x2
    return x
normal = np.vstack([cluster(6.0, n_per), cluster(-6.0, n_per)])
between = rng.normal(0.0, 0.5, size=(15, 4))          # between the clusters, near the mean
off_line = cluster(6.0, 15)
off_line[:, 3] = -off_line[:, 2]                        # off the x2 = x3 line, same norm
odata = np.vstack([normal, between, off_line])
olabels = np.concatenate([np.zeros(len(normal), dtype=int), np.ones(30, dtype=int)])
pd.DataFrame(np.column_stack([odata, olabels]), columns=["x0", "x1", "x2", "x3", "label"]).assign(
    label=olabels
).to_csv(os.path.join(HERE, "iforest_disagree.csv"), index=False, float_format="%.17g")
oforest = IsolationForest(n_estimators=100, random_state=0).fit(odata)
pd.DataFrame({"score": -oforest.score_samples(odata)}).to_csv(
    os.path.join(HERE, "iforest_disagree_sklearn_scores.csv"), index=False, float_format="%.17g"
)
# scikit-learn's own spread over seeds: the yardstick for kamiyo's ROC-AUC on this data.
from sklearn.metrics import roc_auc_score  # noqa: E402
aucs = [float(roc_auc_score(olabels, -IsolationForest(n_estimators=100, random_state=s)
                            .fit(odata).score_samples(odata))) for s in range(20)]
with open(os.path.join(HERE, "iforest_disagree_sklearn_auc.json"), "w") as f:
    json.dump({"sklearn": sklearn.__version__, "random_state": list(range(20)), "roc_auc": aucs}, f, indent=1)

# --- ARIMA ---------------------------------------------------------------------------------
def candles(coin):
    p = os.path.join(ROOT, "testdata/market/hyperliquid/candles_1h", f"hl_perp_{coin}_1h.csv")
    return pd.read_csv(p)

btc = candles("BTC").tail(720)
eth = candles("ETH").tail(720)
series = {
    # Hourly BTC log range ln((high - low) / close): a real, stationary risk series.
    "btc_log_range_1h": np.log((btc["high"] - btc["low"]) / btc["close"]).to_numpy(),
    # Hourly ETH log close: integrated.
    "eth_log_close_1h": np.log(eth["close"]).to_numpy(),
}
out = {
    "sklearn": sklearn.__version__,
    "statsmodels": statsmodels.__version__,
    "series": {},
}
for name, y in series.items():
    d = 0 if name.startswith("btc") else 1
    trend = "c" if d == 0 else "n"
    fits = {}
    for p in range(4):
        for q in range(4):
            r = ARIMA(y, order=(p, d, q), trend=trend).fit()
            fits[(p, q)] = r
    best = min(fits, key=lambda k: fits[k].aic)
    entry = {"d": d, "values": [float(v) for v in y], "aic": {}, "best": list(best)}
    for (p, q), r in fits.items():
        entry["aic"][f"{p},{q}"] = float(r.aic)
    for label, (p, q) in {"best": best, "fixed_1_1": (1, 1)}.items():
        r = fits[(p, q)]
        fc = r.get_forecast(24)
        ci = fc.conf_int(alpha=0.05)
        params = dict(zip(r.model.param_names, [float(v) for v in r.params]))
        entry[label] = {
            "order": [p, d, q],
            "params": params,
            "aic": float(r.aic),
            "llf": float(r.llf),
            "forecast": [float(v) for v in fc.predicted_mean],
            "lower": [float(v) for v in ci[:, 0]],
            "upper": [float(v) for v in ci[:, 1]],
        }
    out["series"][name] = entry
with open(os.path.join(HERE, "arima_reference.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote references:", n_out, "synthetic outliers;",
      {k: v["best"] for k, v in out["series"].items()})
