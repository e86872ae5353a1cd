//! Billing with Stripe: a customer per tenant, Checkout with a trial, the Customer Portal,
//! plan changes with proration, cancellation and reactivation, signed webhooks, dunning and
//! reconciliation.
//!
//! Stripe is the authority. The plan a tenant is held to (`tenants.plan`) changes only when
//! Stripe confirms a state — a verified webhook or the answer of an API call or read — never
//! because a browser came back from Checkout. Each stored subscription state carries the Stripe
//! time it describes ([`db::BillingRow::version`]: an event's `created`, or the moment of an
//! API read); an older state never overwrites a newer one, and two different states with the
//! same time are settled by reading the subscription from Stripe. Events are recorded by id in
//! the transaction that applies them, so a second delivery changes nothing.
//!
//! Dunning: a failed payment (or a subscription Stripe reports `past_due`/`unpaid`) starts a
//! grace period ([`Settings::grace_ms`], 7 days by default) with a banner (`GET
//! /api/v1/billing`, and the `Kamiyo-Billing` header on every answer) and an e-mail to the
//! owner; when it ends the tenant is suspended — reads within its plan still work, changes are
//! refused, alerts are paused and counted — until a payment succeeds, which reinstates it at
//! once. Every step is in the tenant's audit log.
//!
//! The decisions are pure functions of the stored row and what Stripe said
//! ([`on_subscription`], [`on_payment`], [`on_grace_end`]); `db` writes them.

pub mod api;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::db::{Actor, BillingOutcome, BillingRow, BillingWrite, Db, DbError, EventMark};
use crate::tenancy::TenantId;
use crate::tiers::{Tier, TierMatrix};
use api::{ApiError, StripeApi, SubState};

/// Epoch-ms clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How billing is set up (`[billing]` in the platform's configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Stripe secret key (`sk_…` or a restricted `rk_…`).
    pub secret_key: String,
    /// Stripe's API base (`None`: Stripe's own; a loopback fake in tests).
    pub api_base: Option<String>,
    /// Webhook endpoint secrets (`whsec_…`): the current one and, while rolling, the previous.
    pub webhook_secrets: Vec<String>,
    /// The Stripe price of each plan sold.
    pub prices: Vec<(Tier, String)>,
    /// Trial offered with a tenant's first Checkout.
    pub trial_days: u32,
    /// Grace after a failed payment before suspension.
    pub grace_ms: i64,
    /// Webhook signature tolerance.
    pub tolerance_secs: i64,
    /// The plan of a tenant without a live subscription.
    pub unpaid_plan: Tier,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts per call (transient failures are retried with the same idempotency key).
    pub attempts: u32,
    /// First retry delay (doubles).
    pub backoff: Duration,
    /// Where Checkout sends the customer back (success, cancel) and the portal returns to.
    pub success_url: String,
    /// Where Checkout sends a customer who gave up.
    pub cancel_url: String,
    /// Where the Customer Portal returns to.
    pub return_url: String,
}

/// Default grace after a failed payment.
pub const DEFAULT_GRACE_MS: i64 = 7 * 86_400_000;
/// Default trial.
pub const DEFAULT_TRIAL_DAYS: u32 = 14;

/// A billing request that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// Not possible in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The payment was declined (402).
    #[error("{0}")]
    Declined(String),
    /// Stripe is unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error("{0}")]
    Db(DbError),
}

impl From<DbError> for BillingError {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

impl From<ApiError> for BillingError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Declined(d) => Self::Declined(d),
            ApiError::Refused(d, s) => {
                Self::Invalid(format!("Stripe refused the request ({s}): {d}"))
            }
            ApiError::Unavailable(d) => Self::Unavailable(d),
        }
    }
}

/// Why a webhook delivery was refused (400; nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefusal {
    /// The signature (missing, malformed, forged or stale).
    #[error("{0}")]
    Signature(#[from] signature::SignatureError),
    /// The body is not a Stripe event this version understands.
    #[error("the body is not a Stripe event: {0}")]
    Malformed(String),
}

/// What a pure decision said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write this.
    Write(Box<BillingWrite>),
    /// What Stripe said is older than what is stored.
    Stale,
    /// Already stored.
    Same,
    /// A different state with the same Stripe time: read the subscription from Stripe.
    Tie,
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

impl Settings {
    /// The plan a price is for.
    pub fn plan_of_price(&self, price: &str) -> Option<Tier> {
        self.prices
            .iter()
            .find(|(_, p)| p == price)
            .map(|(t, _)| *t)
    }

