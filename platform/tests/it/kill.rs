//! The tenant router killed with SIGKILL in the middle of a fan-out, then restarted: every
//! tenant ends with exactly one outbox row per shared step and channel — none lost, none twice.

use std::time::{Duration, Instant};

use kamiyo_core_models::{IngestBatch, MarketStore};
use kamiyo_platform::db::{Actor, Change};
use kamiyo_platform::tenancy::{self, TenantId};

use crate::{T0, env, opened};

fn serve(e: &crate::Env) -> kamiyo_testing::browser::Killed {
    serve_as(e, "all", "127.0.0.1:0")
}

/// `serve --role <role>` bound to `bind`.
fn serve_as(e: &crate::Env, role: &str, bind: &str) -> kamiyo_testing::browser::Killed {
    kamiyo_testing::browser::Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .args(["serve", "--role", role])
            .env("KAMIYO_PLATFORM__DATABASE__URL", &e.tdb.url)
            .env("KAMIYO_PLATFORM__DATABASE__APP_URL", &e.app_url)
            .env("KAMIYO_PLATFORM__SERVER__BIND", bind)
            .env("KAMIYO_PLATFORM_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A tenant on `plan` with one webhook channel to a closed loopback port (deliveries fail and
/// are retried; nothing leaves the machine).
async fn tenant_with_hook(e: &crate::Env, t: &TenantId, plan: &str, hash: &str) {
    let who = Actor {
        actor: "test".into(),
        ip: "127.0.0.1".into(),
        at: T0,
    };
    let k = tenancy::generate_key(t);
    e.app
        .create_tenant(
            t,
            "k",
            plan,
            &format!("o@{t}.example"),
            hash,
            (&k.id, &k.hash),
            "hyperliquid",
            &who,
        )
        .await
        .unwrap();
    e.app
        .change(
            t,
            &who,
            Change::AddChannel {
                channel_id: tenancy::new_id("chn"),
                name: "hook".into(),
                kind: "webhook".into(),
                url: "http://127.0.0.1:9/hook".into(),
                secret: None,
                min_severity: "info".into(),
            },
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_router_leaves_every_tenant_each_alert_exactly_once() {
    let e = env().await;
    let tenants: Vec<TenantId> = (0..40)
        .map(|i| TenantId::parse(&format!("kill-{i:02}")).unwrap())
        .collect();
    let hash = tenancy::hash_password("a long enough password").unwrap();
    for t in &tenants {
        tenant_with_hook(&e, t, "cloud_enterprise", &hash).await;
    }
    let steps: Vec<_> = (0..150)
        .map(|n| opened(n, "hyperliquid", "ETH", T0 + n as i64))
        .collect();
    let stored = e
        .facts
        .commit(&IngestBatch {
            updates: steps,
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let last = stored.last().unwrap().seq;
    let routed = |t: &TenantId| {
        let (app, t) = (e.app.clone(), t.clone());
        async move { app.tenant_outbox(&t, 100_000).await.unwrap() }
    };
    // Kill it once some tenants have some of the steps and the router has not finished.
    let mut child = serve(&e);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let at = e
            .owner
            .router_cursor(kamiyo_platform::fanout::ROUTER)
            .await
            .unwrap();
        let first = routed(&tenants[0]).await.len();
        if first > 0 && at < last {
            break;
        }
        assert!(
            at < last,
            "the router finished before it could be killed; make the fan-out longer"
        );
        assert!(Instant::now() < deadline, "nothing routed within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mid = e
        .owner
        .router_cursor(kamiyo_platform::fanout::ROUTER)
        .await
        .unwrap();
    assert!(mid < last, "killed mid-way ({mid} of {last})");
    // Restarted: it finishes.
    let mut child = serve(&e);
    let deadline = Instant::now() + Duration::from_secs(120);
    while e
        .owner
        .router_cursor(kamiyo_platform::fanout::ROUTER)
        .await
        .unwrap()
        < last
    {
        assert!(
            Instant::now() < deadline,
            "the restarted router did not finish within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let want: Vec<i64> = stored.iter().map(|s| s.seq).collect();
    for t in &tenants {
        let mut seqs: Vec<i64> = routed(t).await.iter().map(|r| r.event_seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, want, "{t}: every step once");
    }
}

/// An API-only replica routes nothing; a workers replica routes the same steps (the roles the
/// Kubernetes Deployments run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_replicas_leave_routing_to_the_workers() {
    let e = env().await;
    let t = TenantId::parse("roles").unwrap();
    let hash = tenancy::hash_password("a long enough password").unwrap();
    tenant_with_hook(&e, &t, "cloud_basic", &hash).await;
    let steps: Vec<_> = (0..3)
        .map(|n| opened(n, "hyperliquid", "ETH", T0 + n as i64))
        .collect();
    crate::commit(&e, steps).await;
    let port = kamiyo_testing::browser::free_port();
    let mut api = serve_as(&e, "api", &format!("127.0.0.1:{port}"));
    kamiyo_aggregators::install_crypto_provider();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the API replica did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Three router intervals: nothing routed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(e.app.tenant_outbox(&t, 100).await.unwrap().is_empty());
    let mut workers = serve_as(&e, "workers", "127.0.0.1:0");
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.app.tenant_outbox(&t, 100).await.unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the workers routed nothing within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in [&mut api, &mut workers] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}
