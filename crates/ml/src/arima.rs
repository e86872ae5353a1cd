//! ARIMA(p, d, q) by exact Gaussian maximum likelihood, the way statsmodels'
//! `tsa.arima.model.ARIMA` does it: the series is differenced `d` times, modelled as a mean
//! (`d = 0` only) plus ARMA errors in Harvey's state-space form, the likelihood comes from a
//! Kalman filter started from the stationary covariance, and the parameters are searched in an
//! unconstrained space mapped onto stationary AR and invertible MA polynomials (Monahan's
//! transform). The series is standardised before fitting (coefficients do not change; the
//! mean, variance and likelihood are mapped back). Forecasts come with prediction intervals
//! from the psi weights of the integrated model. The order is chosen by AIC over a grid.

#![allow(
    clippy::needless_range_loop,
    reason = "matrix code reads best with explicit indices"
)]

use serde::{Deserialize, Serialize};

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arima {
    /// AR order.
    pub p: usize,
    /// Differences.
    pub d: usize,
    /// MA order.
    pub q: usize,
    /// AR coefficients (φ₁…φₚ): `w_t = Σ φᵢ w_{t-i} + ε_t + Σ θⱼ ε_{t-j}`.
    pub ar: Vec<f64>,
    /// MA coefficients (θ₁…θ_q).
    pub ma: Vec<f64>,
    /// Mean of the differenced series (`d = 0` only; else 0).
    pub mean: f64,
    /// Innovation variance.
    pub sigma2: f64,
    /// Log-likelihood (of the differenced series).
    pub loglike: f64,
    /// Akaike information criterion, `-2 loglike + 2 k` with `k` counting σ².
    pub aic: f64,
    /// Observations the likelihood covers.
    pub nobs: usize,
    /// The last `d` levels and the tail of the differenced series needed to forecast.
    history: Vec<f64>,
    /// Filtered state and covariance at the end of the sample (standardised units).
    state: Vec<f64>,
    scale: f64,
    centre: f64,
}

/// A forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Point forecasts, 1..=h steps ahead.
    pub mean: Vec<f64>,
    /// Lower bound of the interval.
    pub lower: Vec<f64>,
    /// Upper bound of the interval.
    pub upper: Vec<f64>,
    /// Coverage of the interval (0.95).
    pub level: f64,
}

/// Why a fit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArimaError {
    /// Too few observations for the order.
    #[error("{0} observations are too few for this order")]
    TooShort(usize),
    /// A value is not finite.
    #[error("the series holds a non-finite value at {0}")]
    NotFinite(usize),
    /// The series is constant after differencing.
    #[error("the series is constant after differencing")]
    Constant,
}

/// Differences `y` `d` times.
pub fn difference(y: &[f64], d: usize) -> Vec<f64> {
    let mut z = y.to_vec();
    for _ in 0..d {
        z = z.windows(2).map(|w| w[1] - w[0]).collect();
    }
    z
}

/// Maps unconstrained values to the coefficients of a stationary AR polynomial
/// `1 - a₁z - … - aₖzᵏ` (partial autocorrelations `x/√(1+x²)`, then Durbin–Levinson).
fn constrain(x: &[f64]) -> Vec<f64> {
    let r: Vec<f64> = x.iter().map(|v| v / (1.0 + v * v).sqrt()).collect();
    let mut a: Vec<f64> = Vec::with_capacity(r.len());
    for (k, &rk) in r.iter().enumerate() {
        let prev = a.clone();
        a.push(rk);
        for j in 0..k {
            a[j] = prev[j] - rk * prev[k - 1 - j];
        }
    }
    a
}

/// Inverse of [`constrain`] (for starting values).
fn unconstrain(a: &[f64]) -> Option<Vec<f64>> {
    let k = a.len();
    let mut cur = a.to_vec();
    let mut r = vec![0.0; k];
    for m in (0..k).rev() {
        let rm = cur[m];
        if rm.abs() >= 1.0 {
            return None;
        }
        r[m] = rm;
        let den = 1.0 - rm * rm;
        let prev: Vec<f64> = (0..m)
            .map(|j| (cur[j] + rm * cur[m - 1 - j]) / den)
            .collect();
        cur = prev;
    }
    Some(r.iter().map(|v| v / (1.0 - v * v).sqrt()).collect())
}

