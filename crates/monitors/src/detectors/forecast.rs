//! The 24 h risk forecast as a detection: the HLP vault's cumulative PnL, bucketed hourly from
//! its snapshots, is refitted once per hour of event time with ARIMA (order by AIC, d = 1), and
//! a `risk_forecast` detection (key `risk_forecast:hlp_pnl`) is raised when the 95 % interval of
//! the next 24 hours' PnL change reaches the loss threshold: high when only the lower bound
//! does, critical when the point forecast itself does.

use std::collections::BTreeMap;

use kamiyo_core_models::{
    Decimal, Detection, Evidence, IncidentKey, MarketEvent, Severity, ThreatType, Timestamp,
};
use kamiyo_ml::arima::risk;

use super::{Detector, Sink};
use crate::state::MarketState;

/// Settings. The model (orders searched, minimum history, horizon, interval) is
/// [`kamiyo_ml::arima::risk`]'s, the same as `/ml/forecast`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastSettings {
    /// 24 h PnL loss (USD, positive) that triggers the detection.
    pub loss_usd: f64,
    /// Hours of history fitted (at most).
    pub history_hours: usize,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        Self {
            loss_usd: 1_000_000.0,
            history_hours: 720,
        }
    }
}

/// The detector.
#[derive(Debug)]
pub struct ForecastDetector {
    settings: ForecastSettings,
    hourly: BTreeMap<i64, f64>,
    last_fit_hour: i64,
}

fn dec(v: f64) -> Decimal {
    Decimal::from_f64_retain(v).unwrap_or_default().round_dp(0)
}

impl ForecastDetector {
    /// A detector with `settings`.
    pub fn new(settings: ForecastSettings) -> Self {
        Self {
            settings,
            hourly: BTreeMap::new(),
            last_fit_hour: i64::MIN,
        }
    }

    fn fit(&mut self, now: Timestamp, sink: &mut Sink) {
        let hour = now.0 - now.0.rem_euclid(Timestamp::HOUR);
        if hour <= self.last_fit_hour || self.hourly.len() < risk::MIN_HOURS {
            return;
        }
        self.last_fit_hour = hour;
        // Only complete hours, the most recent `history_hours`.
        let past: Vec<f64> = self.hourly.range(..hour).map(|(_, v)| *v).collect();
        let y = &past[past.len().saturating_sub(self.settings.history_hours)..];
        // One core: the engine is single-threaded by design.
        let Ok(f) = risk::forecast(y, 1) else {
            return;
        };
        let m = &f.model;
        let (mean, lower, upper) = f.change();
        if lower > -self.settings.loss_usd {
            return;
        }
        let severity = if mean <= -self.settings.loss_usd {
            Severity::Critical
        } else {
            Severity::High
        };
        sink.detections.push(Detection {
            protocol: Default::default(),
            direction: None,
            group: None,
            key: IncidentKey::new("risk_forecast", &["hlp_pnl"]),
            detector: "risk_forecast".into(),
            threat_type: ThreatType::RiskForecast,
            severity,
            asset: None,
            title: format!(
                "HLP 24 h PnL forecast {:+.0} USD (95 % interval {:+.0} .. {:+.0}) reaches the {:.0} USD loss threshold",
                mean, lower, upper, self.settings.loss_usd
            ),
            indicators: vec![format!("arima({},{},{})", m.p, m.d, m.q)],
            evidence: Evidence::new()
                .with("change_24h_mean_usd", dec(mean))
                .with("change_24h_lower_usd", dec(lower))
                .with("change_24h_upper_usd", dec(upper))
                .with("loss_threshold_usd", dec(self.settings.loss_usd))
                .with("history_hours", y.len())
                .with("aic", Decimal::from_f64_retain(m.aic).unwrap_or_default().round_dp(2)),
            time: now,
        });
    }
}

impl Detector for ForecastDetector {
    fn name(&self) -> &'static str {
        "risk_forecast"
    }

    fn on_event(&mut self, event: &MarketEvent, state: &MarketState, _sink: &mut Sink) {
        if let MarketEvent::Vault(v) = event
            && v.vault == state.hlp_vault
        {
            for p in &v.pnl_history {
                if let Ok(x) = f64::try_from(p.value) {
                    let h = p.time.0 - p.time.0.rem_euclid(Timestamp::HOUR);
                    self.hourly.insert(h, x);
                }
            }
            let cutoff = v.time.0 - (self.settings.history_hours as i64 + 48) * Timestamp::HOUR;
            self.hourly = self.hourly.split_off(&cutoff);
        }
    }

    fn on_tick(&mut self, now: Timestamp, _state: &MarketState, sink: &mut Sink) {
        self.fit(now, sink);
    }
}
