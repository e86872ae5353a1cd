-- Per-tenant alerting: each tenant's position in the shared event stream, its outbox, and the
-- router's own position. The tenant tables are under the same forced row-level security as
-- the rest; the router learns which tenants follow a protocol through one narrow function
-- (tenant ids and plans only) instead of reading tenants across the policy.
SET LOCAL search_path TO platform, public;

CREATE TABLE fanout_cursors (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    seq BIGINT NOT NULL
);

CREATE TABLE tenant_outbox (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    outbox_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    incident_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'held', 'digest')),
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, outbox_id)
);
CREATE INDEX tenant_outbox_due ON tenant_outbox (tenant_id, status, next_attempt_ms);

-- The router's position (a system row, no tenant).
CREATE TABLE fanout_state (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

SELECT platform.isolate('fanout_cursors'), platform.isolate('tenant_outbox');

-- Active tenants following `p`, with their plans: what the router may know across tenants.
CREATE FUNCTION platform.subscribers(p TEXT)
RETURNS TABLE (tenant_id TEXT, plan TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT s.tenant_id, t.plan FROM platform.subscriptions s
    JOIN platform.tenants t USING (tenant_id)
    WHERE s.protocol = p AND t.status = 'active'
    ORDER BY s.tenant_id
$$;
REVOKE ALL ON FUNCTION platform.subscribers(TEXT) FROM PUBLIC;
