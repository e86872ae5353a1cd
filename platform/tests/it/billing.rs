//! Billing against the loopback fake Stripe (its REST wire format, reached through
//! async-stripe's configurable base URL) and signed webhook deliveries to the platform's route:
//! checkout with a trial, enforcement only on Stripe's word, forged/replayed/stale/malformed
//! deliveries refused with nothing changed, duplicates and out-of-order deliveries, plan
//! changes with a decline, 5xx and timeouts retried under one idempotency key, cancel and
//! reactivate, dunning to suspension and back, and reconciliation repairing a lost webhook.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test;
use kamiyo_core_models::MarketStore;
use kamiyo_platform::billing::{Billing, Settings};
use kamiyo_platform::tenancy::TenantId;
use kamiyo_platform::tiers::{Tier, TierMatrix};
use serde_json::{Value, json};

use crate::stripe_fake::{Event, FakeStripe, Fault};
use crate::{Env, call, env, signup};

const SECRETS: [&str; 2] = ["whsec_current_fake", "whsec_previous_fake"];

fn settings(url: &str) -> Settings {
    Settings {
        secret_key: "sk_test_fake".into(),
        api_base: Some(url.to_owned()),
        webhook_secrets: SECRETS.iter().map(|s| (*s).to_owned()).collect(),
        prices: vec![
            (Tier::CloudBasic, "price_basic".into()),
            (Tier::CloudPro, "price_pro".into()),
            (Tier::CloudEnterprise, "price_enterprise".into()),
        ],
        trial_days: 14,
        grace_ms: 7 * 86_400_000,
        tolerance_secs: 300,
        unpaid_plan: Tier::OpenSource,
        timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Duration::from_millis(20),
        success_url: "https://app.kamiyo.test/billing?checkout=done".into(),
        cancel_url: "https://app.kamiyo.test/billing?checkout=cancelled".into(),
        return_url: "https://app.kamiyo.test/billing".into(),
    }
}

struct World {
    e: Env,
    stripe: FakeStripe,
    billing: Arc<Billing>,
}

async fn world(mailer: Option<Arc<kamiyo_alerts::channels::Smtp>>) -> World {
    kamiyo_aggregators::install_crypto_provider();
    let e = env().await;
    let c = e.clock.clone();
    let clock: Arc<dyn Fn() -> i64 + Send + Sync> = Arc::new(move || c.load(Ordering::SeqCst));
    let stripe = FakeStripe::start(clock.clone()).await;
    let billing = Arc::new(
        Billing::new(
            settings(&stripe.url),
            e.app.clone(),
            TierMatrix::default_matrix().unwrap(),
            clock,
            mailer,
        )
        .unwrap(),
    );
    World { e, stripe, billing }
}

impl World {
    async fn svc(
        &self,
    ) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
    {
        let b = self.billing.clone();
        self.e.service_customised(move |s| s.with_billing(b)).await
    }

    fn now_s(&self) -> i64 {
        self.e.clock.load(Ordering::SeqCst) / 1000
    }

    fn advance(&self, ms: i64) {
        self.e.clock.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Posts a raw delivery to the webhook route.
async fn post_raw<S>(svc: &S, body: &str, signature: Option<&str>) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut req = test::TestRequest::post()
        .uri("/api/v1/billing/webhook")
        .peer_addr("192.0.2.99:443".parse().unwrap())
        .insert_header(("content-type", "application/json; charset=utf-8"))
        .set_payload(body.to_owned());
    if let Some(s) = signature {
        req = req.insert_header(("Stripe-Signature", s));
    }
    let res = match test::try_call_service(svc, req.to_request()).await {
        Ok(r) => r.into_parts().1.map_into_boxed_body(),
        Err(e) => e.error_response().map_into_boxed_body(),
    };
    let status = res.status();
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Delivers one event signed now with the current secret.
async fn deliver<S>(w: &World, svc: &S, ev: &Event) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let sig = FakeStripe::sign(&ev.body, &SECRETS[..1], w.now_s());
    let (s, v) = post_raw(svc, &ev.body, Some(&sig)).await;
    assert_eq!(s, StatusCode::OK, "{} {}: {v}", ev.kind, ev.id);
    v
}

async fn deliver_all<S>(w: &World, svc: &S) -> Vec<Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut out = Vec::new();
    for ev in w.stripe.take_events() {
        out.push(deliver(w, svc, &ev).await);
    }
    out
}

