//! HTTP API, live WebSocket stream and dashboard of kamiyo (actix-web).
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use actix_web::{HttpResponse, web};
use serde::Serialize;

/// Body of `GET /health`.
#[derive(Debug, Serialize)]
pub struct HealthResponse {
    /// Always `ok` while the process serves requests.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Registers the API routes on an actix-web service config.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health));
}
