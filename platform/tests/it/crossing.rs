//! Tenant isolation, tried from both sides: every route with another tenant's ids, and raw SQL
//! as the application role with no tenant and with the wrong one. Nothing crosses; every
//! attempt is answered 401/403/404, never 5xx (`call` fails the test on any 5xx).

use actix_web::http::StatusCode;
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use kamiyo_platform::db::{Actor, StaffColumn};
use kamiyo_platform::openapi::OPERATIONS;
use kamiyo_platform::tenancy::TenantId;
use serde_json::{Value, json};

use crate::{T0, call, env, signup};

/// Everything one tenant owns, created through the routes.
#[derive(Debug, Clone)]
struct Owned {
    owner_key: String,
    user_id: String,
    key_id: String,
    admin_key: String,
    channel_id: String,
    address: String,
}

async fn populate<S>(e: &crate::Env, svc: &S, tenant: &str, n: u8) -> Owned
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let owner_key = signup(svc, tenant).await;
    // On the plan with every feature, so a refusal below is never the plan's.
    e.staff_set(
        &TenantId::parse(tenant).unwrap(),
        StaffColumn::Plan,
        "cloud_enterprise",
        &Actor {
            actor: "staff:test".into(),
            ip: "cli".into(),
            at: T0,
        },
    )
    .await
    .unwrap();
    let k = Some(owner_key.as_str());
    let (s, _, u) = call(svc, "post", "/api/v1/users", k, Some(json!({"email": format!("analyst@{tenant}.example"), "password": "another long password", "role": "analyst"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let (s, _, key) = call(
        svc,
        "post",
        "/api/v1/keys",
        k,
        Some(json!({"name": "ci", "role": "admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let (s, _, ch) = call(svc, "post", "/api/v1/channels", k, Some(json!({"name": "ops", "kind": "webhook", "url": format!("https://hooks.{tenant}.example/x"), "secret": "s3cret"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let address = format!("0x{}", format!("{n:02x}").repeat(20));
    for (m, p, b) in [
        (
            "put",
            format!("/api/v1/thresholds/oracle_deviation_{tenant}/warn_pct"),
            Some(json!({"value": 0.5 + f64::from(n)})),
        ),
        (
            "put",
            format!("/api/v1/watched-addresses/{address}"),
            Some(json!({"label": format!("{tenant} whale")})),
        ),
        (
            "put",
            format!(
                "/api/v1/subscriptions/{}",
                if n == 1 { "dydx" } else { "gmx" }
            ),
            None,
        ),
    ] {
        let (s, _, v) = call(svc, m, &p, k, b).await;
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    // The web's state: an incident worked, a brand, single sign-on and a sign-in in flight.
    let incident = format!("inc_{tenant}_worked");
    for (m, p, b) in [
        (
            "post",
            format!("/api/v1/incidents/{incident}/actions"),
            Some(json!({"action": "acknowledge", "note": format!("{tenant} is on it")})),
        ),
        (
            "put",
            "/api/v1/branding".to_owned(),
            Some(
                json!({"name": format!("{tenant} watch"), "primary_colour": "#1d4ed8", "accent_colour": "#0f766e", "domain": format!("watch.{tenant}.example")}),
            ),
        ),
    ] {
        let (s, _, v) = call(svc, m, &p, k, b).await;
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
    }
    let t = TenantId::parse(tenant).unwrap();
    let who = Actor {
        actor: "user:test".into(),
        ip: "192.0.2.1".into(),
        at: T0,
    };
    e.app
        .change(
            &t,
            &who,
            kamiyo_platform::db::Change::SetSso {
                issuer: format!("https://login.{tenant}.example"),
                client_id: format!("client-{tenant}"),
                client_secret: format!("secret-{tenant}"),
                role_claim: "groups".into(),
                role_map: r#"{"ops": "analyst"}"#.into(),
                default_role: None,
                enforced: false,
            },
        )
        .await
        .unwrap();
    e.app
        .sso_begin(
            &t,
            &format!("state-{tenant}"),
            &kamiyo_platform::db::SsoLogin {
                pkce_verifier: format!("verifier-{tenant}"),
                nonce: format!("nonce-{tenant}"),
            },
            T0,
            T0 + 600_000,
        )
        .await
        .unwrap();
    Owned {
        user_id: u["user_id"].as_str().unwrap().to_owned(),
        key_id: key["id"].as_str().unwrap().to_owned(),
        admin_key: key["secret"].as_str().unwrap().to_owned(),
        channel_id: ch["channel_id"].as_str().unwrap().to_owned(),
        address,
        owner_key,
    }
}

/// Everything a tenant can read about itself.
async fn snapshot<S>(svc: &S, key: &str) -> Vec<Value>
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let mut out = Vec::new();
    for p in [
        "/api/v1/users",
        "/api/v1/keys",
        "/api/v1/subscriptions",
        "/api/v1/thresholds",
        "/api/v1/watched-addresses",
        "/api/v1/channels",
        "/api/v1/branding",
        "/api/v1/sso",
        "/api/v1/incidents/inc_bravo_worked/actions",
    ] {
        let (s, _, v) = call(svc, "get", p, Some(key), None).await;
        assert_eq!(s, StatusCode::OK, "{p}: {v}");
        out.push(v);
    }
    out
}

#[tokio::test]
async fn no_route_crosses_tenants() {
    walk_every_route(false).await;
}

/// The same walk with row-level security switched off: the queries name their tenant
/// themselves, so isolation does not rest on the policies alone.
#[tokio::test]
async fn no_route_crosses_tenants_even_without_row_level_security() {
    walk_every_route(true).await;
}

async fn walk_every_route(without_rls: bool) {
    let e = env().await;
    if without_rls {
        let mut owner = AsyncPgConnection::establish(&e.tdb.url).await.unwrap();
        let sql: String = TABLES
            .iter()
            .map(|t| format!("ALTER TABLE platform.{t} NO FORCE ROW LEVEL SECURITY; ALTER TABLE platform.{t} DISABLE ROW LEVEL SECURITY;"))
            .collect();
        owner.batch_execute(&sql).await.unwrap();
    }
    let svc = e.service().await;
    let a = populate(&e, &svc, "alpha", 1).await;
    let b = populate(&e, &svc, "bravo", 2).await;
    let before = snapshot(&svc, &b.owner_key).await;
    let bravo_text = serde_json::to_string(&before).unwrap();
    assert!(bravo_text.contains(&b.user_id) && bravo_text.contains(&b.channel_id));

    // Alpha's lists name nothing of bravo's.
    let alpha = serde_json::to_string(&snapshot(&svc, &a.owner_key).await).unwrap();
    for id in [
        b.user_id.as_str(),
        &b.key_id,
        &b.channel_id,
        &b.address,
        "bravo",
        "gmx",
    ] {
        assert!(!alpha.contains(id), "alpha sees {id}");
    }

    // Every documented operation with a path parameter, asked by alpha with bravo's ids.
    // Deletes first: a PUT below writes alpha's own row under bravo's names, which a later
    // delete would then rightly find.
    let mut ops: Vec<_> = OPERATIONS.iter().filter(|o| o.path.contains('{')).collect();
    ops.sort_by_key(|o| o.method != "delete");
    let mut tried = 0;
    for op in ops {
        let path = op
            .path
            .replace(
                "{id}",
                match op.path {
                    p if p.contains("/users/") => &b.user_id,
                    p if p.contains("/keys/") => &b.key_id,
                    // Incidents are shared facts: alpha acting on one bravo worked records
                    // alpha's own state of it, never bravo's.
                    p if p.contains("/incidents/") => "inc_bravo_worked",
                    _ => &b.channel_id,
                },
            )
            .replace("{protocol}", "gmx")
            .replace("{address}", &b.address)
            .replace("{detector}", "oracle_deviation_bravo")
            .replace("{name}", "warn_pct");
        let body = match op.body {
            Some("Threshold") => Some(json!({"value": 99.0})),
            Some("Watch") => Some(json!({"label": "stolen"})),
            Some("IncidentAction") => Some(json!({"action": "acknowledge", "note": "stolen"})),
            _ => None,
        };
        for key in [&a.owner_key, &a.admin_key] {
            let (s, _, v) = call(&svc, op.method, &path, Some(key), body.clone()).await;
            if op.method == "delete" {
                assert_eq!(s, StatusCode::NOT_FOUND, "{} {path}: {v}", op.method);
            } else {
                // A PUT writes the caller's own row under that name; never bravo's.
                assert!(
                    s == StatusCode::OK || s == StatusCode::NOT_FOUND,
                    "{} {path}: {s} {v}",
                    op.method
                );
            }
            tried += 1;
        }
    }
    assert!(tried >= 16, "{tried}");
    // Bravo's secret under alpha's name, and alpha's under bravo's: unknown keys.
    let swapped = format!("alpha.{}", b.owner_key.split_once('.').unwrap().1);
    let (s, _, _) = call(&svc, "get", "/api/v1/tenant", Some(&swapped), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Bravo's state is exactly as before.
    assert_eq!(snapshot(&svc, &b.owner_key).await, before);
    // Alpha's audit log (its export) holds only alpha's actions.
    let (s, _, log) = call(
        &svc,
        "get",
        "/api/v1/audit/export",
        Some(&a.owner_key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let log = log.as_str().unwrap().to_owned();
    // (Alpha's own rows written under bravo's names above appear; nothing of bravo's does.)
    for id in [
        b.user_id.as_str(),
        &b.key_id,
        &b.channel_id,
        "bravo.example",
        "\"target\":\"bravo\"",
    ] {
        assert!(!log.contains(id), "{id} in {log}");
    }
    assert!(
        log.contains("oracle_deviation_bravo"),
        "a positive control: the walk's PUT is alpha's"
    );
    // A shared step fans out to each tenant's own channels only.
    kamiyo_core_models::MarketStore::commit(
        &e.facts,
        &kamiyo_core_models::IngestBatch {
            updates: vec![crate::opened(9, "hyperliquid", "ETH", T0 + 5000)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let tiers = kamiyo_platform::tiers::TierMatrix::default_matrix().unwrap();
    let pass = kamiyo_platform::fanout::route_once(&e.app, &e.facts_app, &tiers, T0 + 6000, 10)
        .await
        .unwrap();
    assert_eq!((pass.routed, pass.sent), (2, 2), "{pass:?}");
    for (key, mine) in [(&a.owner_key, &a.channel_id), (&b.owner_key, &b.channel_id)] {
        let (_, _, v) = call(&svc, "get", "/api/v1/alerts", Some(key), None).await;
        let rows = v["items"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{v}");
        assert_eq!(rows[0]["channel_id"], mine.as_str());
    }
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

use kamiyo_platform::db::ISOLATED_TABLES as TABLES;

async fn count(c: &mut AsyncPgConnection, sql: &str) -> i64 {
    sql_query(sql)
        .get_result::<N>(c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

#[tokio::test]
async fn raw_sql_as_the_application_role_sees_only_the_named_tenant() {
    let e = env().await;
    let svc = e.service().await;
    let _a = populate(&e, &svc, "alpha", 1).await;
    let _b = populate(&e, &svc, "bravo", 2).await;
    // A shared step routed to both, so every tenant table holds rows of each.
    kamiyo_core_models::MarketStore::commit(
        &e.facts,
        &kamiyo_core_models::IngestBatch {
            updates: vec![crate::opened(1, "hyperliquid", "ETH", T0 + 1000)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let tiers = kamiyo_platform::tiers::TierMatrix::default_matrix().unwrap();
    let pass = kamiyo_platform::fanout::route_once(&e.app, &e.facts_app, &tiers, T0 + 2000, 10)
        .await
        .unwrap();
    assert_eq!(pass.routed, 2, "{pass:?}");
    // And a one-time token and a session each.
    for t in ["alpha", "bravo"] {
        let tenant = TenantId::parse(t).unwrap();
        let user = e
            .app
            .issue_token(
                &tenant,
                kamiyo_platform::db::UserRef::Email(&format!("owner@{t}.example")),
                kamiyo_platform::db::TokenPurpose::Reset,
                &format!("token-hash-{t}"),
                T0 + 3_600_000,
                T0,
            )
            .await
            .unwrap()
            .unwrap();
        let who = Actor {
            actor: format!("user:{user}"),
            ip: "192.0.2.1".into(),
            at: T0,
        };
        e.app
            .create_session(
                &tenant,
                &user,
                (&format!("session-{t}"), &format!("csrf-{t}")),
                T0 + 3_600_000,
                &who,
            )
            .await
            .unwrap();
        // A Stripe customer.
        e.app
            .billing_write(&tenant, None, &who, |cur| {
                let mut row = cur.clone();
                row.customer_id = Some(format!("cus_{t}"));
                Some(kamiyo_platform::db::BillingWrite {
                    row,
                    audits: vec![],
                })
            })
            .await
            .unwrap();
    }
    let mut c = AsyncPgConnection::establish(&e.app_url).await.unwrap();
    c.batch_execute("SET search_path TO platform, public")
        .await
        .unwrap();
    // The owner sees both tenants' rows (a positive control for the counts below).
    let mut owner = AsyncPgConnection::establish(&e.tdb.url).await.unwrap();
    owner
        .batch_execute("SET search_path TO platform, public")
        .await
        .unwrap();
    for t in TABLES {
        assert!(
            count(
                &mut owner,
                &format!("SELECT count(*) AS n FROM {t} WHERE tenant_id = 'bravo'")
            )
            .await
                > 0,
            "{t}"
        );
    }
    // No tenant named: nothing, in every table.
    for t in TABLES {
        assert_eq!(
            count(&mut c, &format!("SELECT count(*) AS n FROM {t}")).await,
            0,
            "{t} without a tenant"
        );
    }
    c.batch_execute("SELECT set_config('app.tenant_id', '', false)")
        .await
        .unwrap();
    for t in TABLES {
        assert_eq!(
            count(&mut c, &format!("SELECT count(*) AS n FROM {t}")).await,
            0,
            "{t} with an empty tenant"
        );
    }
    // The wrong tenant named: only its rows, never bravo's, and writes to bravo's rows miss.
    c.batch_execute("SELECT set_config('app.tenant_id', 'alpha', false)")
        .await
        .unwrap();
    for t in TABLES {
        assert!(
            count(&mut c, &format!("SELECT count(*) AS n FROM {t}")).await > 0,
            "{t}: alpha's rows"
        );
        assert_eq!(
            count(
                &mut c,
                &format!("SELECT count(*) AS n FROM {t} WHERE tenant_id <> 'alpha'")
            )
            .await,
            0,
            "{t}"
        );
    }
    for sql in [
        "UPDATE users SET role = 'owner' WHERE tenant_id = 'bravo'",
        "DELETE FROM api_keys WHERE tenant_id = 'bravo'",
        "UPDATE tenants SET plan = 'cloud_enterprise' WHERE tenant_id = 'bravo'",
        "DELETE FROM alert_channels WHERE tenant_id = 'bravo'",
        "UPDATE tenant_outbox SET status = 'delivered' WHERE tenant_id = 'bravo'",
        "UPDATE fanout_cursors SET seq = 0 WHERE tenant_id = 'bravo'",
        "UPDATE billing_accounts SET customer_id = 'cus_stolen' WHERE tenant_id = 'bravo'",
        "UPDATE tenants SET billing_state = 'ok', grace_until = NULL WHERE tenant_id = 'bravo'",
    ] {
        assert_eq!(sql_query(sql).execute(&mut c).await.unwrap(), 0, "{sql}");
    }
    // Writing a row for another tenant is refused by the policy's check.
    for sql in [
        "INSERT INTO api_keys (tenant_id, key_id, name, hash, role, created_by, created_at) VALUES ('bravo', 'key_x', 'x', 'h', 'owner', 'x', 0)",
        "INSERT INTO audit_log (tenant_id, at, actor, action, target, summary, ip) VALUES ('bravo', 0, 'x', 'x', 'x', 'forged', 'x')",
        "UPDATE users SET tenant_id = 'bravo'",
        "UPDATE billing_accounts SET tenant_id = 'bravo'",
        "INSERT INTO tenant_outbox (tenant_id, outbox_id, event_seq, incident_id, channel_id, severity, payload, status, next_attempt_ms, created_at) VALUES ('bravo', 'x', 1, 'i', 'c', 'high', '{}', 'pending', 0, 0)",
    ] {
        let err = sql_query(sql)
            .execute(&mut c)
            .await
            .expect_err(sql)
            .to_string();
        assert!(err.contains("row-level security"), "{sql}: {err}");
    }
    // The audit log is append-only for the application role, its own rows included; and the
    // role cannot turn the policies off.
    for sql in [
        "UPDATE audit_log SET summary = 'edited'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_rows ON users",
        "SET ROLE kamiyo",
        "DROP FUNCTION platform.subscribers(TEXT)",
    ] {
        let err = sql_query(sql)
            .execute(&mut c)
            .await
            .expect_err(sql)
            .to_string();
        assert!(
            err.contains("permission denied")
                || err.contains("must be owner")
                || err.contains("must be member"),
            "{sql}: {err}"
        );
    }
    // Transaction-local tenant: what the platform sets does not outlive its transaction.
    let mut c2 = AsyncPgConnection::establish(&e.app_url).await.unwrap();
    c2.batch_execute("SET search_path TO platform, public")
        .await
        .unwrap();
    c2.batch_execute("BEGIN; SELECT set_config('app.tenant_id', 'bravo', true); COMMIT;")
        .await
        .unwrap();
    assert_eq!(count(&mut c2, "SELECT count(*) AS n FROM users").await, 0);
}

#[tokio::test]
async fn the_service_refuses_a_role_that_row_level_security_would_not_bind() {
    let e = env().await;
    // The owner owns the tables: serving through it would bypass nothing only by luck.
    let err = e.owner.check_app_role().await.unwrap_err().to_string();
    assert!(err.contains("application role"), "{err}");
    e.app.check_app_role().await.unwrap();
}
