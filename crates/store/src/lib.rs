//! Storage for kamiyo: embedded SQLite by default, PostgreSQL in production, one repository API (diesel).
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
