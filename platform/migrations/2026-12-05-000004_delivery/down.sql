DROP FUNCTION IF EXISTS platform.me();
DROP FUNCTION IF EXISTS platform.due_tenants(BIGINT, INT);
ALTER TABLE platform.tenant_outbox DROP COLUMN IF EXISTS delivered_at;
ALTER TABLE platform.tenant_outbox DROP COLUMN IF EXISTS last_error;
