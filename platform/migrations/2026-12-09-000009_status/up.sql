-- Availability: what each platform process says of itself (heartbeats), what the platform's
-- own probes found each minute (the status page's history and the SLA reports), and delivery
-- claims that a dead worker cannot hold for a whole lease.
SET LOCAL search_path TO platform, public;

-- One row per process and component, rewritten every few seconds: `api` and `workers` by the
-- serving replicas, `ingest:<protocol>` by the replica leading that protocol's ingest (its
-- feeds' states in `detail`). System rows: no tenant, no row-level security.
CREATE TABLE heartbeats (
    component TEXT NOT NULL,
    instance TEXT NOT NULL,
    at BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    detail JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (component, instance)
);

-- One probe result per component and minute (the first replica to probe a minute records
-- it): `up`, `degraded` (working, with a part impaired) or `down`.
CREATE TABLE probes (
    component TEXT NOT NULL,
    minute BIGINT NOT NULL CHECK (minute % 60000 = 0),
    state TEXT NOT NULL CHECK (state IN ('up', 'degraded', 'down')),
    latency_ms INT,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (component, minute)
);

-- The same per UTC day, kept with each probe: the 90-day history reads 90 rows a component.
CREATE TABLE probe_days (
    component TEXT NOT NULL,
    day BIGINT NOT NULL CHECK (day % 86400000 = 0),
    probed INT NOT NULL DEFAULT 0,
    down INT NOT NULL DEFAULT 0,
    degraded INT NOT NULL DEFAULT 0,
    PRIMARY KEY (component, day)
);

-- A claimed outbox row names its worker: when that worker's heartbeat stops, another takes the
-- row at once instead of waiting out the lease.
ALTER TABLE tenant_outbox ADD COLUMN claimed_by TEXT;

-- Tenants with rows due: due by time, or claimed by a worker that has not beaten since
-- `alive_since`.
CREATE FUNCTION platform.due_tenants(now_ms BIGINT, max_tenants INT, alive_since BIGINT)
RETURNS TABLE (tenant_id TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT DISTINCT o.tenant_id FROM platform.tenant_outbox o
    WHERE o.status IN ('pending', 'digest')
      AND (o.next_attempt_ms <= now_ms
           OR (o.claimed_by IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM platform.heartbeats h
                WHERE h.component = 'workers' AND h.instance = o.claimed_by AND h.at >= alive_since)))
    ORDER BY o.tenant_id
    LIMIT max_tenants
$$;
REVOKE ALL ON FUNCTION platform.due_tenants(BIGINT, INT, BIGINT) FROM PUBLIC;

-- The alert backlog for the status page (no tenant named): rows due now and the oldest due
-- time among them.
CREATE FUNCTION platform.delivery_backlog(now_ms BIGINT)
RETURNS TABLE (due BIGINT, oldest_due_ms BIGINT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT count(*), min(o.next_attempt_ms) FROM platform.tenant_outbox o
    WHERE o.status = 'pending' AND o.next_attempt_ms <= now_ms
$$;
REVOKE ALL ON FUNCTION platform.delivery_backlog(BIGINT) FROM PUBLIC;