struct Spec {
    p: usize,
    q: usize,
    with_mean: bool,
}

impl Spec {
    fn k(&self) -> usize {
        self.p + self.q + usize::from(self.with_mean)
    }

    /// (ar, ma, mean) from unconstrained parameters.
    fn params(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
        let ar = constrain(&x[..self.p]);
        let ma: Vec<f64> = constrain(&x[self.p..self.p + self.q])
            .into_iter()
            .map(|v| -v)
            .collect();
        let mean = if self.with_mean {
            x[self.p + self.q]
        } else {
            0.0
        };
        (ar, ma, mean)
    }
}

/// Solves `A x = b` for a row-major n×n `a` (Gaussian elimination with partial pivoting),
/// in place: one allocation for the answer.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    if a.len() != n * n {
        return None;
    }
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[piv * n + c].abs() < 1e-14 {
            return None;
        }
        if piv != c {
            for k in 0..n {
                a.swap(c * n + k, piv * n + k);
            }
            b.swap(c, piv);
        }
        let pivot = a[c * n + c];
        for r in c + 1..n {
            let f = a[r * n + c] / pivot;
            if f != 0.0 {
                for k in c..n {
                    a[r * n + k] -= f * a[c * n + k];
                }
                b[r] -= f * b[c];
            }
        }
    }
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * b[k]).sum();
        b[r] = (b[r] - s) / a[r * n + r];
    }
    Some(b)
}

/// Kalman filter of the ARMA state space on `w` (mean removed). Returns the concentrated
/// log-likelihood, σ̂², and the final filtered state.
fn kalman(w: &[f64], offset: f64, ar: &[f64], ma: &[f64]) -> Option<(f64, f64, Vec<f64>)> {
    let r = ar.len().max(ma.len() + 1);
    // φ padded to r (a table, not a bounds-checked lookup, in the inner loops).
    let phis: Vec<f64> = (0..r).map(|i| ar.get(i).copied().unwrap_or(0.0)).collect();
    let phi = |i: usize| phis[i];
    let rv: Vec<f64> = (0..r)
        .map(|i| {
            if i == 0 {
                1.0
            } else {
                ma.get(i - 1).copied().unwrap_or(0.0)
            }
        })
        .collect();
    // T: first column φ, superdiagonal ones.
    let t = |i: usize, j: usize| -> f64 {
        if j == 0 {
            phi(i)
        } else if j == i + 1 {
            1.0
        } else {
            0.0
        }
    };
    // Stationary covariance: vec(P) = (I - T⊗T)⁻¹ vec(R Rᵀ).
    let n2 = r * r;
    let mut a = vec![0.0; n2 * n2];
    let mut b = vec![0.0; n2];
    for i in 0..r {
        for j in 0..r {
            let row = i * r + j;
            b[row] = rv[i] * rv[j];
            a[row * n2 + row] += 1.0;
            for k in 0..r {
                for l in 0..r {
                    let v = t(i, k) * t(j, l);
                    if v != 0.0 {
                        a[row * n2 + k * r + l] -= v;
                    }
                }
            }
        }
    }
    let pv = solve(a, b)?;
    // The filter with `r` known at compile time for the orders an order search visits (the
    // same operations in the same order: bit-identical results, unrolled loops).
    match r {
        1 => filter(w, offset, &phis, &rv, pv, 1),
        2 => filter(w, offset, &phis, &rv, pv, 2),
        3 => filter(w, offset, &phis, &rv, pv, 3),
        4 => filter(w, offset, &phis, &rv, pv, 4),
        _ => filter(w, offset, &phis, &rv, pv, r),
    }
}

