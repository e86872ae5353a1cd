//! OpenID Connect single sign-on, per tenant (the `openidconnect` crate): the authorization
//! code flow with PKCE (S256), a one-time `state` bound to the browser by a cookie, the ID
//! token checked by the crate (RS256 signature against the provider's JWKS, issuer, audience,
//! expiry, nonce), the user's role mapped from a claim, then an ordinary platform session.
//!
//! `GET /sso/{tenant}/start` sends the browser to the provider; `GET /sso/{tenant}/callback`
//! takes it back. A tenant whose settings say `enforced` refuses password sign-in
//! ([`crate::web`]'s login). The provider is reached over the platform's own HTTP client,
//! which follows no redirects (the crate's advice against SSRF).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse as _,
};
use serde::Deserialize;

use crate::db::{Actor, SsoLogin, SsoRow};
use crate::tenancy::{self, Role, TenantId};
use crate::tiers::Feature;
use crate::web::{PlatformState, WebError};

/// How long a sign-in may take at the provider.
pub const LOGIN_MS: i64 = 10 * 60 * 1000;
/// The cookie that binds a sign-in's `state` to the browser that started it.
const STATE_COOKIE: &str = "kamiyo_sso_state";

/// Where the provider sends the browser back (register it with the provider).
pub fn redirect_uri(public_url: &str, tenant: &TenantId) -> String {
    format!("{}/sso/{tenant}/callback", public_url.trim_end_matches('/'))
}

/// An issuer URL the platform will call: https, or http to a loopback address (a provider on
/// the same machine, tests); no query or fragment; without a trailing slash.
pub fn parse_issuer(s: &str) -> Result<String, WebError> {
    let bad = |why: &str| WebError::Invalid(format!("issuer: {why}"));
    let s = s.trim().trim_end_matches('/');
    if s.len() > 500 || s.contains(char::is_whitespace) {
        return Err(bad("a URL of at most 500 characters"));
    }
    let url = openidconnect::url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err(bad("https (http only to a loopback address)"));
    }
    if url.query().is_some() || url.fragment().is_some() || url.username() != "" {
        return Err(bad("no query, fragment or credentials"));
    }
    Ok(s.to_owned())
}

/// The HTTP client the crate calls the provider through: no redirects, bounded time.
async fn http(req: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, HttpFailure> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        kamiyo_aggregators::install_crypto_provider();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    });
    let (parts, body) = req.into_parts();
    let mut r = client.request(parts.method, parts.uri.to_string());
    for (k, v) in &parts.headers {
        r = r.header(k, v);
    }
    let res = r.body(body).send().await.map_err(HttpFailure::Request)?;
    let mut out = openidconnect::http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        out = out.header(k, v);
    }
    let bytes = res.bytes().await.map_err(HttpFailure::Request)?;
    out.body(bytes.to_vec())
        .map_err(|e| HttpFailure::Response(e.to_string()))
}

/// Why the provider could not be reached.
#[derive(Debug)]
pub enum HttpFailure {
    /// The request failed.
    Request(reqwest::Error),
    /// The response could not be rebuilt.
    Response(String),
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request(e) => e.fmt(f),
            Self::Response(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for HttpFailure {}

/// The provider's metadata and keys (OpenID Connect Discovery).
pub async fn discover(issuer: &str) -> Result<CoreProviderMetadata, String> {
    let url = IssuerUrl::new(issuer.to_owned()).map_err(|e| e.to_string())?;
    CoreProviderMetadata::discover_async(url, &http)
        .await
        .map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        })
}

/// How long a provider's discovery document and keys are used before they are fetched again.
/// A key the copy does not have is fetched at once whatever its age (OpenID Connect Core
/// §10.1.1: a provider rotating its signing keys publishes the new one under a new `kid`).
pub const PROVIDER_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The providers' discovery documents and keys, per issuer, kept for [`PROVIDER_TTL`]: a
/// sign-in needs them twice (to send the browser to the provider, then to check the ID token),
/// and every sign-in of a tenant needs the same ones.
#[derive(Debug, Default)]
pub struct Providers {
    cached: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, CoreProviderMetadata)>,
    >,
}

