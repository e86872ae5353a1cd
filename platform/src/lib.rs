//! kamiyo.ai managed platform (proprietary): tiers, tenancy and billing on top of the open-core
//! crates. This crate depends on `crates/*`; nothing in `crates/` may depend on it.

pub mod tiers;
