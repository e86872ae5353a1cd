//! An in-process fake of Stripe's REST API on 127.0.0.1, speaking its wire format: requests
//! are `application/x-www-form-urlencoded` with bracket notation (`items[0][price]=…`) to
//! `/v1/…` with `Authorization: Bearer sk_…`; answers are Stripe objects built from Stripe's
//! own example objects (`testdata/billing/stripe-openapi/fixtures3.json`) with the fields the
//! flow sets; errors are `{"error": {...}}` with Stripe's status codes. `Idempotency-Key` is
//! honoured as Stripe documents: a repeated key replays the stored answer (a key reused with
//! other parameters is a 400). Faults can be queued: a 5xx before processing, an answer that
//! comes too late (after processing, so a retry must be a replay), a declined card.
//!
//! Events are built as Stripe sends them (`object: event`, `data.object`, `created`) and signed
//! with async-stripe's own test-header generator (independent of the platform's verifier);
//! the test decides when, in which order and whether each is delivered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// Stripe's example objects.
const FIXTURES: &str = include_str!("../../testdata/billing/stripe-openapi/fixtures3.json");

/// A fault for the next write request (POST or DELETE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer this status (Stripe's `api_error`) without processing.
    Status(u16),
    /// Process, then answer only after this many ms (the client times out first).
    Late(u64),
}

/// A request as received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `GET /v1/…`.
    pub(crate) method: String,
    /// Path.
    pub(crate) path: String,
    /// Decoded form.
    pub(crate) form: BTreeMap<String, String>,
    /// `Idempotency-Key`.
    pub(crate) key: Option<String>,
    /// Answered from the idempotency store.
    pub(crate) replayed: bool,
}

/// One event, as Stripe would deliver it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// `evt_…`.
    pub(crate) id: String,
    /// Its type.
    pub(crate) kind: String,
    /// The exact body.
    pub(crate) body: String,
}

#[derive(Default)]
struct State {
    n: u64,
    customers: BTreeMap<String, Value>,
    subscriptions: BTreeMap<String, Value>,
    sessions: BTreeMap<String, (Value, String, Option<u32>)>,
    stored: HashMap<String, (String, u16, String)>,
    seen: Vec<Seen>,
    faults: VecDeque<Fault>,
    decline: Option<String>,
    events: Vec<Event>,
    /// The fake's own address, when it serves the Checkout page itself (browser tests).
    hosted: Option<String>,
    /// Where the hosted page delivers the events of a completed Checkout (URL, secret).
    webhook: Option<(String, String)>,
}

/// The fake.
pub(crate) struct FakeStripe {
    /// `http://127.0.0.1:port`.
    pub(crate) url: String,
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    handle: actix_web::dev::ServerHandle,
}

fn template(name: &str) -> Value {
    let all: Value = serde_json::from_str(FIXTURES).unwrap();
    all["resources"][name].clone()
}

fn decode(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> (u16, String) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message, "decline_code": if kind == "card_error" { json!("insufficient_funds") } else { Value::Null }}})
            .to_string(),
    )
}

