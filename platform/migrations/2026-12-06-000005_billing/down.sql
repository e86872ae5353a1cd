DROP FUNCTION IF EXISTS platform.billing_due(BIGINT, BOOLEAN);
DROP FUNCTION IF EXISTS platform.billing_tenant(TEXT);
DROP TABLE IF EXISTS platform.billing_events;
DROP TABLE IF EXISTS platform.billing_accounts;
ALTER TABLE platform.tenant_outbox DROP CONSTRAINT tenant_outbox_status_check;
ALTER TABLE platform.tenant_outbox ADD CONSTRAINT tenant_outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'held', 'digest'));
ALTER TABLE platform.usage_daily DROP COLUMN IF EXISTS alerts_paused;
ALTER TABLE platform.tenants DROP COLUMN IF EXISTS grace_until;
ALTER TABLE platform.tenants DROP COLUMN IF EXISTS billing_state;
