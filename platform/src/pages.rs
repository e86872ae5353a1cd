//! The platform's web pages, served by `kamiyo-platform serve` with every asset embedded (no
//! CDN; works offline): the landing page (the product and the plans, rendered from the same
//! [`TierMatrix`] enforcement reads, and sign-up), the tenant console (`/app`: a page of its own
//! script over `/api/v1` and the open core's tenant-scoped routes and `/ws`), and the staff
//! console (`/admin`, staff tokens). A request on a tenant's custom domain is shown in the
//! tenant's brand (name, logo, colours), looked up by its `Host`.
//!
//! Pages carry a strict Content-Security-Policy (scripts and styles from this origin only),
//! so brand colours arrive as a stylesheet of their own (`/assets/platform/brand.css`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use crate::db::BrandRow;
use crate::tiers::{Feature, Tier};
use crate::web::{PlatformState, WebError};

const SITE_CSS: &str = include_str!("../assets/site.css");
const LANDING_JS: &str = include_str!("../assets/landing.js");
const APP_JS: &str = include_str!("../assets/app.js");
const ADMIN_JS: &str = include_str!("../assets/admin.js");
const APP_HTML: &str = include_str!("../assets/app.html");
const ADMIN_HTML: &str = include_str!("../assets/admin.html");

/// The pages' Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// kamiyo's own colours (white text on each reaches 4.5:1).
pub const DEFAULT_PRIMARY: &str = "#1d4ed8";
/// kamiyo's accent.
pub const DEFAULT_ACCENT: &str = "#0f766e";

/// What a page is shown in: the tenant's brand on its custom domain, else kamiyo's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    /// Name.
    pub name: String,
    /// Logo (`data:` URL).
    pub logo: Option<String>,
    /// Main colour.
    pub primary: String,
    /// Accent colour.
    pub accent: String,
    /// The tenant, on its custom domain.
    pub tenant: Option<String>,
}

impl Default for Brand {
    fn default() -> Self {
        Self {
            name: "kamiyo".into(),
            logo: None,
            primary: DEFAULT_PRIMARY.into(),
            accent: DEFAULT_ACCENT.into(),
            tenant: None,
        }
    }
}

impl From<BrandRow> for Brand {
    fn from(b: BrandRow) -> Self {
        Self {
            name: b.name,
            logo: b.logo,
            primary: b.primary_colour,
            accent: b.accent_colour,
            tenant: Some(b.tenant_id),
        }
    }
}

/// The host name a request was sent to, lower case, without the port.
pub fn host_of(req: &HttpRequest) -> String {
    kamiyo_api::auth::host_name(req.connection_info().host())
}

/// The brand of the request's host (kamiyo's when none is registered for it).
pub async fn brand_of(state: &PlatformState, req: &HttpRequest) -> Brand {
    match state.db.brand_for_host(&host_of(req)).await {
        Ok(Some(b)) => b.into(),
        Ok(None) => Brand::default(),
        Err(e) => {
            tracing::warn!(error = %e, "brand lookup failed; serving kamiyo's");
            Brand::default()
        }
    }
}

/// HTML-escapes text and attribute values (the pages quote attributes with `"`).
pub use kamiyo_alerts::message::escape_html as esc;

// ---- brand input ----

/// WCAG 2 relative luminance of `#rrggbb`.
fn luminance(hex: &str) -> Option<f64> {
    let v = u32::from_str_radix(hex.strip_prefix('#')?, 16).ok()?;
    let lin = |c: u32| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    Some(0.2126 * lin((v >> 16) & 0xff) + 0.7152 * lin((v >> 8) & 0xff) + 0.0722 * lin(v & 0xff))
}

/// The contrast ratio of white text on `hex` (WCAG 2: 1 … 21).
pub fn contrast_with_white(hex: &str) -> Option<f64> {
    luminance(hex).map(|l| 1.05 / (l + 0.05))
}

/// A brand colour: `#rrggbb`, dark enough that white text on it reaches 4.5:1 (WCAG AA).
pub fn parse_colour(field: &str, s: &str) -> Result<String, WebError> {
    let c = s.trim().to_ascii_lowercase();
    let ok = c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|x| x.is_ascii_hexdigit());
    if !ok {
        return Err(WebError::Invalid(format!("{field}: #rrggbb")));
    }
    let ratio = contrast_with_white(&c).unwrap_or(0.0);
    if ratio < 4.5 {
        return Err(WebError::Invalid(format!(
            "{field}: white text on {c} has contrast {ratio:.1}:1; choose a darker colour (4.5:1 is needed to be readable)"
        )));
    }
    Ok(c)
}

