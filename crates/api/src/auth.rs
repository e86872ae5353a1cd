//! API keys (generation, hashing, constant-time verification) and the request gate: CORS,
//! authentication, per-principal rate limiting and request metrics, in one middleware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::HttpMessage as _;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use kamiyo_core_models::{ApiKeyRecord, ApiKeyStore, KeyScope, StableId, Timestamp};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::{ApiState, metrics};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "kmy_";
/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 4096;

/// A freshly generated key: the record to store and the secret to show once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// What is stored (hash only).
    pub record: ApiKeyRecord,
    /// The full key; never stored, shown to the operator once.
    pub secret: String,
}

/// Hex SHA-256 of a key. Keys carry 192 random bits, so a fast hash is the right tool (a slow
/// password hash protects low-entropy secrets; these are not).
pub fn hash_key(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Generates a key `kmy_<8 hex>_<48 hex>`; the first 12 characters are its public prefix.
pub fn generate_key(name: &str, scope: KeyScope, now: Timestamp) -> NewKey {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    let mut id = [0u8; 4];
    let mut secret = [0u8; 24];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let prefix = format!("{KEY_PREFIX}{}", hex(&id));
    let full = format!("{prefix}_{}", hex(&secret));
    NewKey {
        record: ApiKeyRecord {
            id: StableId::derive("key", &[&prefix, &now.0.to_string()]),
            name: name.to_owned(),
            prefix,
            hash: hash_key(&full),
            created_at: now,
            revoked_at: None,
            scope,
        },
        secret: full,
    }
}

/// The public prefix of a presented key, if it has the right shape.
pub fn prefix_of(presented: &str) -> Option<&str> {
    let p = presented.get(..KEY_PREFIX.len() + 8)?;
    (p.starts_with(KEY_PREFIX)
        && p[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
        && presented.len() == KEY_PREFIX.len() + 8 + 1 + 48)
        .then_some(p)
}

/// Looks a presented key up and compares hashes in constant time; `None` when unknown or
/// revoked.
pub async fn verify(
    keys: &dyn ApiKeyStore,
    presented: &str,
) -> Result<Option<ApiKeyRecord>, ApiError> {
    let Some(prefix) = prefix_of(presented) else {
        return Ok(None);
    };
    let want = hash_key(presented);
    for k in keys.keys_by_prefix(prefix).await? {
        if k.revoked_at.is_none() && bool::from(k.hash.as_bytes().ct_eq(want.as_bytes())) {
            return Ok(Some(k));
        }
    }
    Ok(None)
}

/// How long a verified key is trusted without asking the store again (a revocation takes
/// effect within this time).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// Failed authentications allowed per client address and minute (bursts up to the same
/// number); past it the address gets 429 with Retry-After before any key is looked up.
pub const FAILED_AUTH_PER_MINUTE: u32 = 30;

/// Token buckets per principal (API key id, or client IP without a key).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` requests per minute, with bursts up to the same number; 0 disables.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    /// `Some(seconds to wait)` when `principal` has no token left, without taking one.
    pub fn exhausted(&self, principal: &str) -> Option<u64> {
        if self.per_minute == 0 {
            return None;
        }
        let rate = f64::from(self.per_minute) / 60.0;
        let b = self.buckets.lock().ok()?;
        let (tokens, at) = b.get(principal)?;
        let now_tokens = tokens + Instant::now().duration_since(*at).as_secs_f64() * rate;
        (now_tokens < 1.0).then(|| ((1.0 - now_tokens) / rate).ceil().max(1.0) as u64)
    }

    /// Takes one token; `Err(seconds)` to wait when empty.
    pub fn check(&self, principal: &str) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let now = Instant::now();
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        if b.len() > 100_000 {
            // Forget principals whose bucket has refilled: they lose nothing.
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let (tokens, at) = b.entry(principal.to_owned()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// Verified keys by hash, with the time they were checked.
#[derive(Debug, Default)]
pub struct KeyCache(Mutex<HashMap<String, (ApiKeyRecord, Instant)>>);

/// Paths served without a key: health probes, the dashboard shell, the API documents.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/health" | "/ready" | "/openapi.json" | "/docs" | "/redoc" | "/favicon.ico"
    ) || path.starts_with("/assets/")
        || path.starts_with("/docs/")
}

/// The API key a request presents: `Authorization: Bearer …`, `X-API-Key`, or on `/ws` the
/// `api_key` query parameter.
pub fn presented_key_of(
    h: &actix_web::http::header::HeaderMap,
    path: &str,
    query: &str,
) -> Option<String> {
    // The scheme name is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` work too.
    if let Some(k) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k)
    {
        return Some(k.trim().to_owned());
    }
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    // Browsers cannot set headers on a WebSocket: `/ws` also takes `?api_key=`.
    if path == "/ws" {
        return web::Query::<HashMap<String, String>>::from_query(query)
            .ok()
            .and_then(|q| q.get("api_key").cloned());
    }
    None
}

/// The host name of a `Host` header value, lower-cased, without the port (`[::1]:8080` → `[::1]`).
pub fn host_name(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    if h.starts_with('[') {
        return h
            .split_once(']')
            .map_or(h.clone(), |(a, _)| format!("{a}]"));
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_owned(),
        _ => h,
    }
}

/// The loopback names a keyless loopback server answers to.
pub const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

/// Refuses a `Host` outside the allow-list (DNS rebinding) and an `Origin` that is neither this
/// server's own nor an allowed CORS origin (a page the operator visits reading the API or /ws).
fn check_host_and_origin(state: &ApiState, req: &ServiceRequest) -> Result<(), ApiError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(ToString::to_string));
    if let Some(allowed) = &state.config.allowed_hosts {
        let name = host.as_deref().map(host_name).unwrap_or_default();
        let ok = allowed.iter().any(|a| {
            let a = a.trim().to_ascii_lowercase();
            a == "*" || a == name || format!("[{a}]") == name
        });
        if !ok {
            return Err(ApiError::MisdirectedHost(format!(
                "this server does not answer to host {name:?} (server.allowed_hosts)"
            )));
        }
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default().trim();
    let allowed = &state.config.cors_origins;
    if allowed.iter().any(|o| o == "*" || o == origin) {
        return Ok(());
    }
    // Same origin: the origin's authority is the Host the request was sent to.
    let authority = origin
        .split_once("://")
        .map(|(_, a)| a.trim_end_matches('/').to_ascii_lowercase());
    let same = match (&authority, &host) {
        (Some(a), Some(h)) => *a == h.trim().to_ascii_lowercase(),
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "cross-origin request from {origin:?} refused (server.cors_origins)"
        )))
    }
}