impl FakeStripe {
    /// Starts on an ephemeral loopback port; `clock` gives epoch ms (shared with the platform).
    pub(crate) async fn start(clock: Arc<dyn Fn() -> i64 + Send + Sync>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (s2, c2) = (state.clone(), clock.clone());
        let server = HttpServer::new(move || {
            let (s, c) = (s2.clone(), c2.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (s, c) = (s.clone(), c.clone());
                async move { handle(&s, &*c, &req, &body).await }
            }))
        })
        .workers(1)
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let url = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            state,
            clock,
            handle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Queues a fault for the next write request.
    pub(crate) fn fault(&self, f: Fault) {
        self.lock().faults.push_back(f);
    }

    /// The next charge is declined with this message.
    pub(crate) fn decline_next(&self, message: &str) {
        self.lock().decline = Some(message.to_owned());
    }

    /// Requests received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Customers created.
    pub(crate) fn customers(&self) -> usize {
        self.lock().customers.len()
    }

    /// Events not yet taken.
    pub(crate) fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// A subscription as stored.
    pub(crate) fn subscription(&self, id: &str) -> Value {
        self.lock().subscriptions[id].clone()
    }

    /// The customer paid on the Checkout page: the subscription is created (trialing when
    /// the session had a trial), with `customer.subscription.created`,
    /// `checkout.session.completed` and `invoice.paid` (the first, possibly $0, invoice).
    pub(crate) fn complete_checkout(&self, session: &str) -> String {
        let now = (self.clock)() / 1000;
        complete(&mut self.lock(), now, session)
    }

    /// Serves the Checkout page itself (a button that completes the session, as a customer
    /// paying would), delivering the events Stripe would send to `webhook`, signed with
    /// `secret`, before sending the browser to the session's `success_url`.
    pub(crate) fn host_checkout(&self, webhook: &str, secret: &str) {
        let mut st = self.lock();
        st.hosted = Some(self.url.clone());
        st.webhook = Some((webhook.to_owned(), secret.to_owned()));
    }

    /// A renewal charge failed: the subscription goes `past_due` (`invoice.payment_failed`,
    /// then `customer.subscription.updated`).
    pub(crate) fn fail_payment(&self, sub: &str, attempt: u64) {
        self.charge(sub, attempt, false);
    }

    /// A charge succeeded: `active` again (`invoice.paid`, `invoice.payment_succeeded`,
    /// `customer.subscription.updated`).
    pub(crate) fn pay(&self, sub: &str) {
        self.charge(sub, 1, true);
    }

    /// A renewal charge of `sub` (its `attempt`-th), paid or failed, with the events Stripe
    /// sends for it.
    fn charge(&self, sub: &str, attempt: u64, paid: bool) {
        let now = (self.clock)() / 1000;
        let mut st = self.lock();
        let customer = st.subscriptions[sub]["customer"]
            .as_str()
            .unwrap()
            .to_owned();
        let inv = invoice(
            &mut st,
            &customer,
            if paid { "paid" } else { "open" },
            attempt,
        );
        if paid {
            st.emit("invoice.paid", inv.clone(), now);
            st.emit("invoice.payment_succeeded", inv, now);
        } else {
            st.emit("invoice.payment_failed", inv, now);
        }
        st.update(sub, now, |s| {
            s["status"] = json!(if paid { "active" } else { "past_due" });
        });
    }

    /// Stripe-side change made elsewhere (the Dashboard, the portal): the subscription moves
    /// to `price`, with `customer.subscription.updated`.
    pub(crate) fn change_elsewhere(&self, sub: &str, price: &str) {
        let now = (self.clock)() / 1000;
        self.lock().update(sub, now, |s| {
            s["items"]["data"][0]["price"]["id"] = json!(price);
            s["status"] = json!("active");
        });
    }

    /// The trial ends in three days (`customer.subscription.trial_will_end`).
    pub(crate) fn trial_will_end(&self, sub: &str) {
        let now = (self.clock)() / 1000;
        let mut st = self.lock();
        let s = st.subscriptions[sub].clone();
        st.emit("customer.subscription.trial_will_end", s, now);
    }

    /// An event of a type the platform does not handle.
    pub(crate) fn other_event(&self) {
        let now = (self.clock)() / 1000;
        let mut st = self.lock();
        let c = template("customer");
        st.emit("customer.updated", c, now);
    }

    /// The `Stripe-Signature` header for `body` at `t` with each of `secrets` (one `v1` per
    /// secret, as Stripe sends while a secret is rolled).
    pub(crate) fn sign(body: &str, secrets: &[&str], t: i64) -> String {
        let mut parts = vec![format!("t={t}")];
        for s in secrets {
            let h = stripe_webhook::Webhook::generate_test_header(body, s, Some(t));
            parts.push(h.split(',').nth(1).unwrap().to_owned());
        }
        parts.join(",")
    }

    /// Stops.
    pub(crate) async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn invoice(st: &mut State, customer: &str, status: &str, attempt: u64) -> Value {
    st.n += 1;
    let mut inv = template("invoice");
    inv["id"] = json!(format!("in_fake{}", st.n));
    inv["customer"] = json!(customer);
    inv["status"] = json!(status);
    inv["attempt_count"] = json!(attempt);
    inv
}

