//! kamiyo.ai managed platform (proprietary): tiers, tenancy and billing on top of the open-core
//! crates. This crate depends on `crates/*`; nothing in `crates/` may depend on it.
//!
//! Modules: [`tiers`] (plans: features and limits), [`tenancy`] (tenants, users, roles, keys,
//! the request's principal — rules only), [`db`] (the only module that speaks SQL; PostgreSQL
//! with row-level security), [`web`] (the `/api/v1` routes and their OpenAPI document).

pub mod adapters;
pub mod billing;
pub mod correlator;
pub mod db;
pub mod detectors;
pub mod ensemble;
pub mod evaluate;
pub mod fanout;
pub mod ingest;
pub mod leader;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod registry;
pub mod sso;
pub mod status;
pub mod tenancy;
pub mod tiers;
pub mod web;