impl Providers {
    /// `issuer`'s metadata and keys: the kept copy while it is fresh, else fetched.
    pub async fn get(&self, issuer: &str) -> Result<CoreProviderMetadata, String> {
        let kept = self
            .cached
            .lock()
            .ok()
            .and_then(|c| c.get(issuer).cloned())
            .filter(|(at, _)| at.elapsed() < PROVIDER_TTL);
        match kept {
            Some((_, meta)) => Ok(meta),
            None => self.fetch(issuer).await,
        }
    }

    /// `issuer`'s metadata and keys fetched now (and kept).
    pub async fn fetch(&self, issuer: &str) -> Result<CoreProviderMetadata, String> {
        let meta = discover(issuer).await?;
        if let Ok(mut c) = self.cached.lock() {
            // Copies past their time go (the map holds the issuers used lately, not every
            // issuer a tenant ever tried).
            c.retain(|_, (at, _)| at.elapsed() < PROVIDER_TTL);
            c.insert(issuer.to_owned(), (std::time::Instant::now(), meta.clone()));
        }
        Ok(meta)
    }
}

/// A page that says what went wrong (sign-in happens in the browser, not an API client).
fn refused(status: u16, text: &str) -> HttpResponse {
    crate::pages::message(status, "Single sign-on failed", text)
}

/// The tenant's settings, when its plan has single sign-on.
async fn settings(state: &PlatformState, tenant: &TenantId) -> Result<Option<SsoRow>, WebError> {
    let Some(row) = state.db.sso(tenant).await? else {
        return Ok(None);
    };
    let plan = state.db.tenant(tenant).await?.plan;
    let enabled = plan
        .parse()
        .is_ok_and(|t| state.tiers.is_feature_enabled(t, Feature::Sso));
    Ok(enabled.then_some(row))
}