impl State {
    /// Changes subscription `sub` and sends `customer.subscription.updated` with it.
    fn update(&mut self, sub: &str, now: i64, f: impl FnOnce(&mut Value)) {
        let Some(s) = self.subscriptions.get_mut(sub) else {
            return;
        };
        f(s);
        let s = s.clone();
        self.emit("customer.subscription.updated", s, now);
    }

    fn emit(&mut self, kind: &str, object: Value, created: i64) {
        self.n += 1;
        let id = format!("evt_fake{}", self.n);
        let body = json!({
            "id": id,
            "object": "event",
            "api_version": "2026-09-30.endive",
            "created": created,
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind,
        })
        .to_string();
        self.events.push(Event {
            id,
            kind: kind.to_owned(),
            body,
        });
    }
}

/// Completes a Checkout session (see [`FakeStripe::complete_checkout`]).
fn complete(st: &mut State, now: i64, session: &str) -> String {
    let (sess, price, trial) = st.sessions[session].clone();
    let customer = sess["customer"].as_str().unwrap().to_owned();
    st.n += 1;
    let id = format!("sub_fake{}", st.n);
    let mut sub = template("subscription");
    let period_end = now + i64::from(trial.unwrap_or(30)) * 86_400;
    sub["id"] = json!(id);
    sub["customer"] = json!(customer);
    sub["created"] = json!(now);
    sub["start_date"] = json!(now);
    sub["status"] = json!(if trial.is_some() {
        "trialing"
    } else {
        "active"
    });
    sub["trial_start"] = if trial.is_some() {
        json!(now)
    } else {
        Value::Null
    };
    sub["trial_end"] = if trial.is_some() {
        json!(period_end)
    } else {
        Value::Null
    };
    sub["cancel_at_period_end"] = json!(false);
    for k in [
        "cancel_at",
        "canceled_at",
        "ended_at",
        "schedule",
        "latest_invoice",
    ] {
        sub[k] = Value::Null;
    }
    let item = &mut sub["items"]["data"][0];
    item["id"] = json!(format!("si_fake{}", st.n));
    item["subscription"] = json!(id);
    item["price"]["id"] = json!(price);
    item["current_period_start"] = json!(now);
    item["current_period_end"] = json!(period_end);
    sub["items"]["url"] = json!(format!("/v1/subscription_items?subscription={id}"));
    st.subscriptions.insert(id.clone(), sub.clone());
    let mut done = sess.clone();
    done["status"] = json!("complete");
    done["payment_status"] = json!(if trial.is_some() {
        "no_payment_required"
    } else {
        "paid"
    });
    done["subscription"] = json!(id);
    st.emit("customer.subscription.created", sub, now);
    st.emit("checkout.session.completed", done, now);
    let inv = invoice(st, &customer, "paid", 1);
    st.emit("invoice.paid", inv, now);
    id
}

/// The hosted Checkout page (`/c/pay/<session>`): a button; its POST completes the session,
/// delivers the events to the platform's webhook, signed, and sends the browser on.
async fn checkout_page(
    state: &Mutex<State>,
    clock: &(dyn Fn() -> i64 + Send + Sync),
    method: &str,
    id: &str,
) -> HttpResponse {
    let now = clock() / 1000;
    if method == "GET" {
        let st = state.lock().unwrap();
        let Some((_, _, trial)) = st.sessions.get(id) else {
            return HttpResponse::NotFound().body("no such Checkout session");
        };
        let trial = trial.map_or_else(String::new, |d| format!("{d}-day free trial. "));
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(format!(
                "<!doctype html><html lang=\"en\"><head><title>Checkout (fake Stripe)</title></head><body><h1>Fake Stripe Checkout</h1><p>{trial}Session {id}.</p><form method=\"post\"><button id=\"pay\" type=\"submit\">Start trial</button></form></body></html>"
            ));
    }
    let (events, webhook, success) = {
        let mut st = state.lock().unwrap();
        if !st.sessions.contains_key(id) {
            return HttpResponse::NotFound().body("no such Checkout session");
        }
        complete(&mut st, now, id);
        let success = st.sessions[id].0["success_url"]
            .as_str()
            .unwrap_or("/")
            .to_owned();
        (std::mem::take(&mut st.events), st.webhook.clone(), success)
    };
    if let Some((url, secret)) = webhook {
        let http = reqwest::Client::new();
        for e in events {
            let sig = FakeStripe::sign(&e.body, &[&secret], now);
            let res = http
                .post(&url)
                .header("stripe-signature", sig)
                .header("content-type", "application/json")
                .body(e.body.clone())
                .send()
                .await;
            assert!(
                res.as_ref().is_ok_and(|r| r.status().is_success()),
                "the platform refused {}: {res:?}",
                e.kind
            );
        }
    }
    HttpResponse::SeeOther()
        .insert_header(("location", success))
        .finish()
}

