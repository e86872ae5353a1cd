DROP FUNCTION IF EXISTS platform.delivery_backlog(BIGINT);
DROP FUNCTION IF EXISTS platform.due_tenants(BIGINT, INT, BIGINT);
ALTER TABLE platform.tenant_outbox DROP COLUMN IF EXISTS claimed_by;
DROP TABLE IF EXISTS platform.probe_days;
DROP TABLE IF EXISTS platform.probes;
DROP TABLE IF EXISTS platform.heartbeats;