/// Largest logo accepted (its `data:` URL).
pub const MAX_LOGO_BYTES: usize = 64 * 1024;

/// A logo: a base64 `data:` URL of a PNG, JPEG or SVG image, at most 64 KiB (an SVG shown
/// through `<img>` runs no script).
pub fn parse_logo(s: &str) -> Result<String, WebError> {
    use base64::Engine as _;
    let bad = |why: &str| WebError::Invalid(format!("logo: {why}"));
    if s.len() > MAX_LOGO_BYTES {
        return Err(bad("at most 64 KiB"));
    }
    let (head, data) = s
        .split_once(',')
        .ok_or_else(|| bad("a data: URL (data:image/png;base64,…)"))?;
    let kinds = [
        "data:image/png;base64",
        "data:image/jpeg;base64",
        "data:image/svg+xml;base64",
    ];
    if !kinds.contains(&head) {
        return Err(bad("a base64 data: URL of a PNG, JPEG or SVG image"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| bad("the base64 data does not decode"))?;
    let looks_right = match head {
        "data:image/png;base64" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "data:image/jpeg;base64" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        _ => std::str::from_utf8(&bytes).is_ok_and(|t| t.contains("<svg")),
    };
    if !looks_right {
        return Err(bad("the data is not the image type it names"));
    }
    Ok(s.to_owned())
}

/// A custom domain: a lower-case DNS name with at least one dot, not kamiyo's own.
pub fn parse_domain(s: &str) -> Result<String, WebError> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
        return Err(WebError::Invalid(
            "domain: a DNS name such as status.example.com".into(),
        ));
    }
    if d == "kamiyo.ai" || d.ends_with(".kamiyo.ai") {
        return Err(WebError::Invalid(
            "domain: kamiyo.ai names are kamiyo's".into(),
        ));
    }
    Ok(d)
}

// ---- responses ----

fn html(mut res: HttpResponseBuilder, body: String) -> HttpResponse {
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "same-origin"))
        .body(body)
}

fn asset(kind: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(body)
}

/// The document head and the brand's header bar.
fn head(brand: &Brand, title: &str) -> String {
    let logo = brand.logo.as_deref().map_or_else(String::new, |l| {
        format!(
            r##"<img class="logo" src="{}" alt="" width="28" height="28">"##,
            esc(l)
        )
    });
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {name}</title>
<link rel="stylesheet" href="/assets/platform/site.css"><link rel="stylesheet" href="/assets/platform/brand.css">
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header class="bar"><a class="brand" href="/">{logo}<span id="brand-name">{name}</span></a>
<nav aria-label="Site"><a href="/#plans">Plans</a><a href="/docs">API docs</a><a href="/app">Sign in</a></nav></header>
"##,
        title = esc(title),
        name = esc(&brand.name),
    )
}

/// A page that says something and links on (errors of browser flows).
pub fn message(status: u16, title: &str, text: &str) -> HttpResponse {
    let brand = Brand::default();
    let body = format!(
        r##"{}<main id="main" class="narrow"><h1>{}</h1><p role="alert">{}</p><p><a class="button" href="/app">Back to sign-in</a></p></main></body></html>"##,
        head(&brand, title),
        esc(title),
        esc(text)
    );
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    html(HttpResponse::build(code), body)
}

/// After single sign-on: a page of ours that moves on to the console (its session cookies are
/// on `res`).
pub fn signed_in(res: HttpResponseBuilder) -> HttpResponse {
    let brand = Brand::default();
    let body = format!(
        r##"{}<main id="main" class="narrow"><h1>Signed in</h1><p>Opening the console… <a href="/app">continue</a></p><meta http-equiv="refresh" content="0;url=/app"></main></body></html>"##,
        head(&brand, "Signed in"),
    );
    html(res, body)
}

fn money(cents: u64) -> String {
    if cents.is_multiple_of(100) {
        format!("${}", group(cents / 100))
    } else {
        format!("${}.{:02}", group(cents / 100), cents % 100)
    }
}

fn group(n: u64) -> String {
    kamiyo_core_models::units::group_thousands(&n.to_string())
}