/// `GET /sso/{tenant}/start`: to the provider.
pub async fn start(state: web::Data<PlatformState>, path: web::Path<String>) -> HttpResponse {
    let Ok(tenant) = TenantId::parse(&path) else {
        return refused(404, "No such tenant.");
    };
    let row = match settings(&state, &tenant).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return refused(
                404,
                "Single sign-on is not set up for this tenant; sign in with your password.",
            );
        }
        Err(e) => return refused(503, &e.to_string()),
    };
    let meta = match state.sso_providers.get(&row.issuer).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "identity provider discovery failed");
            return refused(
                502,
                "The identity provider could not be reached; try again shortly.",
            );
        }
    };
    let Ok(redirect) = RedirectUrl::new(redirect_uri(&state.public_url, &tenant)) else {
        return refused(500, "The platform's public URL is not valid.");
    };
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(row.client_id.clone()),
        Some(ClientSecret::new(row.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let now = crate::fanout::now_ms();
    let login = SsoLogin {
        pkce_verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
    };
    if let Err(e) = state
        .db
        .sso_begin(
            &tenant,
            &tenancy::hash_key(csrf.secret()),
            &login,
            now,
            now + LOGIN_MS,
        )
        .await
    {
        return refused(503, &e.to_string());
    }
    // Lax: the cookie must come back on the provider's top-level redirect to the callback.
    let cookie = actix_web::cookie::Cookie::build(STATE_COOKIE, csrf.secret().clone())
        .path(format!("/sso/{tenant}/"))
        .secure(true)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::milliseconds(LOGIN_MS))
        .finish();
    HttpResponse::Found()
        .cookie(cookie)
        .insert_header((header::LOCATION, url.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The state sent.
    pub state: Option<String>,
    /// The provider's refusal.
    pub error: Option<String>,
    /// In words.
    pub error_description: Option<String>,
}

/// The role a user gets: the highest role any value of the claim maps to, else the default.
pub fn map_role(row: &SsoRow, claims: &serde_json::Value) -> Option<Role> {
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&row.role_map).unwrap_or_default();
    let values: Vec<&str> = match claims.get(&row.role_claim) {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    values
        .iter()
        .filter_map(|v| map.get(*v))
        .filter_map(|r| Role::parse(r).ok())
        .filter(|r| *r != Role::Owner)
        .max()
        .or_else(|| {
            row.default_role
                .as_deref()
                .and_then(|r| Role::parse(r).ok())
        })
}

/// The claims of an ID token the crate has verified (its payload, read again for the claim
/// the tenant names: the crate's types carry only the standard ones).
fn payload(id_token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let middle = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(middle.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `GET /sso/{tenant}/callback`: back from the provider, signed in.
pub async fn callback(
    req: HttpRequest,
    state: web::Data<PlatformState>,
    path: web::Path<String>,
    q: web::Query<Callback>,
) -> HttpResponse {
    let Ok(tenant) = TenantId::parse(&path) else {
        return refused(404, "No such tenant.");
    };
    if let Some(e) = &q.error {
        let words = q.error_description.as_deref().unwrap_or("");
        return refused(
            401,
            &format!("The identity provider refused the sign-in: {e} {words}"),
        );
    }
    let (Some(code), Some(sent_state)) = (&q.code, &q.state) else {
        return refused(400, "The provider's answer had no code or state.");
    };
    // The state must be the one this browser was given at the start.
    let cookie = req.cookie(STATE_COOKIE).map(|c| c.value().to_owned());
    if cookie.as_deref() != Some(sent_state.as_str()) {
        return refused(
            400,
            "This sign-in was not started in this browser; start again.",
        );
    }
    let now = crate::fanout::now_ms();
    let login = match state
        .db
        .sso_take(&tenant, &tenancy::hash_key(sent_state), now)
        .await
    {
        Ok(Some(l)) => l,
        Ok(None) => {
            return refused(
                400,
                "This sign-in expired or was already used; start again.",
            );
        }
        Err(e) => return refused(503, &e.to_string()),
    };
    let row = match settings(&state, &tenant).await {
        Ok(Some(r)) => r,
        Ok(None) => return refused(404, "Single sign-on is not set up."),
        Err(e) => return refused(503, &e.to_string()),
    };
    match finish(&state, &req, &tenant, &row, code, login).await {
        Ok(res) => res,
        Err((status, why)) => {
            tracing::info!(%tenant, reason = %why, "single sign-on refused");
            refused(status, &why)
        }
    }
}

/// Exchanges the code, checks the ID token, maps the role, opens the session.
async fn finish(
    state: &PlatformState,
    req: &HttpRequest,
    tenant: &TenantId,
    row: &SsoRow,
    code: &str,
    login: SsoLogin,
) -> Result<HttpResponse, (u16, String)> {
    let unreachable = |e: String| {
        (
            502,
            format!("The identity provider could not be reached: {e}"),
        )
    };
    let meta = state
        .sso_providers
        .get(&row.issuer)
        .await
        .map_err(unreachable)?;
    let redirect = RedirectUrl::new(redirect_uri(&state.public_url, tenant))
        .map_err(|e| (500, e.to_string()))?;
    let client_for = |meta: CoreProviderMetadata| {
        CoreClient::from_provider_metadata(
            meta,
            ClientId::new(row.client_id.clone()),
            Some(ClientSecret::new(row.client_secret.clone())),
        )
        .set_redirect_uri(redirect.clone())
    };
    let client = client_for(meta);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| (502, format!("The provider has no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier))
        .request_async(&http)
        .await
        .map_err(|e| (401, format!("The provider did not accept the code: {e}")))?;
    let id_token = token
        .id_token()
        .ok_or((401, "The provider returned no ID token.".to_owned()))?;
    let nonce = Nonce::new(login.nonce);
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        // Signed with a key the kept copy does not have: the provider rotated its keys. Its
        // keys are fetched again, once, and the token checked against them.
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let fresh = state
                .sso_providers
                .fetch(&row.issuer)
                .await
                .map_err(unreachable)?;
            id_token
                .claims(&client_for(fresh).id_token_verifier(), &nonce)
                .cloned()
        }
        other => other.cloned(),
    }
    .map_err(|e| (401, format!("The ID token was not accepted: {e}")))?;
    let email = claims
        .email()
        .map(|e| e.as_str().to_owned())
        .ok_or((401, "The ID token carries no email address.".to_owned()))?;
    if claims.email_verified() == Some(false) {
        return Err((401, format!("The provider has not verified {email}.")));
    }
    let email = tenancy::parse_email(&email).map_err(|e| (401, e.to_string()))?;
    let raw = payload(&id_token.to_string()).unwrap_or_default();
    let role = map_role(row, &raw).ok_or((
        403,
        format!(
            "{email} has no role in this tenant: the provider's {:?} claim names no mapped group.",
            row.role_claim
        ),
    ))?;
    let who = Actor {
        actor: format!("sso:{email}"),
        ip: req
            .peer_addr()
            .map_or_else(|| "unknown".into(), |a| a.ip().to_string()),
        at: crate::fanout::now_ms(),
    };
    let new_id = format!("usr_{}", &tenancy::new_secret()[..16]);
    let (user_id, _) = state
        .db
        .sso_user(tenant, &email, role.as_str(), &new_id, &who)
        .await
        .map_err(|e| match e {
            crate::db::DbError::NotFound => (403, format!("{email} was removed from this tenant.")),
            other => (503, other.to_string()),
        })?;
    let mut res = HttpResponse::Ok();
    crate::web::open_session(state, tenant, &user_id, &who.ip, &mut res)
        .await
        .map_err(|e| (503, e.to_string()))?;
    // The state cookie is spent.
    let gone = actix_web::cookie::Cookie::build(STATE_COOKIE, "")
        .path(format!("/sso/{tenant}/"))
        .max_age(actix_web::cookie::time::Duration::ZERO)
        .finish();
    res.cookie(gone);
    // A page of ours moves on to the app: a navigation it starts is same-site, so the
    // SameSite=Strict session cookie goes with it (after the provider's redirect it would not).
    Ok(crate::pages::signed_in(res))
}

#[cfg(test)]
mod tests {
    use openidconnect::core::CoreJsonWebKeySet;

    use super::*;

    const PINGLABS: &str = include_str!("../testdata/oidc/pinglabs-openid-configuration.json");
    const PINGLABS_JWKS: &str = include_str!("../testdata/oidc/pinglabs-jwks.json");
    const HYDRA: &str = include_str!("../testdata/oidc/hydra-openid-configuration.json");

    #[test]
    fn real_provider_documents_parse_or_are_refused_with_the_reason() {
        let m: CoreProviderMetadata = serde_json::from_str(PINGLABS).unwrap();
        assert_eq!(
            m.issuer().as_str(),
            "https://connect-interop.pinglabs.org:9031"
        );
        assert!(m.token_endpoint().is_some());
        let keys: CoreJsonWebKeySet = serde_json::from_str(PINGLABS_JWKS).unwrap();
        assert_eq!(keys.keys().len(), 3);
        // A relative userinfo endpoint is not a URL: refused, with the reason.
        let e = serde_json::from_str::<CoreProviderMetadata>(HYDRA)
            .unwrap_err()
            .to_string();
        assert!(e.contains("relative URL without a base"), "{e}");
    }

    #[test]
    fn issuers_are_https_or_loopback() {
        assert_eq!(
            parse_issuer("https://login.example.com/").unwrap(),
            "https://login.example.com"
        );
        assert!(parse_issuer("http://127.0.0.1:9000").is_ok());
        for bad in [
            "http://login.example.com",
            "https://login.example.com/?x=1",
            "https://user:pw@login.example.com",
            "ftp://login.example.com",
            "not a url",
        ] {
            assert!(parse_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_highest_mapped_role_wins_and_owners_are_never_made() {
        let row = SsoRow {
            issuer: "https://login.example.com".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            role_claim: "groups".into(),
            role_map: r#"{"ops": "analyst", "leads": "admin", "root": "owner"}"#.into(),
            default_role: None,
            enforced: true,
        };
        let claims = |v: serde_json::Value| serde_json::json!({ "groups": v });
        assert_eq!(
            map_role(&row, &claims(serde_json::json!(["ops", "leads"]))),
            Some(Role::Admin)
        );
        assert_eq!(
            map_role(&row, &claims(serde_json::json!("ops"))),
            Some(Role::Analyst)
        );
        assert_eq!(map_role(&row, &claims(serde_json::json!(["root"]))), None);
        assert_eq!(map_role(&row, &claims(serde_json::json!(["other"]))), None);
        let with_default = SsoRow {
            default_role: Some("viewer".into()),
            ..row
        };
        assert_eq!(
            map_role(&with_default, &claims(serde_json::json!([]))),
            Some(Role::Viewer)
        );
    }
}