fn cors_origin(state: &ApiState, req: &ServiceRequest) -> Option<String> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    let allowed = &state.config.cors_origins;
    (allowed.iter().any(|o| o == "*" || o == origin)).then(|| origin.to_owned())
}

/// Who made a request. The gate attaches one to every request it lets through (handlers read
/// it with `req.extensions().get::<Principal>()`); a host embedding the API attaches its own
/// types (a tenant …) the same way from its own middleware, after the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The API key's id; `None` for the keyless loopback operator.
    pub key_id: Option<StableId>,
    /// For logs and the audit log: `key:<prefix> (<name>)`, or `local`.
    pub name: String,
    /// What it may do.
    pub scope: KeyScope,
}

impl Principal {
    /// The principal of a verified key.
    pub fn of_key(rec: &ApiKeyRecord) -> Self {
        Self {
            key_id: Some(rec.id.clone()),
            name: format!("key:{} ({})", rec.prefix, rec.name),
            scope: rec.scope,
        }
    }

    /// The keyless operator of a loopback server (the person at the machine).
    pub fn local() -> Self {
        Self {
            key_id: None,
            name: "local".into(),
            scope: KeyScope::Write,
        }
    }

    /// True when it may act on incidents and silences.
    pub fn may_write(&self) -> bool {
        self.scope == KeyScope::Write
    }
}

/// A host's own key check (see [`ApiState::authenticator`]): it verifies a presented key and
/// may attach its own request extensions (a tenant, its plan) for its resolver.
#[async_trait::async_trait(?Send)]
pub trait Authenticator: Send + Sync {
    /// The key's principal (and the name it is rate-limited under), `None` when unknown or
    /// revoked (401); an error answers the request instead (429 at a daily limit …).
    async fn authenticate(
        &self,
        presented: &str,
        req: &ServiceRequest,
    ) -> Result<Option<(String, Principal)>, ApiError>;

    /// True while the key is still accepted (`/ws` sessions re-check it); never meters.
    async fn still_valid(&self, presented: &str) -> Result<bool, ApiError>;

    /// A credential the host reads where the open core does not look (a browser session's
    /// cookie), for a request that presents no key; passed to [`Self::authenticate`] as is.
    fn presented(&self, _req: &actix_web::HttpRequest) -> Option<String> {
        None
    }
}

/// The credential a request presents: its key, or what the host's authenticator reads.
pub fn credential(state: &ApiState, req: &actix_web::HttpRequest) -> Option<String> {
    presented_key_of(req.headers(), req.path(), req.query_string())
        .or_else(|| state.authenticator.as_ref().and_then(|h| h.presented(req)))
}

