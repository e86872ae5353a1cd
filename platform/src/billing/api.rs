//! The Stripe API calls billing makes, through async-stripe's typed requests. Every call that
//! changes something carries an idempotency key chosen by the caller for the logical
//! operation, and is retried on what Stripe documents as transient (connection failures,
//! timeouts, 409/429/5xx, or `Stripe-Should-Retry: true`) with the same key, so a retried
//! create never creates twice. async-stripe's own retry strategies are not used: without its
//! `uuid` feature they send no idempotency key at all, and with it the key is random per call
//! rather than per operation.

use std::time::Duration;

use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription::{
    CancelSubscription, ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
    UpdateSubscription, UpdateSubscriptionItems, UpdateSubscriptionPaymentBehavior,
    UpdateSubscriptionProrationBehavior,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::CreateCustomer;
use stripe_shared::{CheckoutSessionMode, Subscription};

/// A subscription as billing keeps it (times in epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubState {
    /// `sub_…`.
    pub subscription_id: String,
    /// `cus_…`.
    pub customer_id: String,
    /// Stripe's status (`trialing`, `active`, `past_due`, `unpaid`, `canceled`, …).
    pub status: String,
    /// The first item's price.
    pub price_id: Option<String>,
    /// The first item (price changes replace its price).
    pub item_id: Option<String>,
    /// When the current period ends.
    pub period_end: Option<i64>,
    /// When the trial ends (or ended).
    pub trial_end: Option<i64>,
    /// Cancels when the period ends.
    pub cancel_at_period_end: bool,
    /// When Stripe created it.
    pub created: i64,
}

impl SubState {
    /// From Stripe's object.
    pub fn from_stripe(s: &Subscription) -> Self {
        let item = s.items.data.first();
        Self {
            subscription_id: s.id.as_str().to_owned(),
            customer_id: s.customer.id().as_str().to_owned(),
            status: s.status.as_str().to_owned(),
            price_id: item.map(|i| i.price.id.as_str().to_owned()),
            item_id: item.map(|i| i.id.as_str().to_owned()),
            period_end: item.map(|i| i.current_period_end.saturating_mul(1000)),
            trial_end: s.trial_end.map(|t| t.saturating_mul(1000)),
            cancel_at_period_end: s.cancel_at_period_end,
            created: s.created.saturating_mul(1000),
        }
    }

    /// Trialing, active or in arrears: the plan still applies.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "trialing" | "active" | "past_due")
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The card was declined or the payment needs the customer (402).
    #[error("payment declined: {0}")]
    Declined(String),
    /// Stripe refused the request (4xx other than 402, not retryable).
    #[error("Stripe refused the request ({1}): {0}")]
    Refused(String, u16),
    /// Stripe could not be reached or kept failing (after the retries).
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

/// The client and its retry policy.
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

fn retryable(e: &StripeError) -> bool {
    match e {
        StripeError::Stripe(_, status) => matches!(status, 409 | 429 | 500..=599),
        StripeError::ClientError(_) | StripeError::Timeout => true,
        StripeError::JSONDeserialize(_) | StripeError::ConfigError(_) => false,
    }
}

fn classify(e: StripeError) -> ApiError {
    match e {
        StripeError::Stripe(err, 402) => ApiError::Declined(
            err.message
                .clone()
                .or_else(|| err.decline_code.clone())
                .unwrap_or_else(|| "card declined".into()),
        ),
        StripeError::Stripe(err, status)
            if (400..500).contains(&status) && status != 409 && status != 429 =>
        {
            ApiError::Refused(err.message.clone().unwrap_or_default(), status)
        }
        other => ApiError::Unavailable(other.to_string()),
    }
}

impl StripeApi {
    /// A client for `secret_key`, talking to `api_base` (Stripe's own when `None`; a loopback
    /// fake in tests), each attempt bounded by `timeout`, at most `attempts` attempts with
    /// exponential backoff from `backoff`.
    pub fn new(
        secret_key: &str,
        api_base: Option<&str>,
        timeout: Duration,
        attempts: u32,
        backoff: Duration,
    ) -> Result<Self, String> {
        let mut b = stripe::ClientBuilder::new(secret_key).timeout(timeout);
        if let Some(url) = api_base {
            // async-stripe joins `v1/…` to the base: it must end with a slash.
            let url = if url.ends_with('/') {
                url.to_owned()
            } else {
                format!("{url}/")
            };
            b = b.url(url);
        }
        Ok(Self {
            client: b.build().map_err(|e| e.to_string())?,
            attempts: attempts.max(1),
            backoff,
        })
    }

