//! The launch checklist's backup and restore drill (docs/LAUNCH.md), run for real: a seeded
//! platform database (tenants, keys, channels, worked incidents, routed alerts, shared facts) is
//! dumped with `pg_dump --format=custom --enable-row-security` as the owner, restored with `pg_restore` into an empty database, and
//! the restored one is checked: the same rows, row-level security still in force (the
//! application role sees nothing without a tenant and only its tenant's rows with one), the
//! application role's grants back, and the service answers tenants' keys from it.

use std::process::Command;

use actix_web::http::StatusCode;
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use serde_json::json;

use crate::{T0, call, env, opened, signup};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows per table of schema `platform` and `public` (as the owner).
async fn counts(url: &str) -> Vec<(String, i64)> {
    let mut c = AsyncPgConnection::establish(url).await.unwrap();
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let tables: Vec<T> = sql_query(
        "SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE schemaname IN ('platform', 'public') ORDER BY 1",
    )
    .load(&mut c)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let n: N = sql_query(format!("SELECT count(*) AS n FROM {}", t.t))
            .get_result(&mut c)
            .await
            .unwrap();
        out.push((t.t, n.n));
    }
    out
}

#[tokio::test]
async fn a_dump_restores_into_an_empty_database_with_its_rows_policies_and_grants() {
    let e = env().await;
    let svc = e.service().await;
    // Seed: two tenants with keys, channels and a worked incident; shared steps routed to both.
    let mut keys = Vec::new();
    for t in ["alpha", "bravo"] {
        let k = signup(&svc, t).await;
        let (s, _, _) = call(&svc, "post", "/api/v1/channels", Some(&k), Some(json!({"name": "ops", "kind": "webhook", "url": format!("https://hooks.{t}.example/x"), "min_severity": "low"}))).await;
        assert_eq!(s, StatusCode::CREATED);
        keys.push(k);
    }
    let steps: Vec<_> = (0..5)
        .map(|n| opened(n, "hyperliquid", "ETH", T0 + n as i64 * 1000))
        .collect();
    let id = steps[0].incident.id.to_string();
    let pass = crate::commit_and_route(&e, steps, T0 + 9000).await;
    assert_eq!(pass.sent, 10, "{pass:?}");
    let (s, _, _) = call(
        &svc,
        "post",
        &format!("/api/v1/incidents/{id}/actions"),
        Some(&keys[0]),
        Some(json!({"action": "acknowledge", "note": "drill"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let before = counts(&e.tdb.url).await;
    assert!(
        before
            .iter()
            .any(|(t, n)| t == "platform.tenant_outbox" && *n == 10),
        "{before:?}"
    );

    // The drill: pg_dump (custom format) → pg_restore into an empty database.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("kamiyo.dump");
    // The tenant tables force row-level security on their owner too; the owner's `staff`
    // policy shows it every row, so the dump reads through the policies
    // (`--enable-row-security`) rather than asking to bypass them (which needs BYPASSRLS).
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--enable-row-security", "--file"])
        .arg(&dump)
        .arg(&e.tdb.url)
        .output()
        .expect("pg_dump (PostgreSQL's client tools) must be installed");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = kamiyo_testing::TestDatabase::new().await;
    let out = Command::new("pg_restore")
        .args(["--exit-on-error", "--dbname"])
        .arg(&target.url)
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same rows.
    assert_eq!(counts(&target.url).await, before);
    // Row-level security in force for the application role, its grants back.
    let app_url = crate::app_url(&target.url);
    let mut app = AsyncPgConnection::establish(&app_url).await.unwrap();
    app.batch_execute("SET search_path TO platform, public")
        .await
        .unwrap();
    for (tenant, rows) in [("", 0), ("alpha", 5)] {
        app.batch_execute(&format!(
            "SELECT set_config('app.tenant_id', '{tenant}', false)"
        ))
        .await
        .unwrap();
        let n: N = sql_query("SELECT count(*) AS n FROM tenant_outbox")
            .get_result(&mut app)
            .await
            .unwrap();
        assert_eq!(n.n, rows, "outbox rows seen as tenant {tenant:?}");
    }
    // The service over the restored database answers alpha's key with alpha's state.
    let restored = kamiyo_platform::db::Db::connect(&app_url, 2).await.unwrap();
    restored.check_app_role().await.unwrap();
    let alpha = kamiyo_platform::tenancy::TenantId::parse("alpha").unwrap();
    let history = restored.incident_history(&alpha, &id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].note, "drill");
    drop(target);
}
