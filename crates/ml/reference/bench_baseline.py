"""Baseline for `cargo bench -p kamiyo-ml --bench ml`: the same measurements with scikit-learn
and statsmodels on the files the bench wrote. Usage: bench_baseline.py X.csv Y.csv"""
import sys
import time
import warnings

import numpy as np
from sklearn.ensemble import IsolationForest
from statsmodels.tsa.arima.model import ARIMA

warnings.filterwarnings("ignore")
X = np.loadtxt(sys.argv[1], delimiter=",")
y = np.loadtxt(sys.argv[2])

fits = []
for _ in range(3):
    t = time.perf_counter()
    f = IsolationForest(n_estimators=100, random_state=0).fit(X)
    fits.append((time.perf_counter() - t) * 1000)
print(f"  IsolationForest fit 100k x 12, 100 trees: median {np.median(fits):.2f} ms")
lat = []
for r in X[:300]:
    t = time.perf_counter()
    f.score_samples(r.reshape(1, -1))
    lat.append((time.perf_counter() - t) * 1e6)
print(f"  score one row: median {np.median(lat):.2f} µs, p99 {np.percentile(lat, 99):.2f} µs")
t = time.perf_counter()
f.score_samples(X)
print(f"  score all 100k rows: {(time.perf_counter() - t) * 1000:.1f} ms")
t = time.perf_counter()
best = None
for p in range(4):
    for q in range(4):
        r = ARIMA(y, order=(p, 1, q)).fit()
        if best is None or r.aic < best[0]:
            best = (r.aic, (p, 1, q), r)
fc = best[2].get_forecast(24).predicted_mean
print(f"  ARIMA order search p,q in 0..=3, d=1, 720 hourly points, + 24-step forecast: {(time.perf_counter() - t) * 1000:.1f} ms; chose {best[1]}, h24 {fc[-1]:.6f}")
