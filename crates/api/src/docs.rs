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

use crate::{dto, error, operator, routes, ws};

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
        routes::dashboard, routes::hlp_vault, routes::oracle_deviations, routes::liquidations, routes::positions,
        routes::events, routes::event_log, routes::incidents, operator::incident, operator::acknowledge,
        operator::unacknowledge, operator::resolve, operator::add_note, operator::list_silences,
        operator::create_silence, operator::expire_silence, routes::deliveries, routes::ml_anomalies, routes::ml_forecast, ws::ws
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

/// The document as JSON (built once).
pub fn openapi_json() -> String {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut v = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        contract(&mut v);
        serde_json::to_string_pretty(&v).unwrap_or_default()
    })
    .clone()
}

/// Paths answered without a key (never 401).
const PUBLIC: [&str; 3] = ["/health", "/ready", "/"];

/// What a protocol id looks like (`ProtocolId::parse`).
const PROTOCOL_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,31}$";

/// The schema a query parameter really has (the handlers read them as text to answer a bad
/// value with a problem naming the parameter; the document states what is accepted).
fn param_schema(path: &str, name: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let int = |min: u64, max: u64| json!({"type": "integer", "minimum": min, "maximum": max});
    let time = json!({"anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer", "minimum": -62_167_219_200_000_i64, "maximum": 253_402_300_799_999_i64}
    ]});
    Some(match (path, name) {
        (_, "severity") => {
            json!({"type": "string", "enum": kamiyo_core_models::Severity::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()})
        }
        (_, "threat_type") => {
            json!({"type": "string", "enum": crate::routes::threat_type_names()})
        }
        (_, "asset") => json!({"type": "string", "pattern": "^[!-~]{1,64}$"}),
        (_, "protocol") => json!({"type": "string", "pattern": PROTOCOL_PATTERN}),
        (_, "since") => time,
        (_, "cursor") => json!({"type": "string", "pattern": "^e[0-9]{1,18}$"}),
        ("/alerts/deliveries", "channel") => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
        }
        ("/security/incidents", "status") => {
            json!({"type": "string", "enum": ["open", "resolved"]})
        }
        ("/alerts/deliveries", "status") => {
            json!({"type": "string", "enum": ["pending", "delivered", "failed", "suppressed"]})
        }
        ("/ml/forecast", "series") => json!({"type": "string", "enum": ["hlp_pnl"]}),
        ("/ml/forecast", "hours") => int(48, 2160),
        ("/security/liquidations" | "/exploits", "hours") => int(1, 8760),
        (_, "hours") => int(1, 720),
        ("/security/incidents" | "/security/positions" | "/exploits", "limit") => int(1, 500),
        ("/exploits", "offset") => int(0, 100_000),
        ("/exploits", "days") => int(1, 36_500),
        ("/exploits", "min_amount") => json!({"type": "integer", "minimum": 0}),
        ("/exploits", "name" | "chain") => json!({"type": "string", "pattern": "^[ -~]{0,64}$"}),
        ("/exploits", "category") => {
            json!({"type": "string", "enum": kamiyo_core_models::ExploitCategory::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()})
        }
        ("/ml/anomalies" | "/security/log", "limit") => int(1, 1000),
        ("/security/log", "after") => json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
        ("/security/events" | "/security/liquidations" | "/alerts/deliveries", "limit") => {
            int(1, 1000)
        }
        ("/ws", "last_event_id") => json!({"type": "integer", "minimum": 0}),
        ("/silences", "active") => json!({"type": "boolean"}),
        _ => return None,
    })
}

/// Makes the document the contract a generated client can trust: every query parameter with
/// its real type, and on every operation the answers the gate can give before a handler runs
/// (400 malformed request, 401 without a valid key where a key is needed, 413 body too large,
/// 429 over budget).
fn contract(doc: &mut serde_json::Value) {
    use serde_json::json;
    // A silence needs one matcher at least, and exactly one of `ends_at` and `minutes`.
    if let Some(p) = doc.pointer_mut("/components/schemas/SilenceBody/properties/protocol") {
        p["pattern"] = json!(PROTOCOL_PATTERN);
    }
    if let Some(b) = doc.pointer_mut("/components/schemas/SilenceBody") {
        let present = |f: &str, t: &str| json!({"required": [f], "properties": {f: {"type": t}}});
        b["anyOf"] = json!([
            present("detector", "string"),
            present("asset", "string"),
            present("severity", "string"),
            present("protocol", "string"),
        ]);
        b["oneOf"] = json!([
            {"required": ["ends_at"], "properties": {"ends_at": {"type": "string"}, "minutes": {"type": "null"}}},
            {"required": ["minutes"], "properties": {"minutes": {"type": "integer"}, "ends_at": {"type": "null"}}},
        ]);
    }
    let problem = |d: &str| json!({"description": d, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            for prm in op
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut())
                .into_iter()
                .flatten()
            {
                let name = prm["name"].as_str().unwrap_or_default().to_owned();
                if prm["in"] == "query"
                    && let Some(schema) = param_schema(path, &name)
                {
                    prm["schema"] = schema;
                }
                if prm["in"] == "path" && name == "id" {
                    prm["schema"] = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            let mut add = |code: &str, d: &str| {
                responses
                    .entry(code.to_owned())
                    .or_insert_with(|| problem(d));
            };
            add("400", "Malformed request");
            add("413", "Request body too large");
            add(
                "429",
                "Request budget exhausted (Retry-After says when to retry)",
            );
            if !PUBLIC.contains(&path.as_str()) {
                add("401", "An API key is required, or the key is not valid");
            }
            if method != "get" {
                add(
                    "403",
                    "The key is read-only, or the request comes from another origin",
                );
            }
        }
        if PUBLIC.contains(&path.as_str())
            && let Some(get) = ops.get_mut("get")
        {
            get["security"] = json!([]);
        }
    }
}

/// The methods a path answers (`/security/incidents/inc_1` → GET), from the route table;
/// empty when no template matches. For 405 answers with `Allow`.
pub fn methods_of(path: &str) -> Vec<&'static str> {
    let b: Vec<&str> = path.split('/').collect();
    crate::ROUTES
        .iter()
        .filter(|(_, t)| {
            let a: Vec<&str> = t.split('/').collect();
            a.len() == b.len()
                && a.iter().zip(&b).all(|(x, y)| {
                    (x.starts_with('{') && x.ends_with('}') && !y.is_empty()) || x == y
                })
        })
        .map(|(m, _)| *m)
        .collect()
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
