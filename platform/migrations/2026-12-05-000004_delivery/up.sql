-- Delivery of tenants' alerts: what happened to each row, and the narrow function the
-- delivery workers use to learn which tenants have rows due (ids only).
SET LOCAL search_path TO platform, public;

ALTER TABLE tenant_outbox ADD COLUMN last_error TEXT;
ALTER TABLE tenant_outbox ADD COLUMN delivered_at BIGINT;

CREATE FUNCTION platform.due_tenants(now_ms BIGINT, max_tenants INT)
RETURNS TABLE (tenant_id TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT DISTINCT o.tenant_id FROM platform.tenant_outbox o
    WHERE o.status IN ('pending', 'digest') AND o.next_attempt_ms <= now_ms
    ORDER BY o.tenant_id
    LIMIT max_tenants
$$;
REVOKE ALL ON FUNCTION platform.due_tenants(BIGINT, INT) FROM PUBLIC;

-- The tenant a transaction named: every tenant query also filters on it in code, so isolation
-- does not rest on the policies alone.
CREATE FUNCTION platform.me() RETURNS TEXT
LANGUAGE sql STABLE AS $$ SELECT current_setting('app.tenant_id', true) $$;
