-- Billing with Stripe. Stripe is the authority on subscriptions; this is the platform's copy,
-- changed only by what Stripe confirms (a verified webhook or an API read), never by a
-- browser redirect. The plan enforced is still `tenants.plan`; billing writes it.
SET LOCAL search_path TO platform, public;

-- Dunning: 'ok'; 'grace' after a failed payment until grace_until (banner, e-mail); then
-- 'suspended' (read-only, alerts paused and counted) until a payment succeeds.
ALTER TABLE tenants ADD COLUMN billing_state TEXT NOT NULL DEFAULT 'ok'
    CHECK (billing_state IN ('ok', 'grace', 'suspended'));
ALTER TABLE tenants ADD COLUMN grace_until BIGINT;

-- The tenant's Stripe customer and subscription as last confirmed by Stripe. `version` is
-- the Stripe time (epoch ms) of the state stored: an event's `created`, or the moment of an
-- API read; an older state never overwrites a newer one.
CREATE TABLE billing_accounts (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL UNIQUE,
    subscription_id TEXT,
    status TEXT,
    price_id TEXT,
    item_id TEXT,
    plan TEXT,
    period_end BIGINT,
    trial_end BIGINT,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT false,
    trial_used BOOLEAN NOT NULL DEFAULT false,
    version BIGINT NOT NULL DEFAULT 0,
    -- The Stripe time of the last payment outcome applied (invoice paid / failed).
    payment_version BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
SELECT platform.isolate('billing_accounts');

-- Alerts not delivered while the tenant was suspended for non-payment.
ALTER TABLE usage_daily ADD COLUMN alerts_paused BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenant_outbox DROP CONSTRAINT tenant_outbox_status_check;
ALTER TABLE tenant_outbox ADD CONSTRAINT tenant_outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'held', 'digest', 'paused'));

-- Stripe events received (idempotency by event id). A system table: Stripe's ids, the
-- event's type and time and what was done; the tenant it concerned, when known.
CREATE TABLE billing_events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    tenant_id TEXT,
    received_at BIGINT NOT NULL,
    outcome TEXT NOT NULL
);

-- The tenant of a Stripe customer (webhooks arrive with no tenant; the rest of their
-- handling runs scoped to the tenant this returns).
CREATE FUNCTION platform.billing_tenant(customer TEXT) RETURNS TEXT
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT tenant_id FROM platform.billing_accounts WHERE customer_id = customer
$$;
REVOKE ALL ON FUNCTION platform.billing_tenant(TEXT) FROM PUBLIC;

-- Tenants the billing job must look at: those whose grace ended at `now_ms` (to suspend),
-- or every active tenant (to reconcile with Stripe, when `all_tenants`). Tenant ids only.
CREATE FUNCTION platform.billing_due(now_ms BIGINT, all_tenants BOOLEAN)
RETURNS TABLE (tenant_id TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT t.tenant_id FROM platform.tenants t
    WHERE (t.billing_state = 'grace' AND t.grace_until <= now_ms)
       OR (all_tenants AND t.status = 'active')
    ORDER BY t.tenant_id
$$;
REVOKE ALL ON FUNCTION platform.billing_due(BIGINT, BOOLEAN) FROM PUBLIC;