async fn authenticate(
    state: &ApiState,
    req: &ServiceRequest,
    ip: &str,
) -> Result<(String, Principal), ApiError> {
    // Public paths answer everyone: a stale or mistyped key there is not an error (probes and
    // load balancers often send the same headers as the clients behind them).
    if is_public(req.path()) {
        return Ok((format!("ip:{ip}"), Principal::local()));
    }
    let Some(key) = credential(state, req.request()) else {
        if (state.config.require_keys || state.authenticator.is_some()) && !is_public(req.path()) {
            return Err(ApiError::Unauthorized(
                "an API key is required: send `Authorization: Bearer kmy_…` (create one with `kamiyo-hyperliquid keys create`)"
                    .into(),
            ));
        }
        return Ok((format!("ip:{ip}"), Principal::local()));
    };
    if let Some(host) = &state.authenticator {
        return host
            .authenticate(&key, req)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the API key is unknown or revoked".into()));
    }
    let hash = hash_key(&key);
    if let Ok(cache) = state.key_cache.0.lock()
        && let Some((rec, at)) = cache.get(&hash)
        && at.elapsed() < KEY_CACHE_TTL
    {
        return Ok((format!("key:{}", rec.id), Principal::of_key(rec)));
    }
    match verify(state.keys.as_ref(), &key).await? {
        Some(rec) => {
            let principal = format!("key:{}", rec.id);
            let actor = Principal::of_key(&rec);
            if let Ok(mut cache) = state.key_cache.0.lock() {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(hash, (rec, Instant::now()));
            }
            Ok((principal, actor))
        }
        None => Err(ApiError::Unauthorized(
            "the API key is unknown or revoked".into(),
        )),
    }
}

/// The gate: CORS, query size, authentication, rate limit, metrics.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    use tracing::Instrument as _;
    let started = Instant::now();
    let span = tracing::info_span!(
        "http.request",
        http.request.method = %req.method(),
        url.path = %req.path(),
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return Ok(next.call(req).instrument(span).await?.map_into_boxed_body());
    };
    let origin = cors_origin(&state, &req);
    let method = req.method().clone();
    let res: ServiceResponse<BoxBody> = if let Err(e) = check_host_and_origin(&state, &req) {
        req.into_response(e.error_response())
    } else if method == Method::OPTIONS {
        // Preflight.
        let mut r = HttpResponse::NoContent();
        if origin.is_some() {
            r.insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, DELETE, OPTIONS",
            ))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, x-api-key, content-type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
        }
        req.into_response(r.finish())
    } else if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > state.config.max_body_bytes as u64)
    {
        // Refused from the header, before a byte of the body is read.
        let e = ApiError::PayloadTooLarge(state.config.max_body_bytes);
        req.into_response(e.error_response())
    } else if matches!(method, Method::GET | Method::HEAD)
        && req.headers().contains_key(header::TRANSFER_ENCODING)
    {
        let e = ApiError::BadRequest("a GET request carries no body".into());
        req.into_response(e.error_response())
    } else if req.query_string().len() > MAX_QUERY_BYTES {
        let e = ApiError::BadRequest(format!("the query string exceeds {MAX_QUERY_BYTES} bytes"));
        req.into_response(e.error_response())
    } else {
        let ip = req
            .peer_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
        // Public paths (health probes) never authenticate, so they are never blocked.
        let blocked = (!is_public(req.path()))
            .then(|| state.auth_failures.exhausted(&ip))
            .flatten();
        let auth = match blocked {
            // Too many failed attempts from this address: refused before any store lookup.
            Some(retry_after_secs) => Err(ApiError::RateLimited { retry_after_secs }),
            None => authenticate(&state, &req, &ip).await.inspect_err(|e| {
                if matches!(e, ApiError::Unauthorized(_)) {
                    let _ = state.auth_failures.check(&ip);
                }
            }),
        };
        match auth {
            Err(e) => req.into_response(e.error_response()),
            Ok((_, actor)) if !read_only(&method) && !actor.may_write() => {
                let e = ApiError::Forbidden(format!(
                    "{} is a read-only key: acting on incidents and silences needs a key with the write scope (`keys create --scope write`)",
                    actor.name
                ));
                req.into_response(e.error_response())
            }
            Ok((principal, actor)) => {
                req.extensions_mut().insert(actor);
                let limited = !is_public(req.path()) || req.path() == "/ready";
                match limited.then(|| state.limiter.check(&principal)) {
                    Some(Err(retry_after_secs)) => {
                        let e = ApiError::RateLimited { retry_after_secs };
                        req.into_response(e.error_response())
                    }
                    _ => next
                        .call(req)
                        .instrument(span.clone())
                        .await?
                        .map_into_boxed_body(),
                }
            }
        }
    };
    let mut res = res;
    if let Some(o) = origin {
        let h = res.headers_mut();
        if let Ok(v) = header::HeaderValue::from_str(&o) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::VARY, header::HeaderValue::from_static("Origin"));
        }
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    span.record("http.route", route.as_str());
    span.record("http.response.status_code", res.status().as_u16());
    metrics::record_request(
        &route,
        method.as_str(),
        res.status().as_u16(),
        started.elapsed(),
    );
    Ok(res)
}

/// Methods that change nothing.
fn read_only(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Used by the server to refuse non-loopback binds without keys.
pub fn keys_required_for(bind: std::net::SocketAddr) -> bool {
    !bind.ip().is_loopback()
}

/// Convenience for the server's `keys` command.
pub async fn create_key(
    keys: &Arc<dyn ApiKeyStore>,
    name: &str,
    scope: KeyScope,
    now: Timestamp,
) -> Result<NewKey, ApiError> {
    let k = generate_key(name, scope, now);
    keys.insert_key(&k.record).await?;
    Ok(k)
}