/// The Kalman filter from the stationary covariance `pv`: exact Gaussian log-likelihood
/// (concentrated in σ²), σ², and the final state.
#[inline(always)]
fn filter(
    w: &[f64],
    offset: f64,
    phis: &[f64],
    rv: &[f64],
    pv: Vec<f64>,
    r: usize,
) -> Option<(f64, f64, Vec<f64>)> {
    let phis = &phis[..r];
    let rv = &rv[..r];
    let phi = |i: usize| phis[i];
    let n2 = r * r;
    // Flat r×r buffers, allocated once per evaluation (this runs thousands of times per
    // order search): P, and two scratch matrices.
    let mut p = pv;
    if p.len() != n2 {
        return None;
    }
    let mut a = vec![0.0; n2];
    let mut b = vec![0.0; n2];
    let mut x = vec![0.0; r];
    let mut k = vec![0.0; r];
    let (mut sum_log_f, mut sum_v2f) = (0.0, 0.0);
    let mut done = 0;
    for &y in w {
        let f = p[0];
        if !(f.is_finite() && f > 0.0) {
            return None;
        }
        for i in 0..r {
            k[i] = p[i * r] / f;
        }
        let v = y - offset - x[0];
        sum_log_f += f.ln();
        sum_v2f += v * v / f;
        done += 1;
        // Update the state, then predict: x = T (x + k v).
        for i in 0..r {
            x[i] += k[i] * v;
        }
        let x0 = x[0];
        for i in 0..r {
            x[i] = phi(i) * x0 + if i + 1 < r { x[i + 1] } else { 0.0 };
        }
        // P_u = P - k P[0,:] (in a); T P_u (in b), using T's shift structure
        // (T M)_ij = φ_i M_0j + M_{i+1,j}; then P' = (T P_u) Tᵀ + R Rᵀ (in a).
        for i in 0..r {
            for j in 0..r {
                a[i * r + j] = p[i * r + j] - k[i] * p[j];
            }
        }
        for i in 0..r {
            for j in 0..r {
                b[i * r + j] = phi(i) * a[j] + if i + 1 < r { a[(i + 1) * r + j] } else { 0.0 };
            }
        }
        let mut change = 0.0f64;
        for i in 0..r {
            for j in 0..r {
                let v = b[i * r] * phi(j)
                    + if j + 1 < r { b[i * r + j + 1] } else { 0.0 }
                    + rv[i] * rv[j];
                change = change.max((v - p[i * r + j]).abs());
                a[i * r + j] = v;
            }
        }
        std::mem::swap(&mut p, &mut a);
        // Converged to the steady state: the gain and variance no longer change, so the
        // rest of the series needs only the state recursion (and ln f once).
        if change < 1e-9 * (1.0 + p[0].abs()) {
            break;
        }
    }
    if done < w.len() {
        let f = p[0];
        if !(f.is_finite() && f > 0.0) {
            return None;
        }
        for i in 0..r {
            k[i] = p[i * r] / f;
        }
        let mut sum_v2 = 0.0;
        for &y in &w[done..] {
            let v = y - offset - x[0];
            sum_v2 += v * v;
            for i in 0..r {
                x[i] += k[i] * v;
            }
            let x0 = x[0];
            for i in 0..r {
                x[i] = phi(i) * x0 + if i + 1 < r { x[i + 1] } else { 0.0 };
            }
        }
        sum_v2f += sum_v2 / f;
        sum_log_f += (w.len() - done) as f64 * f.ln();
    }
    let n = w.len() as f64;
    let sigma2 = sum_v2f / n;
    if !(sigma2.is_finite() && sigma2 > 0.0) {
        return None;
    }
    let ll = -0.5 * n * (2.0 * std::f64::consts::PI).ln()
        - 0.5 * sum_log_f
        - 0.5 * n * sigma2.ln()
        - 0.5 * n;
    Some((ll, sigma2, x))
}

