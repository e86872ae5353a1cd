//! Feature engineering, Isolation Forest anomaly scoring and ARIMA risk forecasts for kamiyo.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
