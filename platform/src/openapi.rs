//! The OpenAPI 3.1 document of the platform's `/api/v1` routes, built from one table
//! ([`OPERATIONS`]) that the route tests walk, so the document and the routes cannot drift.

use serde_json::{Value, json};

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// HTTP method (lower case).
    pub method: &'static str,
    /// Path under the server root, `{name}` for parameters.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Least role, or `public`.
    pub role: &'static str,
    /// Plan feature needed, if any.
    pub feature: Option<&'static str>,
    /// Request body schema, if any.
    pub body: Option<&'static str>,
    /// Success status.
    pub ok: u16,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    role: &'static str,
    body: Option<&'static str>,
    ok: u16,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        role,
        feature: None,
        body,
        ok,
    }
}

/// Every operation under `/api/v1`.
pub const OPERATIONS: &[Operation] = &[
    op(
        "post",
        "/api/v1/signup",
        "Create a tenant, its owner and the owner's first API key (shown once).",
        "public",
        Some("SignUp"),
        201,
    ),
    op(
        "post",
        "/api/v1/login",
        "Sign in (verified address): sets the session cookie (Secure, HttpOnly, SameSite=Strict) and the CSRF cookie; writes made with the cookie carry the token in X-CSRF-Token. Throttled per account.",
        "public",
        Some("Login"),
        200,
    ),
    op(
        "post",
        "/api/v1/logout",
        "End the session of the cookie presented.",
        "viewer",
        None,
        204,
    ),
    op(
        "post",
        "/api/v1/verify-email",
        "Verify an address with the mailed token (once, within 24 hours).",
        "public",
        Some("Token"),
        200,
    ),
    op(
        "post",
        "/api/v1/password-reset",
        "Mail a reset link (one hour) if the address is known; the answer is the same either way.",
        "public",
        Some("ResetRequest"),
        202,
    ),
    op(
        "post",
        "/api/v1/password-reset/confirm",
        "Set a new password with the mailed token; every session of the user ends.",
        "public",
        Some("Token"),
        200,
    ),
    op(
        "get",
        "/api/v1/tenant",
        "The caller's tenant: plan, features, limits, today's usage.",
        "viewer",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/usage",
        "Daily usage (API calls, alerts, alerts held back), newest first.",
        "viewer",
        None,
        200,
    ),
    op("get", "/api/v1/users", "Users.", "admin", None, 200),
    op(
        "post",
        "/api/v1/users",
        "Add a user (never above the caller's role; viewer/analyst need RBAC).",
        "admin",
        Some("NewUser"),
        201,
    ),
    op(
        "delete",
        "/api/v1/users/{id}",
        "Disable a user (never the last owner).",
        "admin",
        None,
        204,
    ),
    op(
        "get",
        "/api/v1/keys",
        "API keys (never their secrets).",
        "admin",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/keys",
        "Create an API key `<tenant>.<secret>` (shown once).",
        "admin",
        Some("NewKey"),
        201,
    ),
    op(
        "delete",
        "/api/v1/keys/{id}",
        "Revoke a key.",
        "admin",
        None,
        204,
    ),
    op(
        "get",
        "/api/v1/subscriptions",
        "Protocols subscribed.",
        "viewer",
        None,
        200,
    ),
    op(
        "put",
        "/api/v1/subscriptions/{protocol}",
        "Subscribe to a protocol (a second one needs multi_protocol; at most the plan's protocols).",
        "admin",
        None,
        200,
    ),
    op(
        "delete",
        "/api/v1/subscriptions/{protocol}",
        "Unsubscribe.",
        "admin",
        None,
        204,
    ),
    op(
        "get",
        "/api/v1/thresholds",
        "Per-detector threshold overrides.",
        "viewer",
        None,
        200,
    ),
    op(
        "put",
        "/api/v1/thresholds/{detector}/{name}",
        "Set a threshold override.",
        "analyst",
        Some("Threshold"),
        200,
    ),
    op(
        "delete",
        "/api/v1/thresholds/{detector}/{name}",
        "Remove an override.",
        "analyst",
        None,
        204,
    ),
    op(
        "get",
        "/api/v1/watched-addresses",
        "Watched addresses.",
        "viewer",
        None,
        200,
    ),
    op(
        "put",
        "/api/v1/watched-addresses/{address}",
        "Watch an address (or relabel it).",
        "analyst",
        Some("Watch"),
        200,
    ),
    op(
        "delete",
        "/api/v1/watched-addresses/{address}",
        "Stop watching.",
        "analyst",
        None,
        204,
    ),
    op(
        "get",
        "/api/v1/channels",
        "Alert channels (secrets are write-only).",
        "admin",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/channels",
        "Add an alert channel.",
        "admin",
        Some("Channel"),
        201,
    ),
    op(
        "delete",
        "/api/v1/channels/{id}",
        "Remove a channel.",
        "admin",
        None,
        204,
    ),
    op(
        "get",
        "/api/v1/alerts",
        "The tenant's alert outbox, newest first: pending, held back by the daily cap, digests.",
        "viewer",
        None,
        200,
    ),
    Operation {
        feature: Some("cross_protocol_correlation"),
        ..op(
            "get",
            "/api/v1/correlated",
            "Cross-protocol correlated incidents touching the tenant's protocols, latest first: pattern, shared entity, protocols, member incidents, the evidence of each attack stage, score.",
            "viewer",
            None,
            200,
        )
    },
    op(
        "get",
        "/api/v1/plans",
        "The plans (tier matrix): price, limits, features, support, and the trial Checkout starts.",
        "public",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/incident-states",
        "The tenant's newest action on each of the incidents named (`ids`, comma-separated, at most 200); those it never acted on are absent.",
        "viewer",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/incidents/{id}/actions",
        "The tenant's actions on a shared incident, oldest first.",
        "viewer",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/incidents/{id}/actions",
        "Acknowledge, mute (no more alerts for it), resolve (a new alerting step reopens it) or reopen an incident, with a note; audited.",
        "analyst",
        Some("IncidentAction"),
        200,
    ),
    op(
        "post",
        "/api/v1/channels/{id}/test",
        "Send a clearly marked test message to the channel now; answers whether it was delivered (audited).",
        "admin",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/branding",
        "The tenant's brand and what its plan allows of it.",
        "viewer",
        None,
        200,
    ),
    Operation {
        feature: Some("custom_branding"),
        ..op(
            "put",
            "/api/v1/branding",
            "Set the brand: name, logo, colours (white text must reach 4.5:1), custom domain (plans with custom domains).",
            "admin",
            Some("Brand"),
            200,
        )
    },
    Operation {
        feature: Some("custom_branding"),
        ..op(
            "delete",
            "/api/v1/branding",
            "Back to kamiyo's look.",
            "admin",
            None,
            204,
        )
    },
    op(
        "get",
        "/api/v1/sso",
        "The tenant's single sign-on settings (never the client secret), its redirect URI and start URL.",
        "viewer",
        None,
        200,
    ),
    Operation {
        feature: Some("sso"),
        ..op(
            "put",
            "/api/v1/sso",
            "Set OpenID Connect single sign-on: issuer (discovered before it is saved), client, role claim and mapping, whether password sign-in is refused.",
            "admin",
            Some("Sso"),
            200,
        )
    },
    Operation {
        feature: Some("sso"),
        ..op(
            "delete",
            "/api/v1/sso",
            "Remove single sign-on (passwords work again).",
            "admin",
            None,
            204,
        )
    },
    op(
        "get",
        "/api/v1/admin/audit",
        "Staff: the newest audit rows of every tenant.",
        "staff",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/admin/health",
        "Staff: system health (tenants, alert backlog, router and correlator lag, billing and mail).",
        "staff",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/admin/sla",
        "Staff: the SLA report of every tenant whose plan has the SLA for ?month=YYYY-MM (default: the last complete month), ?format=json (default) or csv.",
        "staff",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/status",
        "The platform's status: each component (API, database, alert delivery, each protocol's feeds) now, the live processes, and 90 days of uptime from the platform's own minute probes.",
        "public",
        None,
        200,
    ),
    Operation {
        feature: Some("sla"),
        ..op(
            "get",
            "/api/v1/sla",
            "The tenant's SLA report for ?month=YYYY-MM (default: the last complete month): API availability from the recorded probes, its alerts' delivery latency (p50, p99, max) and failures, each against the target; ?format=json (default) or csv.",
            "viewer",
            None,
            200,
        )
    },
    op(
        "get",
        "/api/v1/admin/tenants",
        "Staff: every tenant (staff token; audited actions below).",
        "staff",
        None,
        200,
    ),
    op(
        "put",
        "/api/v1/admin/tenants/{tenant}/plan",
        "Staff: change a tenant's plan.",
        "staff",
        Some("Plan"),
        200,
    ),
    op(
        "post",
        "/api/v1/admin/tenants/{tenant}/suspend",
        "Staff: suspend a tenant (its keys and sessions stop working).",
        "staff",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/admin/tenants/{tenant}/reinstate",
        "Staff: reinstate a suspended tenant.",
        "staff",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/admin/tenants/{tenant}/impersonate",
        "Staff: a read-only key of the tenant that expires (1–240 minutes), with the reason recorded.",
        "staff",
        Some("Impersonate"),
        201,
    ),
    Operation {
        feature: Some("audit_log"),
        ..op(
            "get",
            "/api/v1/audit",
            "The audit log, newest first, within the plan's history.",
            "admin",
            None,
            200,
        )
    },
    Operation {
        feature: Some("audit_log"),
        ..op(
            "get",
            "/api/v1/audit/export",
            "The audit log as JSON lines, oldest first.",
            "admin",
            None,
            200,
        )
    },
    op(
        "get",
        "/api/v1/protocols",
        "The protocols the caller's plan may subscribe to (from the protocol registry): category, chains, adapter status (live / historical / planned and why), documentation, data sources, whether this deployment has it and whether the tenant is subscribed.",
        "viewer",
        None,
        200,
    ),
    op(
        "get",
        "/api/v1/billing",
        "Plan, subscription and dunning state as Stripe last confirmed them, with the in-app banner while a payment is overdue.",
        "viewer",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/billing/checkout",
        "A Stripe Checkout Session for a plan (a 14-day trial with the tenant's first subscription). The plan applies when Stripe confirms the subscription, not when the browser returns. Idempotency-Key honoured.",
        "admin",
        Some("Checkout"),
        201,
    ),
    op(
        "post",
        "/api/v1/billing/portal",
        "A Stripe Customer Portal link (payment methods, invoices). Open while suspended.",
        "admin",
        None,
        201,
    ),
    op(
        "post",
        "/api/v1/billing/plan",
        "Change plan: an upgrade is prorated and charged at once (a declined card changes nothing: 402), a downgrade credits the unused time on the next invoice; both apply as soon as Stripe answers.",
        "admin",
        Some("Plan"),
        200,
    ),
    op(
        "post",
        "/api/v1/billing/cancel",
        "Cancel now (the unpaid plan applies at once, no refund) or at the end of the paid period (the plan holds until then).",
        "admin",
        Some("Cancel"),
        200,
    ),
    op(
        "post",
        "/api/v1/billing/reactivate",
        "Withdraw a cancellation set for the period's end, before the period ends.",
        "admin",
        None,
        200,
    ),
    op(
        "post",
        "/api/v1/billing/webhook",
        "Stripe's event deliveries, verified by the Stripe-Signature header (HMAC-SHA256 over t.payload, 300 s tolerance, any v1 of any configured secret); applied once per event id, older states never overwrite newer ones. Refused deliveries: 400, nothing changed.",
        "public",
        Some("StripeEvent"),
        200,
    ),
];