    /// The price a plan is sold at.
    pub fn price_of(&self, plan: Tier) -> Option<&str> {
        self.prices
            .iter()
            .find(|(t, _)| *t == plan)
            .map(|(_, p)| p.as_str())
    }
}

/// When Stripe said what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// An event's `created` (ms): ordered against what is stored.
    Event(i64),
    /// An API answer or read at this time (ms): Stripe's state now, newer than anything
    /// stored before the read (stored as at least one ms past the stored version, so that a
    /// read in the same millisecond as an earlier one still wins).
    Read(i64),
}

/// A subscription state Stripe confirmed — by an event or an API read (`source` names it) —
/// against the stored row, at `now`.
pub fn on_subscription(
    settings: &Settings,
    cur: &BillingRow,
    s: &SubState,
    stamp: Stamp,
    now: i64,
    source: &str,
) -> Verdict {
    let version = match stamp {
        Stamp::Event(t) => t,
        Stamp::Read(t) => t.max(cur.version + 1),
    };
    if version < cur.version {
        return Verdict::Stale;
    }
    // An ended subscription that is not the one the tenant has now (an old one's late news).
    if cur
        .subscription_id
        .as_deref()
        .is_some_and(|id| id != s.subscription_id)
        && !s.is_live()
        && cur
            .status
            .as_deref()
            .is_some_and(|st| matches!(st, "trialing" | "active" | "past_due"))
    {
        return Verdict::Stale;
    }
    let mut row = cur.clone();
    row.customer_id = Some(s.customer_id.clone());
    row.subscription_id = Some(s.subscription_id.clone());
    row.status = Some(s.status.clone());
    row.price_id.clone_from(&s.price_id);
    row.item_id.clone_from(&s.item_id);
    row.period_end = s.period_end;
    row.trial_end = s.trial_end;
    row.cancel_at_period_end = s.cancel_at_period_end;
    row.trial_used |= s.trial_end.is_some() || s.status == "trialing";
    row.version = version;
    let mut audits = Vec::new();
    row.plan = if s.is_live() {
        match s
            .price_id
            .as_deref()
            .and_then(|p| settings.plan_of_price(p))
        {
            Some(t) => t.as_str().to_owned(),
            None => {
                tracing::warn!(price = ?s.price_id, subscription = %s.subscription_id, "a subscription's price is not one of the configured plans; the plan is left as it is");
                cur.plan.clone()
            }
        }
    } else {
        settings.unpaid_plan.as_str().to_owned()
    };
    match s.status.as_str() {
        "past_due" | "unpaid" if cur.billing_state == "ok" => {
            row.billing_state = "grace".into();
            row.grace_until = Some(now + settings.grace_ms);
        }
        "active" | "trialing" | "canceled" | "incomplete_expired" => {
            row.billing_state = "ok".into();
            row.grace_until = None;
        }
        _ => {}
    }
    let mut same = row.clone();
    same.version = cur.version;
    if same == *cur {
        return if version == cur.version {
            Verdict::Same
        } else {
            Verdict::Write(Box::new(BillingWrite { row, audits }))
        };
    }
    if version == cur.version {
        return Verdict::Tie;
    }
    if (
        cur.subscription_id.as_ref(),
        cur.status.as_ref(),
        cur.price_id.as_ref(),
        cur.period_end,
        cur.cancel_at_period_end,
    ) != (
        row.subscription_id.as_ref(),
        row.status.as_ref(),
        row.price_id.as_ref(),
        row.period_end,
        row.cancel_at_period_end,
    ) {
        audits.push((
            "billing.subscription",
            format!(
                "{} {}: {} → {}, price {}, period ends {}{} ({source})",
                s.subscription_id,
                s.customer_id,
                cur.status.as_deref().unwrap_or("none"),
                s.status,
                s.price_id.as_deref().unwrap_or("none"),
                s.period_end.map_or_else(|| "—".into(), day),
                if s.cancel_at_period_end {
                    ", cancels then"
                } else {
                    ""
                },
            ),
        ));
    }
    if row.plan != cur.plan {
        audits.push((
            "billing.plan",
            format!(
                "plan {} → {} (confirmed by Stripe: {source})",
                cur.plan, row.plan
            ),
        ));
    }
    dunning_audits(
        cur,
        &row,
        &mut audits,
        &format!("subscription {}", s.status),
    );
    Verdict::Write(Box::new(BillingWrite { row, audits }))
}