async fn handle(
    state: &Mutex<State>,
    clock: &(dyn Fn() -> i64 + Send + Sync),
    req: &HttpRequest,
    body: &[u8],
) -> HttpResponse {
    if let Some(id) = req.path().strip_prefix("/c/pay/") {
        return checkout_page(state, clock, req.method().as_str(), id).await;
    }
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let query = decode(req.query_string().as_bytes());
    let form = decode(body);
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let authorised = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.starts_with("Bearer sk_test_"));
    let form_ct = req
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .is_none_or(|c| c == "application/x-www-form-urlencoded");
    let (status, text, late) = {
        let mut st = state.lock().unwrap();
        // Faults hit writes (the calls that must be idempotent); reads pass.
        let fault = if method == "GET" {
            None
        } else {
            st.faults.pop_front()
        };
        let signature = format!("{method} {path} {form:?}");
        let replay = key.as_ref().and_then(|k| st.stored.get(k).cloned());
        st.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            form: form.clone(),
            key: key.clone(),
            replayed: replay.is_some(),
        });
        match (fault, replay) {
            (Some(Fault::Status(s)), _) => {
                let (s, t) = error(
                    s,
                    "api_error",
                    "internal",
                    "An error occurred with our connection to Stripe.",
                );
                (s, t, 0)
            }
            (_, Some((sig, s, t))) if sig == signature => (s, t, 0),
            (_, Some(_)) => {
                let (s, t) = error(
                    400,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                );
                (s, t, 0)
            }
            (fault, None) => {
                let (s, t) = if !authorised {
                    error(
                        401,
                        "invalid_request_error",
                        "api_key_invalid",
                        "Invalid API Key provided",
                    )
                } else if !form_ct {
                    error(
                        400,
                        "invalid_request_error",
                        "parameter_invalid",
                        "form bodies only",
                    )
                } else {
                    route(&mut st, clock() / 1000, &method, &path, &query, &form)
                };
                // Stripe stores the outcome of a request that started executing.
                if let Some(k) = &key
                    && s < 500
                {
                    st.stored.insert(k.clone(), (signature, s, t.clone()));
                }
                let late = match fault {
                    Some(Fault::Late(ms)) => ms,
                    _ => 0,
                };
                (s, t, late)
            }
        }
    };
    if late > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(late)).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .insert_header(("request-id", "req_fake"))
        .body(text)
}