async fn tenant_plan<S>(svc: &S, key: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (_, _, v) = call(svc, "get", "/api/v1/tenant", Some(key), None).await;
    v["plan"].as_str().unwrap().to_owned()
}

async fn billing_view<S>(svc: &S, key: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (s, _, v) = call(svc, "get", "/api/v1/billing", Some(key), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Signs up, checks out `plan` with the trial, completes the Checkout page and delivers
/// Stripe's events: the tenant's key and subscription id.
async fn subscribed<S>(w: &World, svc: &S, tenant: &str, plan: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let key = signup(svc, tenant).await;
    let (s, _, v) = call(
        svc,
        "post",
        "/api/v1/billing/checkout",
        Some(&key),
        Some(json!({"plan": plan})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sub = w.stripe.complete_checkout(v["id"].as_str().unwrap());
    deliver_all(w, svc).await;
    (key, sub)
}

async fn audit_actions(w: &World, tenant: &str) -> Vec<String> {
    w.e.app
        .audit_log(&TenantId::parse(tenant).unwrap(), 0, 1000, true)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

/// Every one of `actions` is in `tenant`'s audit log.
async fn assert_audited(w: &World, tenant: &str, actions: &[&str]) {
    let have = audit_actions(w, tenant).await;
    for a in actions {
        assert!(have.iter().any(|x| x == a), "{a} missing from {have:?}");
    }
}

#[tokio::test]
async fn checkout_with_a_trial_takes_effect_only_when_stripe_confirms_it() {
    let w = world(None).await;
    let svc = w.svc().await;
    let key = signup(&svc, "acme").await;
    // A customer at sign-up; the unpaid plan until a subscription is confirmed.
    assert_eq!(w.stripe.customers(), 1);
    assert_eq!(tenant_plan(&svc, &key).await, "open_source");
    let v = billing_view(&svc, &key).await;
    assert!(v["customer"].as_str().unwrap().starts_with("cus_"), "{v}");
    assert_eq!(v["trial_available_days"], 14);

    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/checkout",
        Some(&key),
        Some(json!({"plan": "cloud_pro"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["trial_days"], 14);
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    let form = &w
        .stripe
        .seen()
        .iter()
        .rev()
        .find(|r| r.path == "/v1/checkout/sessions")
        .unwrap()
        .form
        .clone();
    assert_eq!(form["mode"], "subscription");
    assert_eq!(form["line_items[0][price]"], "price_pro");
    assert_eq!(form["subscription_data[trial_period_days]"], "14");
    assert_eq!(form["client_reference_id"], "acme");
    // The browser coming back from Checkout changes nothing: no confirmation yet.
    assert_eq!(tenant_plan(&svc, &key).await, "open_source");

    let sub = w.stripe.complete_checkout(v["id"].as_str().unwrap());
    let outcomes = deliver_all(&w, &svc).await;
    assert_eq!(outcomes[0]["outcome"], "applied", "{outcomes:?}");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_pro");
    let v = billing_view(&svc, &key).await;
    assert_eq!(v["subscription"]["id"], sub);
    assert_eq!(v["subscription"]["status"], "trialing");
    assert_eq!(v["trial_available_days"], 0);
    assert_eq!(v["billing_state"], "ok");
    assert!(v["banner"].is_null());
    // A second checkout while subscribed is refused; the trial is not offered twice.
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/billing/checkout",
        Some(&key),
        Some(json!({"plan": "cloud_basic"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The portal link.
    let (s, _, v) = call(&svc, "post", "/api/v1/billing/portal", Some(&key), None).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    // trial_will_end is audited (and would be mailed); a type not handled is acknowledged.
    w.stripe.trial_will_end(&sub);
    w.stripe.other_event();
    let out = deliver_all(&w, &svc).await;
    assert_eq!(out[1]["outcome"], "acknowledged");
    assert_audited(
        &w,
        "acme",
        &[
            "billing.customer",
            "billing.checkout",
            "billing.subscription",
            "billing.plan",
            "billing.trial_will_end",
        ],
    )
    .await;
    w.stripe.stop().await;
}

#[tokio::test]
async fn forged_replayed_stale_and_malformed_deliveries_are_refused_and_change_nothing() {
    let w = world(None).await;
    let svc = w.svc().await;
    let key = signup(&svc, "acme").await;
    let (_, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/checkout",
        Some(&key),
        Some(json!({"plan": "cloud_pro"})),
    )
    .await;
    w.stripe.complete_checkout(v["id"].as_str().unwrap());
    let events = w.stripe.take_events();
    let created = events
        .iter()
        .find(|e| e.kind == "customer.subscription.created")
        .unwrap();
    let before = (
        billing_view(&svc, &key).await,
        audit_actions(&w, "acme").await,
    );
    let now = w.now_s();
    let body = &created.body;
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("no signature", body.clone(), None),
        (
            "forged: another secret",
            body.clone(),
            Some(FakeStripe::sign(body, &["whsec_attacker"], now)),
        ),
        (
            "forged: body changed after signing",
            body.replace("trialing", "active"),
            Some(FakeStripe::sign(body, &SECRETS[..1], now)),
        ),
        (
            "stale: signed 301 s ago",
            body.clone(),
            Some(FakeStripe::sign(body, &SECRETS[..1], now - 301)),
        ),
        (
            "future: signed 301 s ahead",
            body.clone(),
            Some(FakeStripe::sign(body, &SECRETS[..1], now + 301)),
        ),
        (
            "replayed: a captured delivery an hour later",
            body.clone(),
            Some(FakeStripe::sign(body, &SECRETS[..1], now - 3600)),
        ),
        ("malformed header", body.clone(), Some("t=abc,v1=zz".into())),
        (
            "v0 only",
            body.clone(),
            Some(format!("t={now},v0={}", "ab".repeat(32))),
        ),
        (
            "malformed body, validly signed",
            "{not json".into(),
            Some(FakeStripe::sign("{not json", &SECRETS[..1], now)),
        ),
        (
            "not an event, validly signed",
            r#"{"id":"x"}"#.into(),
            Some(FakeStripe::sign(r#"{"id":"x"}"#, &SECRETS[..1], now)),
        ),
    ];
    for (what, b, sig) in &cases {
        let (s, v) = post_raw(&svc, b, sig.as_deref()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["code"], "invalid_request", "{what}: {v}");
    }
    let after = (
        billing_view(&svc, &key).await,
        audit_actions(&w, "acme").await,
    );
    assert_eq!(before, after, "a refused delivery changed something");
    assert_eq!(tenant_plan(&svc, &key).await, "open_source");
    // Rotation: signed with the previous secret only, or with both, it is accepted.
    let sig = FakeStripe::sign(body, &SECRETS[1..], now);
    let (s, v) = post_raw(&svc, body, Some(&sig)).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{v}"
    );
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_pro");
    // The same event again (Stripe retries, or an attacker replays it inside the window):
    // recorded by id, nothing happens twice.
    let audits = audit_actions(&w, "acme").await.len();
    let sig = FakeStripe::sign(body, &SECRETS, now + 10);
    let (s, v) = post_raw(&svc, body, Some(&sig)).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "{v}"
    );
    assert_eq!(audit_actions(&w, "acme").await.len(), audits);
    w.stripe.stop().await;
}

#[tokio::test]
async fn an_older_state_delivered_late_never_overwrites_a_newer_one() {
    let w = world(None).await;
    let svc = w.svc().await;
    let (key, sub) = subscribed(&w, &svc, "acme", "cloud_pro").await;
    // Two changes made in Stripe a minute apart; their events arrive newest first.
    w.advance(60_000);
    w.stripe.change_elsewhere(&sub, "price_basic");
    w.advance(60_000);
    w.stripe.change_elsewhere(&sub, "price_enterprise");
    let evs = w.stripe.take_events();
    assert_eq!(evs.len(), 2);
    let v = deliver(&w, &svc, &evs[1]).await;
    assert_eq!(v["outcome"], "applied");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_enterprise");
    let v = deliver(&w, &svc, &evs[0]).await;
    assert_eq!(v["outcome"], "unchanged (older or same state)", "{v}");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_enterprise");
    // Payments likewise: a failure older than a later success does not start dunning.
    w.advance(60_000);
    w.stripe.fail_payment(&sub, 1);
    let failed = w.stripe.take_events();
    w.advance(60_000);
    w.stripe.pay(&sub);
    deliver_all(&w, &svc).await;
    for ev in &failed {
        deliver(&w, &svc, ev).await;
    }
    let v = billing_view(&svc, &key).await;
    assert_eq!(v["billing_state"], "ok", "{v}");
    assert_eq!(v["subscription"]["status"], "active", "{v}");
    w.stripe.stop().await;
}

#[tokio::test]
async fn plan_changes_are_prorated_declines_change_nothing_and_retries_reuse_one_key() {
    let w = world(None).await;
    let svc = w.svc().await;
    let (key, sub) = subscribed(&w, &svc, "acme", "cloud_basic").await;
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_basic");
    // Upgrade with a declined card: 402, nothing changes in Stripe or here.
    w.stripe.decline_next("Your card has insufficient funds.");
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/plan",
        Some(&key),
        Some(json!({"plan": "cloud_pro"})),
    )
    .await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    assert_eq!(v["code"], "payment_declined");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_basic");
    assert_eq!(
        w.stripe.subscription(&sub)["items"]["data"][0]["price"]["id"],
        "price_basic"
    );
    // Upgrade through a 500 and then an answer that comes too late: the client retries with
    // the same idempotency key, Stripe replays its stored answer, one change is made.
    w.stripe.fault(Fault::Status(500));
    w.stripe.fault(Fault::Status(503));
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/plan",
        Some(&key),
        Some(json!({"plan": "cloud_pro"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["plan"], "cloud_pro");
    let updates: Vec<_> = w
        .stripe
        .seen()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("/v1/subscriptions/{sub}"))
        .collect();
    let last = &updates[updates.len() - 3..];
    assert!(
        last.iter().all(|r| r.key == last[0].key && r.key.is_some()),
        "{last:?}"
    );
    assert_eq!(last[2].form["proration_behavior"], "always_invoice");
    assert_eq!(last[2].form["payment_behavior"], "error_if_incomplete");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_pro");
    // Downgrade: credited on the next invoice; the answer arrives after the client gave up
    // (Stripe did it), the retry is a replay.
    w.stripe.fault(Fault::Late(800));
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/plan",
        Some(&key),
        Some(json!({"plan": "cloud_basic"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let seen = w.stripe.seen();
    let (a, b) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
    assert_eq!((a.key.as_ref(), b.replayed), (b.key.as_ref(), true));
    assert_eq!(b.form["proration_behavior"], "create_prorations");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_basic");
    // Stripe down for good: 503, nothing changed.
    for _ in 0..3 {
        w.stripe.fault(Fault::Status(500));
    }
    let (s, _, v) = crate::call_any(
        &svc,
        "post",
        "/api/v1/billing/plan",
        Some(&key),
        Some(json!({"plan": "cloud_pro"})),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_basic");
    // The events of the changes that did happen, delivered now, change nothing more.
    deliver_all(&w, &svc).await;
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_basic");
    // Customer creation retried after a timeout creates one customer.
    let before = w.stripe.customers();
    w.stripe.fault(Fault::Late(800));
    signup(&svc, "beta").await;
    assert_eq!(w.stripe.customers(), before + 1);
    w.stripe.stop().await;
}

#[tokio::test]
async fn cancel_at_period_end_reactivate_and_cancel_now() {
    let w = world(None).await;
    let svc = w.svc().await;
    let (key, sub) = subscribed(&w, &svc, "acme", "cloud_pro").await;
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/cancel",
        Some(&key),
        Some(json!({"at_period_end": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["subscription"]["cancel_at_period_end"], true);
    // The plan holds until the period ends.
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_pro");
    let (s, _, v) = call(&svc, "post", "/api/v1/billing/reactivate", Some(&key), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["subscription"]["cancel_at_period_end"], false);
    let (s, _, _) = call(&svc, "post", "/api/v1/billing/reactivate", Some(&key), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/cancel",
        Some(&key),
        Some(json!({"at_period_end": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["subscription"]["status"], "canceled");
    assert_eq!(tenant_plan(&svc, &key).await, "open_source");
    assert_eq!(w.stripe.subscription(&sub)["status"], "canceled");
    // Stripe's events for all of it, delivered afterwards, leave it there.
    deliver_all(&w, &svc).await;
    assert_eq!(tenant_plan(&svc, &key).await, "open_source");
    // A new checkout is possible; no second trial.
    let (s, _, v) = call(
        &svc,
        "post",
        "/api/v1/billing/checkout",
        Some(&key),
        Some(json!({"plan": "cloud_basic"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["trial_days"].is_null(), "{v}");
    w.stripe.stop().await;
}

#[tokio::test]
async fn a_failed_payment_starts_grace_then_suspension_and_a_payment_reinstates_at_once() {
    use kamiyo_testing::smtp::{Mode, SmtpServer};
    let smtp = SmtpServer::start(Mode::Plain).await;
    let mailer = crate::loopback_mailer(smtp.port());
    let w = world(Some(Arc::new(mailer))).await;
    let svc = w.svc().await;
    let (key, sub) = subscribed(&w, &svc, "acme", "cloud_pro").await;
    let t = TenantId::parse("acme").unwrap();
    // Alerts route to the tenant's channel while in good standing.
    let (s, _, _) = call(&svc, "post", "/api/v1/channels", Some(&key), Some(json!({"name": "ops", "kind": "webhook", "url": "https://hooks.acme.example/x", "min_severity": "low"}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/keys",
        Some(&key),
        Some(json!({"name": "spare", "role": "owner"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    w.advance(86_400_000);
    w.stripe.fail_payment(&sub, 1);
    deliver_all(&w, &svc).await;
    let (s, h, v) = call(&svc, "get", "/api/v1/billing", Some(&key), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["billing_state"], "grace", "{v}");
    assert!(
        v["banner"].as_str().unwrap().contains("payment failed"),
        "{v}"
    );
    assert_eq!(h.get("kamiyo-billing").unwrap(), "grace");
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, ["owner@acme.example"]);
    // In grace everything still works, changes included.
    let (s, _, _) = call(&svc, "put", "/api/v1/subscriptions/dydx", Some(&key), None).await;
    assert!(s.is_success(), "{s}");
    // A second failed retry during grace does not extend it.
    let grace_until = v["grace_until"].as_i64().unwrap();
    w.advance(3 * 86_400_000);
    w.stripe.fail_payment(&sub, 2);
    deliver_all(&w, &svc).await;
    assert_eq!(
        billing_view(&svc, &key).await["grace_until"].as_i64(),
        Some(grace_until)
    );

    // The grace ends: read-only even before the job runs, then suspended by the job.
    w.advance(4 * 86_400_000 + 1);
    let (s, _, v) = call(
        &svc,
        "delete",
        "/api/v1/subscriptions/dydx",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("non-payment"));
    assert_eq!(w.billing.suspend_due().await.unwrap(), 1);
    assert_eq!(w.billing.suspend_due().await.unwrap(), 0);
    let (s, h, v) = call(&svc, "get", "/api/v1/tenant", Some(&key), None).await;
    assert_eq!(s, StatusCode::OK, "reads within the plan still work: {v}");
    assert_eq!(h.get("kamiyo-billing").unwrap(), "suspended");
    assert_eq!(v["plan"], "cloud_pro");
    let (s, _, _) = call(&svc, "get", "/security/events?limit=5", Some(&key), None).await;
    assert_eq!(s, StatusCode::OK);
    // Billing routes stay open so the tenant can pay; access can still be taken away (a
    // leaked key revoked), not added.
    let (s, _, _) = call(&svc, "post", "/api/v1/billing/portal", Some(&key), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, _) = call(
        &svc,
        "post",
        "/api/v1/keys",
        Some(&key),
        Some(json!({"name": "ci", "role": "owner"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let keys: Value = call(&svc, "get", "/api/v1/keys", Some(&key), None).await.2;
    let other = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "spare")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, v) = call(
        &svc,
        "delete",
        &format!("/api/v1/keys/{other}"),
        Some(&key),
        None,
    )
    .await;
    assert!(s.is_success(), "{s} {v}");
    // Alerts are paused and counted.
    let now = w.e.clock.load(Ordering::SeqCst);
    w.e.facts
        .commit(&kamiyo_core_models::IngestBatch {
            updates: vec![crate::opened(1, "hyperliquid", "ETH", now)],
            ..kamiyo_core_models::IngestBatch::default()
        })
        .await
        .unwrap();
    let tiers = TierMatrix::default_matrix().unwrap();
    kamiyo_platform::fanout::route_once(&w.e.app, &w.e.facts_app, &tiers, now, 100)
        .await
        .unwrap();
    let (_, _, u) = call(&svc, "get", "/api/v1/usage?days=1", Some(&key), None).await;
    let today = &u["usage"][0];
    assert_eq!(
        (today["alerts"].as_i64(), today["alerts_paused"].as_i64()),
        (Some(0), Some(1)),
        "{u}"
    );
    let outbox = w.e.app.tenant_outbox(&t, 10).await.unwrap();
    assert!(outbox.iter().all(|o| o.status == "paused"), "{outbox:?}");
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        mails[1].data.contains("suspended") || mails[1].data.contains("Suspended"),
        "{}",
        mails[1].data
    );

    // A payment reinstates at once.
    w.stripe.pay(&sub);
    deliver_all(&w, &svc).await;
    let (s, h, v) = call(&svc, "get", "/api/v1/billing", Some(&key), None).await;
    assert_eq!(
        (s, v["billing_state"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{v}"
    );
    assert!(h.get("kamiyo-billing").is_none());
    let (s, _, _) = call(
        &svc,
        "delete",
        "/api/v1/subscriptions/dydx",
        Some(&key),
        None,
    )
    .await;
    assert!(s.is_success(), "{s}");
    assert_audited(
        &w,
        "acme",
        &[
            "billing.grace",
            "billing.payment_failed",
            "billing.suspended",
            "billing.reinstated",
        ],
    )
    .await;
    smtp.wait_for(3, Duration::from_secs(10)).await;
    w.stripe.stop().await;
}

#[tokio::test]
async fn reconciliation_repairs_a_dropped_webhook_and_a_missing_customer() {
    let w = world(None).await;
    let svc = w.svc().await;
    let (key, sub) = subscribed(&w, &svc, "acme", "cloud_basic").await;
    // The upgrade made in the portal: its webhook is lost.
    w.advance(60_000);
    w.stripe.change_elsewhere(&sub, "price_pro");
    let dropped = w.stripe.take_events();
    assert_eq!(dropped.len(), 1);
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_basic");
    // A tenant whose customer could not be created at sign-up (Stripe down).
    for _ in 0..3 {
        w.stripe.fault(Fault::Status(500));
    }
    let beta = signup(&svc, "beta").await;
    assert!(billing_view(&svc, &beta).await["customer"].is_null());

    w.advance(60_000);
    let repairs = w.billing.reconcile().await.unwrap();
    let names: Vec<&str> = repairs.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["acme", "beta"], "{repairs:?}");
    assert!(
        repairs[0].1.contains("cloud_basic → cloud_pro"),
        "{repairs:?}"
    );
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_pro");
    assert!(
        billing_view(&svc, &beta).await["customer"]
            .as_str()
            .is_some()
    );
    let log =
        w.e.app
            .audit_log(&TenantId::parse("acme").unwrap(), 0, 100, true)
            .await
            .unwrap();
    assert!(
        log.iter()
            .any(|r| r.action == "billing.plan" && r.summary.starts_with("repaired drift")),
        "{log:?}"
    );
    // Nothing left to repair; the lost webhook arriving late is older and changes nothing.
    assert!(w.billing.reconcile().await.unwrap().is_empty());
    let v = deliver(&w, &svc, &dropped[0]).await;
    assert_eq!(v["outcome"], "unchanged (older or same state)");
    w.stripe.stop().await;
}

/// `kamiyo-platform billing sync|status`, the released binary against the same fake Stripe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_commands_repair_and_report() {
    let w = world(None).await;
    let svc = w.svc().await;
    let (key, sub) = subscribed(&w, &svc, "acme", "cloud_basic").await;
    w.advance(60_000);
    w.stripe.change_elsewhere(&sub, "price_enterprise");
    drop(w.stripe.take_events());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("platform.toml");
    std::fs::write(
        &cfg,
        format!(
            "[billing]\nsecret_key = \"sk_test_fake\"\napi_base = \"{}\"\nwebhook_secrets = [\"{}\"]\n\
             [billing.prices]\ncloud_basic = \"price_basic\"\ncloud_pro = \"price_pro\"\ncloud_enterprise = \"price_enterprise\"\n",
            w.stripe.url, SECRETS[0]
        ),
    )
    .unwrap();
    let run = |what: &'static str| {
        let (cfg, app_url) = (cfg.clone(), w.e.app_url.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
                .args(["--config", cfg.to_str().unwrap(), "billing", what])
                .env("KAMIYO_PLATFORM__DATABASE__APP_URL", app_url)
                .env("KAMIYO_PLATFORM_LOG", "error")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let synced = run("sync").await.unwrap();
    assert!(
        synced.contains("repaired acme") && synced.contains("cloud_basic → cloud_enterprise"),
        "{synced}"
    );
    assert!(synced.contains("1 repair(s)"), "{synced}");
    let status = run("status").await.unwrap();
    let line = status.lines().find(|l| l.starts_with("acme\t")).unwrap();
    let v: Value = serde_json::from_str(line.split_once('\t').unwrap().1).unwrap();
    assert_eq!(
        (v["plan"].as_str(), v["billing_state"].as_str()),
        (Some("cloud_enterprise"), Some("ok")),
        "{v}"
    );
    // The service sees it once its cached key expires (another process made the change).
    w.advance(kamiyo_platform::web::KEY_CACHE_MS + 1);
    assert_eq!(tenant_plan(&svc, &key).await, "cloud_enterprise");
    w.stripe.stop().await;
}

/// `kamiyo-platform serve` with `[billing]`: sign-up creates the customer, Checkout, Stripe's
/// signed deliveries over HTTP move the plan, a forged one is refused — the binary's wiring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_binary_bills_through_stripe() {
    kamiyo_aggregators::install_crypto_provider();
    let e = env().await;
    let now: Arc<dyn Fn() -> i64 + Send + Sync> = Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
    });
    let stripe = FakeStripe::start(now.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("platform.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[billing]\nsecret_key = \"sk_test_fake\"\napi_base = \"{}\"\nwebhook_secrets = [\"{}\", \"{}\"]\n\
             [billing.prices]\ncloud_basic = \"price_basic\"\ncloud_pro = \"price_pro\"\n",
            stripe.url, SECRETS[0], SECRETS[1]
        ),
    )
    .unwrap();
    let mut child = kamiyo_testing::browser::Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .args(["--config", cfg.to_str().unwrap(), "serve"])
            .env("KAMIYO_PLATFORM__DATABASE__URL", &e.tdb.url)
            .env("KAMIYO_PLATFORM__DATABASE__APP_URL", &e.app_url)
            .env("KAMIYO_PLATFORM_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let base = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line.trim().trim_start_matches("listening on ").to_owned()
    })
    .await
    .unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/signup"))
        .json(&json!({"tenant": "acme", "name": "Acme", "email": "ops@acme.example", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let key = v["key"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(v["plan"], "open_source");
    assert_eq!(stripe.customers(), 1);
    let r = http
        .post(format!("{base}/api/v1/billing/checkout"))
        .bearer_auth(&key)
        .json(&json!({"plan": "cloud_pro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    stripe.complete_checkout(v["id"].as_str().unwrap());
    let deliver = |body: String, sig: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/api/v1/billing/webhook"))
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let t = now() / 1000;
    // Forged first: refused.
    let evs = stripe.take_events();
    let forged = FakeStripe::sign(&evs[0].body, &["whsec_attacker"], t);
    assert_eq!(deliver(evs[0].body.clone(), forged).await, 400);
    for ev in &evs {
        let sig = FakeStripe::sign(&ev.body, &SECRETS[1..], t);
        assert_eq!(deliver(ev.body.clone(), sig).await, 200, "{}", ev.kind);
    }
    let v: Value = http
        .get(format!("{base}/api/v1/tenant"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["plan"], "cloud_pro", "{v}");
    child.kill().unwrap();
    child.wait().unwrap();
    stripe.stop().await;
}