/// A feature in words.
pub fn feature_words(f: Feature) -> &'static str {
    match f {
        Feature::PredictiveAnalytics => "Risk forecast (ARIMA)",
        Feature::MultiProtocol => "Several protocols",
        Feature::MultiTenant => "Managed, multi-tenant",
        Feature::AdvancedMl => "Ensemble ML (forest, SVM, random forest)",
        Feature::CrossProtocolCorrelation => "Cross-protocol attack correlation",
        Feature::SocialSentiment => "Social sentiment signals",
        Feature::CustomBranding => "Your brand on the console",
        Feature::CustomDomain => "Custom domain",
        Feature::PrioritySupport => "Priority support",
        Feature::Sso => "Single sign-on (OpenID Connect)",
        Feature::Rbac => "Roles and permissions",
        Feature::AuditLog => "Audit log",
        Feature::Sla => "Contractual SLA",
        Feature::WhiteLabel => "White label: alerts in your name",
    }
}

fn limit_words(n: u64, unit: &str) -> String {
    if n >= 999 && unit == "protocols" {
        "every protocol".into()
    } else {
        format!("{} {unit}", group(n))
    }
}

/// The plans, as cards, from the tier matrix.
fn plans(state: &PlatformState) -> String {
    let trial = state.billing.as_ref().map_or(0, |b| b.settings.trial_days);
    let mut out = String::new();
    for t in Tier::ALL {
        let c = state.tiers.config(t);
        let price = if c.price_cents_per_month == 0 {
            "Free".to_owned()
        } else {
            format!("{}<small>/month</small>", money(c.price_cents_per_month))
        };
        let features: String = c
            .features
            .iter()
            .map(|f| format!("<li>{}</li>", esc(feature_words(*f))))
            .collect();
        let action = if t == Tier::OpenSource {
            r##"<a class="button ghost" href="/docs">Self-host the open core</a>"##.to_owned()
        } else if trial > 0 {
            format!(
                r##"<a class="button" href="/app#signup/{}">Start a {trial}-day trial</a>"##,
                t.as_str()
            )
        } else {
            format!(
                r##"<a class="button" href="/app#signup/{}">Choose {}</a>"##,
                t.as_str(),
                esc(&c.display_name)
            )
        };
        out.push_str(&format!(
            r##"<article class="plan" data-plan="{id}"><h3>{name}</h3><p class="price">{price}</p>
<ul class="limits"><li>{protocols}</li><li>{calls} a day</li><li>{alerts} a day</li><li>{history} of history</li><li>{support} support</li>{hosting}</ul>
<ul class="features">{features}</ul>{action}</article>"##,
            id = t.as_str(),
            name = esc(&c.display_name),
            protocols = limit_words(u64::from(c.limits.protocols), "protocols"),
            calls = limit_words(c.limits.api_calls_per_day, "API calls"),
            alerts = limit_words(c.limits.alerts_per_day, "alerts"),
            history = limit_words(u64::from(c.limits.history_days), "days"),
            support = esc(&c.support),
            hosting = if c.managed_hosting {
                "<li>Hosted by us</li>"
            } else {
                "<li>You host it</li>"
            },
        ));
    }
    out
}

/// `GET /`: the product and the plans.
pub async fn landing(req: HttpRequest, state: web::Data<PlatformState>) -> HttpResponse {
    let brand = brand_of(&state, &req).await;
    // On a tenant's own domain, the page is its console's door, not kamiyo's shop.
    if brand.tenant.is_some() {
        return HttpResponse::Found()
            .insert_header((header::LOCATION, "/app"))
            .finish();
    }
    let protocols = state.registry.all().len();
    let body = format!(
        r##"{head}<main id="main">
<section class="hero"><h1>Know about a Hyperliquid incident in seconds, not from Twitter.</h1>
<p>kamiyo watches the HLP vault, the oracle against outside exchanges, liquidation cascades, auto-deleveraging and manipulation of thin markets; it scores anomalies, forecasts risk and alerts your team with the evidence attached. {protocols} protocols, one console.</p>
<p><a class="button" href="/app#signup/cloud_pro">Start a trial</a> <a class="button ghost" href="/docs">Read the API</a></p></section>
<section aria-labelledby="what"><h2 id="what">What it watches</h2><ul class="grid">
<li><h3>HLP vault</h3><p>Drawdowns, losses per hour and concentrated exposure of the vault that backs the exchange.</p></li>
<li><h3>Oracle</h3><p>The mark against a median of outside venues, with a stale or stalled reference venue told apart from a real dislocation.</p></li>
<li><h3>Cascades</h3><p>Liquidation waves across markets and the auto-deleveraging that follows them.</p></li>
<li><h3>Thin markets</h3><p>Pushes and squeezes of illiquid assets, the way JELLY was attacked.</p></li>
<li><h3>Across protocols</h3><p>Funding, preparation, attack and laundering linked into one incident (Pro and Enterprise).</p></li>
<li><h3>Alerts</h3><p>Webhook, Slack, Discord, Telegram, PagerDuty, Opsgenie and email, each once, with evidence.</p></li></ul></section>
<section id="plans" aria-labelledby="plans-h"><h2 id="plans-h">Plans</h2><div class="plans">{plans}</div>
<p class="fine">Prices in US dollars per month, billed by Stripe. Limits are per organisation; calls and alerts reset at midnight UTC.</p></section>
<section aria-labelledby="docs-h"><h2 id="docs-h">Documentation</h2><ul class="links">
<li><a href="/docs">API reference (Swagger UI)</a></li><li><a href="/redoc">API reference (ReDoc)</a></li><li><a href="/api/v1/openapi.json">OpenAPI document</a></li><li><a href="/status">Status</a></li></ul></section>
</main><footer class="foot">kamiyo.ai · the open core is AGPL-3.0</footer>
<script src="/assets/platform/landing.js"></script></body></html>"##,
        head = head(&brand, "Security monitoring for Hyperliquid"),
        plans = plans(&state),
    );
    html(HttpResponse::Ok(), body)
}