/// BFGS with central-difference gradients and a backtracking line search, from `x0`.
/// Returns the point, its value, and whether it converged (gradient ≈ 0) rather than stopped
/// (line search failed, iteration limit, or stalled).
fn bfgs(f: &dyn Fn(&[f64]) -> f64, x0: &[f64], iters: usize) -> (Vec<f64>, f64, bool) {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut fx = f(&x);
    if n == 0 || !fx.is_finite() {
        return (x, fx, n == 0);
    }
    let grad = |x: &[f64]| -> Vec<f64> {
        let mut g = vec![0.0; n];
        let mut y = x.to_vec();
        for i in 0..n {
            let h = 1e-5 * (1.0 + x[i].abs());
            y[i] = x[i] + h;
            let a = f(&y);
            y[i] = x[i] - h;
            let b = f(&y);
            y[i] = x[i];
            g[i] = if a.is_finite() && b.is_finite() {
                (a - b) / (2.0 * h)
            } else {
                0.0
            };
        }
        g
    };
    let mut g = grad(&x);
    // Inverse Hessian approximation.
    let mut hm: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let mut converged = false;
    for _ in 0..iters {
        let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        if gnorm < 1e-4 {
            converged = true;
            break;
        }
        let mut d: Vec<f64> = (0..n)
            .map(|i| -(0..n).map(|j| hm[i][j] * g[j]).sum::<f64>())
            .collect();
        let mut slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
        if slope >= 0.0 {
            // Not a descent direction: reset to steepest descent.
            hm = (0..n)
                .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
                .collect();
            d = g.iter().map(|v| -v).collect();
            slope = -gnorm * gnorm;
        }
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let xn: Vec<f64> = (0..n).map(|i| x[i] + t * d[i]).collect();
            let fxn = f(&xn);
            if fxn.is_finite() && fxn <= fx + 1e-4 * t * slope {
                accepted = Some((xn, fxn));
                break;
            }
            t *= 0.5;
        }
        let Some((xn, fxn)) = accepted else { break };
        let gn = grad(&xn);
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let yv: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        let sy: f64 = s.iter().zip(&yv).map(|(a, b)| a * b).sum();
        let done = (fx - fxn).abs() <= 1e-10 * (1.0 + fx.abs());
        x = xn;
        fx = fxn;
        g = gn;
        if done {
            // No further progress: converged if the gradient is small too.
            converged = g.iter().map(|v| v * v).sum::<f64>().sqrt() < 1e-3;
            break;
        }
        if sy > 1e-12 {
            let hy: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| hm[i][j] * yv[j]).sum())
                .collect();
            let yhy: f64 = yv.iter().zip(&hy).map(|(a, b)| a * b).sum();
            for i in 0..n {
                for j in 0..n {
                    hm[i][j] +=
                        ((sy + yhy) * s[i] * s[j]) / (sy * sy) - (hy[i] * s[j] + s[i] * hy[j]) / sy;
                }
            }
        }
    }
    (x, fx, converged)
}

/// Nelder–Mead minimisation from `x0`.
fn nelder_mead(f: &dyn Fn(&[f64]) -> f64, x0: &[f64], iters: usize) -> Vec<f64> {
    let n = x0.len();
    if n == 0 {
        return Vec::new();
    }
    let mut s: Vec<Vec<f64>> = vec![x0.to_vec()];
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += if x[i].abs() > 1e-3 {
            0.1 * x[i].abs().max(0.25)
        } else {
            0.25
        };
        s.push(x);
    }
    let mut fs: Vec<f64> = s.iter().map(|x| f(x)).collect();
    for _ in 0..iters {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&a, &b| fs[a].total_cmp(&fs[b]));
        s = order.iter().map(|&i| s[i].clone()).collect();
        fs = order.iter().map(|&i| fs[i]).collect();
        if (fs[n] - fs[0]).abs() <= 1e-12 * (1.0 + fs[0].abs()) {
            let spread = (0..n)
                .map(|j| s.iter().map(|x| (x[j] - s[0][j]).abs()).fold(0.0, f64::max))
                .fold(0.0, f64::max);
            if spread < 1e-9 {
                break;
            }
        }
        let c: Vec<f64> = (0..n)
            .map(|j| s[..n].iter().map(|x| x[j]).sum::<f64>() / n as f64)
            .collect();
        let at = |t: f64| -> Vec<f64> { (0..n).map(|j| c[j] + t * (s[n][j] - c[j])).collect() };
        let xr = at(-1.0);
        let fr = f(&xr);
        if fr < fs[0] {
            let xe = at(-2.0);
            let fe = f(&xe);
            if fe < fr {
                s[n] = xe;
                fs[n] = fe;
            } else {
                s[n] = xr;
                fs[n] = fr;
            }
        } else if fr < fs[n - 1] {
            s[n] = xr;
            fs[n] = fr;
        } else {
            let (xc, fc) = if fr < fs[n] {
                let x = at(-0.5);
                let v = f(&x);
                (x, v)
            } else {
                let x = at(0.5);
                let v = f(&x);
                (x, v)
            };
            if fc < fs[n].min(fr) {
                s[n] = xc;
                fs[n] = fc;
            } else {
                for i in 1..=n {
                    s[i] = (0..n)
                        .map(|j| s[0][j] + 0.5 * (s[i][j] - s[0][j]))
                        .collect();
                    fs[i] = f(&s[i]);
                }
            }
        }
    }
    let best = (0..=n)
        .min_by(|&a, &b| fs[a].total_cmp(&fs[b]))
        .unwrap_or(0);
    s[best].clone()
}