fn route(
    st: &mut State,
    now: i64,
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    form: &BTreeMap<String, String>,
) -> (u16, String) {
    let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let missing = |what: &str, id: &str| {
        error(
            404,
            "invalid_request_error",
            "resource_missing",
            &format!("No such {what}: '{id}'"),
        )
    };
    match (method, parts.as_slice()) {
        ("POST", ["customers"]) => {
            st.n += 1;
            let id = format!("cus_fake{}", st.n);
            let mut c = template("customer");
            c["id"] = json!(id);
            c["created"] = json!(now);
            c["name"] = json!(form.get("name"));
            c["email"] = json!(form.get("email"));
            c["metadata"] = json!({"tenant": form.get("metadata[tenant]")});
            st.customers.insert(id, c.clone());
            (200, c.to_string())
        }
        ("POST", ["checkout", "sessions"]) => {
            let Some(customer) = form
                .get("customer")
                .filter(|c| st.customers.contains_key(*c))
            else {
                return missing("customer", form.get("customer").map_or("", |s| s.as_str()));
            };
            let (Some(price), Some("subscription")) = (
                form.get("line_items[0][price]"),
                form.get("mode").map(String::as_str),
            ) else {
                return error(
                    400,
                    "invalid_request_error",
                    "parameter_missing",
                    "line_items[0][price] and mode=subscription are required here",
                );
            };
            st.n += 1;
            let id = format!("cs_test_fake{}", st.n);
            let mut s = template("checkout.session");
            s["id"] = json!(id);
            s["customer"] = json!(customer);
            s["mode"] = json!("subscription");
            s["status"] = json!("open");
            s["subscription"] = Value::Null;
            s["client_reference_id"] = json!(form.get("client_reference_id"));
            s["success_url"] = json!(form.get("success_url"));
            s["cancel_url"] = json!(form.get("cancel_url"));
            s["url"] = json!(match &st.hosted {
                Some(base) => format!("{base}/c/pay/{id}"),
                None => format!("https://checkout.stripe.com/c/pay/{id}"),
            });
            s["created"] = json!(now);
            let trial = form
                .get("subscription_data[trial_period_days]")
                .and_then(|d| d.parse().ok());
            st.sessions.insert(id, (s.clone(), price.clone(), trial));
            (200, s.to_string())
        }
        ("POST", ["billing_portal", "sessions"]) => {
            let Some(customer) = form
                .get("customer")
                .filter(|c| st.customers.contains_key(*c))
            else {
                return missing("customer", "");
            };
            st.n += 1;
            let mut p = template("billing_portal.session");
            p["id"] = json!(format!("bps_fake{}", st.n));
            p["customer"] = json!(customer);
            p["return_url"] = json!(form.get("return_url"));
            p["url"] = json!(format!(
                "https://billing.stripe.com/p/session/test_fake{}",
                st.n
            ));
            (200, p.to_string())
        }
        ("GET", ["subscriptions"]) => {
            let data: Vec<Value> = st
                .subscriptions
                .values()
                .filter(|s| {
                    query
                        .get("customer")
                        .is_none_or(|c| s["customer"] == json!(c))
                })
                .cloned()
                .collect();
            (200, json!({"object": "list", "data": data, "has_more": false, "url": "/v1/subscriptions"}).to_string())
        }
        ("GET", ["subscriptions", id]) => match st.subscriptions.get(*id) {
            Some(s) => (200, s.to_string()),
            None => missing("subscription", id),
        },
        ("POST", ["subscriptions", id]) => {
            let Some(mut s) = st.subscriptions.get(*id).cloned() else {
                return missing("subscription", id);
            };
            if let Some(price) = form.get("items[0][price]") {
                if form.get("items[0][id]").map(String::as_str)
                    != s["items"]["data"][0]["id"].as_str()
                {
                    return error(
                        400,
                        "invalid_request_error",
                        "parameter_invalid",
                        "items[0][id] does not belong to the subscription",
                    );
                }
                let charged_now =
                    form.get("proration_behavior").map(String::as_str) == Some("always_invoice");
                if charged_now && let Some(msg) = st.decline.take() {
                    // error_if_incomplete: the update is refused and nothing changes.
                    return error(402, "card_error", "card_declined", &msg);
                }
                s["items"]["data"][0]["price"]["id"] = json!(price);
                if s["status"] == json!("trialing") && charged_now {
                    s["status"] = json!("active");
                }
            }
            if let Some(c) = form.get("cancel_at_period_end") {
                s["cancel_at_period_end"] = json!(c == "true");
                s["cancel_at"] = if c == "true" {
                    s["items"]["data"][0]["current_period_end"].clone()
                } else {
                    Value::Null
                };
            }
            st.subscriptions.insert((*id).to_owned(), s.clone());
            st.emit("customer.subscription.updated", s.clone(), now);
            (200, s.to_string())
        }
        ("DELETE", ["subscriptions", id]) => {
            let Some(mut s) = st.subscriptions.get(*id).cloned() else {
                return missing("subscription", id);
            };
            s["status"] = json!("canceled");
            s["canceled_at"] = json!(now);
            s["ended_at"] = json!(now);
            st.subscriptions.insert((*id).to_owned(), s.clone());
            st.emit("customer.subscription.deleted", s.clone(), now);
            (200, s.to_string())
        }
        _ => error(
            404,
            "invalid_request_error",
            "url_invalid",
            &format!("Unrecognized request URL ({method}: {path})"),
        ),
    }
}