/// The console page (`/app`, and the pages mailed links open).
pub async fn app(req: HttpRequest, state: web::Data<PlatformState>) -> HttpResponse {
    let brand = brand_of(&state, &req).await;
    let plans: Vec<serde_json::Value> = Tier::ALL
        .into_iter()
        .filter(|t| *t != Tier::OpenSource)
        .map(|t| {
            let c = state.tiers.config(t);
            serde_json::json!({"id": t, "name": c.display_name, "price_cents": c.price_cents_per_month})
        })
        .collect();
    let page = APP_HTML
        .replace(
            "{{HEAD}}",
            &head(&brand, "Console").replace("<!doctype html>\n", ""),
        )
        .replace(
            "{{BRAND_TENANT}}",
            &esc(brand.tenant.as_deref().unwrap_or("")),
        )
        .replace(
            "{{PLANS}}",
            &esc(&serde_json::to_string(&plans).unwrap_or_default()),
        );
    html(HttpResponse::Ok(), page)
}

/// `GET /status`: the public status page (server-rendered from `/api/v1/status`; no script).
pub async fn status(state: web::Data<PlatformState>) -> HttpResponse {
    let v = state.public_status().await;
    let word = |s: &str| match s {
        "up" => "Operational",
        "degraded" => "Degraded",
        _ => "Down",
    };
    let overall = v["overall"].as_str().unwrap_or("down");
    let mut rows = String::new();
    for c in v["components"].as_array().into_iter().flatten() {
        let state_of = c["state"].as_str().unwrap_or("down");
        let uptime = c["uptime_pct_90d"].as_f64().map_or_else(
            || "no probes yet".to_owned(),
            |p| format!("{p:.3} % uptime"),
        );
        let mut bars = String::new();
        for d in c["days"].as_array().into_iter().flatten() {
            let day = d["day"].as_str().unwrap_or("");
            let probed = d["probed"].as_i64().unwrap_or(0);
            let (class, text) = match d["uptime_pct"].as_f64() {
                None => ("none", format!("{day}: no probes")),
                Some(p) => {
                    let down = d["down"].as_i64().unwrap_or(0);
                    let degraded = d["degraded"].as_i64().unwrap_or(0);
                    let class = if down > 0 {
                        "down"
                    } else if degraded > 0 {
                        "degraded"
                    } else {
                        "up"
                    };
                    (
                        class,
                        format!(
                            "{day}: {p:.3} % of {probed} probed minutes up; {down} down, {degraded} degraded"
                        ),
                    )
                }
            };
            bars.push_str(&format!(
                r##"<span class="day {class}" title="{}"></span>"##,
                esc(&text)
            ));
        }
        rows.push_str(&format!(
            r##"<li class="component"><div class="row between"><h2 class="cname">{name}</h2><span class="state {state_of}">{word}</span></div>
<p class="fine">{detail}</p>
<div class="days" role="img" aria-label="{name}: {uptime} over 90 days">{bars}</div>
<div class="row between fine"><span>90 days ago</span><span>{uptime}</span><span>today</span></div></li>"##,
            name = esc(c["name"].as_str().unwrap_or("")),
            word = word(state_of),
            detail = esc(c["detail"].as_str().unwrap_or("")),
            uptime = esc(&uptime),
        ));
    }
    let processes = v["processes"].as_array().map_or(0, Vec::len);
    let body = format!(
        r##"{head}<main id="main" class="narrow wide-enough">
<h1>Status</h1>
<p class="banner {banner}" role="status">{overall_words}</p>
<ul class="components">{rows}</ul>
<p class="fine">Checked {at}. {processes} platform process(es) reporting. {probes}. Uptime counts the minutes a component was found down against the minutes probed; degraded minutes count as up. Also as JSON: <a href="/api/v1/status">/api/v1/status</a>.</p>
</main></body></html>"##,
        head = head(&Brand::default(), "Status"),
        banner = match overall {
            "up" => "good",
            "degraded" => "warn",
            _ => "bad",
        },
        overall_words = match overall {
            "up" => "All systems operational",
            "degraded" => "Some systems degraded",
            _ => "Some systems down",
        },
        at = esc(v["at"].as_str().unwrap_or("")),
        probes = esc(v["probes"].as_str().unwrap_or("")),
    );
    html(HttpResponse::Ok(), body)
}