    /// Sends `req`, retried on transient failures with the same idempotency key (`key`, for
    /// writes; reads need none).
    async fn send<R>(&self, req: &R, key: Option<&str>) -> Result<R::Output, ApiError>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let strategy = match key {
            Some(k) => RequestStrategy::Idempotent(
                IdempotencyKey::new(k).map_err(|e| ApiError::Refused(e.to_string(), 0))?,
            ),
            None => RequestStrategy::Once,
        };
        let mut wait = self.backoff;
        let mut attempt = 1;
        loop {
            match req
                .customize()
                .request_strategy(strategy.clone())
                .send(&self.client)
                .await
            {
                Ok(out) => return Ok(out),
                Err(e) if retryable(&e) && attempt < self.attempts => {
                    tracing::warn!(attempt, error = %e, "Stripe call failed; retrying with the same idempotency key");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => return Err(classify(e)),
            }
        }
    }

    /// Creates the tenant's customer (the key makes a retried sign-up create one customer).
    pub async fn create_customer(
        &self,
        tenant: &str,
        name: &str,
        email: Option<&str>,
    ) -> Result<String, ApiError> {
        let mut req = CreateCustomer::new()
            .name(name)
            .metadata(std::collections::HashMap::from([(
                "tenant".to_owned(),
                tenant.to_owned(),
            )]));
        if let Some(e) = email {
            req = req.email(e);
        }
        let c = self.send(&req, Some(&format!("customer-{tenant}"))).await?;
        Ok(c.id.as_str().to_owned())
    }

    /// A Checkout Session for `price` (subscription mode), with a trial of `trial_days` when
    /// given; the session's id and the page to send the customer to.
    #[allow(clippy::too_many_arguments, reason = "one request's parameters")]
    pub async fn checkout(
        &self,
        key: &str,
        customer: &str,
        tenant: &str,
        price: &str,
        trial_days: Option<u32>,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<(String, String), ApiError> {
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_owned());
        item.quantity = Some(1);
        let mut sub = CreateCheckoutSessionSubscriptionData::new();
        sub.trial_period_days = trial_days;
        sub.metadata = Some(std::collections::HashMap::from([(
            "tenant".to_owned(),
            tenant.to_owned(),
        )]));
        let req = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(customer)
            .client_reference_id(tenant)
            .line_items(vec![item])
            .subscription_data(sub)
            .success_url(success_url)
            .cancel_url(cancel_url);
        let s = self.send(&req, Some(key)).await?;
        let url = s
            .url
            .ok_or_else(|| ApiError::Unavailable("the Checkout Session has no url".into()))?;
        Ok((s.id.as_str().to_owned(), url))
    }

    /// A Customer Portal session's page.
    pub async fn portal(
        &self,
        key: &str,
        customer: &str,
        return_url: &str,
    ) -> Result<String, ApiError> {
        let req = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url);
        Ok(self.send(&req, Some(key)).await?.url)
    }

    /// One subscription as Stripe has it now.
    pub async fn subscription(&self, id: &str) -> Result<SubState, ApiError> {
        let s = self.send(&RetrieveSubscription::new(id), None).await?;
        Ok(SubState::from_stripe(&s))
    }

    /// Every subscription of a customer (all statuses), newest first.
    pub async fn subscriptions_of(&self, customer: &str) -> Result<Vec<SubState>, ApiError> {
        let req = ListSubscription::new()
            .customer(customer)
            .status(ListSubscriptionStatus::All)
            .limit(100);
        let list = self.send(&req, None).await?;
        let mut out: Vec<SubState> = list.data.iter().map(SubState::from_stripe).collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(out)
    }

    /// Moves the subscription's item to `price`. An upgrade is invoiced and charged at once
    /// (`always_invoice`, and `error_if_incomplete`: a declined card leaves the subscription
    /// as it was); a downgrade credits the unused time on the next invoice
    /// (`create_prorations`). Both take effect immediately in Stripe.
    pub async fn change_price(
        &self,
        key: &str,
        sub: &SubState,
        price: &str,
        upgrade: bool,
    ) -> Result<SubState, ApiError> {
        let mut item = UpdateSubscriptionItems::new();
        item.id = sub.item_id.clone();
        item.price = Some(price.to_owned());
        let req = UpdateSubscription::new(sub.subscription_id.as_str())
            .items(vec![item])
            .proration_behavior(if upgrade {
                UpdateSubscriptionProrationBehavior::AlwaysInvoice
            } else {
                UpdateSubscriptionProrationBehavior::CreateProrations
            })
            .payment_behavior(UpdateSubscriptionPaymentBehavior::ErrorIfIncomplete);
        Ok(SubState::from_stripe(&self.send(&req, Some(key)).await?))
    }

    /// Sets or clears cancellation at the period's end.
    pub async fn cancel_at_period_end(
        &self,
        key: &str,
        id: &str,
        cancel: bool,
    ) -> Result<SubState, ApiError> {
        let req = UpdateSubscription::new(id).cancel_at_period_end(cancel);
        Ok(SubState::from_stripe(&self.send(&req, Some(key)).await?))
    }

    /// Cancels at once (no proration refund; Stripe's default).
    pub async fn cancel_now(&self, key: &str, id: &str) -> Result<SubState, ApiError> {
        Ok(SubState::from_stripe(
            &self.send(&CancelSubscription::new(id), Some(key)).await?,
        ))
    }
}