fn problem(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn schemas() -> Value {
    let s = |props: Value, required: &[&str]| json!({"type": "object", "additionalProperties": false, "properties": props, "required": required});
    json!({
        "Problem": s(json!({
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "code": {"type": "string"}
        }), &["type", "title", "status", "detail", "code"]),
        "SignUp": s(json!({
            "tenant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{2,31}$"},
            "name": {"type": "string", "minLength": 1, "maxLength": 120},
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "password": {"type": "string", "minLength": 12, "maxLength": 256}
        }), &["tenant", "name", "email", "password"]),
        "NewUser": s(json!({
            "email": {"type": "string", "format": "email"},
            "password": {"type": "string", "minLength": 12, "maxLength": 256},
            "role": {"enum": ["owner", "admin", "analyst", "viewer"]}
        }), &["email", "password", "role"]),
        "NewKey": s(json!({
            "name": {"type": "string", "minLength": 1, "maxLength": 80},
            "role": {"enum": ["owner", "admin", "analyst", "viewer"]}
        }), &["name", "role"]),
        "Threshold": s(json!({"value": {"type": "number"}}), &["value"]),
        "Plan": s(json!({"plan": {"enum": ["open_source", "cloud_basic", "cloud_pro", "cloud_enterprise"]}}), &["plan"]),
        "Impersonate": s(json!({
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "minutes": {"type": "integer", "minimum": 1, "maximum": 240}
        }), &["reason"]),
        "Login": s(json!({
            "tenant": {"type": "string"},
            "email": {"type": "string", "format": "email"},
            "password": {"type": "string"}
        }), &["tenant", "email", "password"]),
        "Token": s(json!({
            "tenant": {"type": "string"},
            "token": {"type": "string"},
            "password": {"type": "string", "minLength": 12, "maxLength": 256}
        }), &["tenant", "token"]),
        "ResetRequest": s(json!({
            "tenant": {"type": "string"},
            "email": {"type": "string", "format": "email"}
        }), &["tenant", "email"]),
        "Checkout": s(json!({"plan": {"enum": ["cloud_basic", "cloud_pro", "cloud_enterprise"]}}), &["plan"]),
        "Cancel": s(json!({"at_period_end": {"type": "boolean"}}), &["at_period_end"]),
        "StripeEvent": {"type": "object", "description": "A Stripe event object (https://docs.stripe.com/api/events/object), as Stripe signed it.", "required": ["id", "object", "type", "created", "data"]},
        "Watch": s(json!({"label": {"type": "string", "minLength": 1, "maxLength": 80}}), &["label"]),
        "IncidentAction": s(json!({
            "action": {"enum": crate::web::INCIDENT_ACTIONS},
            "note": {"type": "string", "maxLength": 500}
        }), &["action"]),
        "Brand": s(json!({
            "name": {"type": "string", "minLength": 1, "maxLength": 60},
            "logo": {"type": ["string", "null"], "maxLength": crate::pages::MAX_LOGO_BYTES, "description": "data:image/png|jpeg|svg+xml;base64,…"},
            "primary_colour": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
            "accent_colour": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
            "domain": {"type": ["string", "null"], "maxLength": 253}
        }), &["name", "primary_colour", "accent_colour"]),
        "Sso": s(json!({
            "issuer": {"type": "string", "maxLength": 500},
            "client_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "client_secret": {"type": "string", "minLength": 1, "maxLength": 500},
            "role_claim": {"type": "string", "maxLength": 80},
            "role_map": {"type": "object", "additionalProperties": {"enum": ["admin", "analyst", "viewer"]}},
            "default_role": {"enum": ["admin", "analyst", "viewer", null]},
            "enforced": {"type": "boolean"}
        }), &["issuer", "client_id", "client_secret"]),
        "Channel": s(json!({
            "name": {"type": "string", "minLength": 1, "maxLength": 80},
            "kind": {"enum": crate::tenancy::CHANNEL_KINDS},
            "url": {"type": "string", "maxLength": 2048},
            "secret": {"type": "string", "minLength": 1, "maxLength": 512},
            "min_severity": {"enum": crate::tenancy::SEVERITIES}
        }), &["name", "kind", "url"]),
    })
}

