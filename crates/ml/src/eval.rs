//! Event-level evaluation: alerts (runs of above-threshold scores) against labelled incident
//! windows — precision and recall at the event level, lead time, false alerts per day — and
//! the rank statistics used to compare with scikit-learn.

use serde::{Deserialize, Serialize};

/// A labelled incident window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledEvent {
    /// Name.
    pub name: String,
    /// Start (ms).
    pub start_ms: i64,
    /// End (ms).
    pub end_ms: i64,
}

/// Event-level figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMetrics {
    /// Alerts raised (runs of consecutive anomalous rows merged within the gap).
    pub alerts: usize,
    /// Alerts inside an event's matching window.
    pub true_alerts: usize,
    /// Events with at least one alert.
    pub detected: usize,
    /// Events.
    pub events: usize,
    /// `true_alerts / alerts`.
    pub precision: Option<f64>,
    /// `detected / events`.
    pub recall: Option<f64>,
    /// Per detected event: first alert time minus event start (ms; negative = early).
    pub lead_ms: Vec<(String, i64)>,
    /// Alerts outside every window, per day covered.
    pub false_alerts_per_day: f64,
    /// Days covered.
    pub days: f64,
}

/// Merges anomalous rows (score above `threshold`) into alerts: a new alert starts when more
/// than `gap_ms` passed since the previous anomalous row. Returns alert start times.
pub fn alerts(scored: &[(i64, f64)], threshold: f64, gap_ms: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    for &(t, s) in scored {
        if s > threshold {
            if last.is_none_or(|l| t - l > gap_ms) {
                out.push(t);
            }
            last = Some(t);
        }
    }
    out
}

/// Scores alerts against events; an alert matches an event when it starts within
/// `[start - pre_ms, end + post_ms]`.
pub fn event_metrics(
    alert_times: &[i64],
    events: &[LabelledEvent],
    span: (i64, i64),
    pre_ms: i64,
    post_ms: i64,
) -> EventMetrics {
    let in_window = |t: i64, e: &LabelledEvent| t >= e.start_ms - pre_ms && t <= e.end_ms + post_ms;
    let true_alerts = alert_times
        .iter()
        .filter(|t| events.iter().any(|e| in_window(**t, e)))
        .count();
    let mut lead = Vec::new();
    for e in events {
        if let Some(first) = alert_times.iter().find(|t| in_window(**t, e)) {
            lead.push((e.name.clone(), first - e.start_ms));
        }
    }
    let days = ((span.1 - span.0) as f64 / 86_400_000.0).max(1e-9);
    EventMetrics {
        alerts: alert_times.len(),
        true_alerts,
        detected: lead.len(),
        events: events.len(),
        precision: (!alert_times.is_empty()).then(|| true_alerts as f64 / alert_times.len() as f64),
        recall: (!events.is_empty()).then(|| lead.len() as f64 / events.len() as f64),
        lead_ms: lead,
        false_alerts_per_day: (alert_times.len() - true_alerts) as f64 / days,
        days,
    }
}

/// Ranks with ties averaged (1-based).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let ma = ra.iter().sum::<f64>() / n;
    let mb = rb.iter().sum::<f64>() / n;
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// ROC-AUC of scores against binary labels (Mann–Whitney, ties averaged).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let r = ranks(scores);
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let sum_pos: f64 = r
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(x, _)| x)
        .sum();
    (sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg)
}