/// The staff console.
pub async fn admin() -> HttpResponse {
    let page = ADMIN_HTML.replace(
        "{{HEAD}}",
        &head(&Brand::default(), "Staff").replace("<!doctype html>\n", ""),
    );
    html(HttpResponse::Ok(), page)
}

/// The brand's colours as CSS custom properties (by the request's host).
pub async fn brand_css(req: HttpRequest, state: web::Data<PlatformState>) -> HttpResponse {
    let b = brand_of(&state, &req).await;
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(format!(
            ":root {{ --primary: {}; --accent: {}; }}\n",
            b.primary, b.accent
        ))
}

/// Registers the pages, their assets and single sign-on (before the open core's own `/`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(landing))
        .route("/app", web::get().to(app))
        .route("/verify-email", web::get().to(app))
        .route("/reset-password", web::get().to(app))
        .route("/admin", web::get().to(admin))
        .route("/status", web::get().to(status))
        .route("/assets/platform/brand.css", web::get().to(brand_css))
        .route(
            "/assets/platform/site.css",
            web::get().to(|| async { asset("text/css; charset=utf-8", SITE_CSS) }),
        )
        .route(
            "/assets/platform/landing.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", LANDING_JS) }),
        )
        .route(
            "/assets/platform/app.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/platform/admin.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", ADMIN_JS) }),
        )
        .route("/sso/{tenant}/start", web::get().to(crate::sso::start))
        .route(
            "/sso/{tenant}/callback",
            web::get().to(crate::sso::callback),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_must_carry_white_text() {
        assert_eq!(parse_colour("c", "#1D4ED8").unwrap(), "#1d4ed8");
        assert!(contrast_with_white(DEFAULT_PRIMARY).unwrap() >= 4.5);
        assert!(contrast_with_white(DEFAULT_ACCENT).unwrap() >= 4.5);
        // Yellow on white is unreadable.
        let e = parse_colour("c", "#ffd700").unwrap_err();
        assert!(
            matches!(&e, WebError::Invalid(d) if d.contains("contrast 1.4:1")),
            "{e:?}"
        );
        assert!(parse_colour("c", "red").is_err());
        assert!(parse_colour("c", "#12345g").is_err());
        // Black is 21:1.
        assert!((contrast_with_white("#000000").unwrap() - 21.0).abs() < 1e-9);
    }

    #[test]
    fn logos_are_images_of_the_type_they_name() {
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nrest");
        assert!(parse_logo(&format!("data:image/png;base64,{png}")).is_ok());
        let svg = base64::engine::general_purpose::STANDARD
            .encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>");
        assert!(parse_logo(&format!("data:image/svg+xml;base64,{svg}")).is_ok());
        assert!(parse_logo(&format!("data:image/jpeg;base64,{png}")).is_err());
        assert!(parse_logo("javascript:alert(1)").is_err());
        assert!(parse_logo("data:text/html;base64,PGI+").is_err());
        assert!(parse_logo(&"x".repeat(MAX_LOGO_BYTES + 1)).is_err());
    }

    #[test]
    fn domains_are_dns_names() {
        assert_eq!(
            parse_domain("Status.Example.COM.").unwrap(),
            "status.example.com"
        );
        for bad in [
            "localhost",
            "a..b",
            "-a.com",
            "x.kamiyo.ai",
            "kamiyo.ai",
            "a b.com",
            "a_b.com",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_and_escaping() {
        assert_eq!(money(249_900), "$2,499");
        assert_eq!(money(9_950), "$99.50");
        assert_eq!(esc("<a href=\"x\">"), "&lt;a href=&quot;x&quot;&gt;");
    }
}