impl Arima {
    /// Fits ARIMA(p, d, q) to `y`; a mean is estimated when `d = 0`.
    pub fn fit(y: &[f64], p: usize, d: usize, q: usize) -> Result<Self, ArimaError> {
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(ArimaError::NotFinite(i));
        }
        let z = difference(y, d);
        if z.len() < 3 * (p + q + 1) + 10 {
            return Err(ArimaError::TooShort(y.len()));
        }
        let n = z.len() as f64;
        let centre = z.iter().sum::<f64>() / n;
        let scale = (z.iter().map(|v| (v - centre).powi(2)).sum::<f64>() / n).sqrt();
        if scale.is_nan() || scale <= 0.0 {
            return Err(ArimaError::Constant);
        }
        let with_mean = d == 0;
        // Standardised: u = (z - centre) / scale; the mean parameter is in these units.
        let u: Vec<f64> = z.iter().map(|v| (v - centre) / scale).collect();
        let spec = Spec { p, q, with_mean };
        let base = if with_mean { 0.0 } else { -centre / scale };
        let objective = |x: &[f64]| -> f64 {
            let (ar, ma, m) = spec.params(x);
            match kalman(&u, base + m, &ar, &ma) {
                Some((ll, _, _)) if ll.is_finite() => -ll,
                _ => f64::INFINITY,
            }
        };
        // Start from zero, then from a short AR approximation, keep the best.
        let k = spec.k();
        // Quasi-Newton from zero and from a Yule–Walker AR start; a Nelder–Mead polish of the
        // better one guards against a stalled line search on flat ridges.
        let mut starts = vec![vec![0.0; k]];
        if p > 0
            && let Some(init) = unconstrain(&ar_start(&u, p))
        {
            let mut x0 = vec![0.0; k];
            x0[..p].copy_from_slice(&init);
            starts.push(x0);
        }
        let mut best: Option<(Vec<f64>, f64, bool)> = None;
        for x0 in starts {
            let (x, fx, converged) = bfgs(&objective, &x0, 200);
            if best.as_ref().is_none_or(|b| fx < b.1) {
                best = Some((x, fx, converged));
            }
        }
        let (x, fx, converged) = best.unwrap_or_else(|| (vec![0.0; k], f64::INFINITY, false));
        // A Nelder–Mead polish when the quasi-Newton search stopped without converging (a
        // stalled line search on a flat ridge).
        let best = if converged {
            x
        } else {
            let polished = nelder_mead(&objective, &x, 30 * (k + 1));
            if objective(&polished) < fx {
                polished
            } else {
                x
            }
        };
        let (ar, ma, m) = spec.params(&best);
        let (ll_std, s2_std, state) = kalman(&u, base + m, &ar, &ma).ok_or(ArimaError::Constant)?;
        // Back to the original units: density scales by 1/scale per observation.
        let loglike = ll_std - n * scale.ln();
        let kcount = (k + 1) as f64;
        let tail = (p.max(q) + d + 1).min(y.len());
        Ok(Self {
            p,
            d,
            q,
            ar,
            ma,
            mean: if with_mean { centre + m * scale } else { 0.0 },
            sigma2: s2_std * scale * scale,
            loglike,
            aic: -2.0 * loglike + 2.0 * kcount,
            nobs: z.len(),
            history: y[y.len() - tail..].to_vec(),
            state,
            scale,
            centre: if with_mean { centre + m * scale } else { 0.0 },
        })
    }

    /// Fits every order with `p, q ≤ max` (and the given `d`) and keeps the lowest AIC, using
    /// every core.
    pub fn select(y: &[f64], max_p: usize, d: usize, max_q: usize) -> Result<Self, ArimaError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::select_on(y, max_p, d, max_q, cores)
    }

    /// [`Arima::select`] on at most `threads` threads (1: on the calling thread's core only).
    pub fn select_on(
        y: &[f64],
        max_p: usize,
        d: usize,
        max_q: usize,
        threads: usize,
    ) -> Result<Self, ArimaError> {
        let orders: Vec<(usize, usize)> = (0..=max_p)
            .flat_map(|p| (0..=max_q).map(move |q| (p, q)))
            .collect();
        // The fits are independent: spread them over the threads, largest orders first.
        let mut orders = orders;
        orders.sort_by_key(|(p, q)| std::cmp::Reverse(p + q));
        let threads = threads.clamp(1, orders.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Result<Self, ArimaError>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (orders, next) = (&orders, &next);
                    sc.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&(p, q)) = orders.get(i) else { break };
                            out.push(Self::fit(y, p, d, q));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut best: Option<Self> = None;
        let mut last_err = ArimaError::TooShort(y.len());
        for r in results {
            match r {
                Ok(m) => {
                    if best.as_ref().is_none_or(|b| {
                        m.aic < b.aic || (m.aic == b.aic && (m.p + m.q) < (b.p + b.q))
                    }) {
                        best = Some(m);
                    }
                }
                Err(e) => last_err = e,
            }
        }
        best.ok_or(last_err)
    }

    /// Psi weights of the integrated model, ψ₀ = 1 … ψ_{h-1}.
    fn psi(&self, h: usize) -> Vec<f64> {
        // AR polynomial of the integrated model: φ(B)(1-B)^d, as coefficients a with
        // y_t = Σ a_i y_{t-i} + …
        let mut phi_full = vec![1.0];
        phi_full.extend(self.ar.iter().map(|c| -c));
        for _ in 0..self.d {
            let mut next = vec![0.0; phi_full.len() + 1];
            for (i, c) in phi_full.iter().enumerate() {
                next[i] += c;
                next[i + 1] -= c;
            }
            phi_full = next;
        }
        let a: Vec<f64> = phi_full.iter().skip(1).map(|c| -c).collect();
        let mut psi = vec![0.0; h];
        for j in 0..h {
            let mut v = if j == 0 {
                1.0
            } else {
                self.ma.get(j - 1).copied().unwrap_or(0.0)
            };
            for (i, ai) in a.iter().enumerate() {
                if j > i {
                    v += ai * psi[j - 1 - i];
                }
            }
            psi[j] = v;
        }
        psi
    }

    /// Forecasts `h` steps with a `level` (e.g. 0.95) prediction interval.
    pub fn forecast(&self, h: usize, level: f64) -> Forecast {
        // ARMA forecasts of the differenced series from the filtered state (standardised).
        let r = self.state.len();
        let phi = |i: usize| self.ar.get(i).copied().unwrap_or(0.0);
        let mut x = self.state.clone();
        let mut zf = Vec::with_capacity(h);
        for _ in 0..h {
            zf.push(x[0] * self.scale + self.centre);
            x = (0..r)
                .map(|i| phi(i) * x[0] + if i + 1 < r { x[i + 1] } else { 0.0 })
                .collect();
        }
        // Undo the differencing with the last levels.
        let mut levels = zf;
        for k in (0..self.d).rev() {
            let mut hist = self.history.clone();
            for _ in 0..k {
                hist = hist.windows(2).map(|w| w[1] - w[0]).collect();
            }
            let mut last = hist.last().copied().unwrap_or(0.0);
            levels = levels
                .iter()
                .map(|dz| {
                    last += dz;
                    last
                })
                .collect();
        }
        let z = normal_quantile(0.5 + level / 2.0);
        let psi = self.psi(h);
        let mut cum = 0.0;
        let mut lower = Vec::with_capacity(h);
        let mut upper = Vec::with_capacity(h);
        for (j, m) in levels.iter().enumerate() {
            cum += psi[j] * psi[j];
            let sd = (self.sigma2 * cum).sqrt();
            lower.push(m - z * sd);
            upper.push(m + z * sd);
        }
        Forecast {
            mean: levels,
            lower,
            upper,
            level,
        }
    }
}

