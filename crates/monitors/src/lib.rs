//! Detection engine of kamiyo: HLP vault, oracle, liquidation, manipulation and whale detectors with incident lifecycle.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