fn parameter(name: &str) -> Value {
    let schema = match name {
        "id" => json!({"type": "string", "pattern": "^[a-z]{3}_[0-9a-f]{16}$"}),
        "protocol" => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$"}),
        "address" => json!({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
        "tenant" => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{2,31}$"}),
        _ => json!({"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

/// The whole service's document, served at `/openapi.json` (and `/api/v1/openapi.json`): the
/// open core's routes as each tenant reaches them, and the platform's.
pub fn merged() -> Value {
    let mut doc: Value =
        serde_json::from_str(&kamiyo_api::docs::openapi_json()).unwrap_or_else(|_| json!({}));
    let platform = document();
    doc["info"] = json!({
        "title": "kamiyo.ai platform API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "The open core's routes answer each tenant for its subscribed protocols within its plan's history (keys `<tenant>.<secret>`; read-only there); the routes under /api/v1 are the platform's.",
    });
    for (section, from) in [
        ("paths", &platform["paths"]),
        ("schemas", &platform["components"]["schemas"]),
        (
            "securitySchemes",
            &platform["components"]["securitySchemes"],
        ),
    ] {
        let target = if section == "paths" {
            &mut doc["paths"]
        } else {
            &mut doc["components"][section]
        };
        if !target.is_object() {
            *target = json!({});
        }
        if let (Some(t), Some(f)) = (target.as_object_mut(), from.as_object()) {
            for (k, v) in f {
                t.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    doc
}

/// The platform's own routes' document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for o in OPERATIONS {
        let params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(parameter)
            .collect();
        let mut responses = serde_json::Map::new();
        responses.insert(o.ok.to_string(), json!({"description": "done"}));
        responses.insert("400".into(), problem("malformed request"));
        responses.insert(
            "429".into(),
            problem(
                "a limit of the plan or of the address was reached (Retry-After when it resets)",
            ),
        );
        if o.role != "public" {
            responses.insert("401".into(), problem("no valid API key"));
            responses.insert(
                "402".into(),
                problem("the plan lacks a feature; the detail names the plan that has it"),
            );
            responses.insert(
                "403".into(),
                problem("the key's role may not do this, or the tenant is suspended"),
            );
            responses.insert(
                "404".into(),
                problem("nothing with that id for this tenant"),
            );
        }
        if o.method != "get" {
            responses.insert("409".into(), problem("conflicts with what exists"));
        }
        responses.insert(
            "503".into(),
            problem(
                "retry: the database or the payment provider is unavailable, or the request lost to a concurrent one (code `contention`, Retry-After); nothing was changed",
            ),
        );
        let mut operation = json!({
            "summary": o.summary,
            "x-kamiyo-role": o.role,
            "parameters": params,
            "responses": responses,
        });
        if let Some(f) = o.feature {
            operation["x-kamiyo-feature"] = json!(f);
        }
        if o.role == "public" {
            operation["security"] = json!([]);
        }
        if let Some(b) = o.body {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
        }
        let entry = paths.entry(o.path.to_owned()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "kamiyo.ai platform API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer", "description": "<tenant>.<secret>"}}
        },
        "security": [{"key": []}],
    })
}
