//! Detection engine of kamiyo.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backtest;
pub mod config;
pub mod detectors;
pub mod engine;
pub mod incident;
pub mod registry;
pub mod runner;
pub mod state;

pub use config::{ConfigError, MonitorsConfig};
pub use detectors::{Detector, Observations, Sink};
pub use engine::{Engine, EngineOutput};
pub use registry::{DetectorFactory, DetectorRegistry, RegistryError};
pub use state::MarketState;
