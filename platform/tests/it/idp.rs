//! A loopback OpenID Connect provider that speaks the real protocol: discovery and JWKS
//! documents (as `application/json`), an authorization endpoint that signs in the user the
//! test chose, and a token endpoint that checks the client's credentials (client_secret_basic),
//! the redirect URI and the PKCE verifier (S256) before returning an ID token signed RS256 with
//! a key generated when the provider starts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Who signs in next, and how the provider misbehaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Next {
    /// Address.
    pub email: String,
    /// The `groups` claim.
    pub groups: Vec<String>,
    /// Sign with a key the JWKS does not publish.
    pub foreign_key: bool,
}

#[derive(Default)]
struct Codes {
    // code → (redirect_uri, challenge, nonce, who)
    issued: BTreeMap<String, (String, String, String, Next)>,
}

struct State {
    issuer: String,
    client_id: String,
    client_secret: String,
    /// The signing key the JWKS publishes, and a key it does not.
    keys: Mutex<(rsa::RsaPrivateKey, rsa::RsaPrivateKey)>,
    /// Discovery documents served.
    discoveries: Mutex<u32>,
    next: Mutex<Next>,
    codes: Mutex<Codes>,
    tokens: Mutex<u32>,
}

/// The provider.
pub(crate) struct Idp {
    /// Its issuer URL.
    pub issuer: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Idp {
    /// Starts on a loopback port with one client; generates its signing key (and a foreign
    /// one).
    pub(crate) async fn start(client_id: &str, client_secret: &str) -> Self {
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let other = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            issuer: issuer.clone(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            keys: Mutex::new((key, other)),
            discoveries: Mutex::new(0),
            next: Mutex::default(),
            codes: Mutex::default(),
            tokens: Mutex::new(0),
        });
        let s2 = state.clone();
        let server = HttpServer::new(move || {
            let s = s2.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let s = s.clone();
                async move { handle(&s, &req, &body) }
            }))
        })
        .workers(1)
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            issuer,
            state,
            handle,
        }
    }

    /// The user the next authorization signs in.
    pub(crate) fn sign_in_next(&self, next: Next) {
        *self.state.next.lock().unwrap() = next;
    }

    /// ID tokens issued so far.
    pub(crate) fn tokens_issued(&self) -> u32 {
        *self.state.tokens.lock().unwrap()
    }

    /// Discovery documents served so far.
    pub(crate) fn discoveries(&self) -> u32 {
        *self.state.discoveries.lock().unwrap()
    }

    /// Rotates the signing key: the JWKS publishes the other key (under its own `kid`) and
    /// no longer the old one, and tokens are signed with it.
    pub(crate) fn rotate_keys(&self) {
        let mut keys = self.state.keys.lock().unwrap();
        let (a, b) = &mut *keys;
        std::mem::swap(a, b);
    }

    /// Stops it.
    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn json_response(status: u16, v: &Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(v.to_string())
}

fn kid(key: &rsa::RsaPrivateKey) -> String {
    B64.encode(&Sha256::digest(key.to_public_key().n().to_bytes_be())[..8])
}

fn handle(s: &State, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let q: BTreeMap<String, String> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    match (req.method().as_str(), req.path()) {
        ("GET", "/.well-known/openid-configuration") => {
            *s.discoveries.lock().unwrap() += 1;
            json_response(
                200,
                &json!({
                    "issuer": s.issuer,
                    "authorization_endpoint": format!("{}/authorize", s.issuer),
                    "token_endpoint": format!("{}/token", s.issuer),
                    "jwks_uri": format!("{}/jwks", s.issuer),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "email", "profile"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                    "code_challenge_methods_supported": ["S256"],
                    "claims_supported": ["sub", "email", "email_verified", "groups"]
                }),
            )
        }
        ("GET", "/jwks") => {
            let key = s.keys.lock().unwrap().0.clone();
            let p = key.to_public_key();
            json_response(
                200,
                &json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid(&key),
                    "n": B64.encode(p.n().to_bytes_be()), "e": B64.encode(p.e().to_bytes_be())}]}),
            )
        }
        ("GET", "/authorize") => {
            let ok = q.get("response_type").map(String::as_str) == Some("code")
                && q.get("client_id") == Some(&s.client_id)
                && q.get("code_challenge_method").map(String::as_str) == Some("S256")
                && q.get("scope")
                    .is_some_and(|sc| sc.split(' ').any(|x| x == "openid"));
            let (Some(redirect), Some(st), Some(challenge), Some(nonce)) = (
                q.get("redirect_uri"),
                q.get("state"),
                q.get("code_challenge"),
                q.get("nonce"),
            ) else {
                return json_response(400, &json!({"error": "invalid_request"}));
            };
            if !ok {
                return json_response(400, &json!({"error": "invalid_request"}));
            }
            let code = format!("code-{}", B64.encode(rand_bytes()));
            let who = s.next.lock().unwrap().clone();
            s.codes.lock().unwrap().issued.insert(
                code.clone(),
                (redirect.clone(), challenge.clone(), nonce.clone(), who),
            );
            let sep = if redirect.contains('?') { '&' } else { '?' };
            HttpResponse::Found()
                .insert_header((
                    "location",
                    format!("{redirect}{sep}code={}&state={}", enc(&code), enc(st)),
                ))
                .finish()
        }
        ("POST", "/token") => token(s, req, body),
        _ => HttpResponse::NotFound().finish(),
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut b);
    b
}

fn token(s: &State, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let err = |e: &str| json_response(400, &json!({"error": e}));
    let form: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    // client_secret_basic: the id and secret form-encoded, then base64 (RFC 6749 §2.3.1).
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let creds = basic
        .as_deref()
        .and_then(|b| b.split_once(':'))
        .map(|(i, p)| {
            (
                form_urlencoded::parse(format!("x={i}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default(),
                form_urlencoded::parse(format!("x={p}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default(),
            )
        });
    if creds != Some((s.client_id.clone(), s.client_secret.clone())) {
        return json_response(401, &json!({"error": "invalid_client"}));
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return err("unsupported_grant_type");
    }
    let Some((redirect, challenge, nonce, who)) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().issued.remove(c))
    else {
        return err("invalid_grant");
    };
    if form.get("redirect_uri") != Some(&redirect) {
        return err("invalid_grant");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if B64.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return err("invalid_grant");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (published, other) = s.keys.lock().unwrap().clone();
    let key = if who.foreign_key { &other } else { &published };
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid(&published)});
    let claims = json!({
        "iss": s.issuer, "sub": format!("sub-{}", who.email), "aud": s.client_id,
        "iat": now, "exp": now + 300, "nonce": nonce,
        "email": who.email, "email_verified": true, "groups": who.groups,
    });
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    *s.tokens.lock().unwrap() += 1;
    json_response(
        200,
        &json!({"access_token": format!("at-{}", B64.encode(rand_bytes())), "token_type": "Bearer", "expires_in": 300,
                "id_token": format!("{input}.{}", B64.encode(sig.to_bytes()))}),
    )
}
