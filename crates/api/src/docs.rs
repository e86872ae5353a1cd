//! The OpenAPI 3 document (generated from the handlers' annotations) and the offline
//! documentation viewers: Swagger UI at `/docs`, ReDoc at `/redoc`.
#![allow(
    unreachable_pub,
    reason = "actix route macros wrap each handler in a public unit struct; the inner fn is what lints"
)]

use actix_web::http::header;
use actix_web::{HttpResponse, get};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{dto, error, routes, ws};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "API key (`kamiyo-hyperliquid keys create`). Optional when the server is bound to loopback, required otherwise.",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "x-api-key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kamiyo Hyperliquid security monitor",
        description = "Incidents, HLP vault, oracle deviations, liquidations and feed health from a self-hosted kamiyo monitor. Errors are application/problem+json with a stable `code`. Live updates: WebSocket /ws.",
        license(name = "AGPL-3.0-only WITH additional terms", url = "https://github.com/kamiyo-ai/kamiyo-hyperliquid/blob/main/LICENSE")
    ),
    paths(
        routes::health, routes::ready, routes::metrics, routes::feeds, routes::exploits,
        routes::dashboard, routes::hlp_vault, routes::oracle_deviations, routes::liquidations,
        routes::events, routes::incidents, routes::incident, routes::deliveries, routes::ml_anomalies, routes::ml_forecast, ws::ws
    ),
    components(schemas(error::Problem, dto::EventResponse, dto::IncidentResponse)),
    modifiers(&Security),
    security(("bearer" = []), ("x-api-key" = [])),
    tags(
        (name = "security", description = "What the monitor found"),
        (name = "monitoring", description = "The monitor's own inputs"),
        (name = "live", description = "Streaming"),
        (name = "alerts", description = "Alert delivery log"),
        (name = "ml", description = "Anomaly model and risk forecast"),
        (name = "service", description = "Probes and metrics")
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// `GET /openapi.json`.
#[get("/openapi.json")]
pub async fn openapi_doc() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

const SWAGGER_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kamiyo API — Swagger UI</title>
<link rel="stylesheet" href="/assets/vendor/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/assets/vendor/swagger-ui-bundle.js"></script>
<script src="/assets/docs-init.js"></script></body></html>"#;

const SWAGGER_INIT: &str = r##"window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true });"##;

const REDOC_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kamiyo API — ReDoc</title>
<style>body{margin:0}</style></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/assets/vendor/redoc.standalone.js"></script></body></html>"#;

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

fn asset(ctype: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(body)
}

/// `GET /docs`.
#[get("/docs")]
pub async fn swagger() -> HttpResponse {
    html(SWAGGER_HTML)
}

/// `GET /redoc`.
#[get("/redoc")]
pub async fn redoc() -> HttpResponse {
    html(REDOC_HTML)
}

/// `GET /assets/docs-init.js`.
#[get("/assets/docs-init.js")]
pub async fn swagger_init() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SWAGGER_INIT.as_bytes())
}

/// `GET /assets/vendor/swagger-ui-bundle.js`.
#[get("/assets/vendor/swagger-ui-bundle.js")]
pub async fn swagger_js() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/swagger-ui-bundle.js"),
    )
}

/// `GET /assets/vendor/swagger-ui.css`.
#[get("/assets/vendor/swagger-ui.css")]
pub async fn swagger_css() -> HttpResponse {
    asset(
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/swagger-ui/swagger-ui.css"),
    )
}

/// `GET /assets/vendor/redoc.standalone.js`.
#[get("/assets/vendor/redoc.standalone.js")]
pub async fn redoc_js() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/redoc/redoc.standalone.js"),
    )
}