/// Yule–Walker AR(p) estimate, for starting values.
fn ar_start(u: &[f64], p: usize) -> Vec<f64> {
    let n = u.len();
    let acov = |k: usize| (k..n).map(|t| u[t] * u[t - k]).sum::<f64>() / n as f64;
    let g: Vec<f64> = (0..=p).map(acov).collect();
    let a: Vec<f64> = (0..p * p).map(|ij| g[(ij / p).abs_diff(ij % p)]).collect();
    let b: Vec<f64> = (1..=p).map(|k| g[k]).collect();
    solve(a, b)
        .map(|v| v.into_iter().map(|c| c.clamp(-0.9, 0.9)).collect())
        .unwrap_or_else(|| vec![0.0; p])
}

/// Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let pl = 0.02425;
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// The HLP PnL risk forecast: one definition for the API's `/ml/forecast` and the engine's
/// `risk_forecast` detector, so the two can never disagree on the same history.
pub mod risk {
    use super::{Arima, ArimaError, Forecast};

    /// Largest AR and MA order searched (d = 1), by AIC.
    pub const MAX_ORDER: usize = 3;
    /// Hourly values needed before a forecast is made.
    pub const MIN_HOURS: usize = 48;
    /// Hours ahead.
    pub const HORIZON: usize = 24;
    /// Prediction interval level.
    pub const LEVEL: f64 = 0.95;