fn dunning_audits(
    cur: &BillingRow,
    row: &BillingRow,
    audits: &mut Vec<(&'static str, String)>,
    why: &str,
) {
    match (cur.billing_state.as_str(), row.billing_state.as_str()) {
        ("ok", "grace") => audits.push((
            "billing.grace",
            format!(
                "payment failed ({why}); grace until {}, then read-only with alerts paused",
                row.grace_until.map_or_else(|| "—".into(), day)
            ),
        )),
        ("grace" | "suspended", "ok") => audits.push((
            "billing.reinstated",
            format!(
                "{why}; the tenant is in good standing again (was {})",
                cur.billing_state
            ),
        )),
        ("grace", "suspended") => audits.push((
            "billing.suspended",
            format!("{why}; read-only, alerts paused until a payment succeeds"),
        )),
        _ => {}
    }
}

/// A payment outcome for the tenant's invoices at Stripe time `at` (ms): `paid` or failed
/// (`detail` names the invoice and attempt).
pub fn on_payment(
    settings: &Settings,
    cur: &BillingRow,
    paid: bool,
    at: i64,
    detail: &str,
) -> Verdict {
    if at < cur.payment_version {
        return Verdict::Stale;
    }
    let mut row = cur.clone();
    row.payment_version = at;
    let mut audits = Vec::new();
    if paid {
        row.billing_state = "ok".into();
        row.grace_until = None;
        dunning_audits(
            cur,
            &row,
            &mut audits,
            &format!("payment received ({detail})"),
        );
    } else if cur.billing_state == "ok" {
        row.billing_state = "grace".into();
        row.grace_until = Some(at + settings.grace_ms);
        dunning_audits(cur, &row, &mut audits, detail);
    } else {
        audits.push((
            "billing.payment_failed",
            format!("{detail} (already {})", cur.billing_state),
        ));
    }
    if row == *cur {
        Verdict::Same
    } else {
        Verdict::Write(Box::new(BillingWrite { row, audits }))
    }
}

/// The grace period's end: suspension when it has passed at `now`.
pub fn on_grace_end(cur: &BillingRow, now: i64) -> Verdict {
    if cur.billing_state != "grace" || cur.grace_until.is_none_or(|g| g > now) {
        return Verdict::Same;
    }
    let mut row = cur.clone();
    row.billing_state = "suspended".into();
    let mut audits = Vec::new();
    dunning_audits(
        cur,
        &row,
        &mut audits,
        "the grace period ended without a payment",
    );
    Verdict::Write(Box::new(BillingWrite { row, audits }))
}

/// Whether a tenant is held read-only at `now` (suspended, or its grace has run out even if
/// the job has not yet written so).
pub fn suspended(billing_state: &str, grace_until: Option<i64>, now: i64) -> bool {
    billing_state == "suspended"
        || (billing_state == "grace" && grace_until.is_some_and(|g| g <= now))
}

/// What is called after a tenant's billing changed.
pub type OnChange = Arc<dyn Fn(&TenantId) + Send + Sync>;

/// Billing: Stripe, the database, mail.
pub struct Billing {
    /// Set-up.
    pub settings: Settings,
    /// Stripe.
    pub api: StripeApi,
    db: Db,
    tiers: TierMatrix,
    clock: Clock,
    mailer: Option<Arc<kamiyo_alerts::channels::Smtp>>,
    on_change: std::sync::RwLock<OnChange>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

fn system(at: i64, what: &str) -> Actor {
    Actor {
        actor: format!("stripe:{what}"),
        ip: "stripe".into(),
        at,
    }
}

impl Billing {
    /// Billing over `db` (the application role) with `settings`.
    pub fn new(
        settings: Settings,
        db: Db,
        tiers: TierMatrix,
        clock: Clock,
        mailer: Option<Arc<kamiyo_alerts::channels::Smtp>>,
    ) -> Result<Self, String> {
        if settings.secret_key.is_empty() {
            return Err("billing.secret_key is empty".into());
        }
        if settings.webhook_secrets.iter().all(String::is_empty) {
            return Err("billing.webhook_secrets is empty: webhooks could not be verified".into());
        }
        let api = StripeApi::new(
            &settings.secret_key,
            settings.api_base.as_deref(),
            settings.timeout,
            settings.attempts,
            settings.backoff,
        )?;
        Ok(Self {
            settings,
            api,
            db,
            tiers,
            clock,
            mailer,
            on_change: std::sync::RwLock::new(Arc::new(|_| {})),
        })
    }

    /// Calls `f` after a tenant's plan or dunning state changed (the service drops the
    /// tenant's cached keys so the change applies to its next request).
    pub fn on_change(&self, f: OnChange) {
        if let Ok(mut g) = self.on_change.write() {
            *g = f;
        }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    async fn mail(&self, tenant: &TenantId, subject: &str, text: &str) {
        let Some(m) = &self.mailer else {
            tracing::info!(%tenant, subject, "no [smtp] configured: billing mail not sent");
            return;
        };
        match self.db.billing_contact(tenant).await {
            Ok(Some(to)) => {
                if let Err(e) = m.send_text(&to, subject, text).await {
                    tracing::warn!(%tenant, error = %e, "billing mail not sent");
                }
            }
            Ok(None) => tracing::warn!(%tenant, "no owner to mail about billing"),
            Err(e) => tracing::warn!(%tenant, error = %e, "billing mail: owner not read"),
        }
    }

    /// Writes a decision and tells the owner about dunning transitions: what was done, and
    /// whether `decide` found a tie ([`Verdict::Tie`]: nothing written, the caller reads the
    /// subscription from Stripe).
    async fn write(
        &self,
        tenant: &TenantId,
        event: Option<&EventMark>,
        who: &Actor,
        decide: impl FnOnce(&BillingRow) -> Verdict + Send,
    ) -> Result<(BillingOutcome, bool), DbError> {
        let tie = std::sync::atomic::AtomicBool::new(false);
        let before = std::sync::Mutex::new(None);
        let out = self
            .db
            .billing_write(tenant, event, who, |cur| {
                if let Ok(mut b) = before.lock() {
                    *b = Some(cur.clone());
                }
                match decide(cur) {
                    Verdict::Write(w) => Some(*w),
                    Verdict::Tie => {
                        tie.store(true, std::sync::atomic::Ordering::Relaxed);
                        None
                    }
                    Verdict::Stale | Verdict::Same => None,
                }
            })
            .await?;
        let before = before.into_inner().ok().flatten();
        if let (BillingOutcome::Written(w), Some(b)) = (&out, &before) {
            if let Ok(f) = self.on_change.read() {
                f(tenant);
            }
            self.notify(tenant, b, &w.row).await;
        }
        Ok((out, tie.into_inner()))
    }

    async fn notify(&self, tenant: &TenantId, before: &BillingRow, after: &BillingRow) {
        let base = self.settings.return_url.as_str();
        match (before.billing_state.as_str(), after.billing_state.as_str()) {
            ("ok", "grace") => {
                let until = after.grace_until.map_or_else(|| "soon".into(), day);
                self.mail(
                    tenant,
                    "kamiyo.ai: your payment failed",
                    &format!("The latest payment for {tenant} failed. Update your payment method by {until} to keep alerts flowing: {base}\nAfter that date the account becomes read-only and alerts are paused until a payment succeeds."),
                )
                .await;
            }
            (_, "suspended") if before.billing_state != "suspended" => {
                self.mail(
                    tenant,
                    "kamiyo.ai: account suspended for non-payment",
                    &format!("{tenant} is now read-only and its alerts are paused (they are counted). Pay the open invoice to reinstate it at once: {base}"),
                )
                .await;
            }
            ("grace" | "suspended", "ok") => {
                self.mail(
                    tenant,
                    "kamiyo.ai: payment received",
                    &format!(
                        "Thank you: {tenant} is in good standing again and alerts are flowing."
                    ),
                )
                .await;
            }
            _ => {}
        }
    }

    /// Applies a subscription state Stripe confirmed. A tie is settled by reading the
    /// subscription from Stripe now.
    async fn apply_subscription(
        &self,
        tenant: &TenantId,
        event: Option<&EventMark>,
        s: &SubState,
        stamp: Stamp,
        source: &str,
    ) -> Result<BillingOutcome, BillingError> {
        let now = self.now();
        let who = system(now, source);
        let (out, tie) = self
            .write(tenant, event, &who, |cur| {
                on_subscription(&self.settings, cur, s, stamp, now, source)
            })
            .await?;
        if !tie {
            return Ok(out);
        }
        let fresh = self.api.subscription(&s.subscription_id).await?;
        let now = self.now();
        let source = format!("{source}; settled by an API read");
        let (out, _) = self
            .write(tenant, None, &system(now, "api"), |cur| {
                on_subscription(&self.settings, cur, &fresh, Stamp::Read(now), now, &source)
            })
            .await?;
        Ok(out)
    }

    // ---- webhooks ----

    /// Handles one delivery to the webhook endpoint: the raw body and its `Stripe-Signature`.
    /// `Err(refusal)`: 400, nothing changed. `Ok(Err(e))`: it could not be processed now
    /// (database or Stripe unavailable): 500 so that Stripe delivers it again. `Ok(Ok(what))`:
    /// 200.
    pub async fn webhook(
        &self,
        body: &[u8],
        header: Option<&str>,
    ) -> Result<Result<String, BillingError>, WebhookRefusal> {
        let now = self.now();
        let t = signature::verify(
            body,
            header,
            &self.settings.webhook_secrets,
            now.div_euclid(1000),
            self.settings.tolerance_secs,
        )?;
        let text =
            std::str::from_utf8(body).map_err(|_| WebhookRefusal::Malformed("not UTF-8".into()))?;
        // The vendor's parser, on a payload already verified: re-checked with the signature's
        // own time (so its fixed 300 s window cannot disagree with ours), typed by event.
        let header = header.unwrap_or_default();
        let event = self
            .settings
            .webhook_secrets
            .iter()
            .find_map(|s| {
                stripe_webhook::Webhook::construct_event_with_timestamp(text, header, s, t).ok()
            })
            .ok_or_else(|| {
                let why = stripe_webhook::Webhook::insecure(text)
                    .err()
                    .map_or_else(|| "unreadable".to_owned(), |e| e.to_string());
                WebhookRefusal::Malformed(why)
            })?;
        let mark = EventMark {
            id: event.id.as_str().to_owned(),
            kind: event.type_.as_str().to_owned(),
            created: event.created.saturating_mul(1000),
        };
        Ok(self.dispatch(&mark, event.data.object).await)
    }

    async fn dispatch(
        &self,
        mark: &EventMark,
        object: stripe_webhook::EventObject,
    ) -> Result<String, BillingError> {
        use stripe_webhook::EventObject as O;
        match self.db.billing_event_seen(&mark.id).await {
            Ok(true) => return Ok("duplicate".into()),
            Ok(false) => {}
            Err(e) => return Err(e.into()),
        }
        let source = format!("{} {}", mark.kind, mark.id);
        let outcome = match object {
            O::CustomerSubscriptionCreated(s)
            | O::CustomerSubscriptionUpdated(s)
            | O::CustomerSubscriptionDeleted(s) => {
                let s = SubState::from_stripe(&s);
                let Some(t) = self.tenant_of(&s.customer_id, mark).await? else {
                    return Ok("unknown customer".into());
                };
                self.apply_subscription(&t, Some(mark), &s, Stamp::Event(mark.created), &source)
                    .await?
            }
            O::CustomerSubscriptionTrialWillEnd(s) => {
                let s = SubState::from_stripe(&s);
                let Some(t) = self.tenant_of(&s.customer_id, mark).await? else {
                    return Ok("unknown customer".into());
                };
                let ends = s.trial_end.map_or_else(|| "soon".into(), day);
                let now = self.now();
                let (out, _) = self
                    .write(&t, Some(mark), &system(now, &source), |cur| {
                        Verdict::Write(Box::new(BillingWrite {
                            row: cur.clone(),
                            audits: vec![(
                                "billing.trial_will_end",
                                format!("the trial of {} ends {ends}", s.subscription_id),
                            )],
                        }))
                    })
                    .await?;
                if matches!(out, BillingOutcome::Written(_)) {
                    self.mail(&t, "kamiyo.ai: your trial ends soon", &format!("The trial of {t} ends {ends}. Nothing to do if a payment method is on file; otherwise add one: {}", self.settings.return_url)).await;
                }
                out
            }
            O::InvoicePaid(inv) | O::InvoicePaymentSucceeded(inv) => {
                self.payment(mark, &inv, true, &source).await?
            }
            O::InvoicePaymentFailed(inv) => self.payment(mark, &inv, false, &source).await?,
            O::CheckoutSessionCompleted(sess) => {
                let (Some(cus), Some(sub)) = (sess.customer.as_ref(), sess.subscription.as_ref())
                else {
                    self.db
                        .billing_event_note(mark, self.now(), "not a subscription checkout")
                        .await?;
                    return Ok("ignored: not a subscription checkout".into());
                };
                let Some(t) = self.tenant_of(cus.id().as_str(), mark).await? else {
                    return Ok("unknown customer".into());
                };
                // The session says which subscription; its state is read from Stripe.
                let s = self.api.subscription(sub.id().as_str()).await?;
                let now = self.now();
                self.apply_subscription(
                    &t,
                    Some(mark),
                    &s,
                    Stamp::Read(now),
                    &format!("{source}; subscription read from Stripe"),
                )
                .await?
            }
            _ => {
                tracing::info!(event = %mark.id, kind = %mark.kind, "Stripe event acknowledged, not handled");
                self.db
                    .billing_event_note(mark, self.now(), "acknowledged")
                    .await?;
                return Ok("acknowledged".into());
            }
        };
        Ok(match outcome {
            BillingOutcome::Duplicate => "duplicate",
            BillingOutcome::Unchanged => "unchanged (older or same state)",
            BillingOutcome::Written(_) => "applied",
        }
        .into())
    }

    async fn tenant_of(
        &self,
        customer: &str,
        mark: &EventMark,
    ) -> Result<Option<TenantId>, BillingError> {
        let t = self.db.billing_tenant(customer).await?;
        if t.is_none() {
            tracing::warn!(event = %mark.id, customer, "Stripe event for a customer no tenant has");
            self.db
                .billing_event_note(mark, self.now(), "unknown customer")
                .await?;
        }
        Ok(t)
    }

    async fn payment(
        &self,
        mark: &EventMark,
        inv: &stripe_shared::Invoice,
        paid: bool,
        source: &str,
    ) -> Result<BillingOutcome, BillingError> {
        let Some(cus) = inv.customer.as_ref() else {
            self.db
                .billing_event_note(mark, self.now(), "invoice without customer")
                .await?;
            return Ok(BillingOutcome::Unchanged);
        };
        let Some(t) = self.tenant_of(cus.id().as_str(), mark).await? else {
            return Ok(BillingOutcome::Unchanged);
        };
        let detail = format!(
            "invoice {} attempt {}, {source}",
            inv.id.as_ref().map_or("?", |i| i.as_str()),
            inv.attempt_count
        );
        let now = self.now();
        let (out, _) = self
            .write(&t, Some(mark), &system(now, source), |cur| {
                on_payment(&self.settings, cur, paid, mark.created, &detail)
            })
            .await?;
        Ok(out)
    }

    // ---- flows (the tenant's requests) ----

    /// The tenant's Stripe customer, created (once: keyed by tenant) when it has none.
    pub async fn ensure_customer(
        &self,
        tenant: &TenantId,
        who: &Actor,
    ) -> Result<String, BillingError> {
        let cur = self.db.billing(tenant).await?;
        if let Some(c) = cur.customer_id {
            return Ok(c);
        }
        let name = self.db.tenant(tenant).await?.name;
        let email = self.db.billing_contact(tenant).await?;
        let id = self
            .api
            .create_customer(tenant.as_str(), &name, email.as_deref())
            .await?;
        let cus = id.clone();
        self.db
            .billing_write(tenant, None, who, move |cur| {
                (cur.customer_id.is_none()).then(|| {
                    let mut row = cur.clone();
                    row.customer_id = Some(cus.clone());
                    BillingWrite {
                        row,
                        audits: vec![("billing.customer", format!("Stripe customer {cus}"))],
                    }
                })
            })
            .await?;
        Ok(self.db.billing(tenant).await?.customer_id.unwrap_or(id))
    }

    fn sold(&self, plan: &str) -> Result<(Tier, &str), BillingError> {
        let t: Tier = plan
            .parse()
            .map_err(|e: crate::tiers::TierError| BillingError::Invalid(e.to_string()))?;
        let p = self.settings.price_of(t).ok_or_else(|| {
            BillingError::Invalid(format!("plan {t} is not sold through checkout"))
        })?;
        Ok((t, p))
    }

    /// A Checkout Session for `plan` (with the trial if the tenant never had one). Nothing
    /// changes until Stripe confirms the subscription.
    pub async fn checkout(
        &self,
        tenant: &TenantId,
        plan: &str,
        who: &Actor,
        nonce: &str,
    ) -> Result<serde_json::Value, BillingError> {
        let (tier, price) = self.sold(plan)?;
        let cus = self.ensure_customer(tenant, who).await?;
        let cur = self.db.billing(tenant).await?;
        if cur
            .status
            .as_deref()
            .is_some_and(|s| matches!(s, "trialing" | "active" | "past_due"))
        {
            return Err(BillingError::Conflict(
                "the tenant has a subscription; change its plan with POST /api/v1/billing/plan"
                    .into(),
            ));
        }
        let trial =
            (!cur.trial_used && self.settings.trial_days > 0).then_some(self.settings.trial_days);
        let (id, url) = self
            .api
            .checkout(
                &format!("checkout-{tenant}-{nonce}"),
                &cus,
                tenant.as_str(),
                price,
                trial,
                &self.settings.success_url,
                &self.settings.cancel_url,
            )
            .await?;
        let summary = format!(
            "checkout {id} for {tier}{}",
            trial.map_or_else(String::new, |d| format!(" with a {d}-day trial"))
        );
        self.db
            .billing_write(tenant, None, who, |cur| {
                Some(BillingWrite {
                    row: cur.clone(),
                    audits: vec![("billing.checkout", summary)],
                })
            })
            .await?;
        Ok(json!({"id": id, "url": url, "plan": tier, "trial_days": trial}))
    }

    /// A Customer Portal link.
    pub async fn portal(
        &self,
        tenant: &TenantId,
        who: &Actor,
        nonce: &str,
    ) -> Result<serde_json::Value, BillingError> {
        let cus = self.ensure_customer(tenant, who).await?;
        let url = self
            .api
            .portal(
                &format!("portal-{tenant}-{nonce}"),
                &cus,
                &self.settings.return_url,
            )
            .await?;
        Ok(json!({"url": url}))
    }

    async fn live(&self, tenant: &TenantId) -> Result<(BillingRow, SubState), BillingError> {
        let cur = self.db.billing(tenant).await?;
        let Some(id) = cur.subscription_id.clone() else {
            return Err(BillingError::Conflict(
                "the tenant has no subscription; start one through checkout".into(),
            ));
        };
        // The change is made against Stripe's state now, not the stored copy.
        let s = self.api.subscription(&id).await?;
        if !s.is_live() {
            return Err(BillingError::Conflict(format!(
                "the subscription is {}; start a new one through checkout",
                s.status
            )));
        }
        Ok((cur, s))
    }

    async fn confirmed(
        &self,
        tenant: &TenantId,
        s: &SubState,
        what: &str,
    ) -> Result<BillingRow, BillingError> {
        let now = self.now();
        self.apply_subscription(
            tenant,
            None,
            s,
            Stamp::Read(now),
            &format!("{what}: Stripe's answer"),
        )
        .await?;
        Ok(self.db.billing(tenant).await?)
    }

    /// Moves the subscription to `plan`: an upgrade is prorated and charged at once, a
    /// downgrade credits the unused time on the next invoice; both take effect when Stripe
    /// answers (a declined card changes nothing).
    pub async fn change_plan(
        &self,
        tenant: &TenantId,
        plan: &str,
        nonce: &str,
    ) -> Result<BillingRow, BillingError> {
        let (tier, price) = self.sold(plan)?;
        let (_, s) = self.live(tenant).await?;
        if s.price_id.as_deref() == Some(price) {
            return Err(BillingError::Conflict(format!(
                "the subscription is on {tier} already"
            )));
        }
        let from = s
            .price_id
            .as_deref()
            .and_then(|p| self.settings.plan_of_price(p));
        let price_of =
            |t: Option<Tier>| t.map_or(0, |t| self.tiers.config(t).price_cents_per_month);
        let upgrade = price_of(Some(tier)) > price_of(from);
        let s = self
            .api
            .change_price(
                &format!("plan-{tenant}-{}-{price}-{nonce}", s.subscription_id),
                &s,
                price,
                upgrade,
            )
            .await?;
        self.confirmed(tenant, &s, if upgrade { "upgrade" } else { "downgrade" })
            .await
    }

    /// Cancels now (the plan ends at once) or at the period's end.
    pub async fn cancel(
        &self,
        tenant: &TenantId,
        at_period_end: bool,
        nonce: &str,
    ) -> Result<BillingRow, BillingError> {
        let (_, s) = self.live(tenant).await?;
        let key = format!("cancel-{}-{at_period_end}-{nonce}", s.subscription_id);
        let s = if at_period_end {
            self.api
                .cancel_at_period_end(&key, &s.subscription_id, true)
                .await?
        } else {
            self.api.cancel_now(&key, &s.subscription_id).await?
        };
        self.confirmed(
            tenant,
            &s,
            if at_period_end {
                "cancel at period end"
            } else {
                "cancel now"
            },
        )
        .await
    }

    /// Withdraws a cancellation set for the period's end (before the period ends).
    pub async fn reactivate(
        &self,
        tenant: &TenantId,
        nonce: &str,
    ) -> Result<BillingRow, BillingError> {
        let (_, s) = self.live(tenant).await?;
        if !s.cancel_at_period_end {
            return Err(BillingError::Conflict(
                "the subscription is not set to cancel".into(),
            ));
        }
        let s = self
            .api
            .cancel_at_period_end(
                &format!("reactivate-{}-{nonce}", s.subscription_id),
                &s.subscription_id,
                false,
            )
            .await?;
        self.confirmed(tenant, &s, "reactivate").await
    }

    /// What `GET /api/v1/billing` shows: plan, subscription, dunning and the banner.
    pub async fn status(&self, tenant: &TenantId) -> Result<serde_json::Value, BillingError> {
        let r = self.db.billing(tenant).await?;
        Ok(status_json(&r, self.now(), self.settings.trial_days))
    }

    // ---- the job ----

    /// Suspends the tenants whose grace has ended; how many.
    pub async fn suspend_due(&self) -> Result<usize, BillingError> {
        let now = self.now();
        let mut n = 0;
        for t in self.db.billing_due(now, false).await? {
            let (out, _) = self
                .write(&t, None, &system(now, "dunning"), |cur| {
                    on_grace_end(cur, now)
                })
                .await?;
            n += usize::from(matches!(out, BillingOutcome::Written(_)));
        }
        Ok(n)
    }

    /// Compares every active tenant's stored subscription with Stripe's and repairs drift (a
    /// webhook lost, say); creates missing customers. Each repair is logged and audited;
    /// returns (tenant, what was repaired).
    pub async fn reconcile(&self) -> Result<Vec<(TenantId, String)>, BillingError> {
        let mut repairs = Vec::new();
        for t in self.db.billing_due(self.now(), true).await? {
            let now = self.now();
            let who = system(now, "reconciliation");
            let cur = self.db.billing(&t).await?;
            let Some(cus) = cur.customer_id.clone() else {
                let c = self.ensure_customer(&t, &who).await?;
                repairs.push((t.clone(), format!("created missing Stripe customer {c}")));
                continue;
            };
            let subs = self.api.subscriptions_of(&cus).await?;
            let chosen = subs.iter().find(|s| s.is_live()).or_else(|| {
                subs.iter()
                    .find(|s| Some(&s.subscription_id) == cur.subscription_id.as_ref())
            });
            let Some(s) = chosen else { continue };
            let now = self.now();
            let (out, _) = self
                .write(&t, None, &who, |cur| {
                    match on_subscription(
                        &self.settings,
                        cur,
                        s,
                        Stamp::Read(now),
                        now,
                        "reconciliation: API read",
                    ) {
                        Verdict::Write(mut w) if !w.audits.is_empty() => {
                            for a in &mut w.audits {
                                a.1 = format!("repaired drift: {}", a.1);
                            }
                            Verdict::Write(w)
                        }
                        Verdict::Write(w) => Verdict::Write(w),
                        _ => Verdict::Same,
                    }
                })
                .await?;
            if let BillingOutcome::Written(w) = out
                && !w.audits.is_empty()
            {
                let what = w
                    .audits
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(tenant = %t, repair = %what, "billing drift repaired from Stripe");
                repairs.push((t, what));
            }
        }
        Ok(repairs)
    }
}

/// The billing view of a stored row at `now`.
pub fn status_json(r: &BillingRow, now: i64, trial_days: u32) -> serde_json::Value {
    json!({
        "plan": r.plan,
        "billing_state": if suspended(&r.billing_state, r.grace_until, now) { "suspended" } else { r.billing_state.as_str() },
        "grace_until": r.grace_until,
        "banner": banner(&r.billing_state, r.grace_until, now),
        "customer": r.customer_id,
        "subscription": r.subscription_id.as_ref().map(|id| json!({
            "id": id,
            "status": r.status,
            "price": r.price_id,
            "current_period_end": r.period_end,
            "trial_end": r.trial_end,
            "cancel_at_period_end": r.cancel_at_period_end,
        })),
        "trial_available_days": if r.trial_used { 0 } else { trial_days },
    })
}

/// The in-app banner for a dunning state, if any.
pub fn banner(billing_state: &str, grace_until: Option<i64>, now: i64) -> Option<String> {
    if suspended(billing_state, grace_until, now) {
        Some("Suspended for non-payment: the account is read-only and alerts are paused. Pay the open invoice (POST /api/v1/billing/portal) to reinstate it at once.".into())
    } else if billing_state == "grace" {
        Some(format!(
            "Your last payment failed. Update the payment method before {} to avoid suspension (POST /api/v1/billing/portal).",
            grace_until.map_or_else(|| "the grace period ends".into(), day)
        ))
    } else {
        None
    }
}
