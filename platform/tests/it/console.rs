//! The web: the landing page renders the plans enforcement reads; tenants work shared
//! incidents (acknowledge, mute — nothing more is sent —, resolve — a new step reopens it);
//! brands are checked (contrast, plan), served by Host and carried by white-labelled alerts;
//! single sign-on against a loopback OpenID Connect provider (RS256 keys made at test time,
//! PKCE checked by the provider), with roles from a claim and passwords refused when enforced.

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test;
use kamiyo_platform::db::{Actor, StaffColumn};
use kamiyo_platform::tenancy::TenantId;
use serde_json::{Value, json};

use crate::idp::{Idp, Next};
use crate::{T0, call, env, opened, signup};

/// A request with a `Cookie` header (and the CSRF header for writes): status, headers, body.
async fn browser<S>(
    svc: &S,
    method: &str,
    path: &str,
    cookies: &str,
    csrf: Option<&str>,
    host: Option<&str>,
) -> (StatusCode, actix_web::http::header::HeaderMap, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut req = match method {
        "get" => test::TestRequest::get(),
        "post" => test::TestRequest::post(),
        m => panic!("{m}"),
    }
    .uri(path)
    .peer_addr("192.0.2.10:40000".parse().unwrap());
    if !cookies.is_empty() {
        req = req.insert_header(("cookie", cookies.to_owned()));
    }
    if let Some(c) = csrf {
        req = req.insert_header(("x-csrf-token", c.to_owned()));
    }
    if let Some(h) = host {
        req = req.insert_header(("host", h.to_owned()));
    }
    let res = match test::try_call_service(svc, req.to_request()).await {
        Ok(r) => r.into_parts().1.map_into_boxed_body(),
        Err(e) => e.error_response().map_into_boxed_body(),
    };
    let (status, headers) = (res.status(), res.headers().clone());
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// `name=value` of every `Set-Cookie`.
fn cookies_of(h: &actix_web::http::header::HeaderMap) -> Vec<(String, String)> {
    h.get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn staff_plan(plan: &str) -> (StaffColumn, String, Actor) {
    (
        StaffColumn::Plan,
        plan.to_owned(),
        Actor {
            actor: "staff:test".into(),
            ip: "cli".into(),
            at: T0,
        },
    )
}

async fn set_plan(e: &crate::Env, tenant: &str, plan: &str) {
    let (c, v, who) = staff_plan(plan);
    e.staff_set(&TenantId::parse(tenant).unwrap(), c, &v, &who)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_landing_page_renders_the_plans_enforcement_reads() {
    let e = env().await;
    // A matrix with Pro's price changed: the page shows what enforcement reads, not a copy.
    let text = kamiyo_platform::tiers::DEFAULT_TIERS_TOML.replace(
        "price_cents_per_month = 29900",
        "price_cents_per_month = 31900",
    );
    let tiers = kamiyo_platform::tiers::TierMatrix::load(&text).unwrap();
    let svc = e.service_with(tiers.clone()).await;
    let (s, h, page) = browser(&svc, "get", "/", "", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h.get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    for t in kamiyo_platform::tiers::Tier::ALL {
        let c = tiers.config(t);
        assert!(page.contains(&c.display_name), "{}", c.display_name);
        assert!(
            page.contains(&format!("data-plan=\"{}\"", t.as_str())),
            "{t:?}"
        );
    }
    assert!(page.contains("$319<small>"), "Pro at the matrix's price");
    assert!(!page.contains("$299<small>"));
    assert!(
        page.contains("1,000,000 API calls a day"),
        "Enterprise's limit"
    );
    assert!(page.contains("Single sign-on (OpenID Connect)"));
    assert!(page.contains("href=\"/docs\""), "links to the docs");
    // The same matrix as JSON, without a key.
    let (s, _, body) = browser(&svc, "get", "/api/v1/plans", "", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"][2]["id"], "cloud_pro");
    assert_eq!(v["items"][2]["price_cents_per_month"], 31900);
    // The console, its script and styles are embedded.
    for (p, kind) in [
        ("/app", "text/html"),
        ("/admin", "text/html"),
        ("/assets/platform/app.js", "text/javascript"),
        ("/assets/platform/admin.js", "text/javascript"),
        ("/assets/platform/site.css", "text/css"),
        ("/assets/platform/brand.css", "text/css"),
        // The docs the landing page links to (the open core's, offline).
        ("/docs", "text/html"),
    ] {
        let (s, h, body) = browser(&svc, "get", p, "", None, None).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert!(
            h.get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{p}"
        );
        assert!(!body.is_empty());
    }
}

#[tokio::test]
async fn tenants_work_incidents_and_a_muted_incident_sends_nothing_more() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "alpha").await;
    // Roles beyond the owner's are Enterprise's (rbac).
    set_plan(&e, "alpha", "cloud_enterprise").await;
    let key = Some(k.as_str());
    let (s, _, _) = call(&svc, "post", "/api/v1/channels", key, Some(json!({"name": "ops", "kind": "webhook", "url": "https://hooks.alpha.example/x", "min_severity": "low"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let tiers = kamiyo_platform::tiers::TierMatrix::default_matrix().unwrap();
    let commit = |u: kamiyo_core_models::IncidentUpdate| {
        let facts = e.facts.clone();
        async move {
            kamiyo_core_models::MarketStore::commit(
                &facts,
                &kamiyo_core_models::IngestBatch {
                    updates: vec![u],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    };
    let route = |t: i64| {
        let (app, facts, tiers) = (e.app.clone(), e.facts_app.clone(), tiers.clone());
        async move {
            kamiyo_platform::fanout::route_once(&app, &facts, &tiers, t, 100)
                .await
                .unwrap()
        }
    };
    let first = opened(1, "hyperliquid", "ETH", T0 + 1000);
    let id = first.incident.id.to_string();
    commit(first).await;
    assert_eq!(route(T0 + 2000).await.sent, 1);

    // A viewer reads but cannot act.
    let (_, _, viewer) = call(
        &svc,
        "post",
        "/api/v1/keys",
        key,
        Some(json!({"name": "read-only", "role": "viewer"})),
    )
    .await;
    let vk = viewer["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{viewer}"))
        .to_owned();
    let path = format!("/api/v1/incidents/{id}/actions");
    let (s, _, v) = call(
        &svc,
        "post",
        &path,
        Some(&vk),
        Some(json!({"action": "acknowledge"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _, v) = call(
        &svc,
        "post",
        &path,
        key,
        Some(json!({"action": "escalate"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("acknowledge"), "{v}");

    // Acknowledge, then mute: the incident's escalation sends nothing more.
    for (action, note) in [
        ("acknowledge", "on it"),
        ("mute", "known: exchange maintenance"),
    ] {
        let (s, _, v) = call(
            &svc,
            "post",
            &path,
            key,
            Some(json!({"action": action, "note": note})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Incident `n` (opened at `opened_at`) escalated to critical at `at`.
    let escalated = |n: usize, asset: &str, opened_at: i64, at: i64| {
        let mut u = crate::step(
            n,
            "hyperliquid",
            asset,
            opened_at,
            kamiyo_core_models::IncidentChange::Escalated,
            kamiyo_core_models::Severity::Critical,
            kamiyo_core_models::Evidence::new(),
        );
        u.event.time = kamiyo_core_models::Timestamp(at);
        u
    };
    commit(escalated(1, "ETH", T0 + 1000, T0 + 3000)).await;
    let pass = route(T0 + 4000).await;
    assert_eq!((pass.steps, pass.sent), (1, 0), "{pass:?}");

    // Another incident, resolved by the tenant: its next step reopens it and is sent.
    let second = opened(2, "hyperliquid", "BTC", T0 + 5000);
    let id2 = second.incident.id.to_string();
    commit(second).await;
    assert_eq!(route(T0 + 6000).await.sent, 1);
    let path2 = format!("/api/v1/incidents/{id2}/actions");
    let (s, _, _) = call(
        &svc,
        "post",
        &path2,
        key,
        Some(json!({"action": "resolve", "note": "false alarm"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    commit(escalated(2, "BTC", T0 + 5000, T0 + 7000)).await;
    assert_eq!(
        route(T0 + 8000).await.sent,
        1,
        "a resolved incident's new step is sent"
    );

    // The states and histories, as the console reads them.
    let (s, _, v) = call(
        &svc,
        "get",
        &format!("/api/v1/incident-states?ids={id},{id2}"),
        Some(&vk),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let states: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["incident_id"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(states.contains(&(id.clone(), "mute".into())), "{v}");
    assert!(states.contains(&(id2.clone(), "reopen".into())), "{v}");
    let (_, _, h) = call(&svc, "get", &path2, key, None).await;
    let actors: Vec<&str> = h
        .get("items")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors.len(), 2, "{h}");
    assert_eq!(actors[1], "kamiyo");
    // Audited in the tenant's log.
    let (_, _, log) = call(&svc, "get", "/api/v1/audit", key, None).await;
    let text = log.to_string();
    assert!(
        text.contains("incident.mute") && text.contains("exchange maintenance"),
        "{log}"
    );
}

#[tokio::test]
async fn brands_are_checked_served_by_host_and_carried_by_white_labelled_alerts() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "alpha").await;
    let key = Some(k.as_str());
    let brand = json!({"name": "Alpha Watch", "primary_colour": "#7c2d12", "accent_colour": "#14532d", "domain": "watch.alpha.example"});
    // Basic has no branding.
    let (s, _, v) = call(&svc, "put", "/api/v1/branding", key, Some(brand.clone())).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    set_plan(&e, "alpha", "cloud_pro").await;
    // Unreadable colours are refused with the ratio.
    let mut pale = brand.clone();
    pale["primary_colour"] = json!("#fde047");
    let (s, _, v) = call(&svc, "put", "/api/v1/branding", key, Some(pale)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("4.5:1"), "{v}");
    let (s, _, v) = call(&svc, "put", "/api/v1/branding", key, Some(brand.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Host → the brand: its colours, its console (not kamiyo's shop).
    let (_, _, css) = browser(
        &svc,
        "get",
        "/assets/platform/brand.css",
        "",
        None,
        Some("watch.alpha.example:443"),
    )
    .await;
    assert!(css.contains("#7c2d12"), "{css}");
    let (_, _, css) = browser(
        &svc,
        "get",
        "/assets/platform/brand.css",
        "",
        None,
        Some("app.kamiyo.ai"),
    )
    .await;
    assert!(
        css.contains(kamiyo_platform::pages::DEFAULT_PRIMARY),
        "{css}"
    );
    let (s, h, _) = browser(&svc, "get", "/", "", None, Some("watch.alpha.example")).await;
    assert_eq!(
        (s, h.get("location").unwrap().to_str().unwrap()),
        (StatusCode::FOUND, "/app")
    );
    let (_, _, app) = browser(&svc, "get", "/app", "", None, Some("watch.alpha.example")).await;
    assert!(app.contains("Alpha Watch") && app.contains("data-brand-tenant=\"alpha\""));
    // Another tenant cannot take the domain.
    let k2 = signup(&svc, "bravo").await;
    set_plan(&e, "bravo", "cloud_pro").await;
    let (s, _, v) = call(
        &svc,
        "put",
        "/api/v1/branding",
        Some(&k2),
        Some(brand.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Alerts: Pro's carry no brand; Enterprise's (white label) do.
    let (s, _, _) = call(&svc, "post", "/api/v1/channels", key, Some(json!({"name": "ops", "kind": "webhook", "url": "https://hooks.alpha.example/x", "min_severity": "low"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let tiers = kamiyo_platform::tiers::TierMatrix::default_matrix().unwrap();
    for (n, plan, branded) in [(1, "cloud_pro", false), (2, "cloud_enterprise", true)] {
        set_plan(&e, "alpha", plan).await;
        kamiyo_core_models::MarketStore::commit(
            &e.facts,
            &kamiyo_core_models::IngestBatch {
                updates: vec![opened(n, "hyperliquid", "ETH", T0 + 1000 * n as i64)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        kamiyo_platform::fanout::route_once(&e.app, &e.facts_app, &tiers, T0 + 60_000, 100)
            .await
            .unwrap();
        let rows = crate::outbox(&svc, &k).await;
        let payload: Value = serde_json::from_str(rows[0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload.get("brand").is_some(), branded, "{plan}: {payload}");
        let alert: kamiyo_core_models::Alert = serde_json::from_value(payload).unwrap();
        // The webhook's document names the brand it is sent under, as the email subject does.
        let body = kamiyo_alerts::channels::Webhook::body(&alert);
        if branded {
            assert_eq!(alert.brand.as_deref(), Some("Alpha Watch"));
            let m = kamiyo_alerts::Message::of(&alert);
            assert!(kamiyo_alerts::channels::email::subject(&m).starts_with("Alpha Watch "));
            assert_eq!(body["brand"], "Alpha Watch");
        } else {
            assert_eq!(body["brand"], "kamiyo");
        }
    }
}

#[tokio::test]
async fn single_sign_on_with_pkce_maps_roles_and_enforced_tenants_refuse_passwords() {
    let e = env().await;
    let svc = e.service().await;
    let k = signup(&svc, "alpha").await;
    let key = Some(k.as_str());
    let idp = Idp::start("kamiyo-alpha", "s3cret/with+chars").await;
    let sso = json!({"issuer": idp.issuer, "client_id": "kamiyo-alpha", "client_secret": "s3cret/with+chars",
        "role_map": {"kamiyo-ops": "analyst", "kamiyo-admins": "admin"}, "enforced": true});
    // Pro has no single sign-on.
    set_plan(&e, "alpha", "cloud_pro").await;
    let (s, _, v) = call(&svc, "put", "/api/v1/sso", key, Some(sso.clone())).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    set_plan(&e, "alpha", "cloud_enterprise").await;
    // An issuer that does not answer discovery is refused before passwords are turned off.
    let mut dead = sso.clone();
    dead["issuer"] = json!("http://127.0.0.1:9");
    let (s, _, v) = call(&svc, "put", "/api/v1/sso", key, Some(dead)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, v) = call(&svc, "put", "/api/v1/sso", key, Some(sso)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["sso"]["redirect_uri"]
            .as_str()
            .unwrap()
            .ends_with("/sso/alpha/callback")
    );
    assert!(v["sso"].get("client_secret").is_none(), "{v}");

    // The whole dance: start → provider → callback → a session with the mapped role.
    kamiyo_aggregators::install_crypto_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in = |who: Next| {
        idp.sign_in_next(who);
        let (svc, http) = (&svc, &http);
        async move {
            let (s, h, _) = browser(svc, "get", "/sso/alpha/start", "", None, None).await;
            assert_eq!(s, StatusCode::FOUND);
            let to = h.get("location").unwrap().to_str().unwrap().to_owned();
            assert!(
                to.contains("code_challenge_method=S256") && to.contains("nonce="),
                "{to}"
            );
            let state_cookie = cookies_of(&h)
                .into_iter()
                .find(|(k, _)| k == "kamiyo_sso_state")
                .unwrap();
            let back = http.get(&to).send().await.unwrap();
            assert_eq!(back.status(), 302);
            let back = back
                .headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let path = back
                .split_once("/sso/")
                .map(|(_, p)| format!("/sso/{p}"))
                .unwrap();
            (path, format!("{}={}", state_cookie.0, state_cookie.1))
        }
    };
    let (path, cookie) = sign_in(Next {
        email: "ops@alpha.example".into(),
        groups: vec!["everyone".into(), "kamiyo-ops".into()],
        foreign_key: false,
    })
    .await;
    // Without the browser's state cookie: refused (login CSRF).
    let (s, _, page) = browser(&svc, "get", &path, "", None, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{page}");
    let (s, h, page) = browser(&svc, "get", &path, &cookie, None, None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("url=/app"), "{page}");
    let jar: Vec<(String, String)> = cookies_of(&h);
    let session = jar.iter().find(|(k, _)| k == "kamiyo_session").unwrap();
    let csrf = jar.iter().find(|(k, _)| k == "kamiyo_csrf").unwrap();
    let cookies = format!("kamiyo_session={}; kamiyo_csrf={}", session.1, csrf.1);
    let (s, _, me) = browser(&svc, "get", "/api/v1/tenant", &cookies, None, None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["you"]["role"], "analyst", "{me}");
    // The session reads the open core's tenant-scoped routes too (the console's incidents).
    let (s, _, body) = browser(
        &svc,
        "get",
        "/security/incidents?protocol=hyperliquid",
        &cookies,
        None,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The same answer again: the sign-in was used.
    let (s, _, _) = browser(&svc, "get", &path, &cookie, None, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(idp.tokens_issued(), 1);
    // The provider was asked for its documents once, when the settings were saved: the
    // sign-in used the kept copy at both ends.
    assert_eq!(idp.discoveries(), 1);
    let ops = || Next {
        email: "ops@alpha.example".into(),
        groups: vec!["kamiyo-ops".into()],
        foreign_key: false,
    };
    let (path, cookie) = sign_in(ops()).await;
    let (s, _, page) = browser(&svc, "get", &path, &cookie, None, None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(idp.discoveries(), 1, "a second sign-in fetches nothing");
    // The provider rotates its signing key: the token names a key the kept copy lacks, the
    // keys are fetched again once, and the sign-in goes through.
    idp.rotate_keys();
    let (path, cookie) = sign_in(ops()).await;
    let (s, _, page) = browser(&svc, "get", &path, &cookie, None, None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(idp.discoveries(), 2, "fetched again for the new key, once");

    // Refused: a token signed with a key the provider does not publish; someone no group maps
    // (and no default role).
    for (who, status, says) in [
        (
            Next {
                email: "mallory@alpha.example".into(),
                groups: vec!["kamiyo-admins".into()],
                foreign_key: true,
            },
            StatusCode::UNAUTHORIZED,
            Some("ID token was not accepted"),
        ),
        (
            Next {
                email: "guest@alpha.example".into(),
                groups: vec!["everyone".into()],
                foreign_key: false,
            },
            StatusCode::FORBIDDEN,
            None,
        ),
    ] {
        let (path, cookie) = sign_in(who).await;
        let (s, _, page) = browser(&svc, "get", &path, &cookie, None, None).await;
        assert_eq!(s, status, "{page}");
        if let Some(says) = says {
            assert!(page.contains(says), "{page}");
        }
    }

    // Enforced: the owner's password no longer signs in.
    let (s, _, v) = call(&svc, "post", "/api/v1/login", None, Some(json!({"tenant": "alpha", "email": "owner@alpha.example", "password": "a long enough password"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("/sso/alpha/start"),
        "{v}"
    );
    // The sign-ins are in the audit log.
    let (_, _, log) = call(&svc, "get", "/api/v1/audit", key, None).await;
    let text = log.to_string();
    assert!(
        text.contains("sso:ops@alpha.example") && text.contains("identity provider"),
        "{log}"
    );
    idp.stop().await;
}