    /// Why no forecast was made.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum RiskForecastError {
        /// Fewer hourly values than [`MIN_HOURS`].
        #[error("{0} hours of history; the forecast needs at least {MIN_HOURS}")]
        TooShort(usize),
        /// No model fits the history.
        #[error("no model fits this history: {0}")]
        NoFit(ArimaError),
    }

    /// A fitted forecast of the next [`HORIZON`] hours.
    #[derive(Debug, Clone)]
    pub struct RiskForecast {
        /// The model chosen.
        pub model: Arima,
        /// Hourly values fitted.
        pub history: usize,
        /// The last value fitted.
        pub last: f64,
        /// Point forecasts and intervals, 1..=HORIZON hours ahead.
        pub forecast: Forecast,
    }

    impl RiskForecast {
        /// The change over the horizon from the last value: (mean, lower, upper).
        pub fn change(&self) -> (f64, f64, f64) {
            let h = HORIZON - 1;
            (
                self.forecast.mean[h] - self.last,
                self.forecast.lower[h] - self.last,
                self.forecast.upper[h] - self.last,
            )
        }
    }

    /// The last value of each hour of `(time ms, value)` points (in time order), non-finite
    /// values skipped.
    pub fn hourly(points: impl IntoIterator<Item = (i64, f64)>) -> Vec<(i64, f64)> {
        const HOUR: i64 = 3_600_000;
        let mut out: Vec<(i64, f64)> = Vec::new();
        for (t, v) in points {
            if !v.is_finite() {
                continue;
            }
            let h = t - t.rem_euclid(HOUR);
            match out.last_mut() {
                Some(last) if last.0 == h => last.1 = v,
                _ => out.push((h, v)),
            }
        }
        out
    }

    /// Fits `y` (hourly values, oldest first) on at most `threads` threads and forecasts.
    pub fn forecast(y: &[f64], threads: usize) -> Result<RiskForecast, RiskForecastError> {
        if y.len() < MIN_HOURS {
            return Err(RiskForecastError::TooShort(y.len()));
        }
        let model = Arima::select_on(y, MAX_ORDER, 1, MAX_ORDER, threads.max(1))
            .map_err(RiskForecastError::NoFit)?;
        let forecast = model.forecast(HORIZON, LEVEL);
        Ok(RiskForecast {
            model,
            history: y.len(),
            last: y[y.len() - 1],
            forecast,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hourly_keeps_the_last_value_of_each_hour_and_the_forecast_needs_history() {
            let h = 3_600_000;
            let pts = [
                (0, 1.0),
                (10, 2.0),
                (h, f64::NAN),
                (h + 5, 3.0),
                (3 * h, 4.0),
            ];
            assert_eq!(hourly(pts), vec![(0, 2.0), (h, 3.0), (3 * h, 4.0)]);
            assert_eq!(
                forecast(&[1.0; 10], 1).unwrap_err(),
                RiskForecastError::TooShort(10)
            );
            let y: Vec<f64> = (0..96)
                .map(|i| (i as f64 * 0.3).sin() * 5.0 + i as f64)
                .collect();
            let f = forecast(&y, 1).unwrap();
            let (mean, lower, upper) = f.change();
            assert!(lower <= mean && mean <= upper);
            assert_eq!(f.history, 96);
        }
    }
}
