-- Tenant-owned state of the kamiyo.ai platform (PostgreSQL only). Every table carries
-- tenant_id and is under row-level security, forced even for the table owner: a transaction
-- sees and writes only the rows of the tenant named by `app.tenant_id`, which the platform
-- sets with set_config(..., true) (transaction-local) in its tenant-scoped store. With no
-- tenant set, current_setting(..., true) is NULL and nothing matches: forgetting it returns
-- nothing rather than everything. The application role is granted privileges by the
-- platform after the migrations (`db::grant_app_role`); staff work through the owner role
-- (the migrator), whose policy `staff` is audited by the admin commands.

-- The platform's tables live in their own schema: the shared facts (the open core's store)
-- are in `public` of the same database, with names of their own (api_keys, audit_log …).
CREATE SCHEMA platform;
SET LOCAL search_path TO platform, public;

CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{2,31}$'),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    plan TEXT NOT NULL CHECK (plan IN ('open_source', 'cloud_basic', 'cloud_pro', 'cloud_enterprise')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'analyst', 'viewer')),
    created_at BIGINT NOT NULL,
    disabled_at BIGINT,
    PRIMARY KEY (tenant_id, user_id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE api_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'analyst', 'viewer')),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    -- Staff impersonation keys expire; tenants' own keys do not.
    expires_at BIGINT,
    PRIMARY KEY (tenant_id, key_id)
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (tenant_id, hash);

CREATE TABLE subscriptions (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, protocol)
);

CREATE TABLE thresholds (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    detector TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL CHECK (value = value AND value NOT IN ('Infinity', '-Infinity')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, detector, name)
);

CREATE TABLE watched_addresses (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    address TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, address)
);

CREATE TABLE alert_channels (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT,
    min_severity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel_id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE usage_daily (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    day DATE NOT NULL,
    api_calls BIGINT NOT NULL DEFAULT 0,
    alerts BIGINT NOT NULL DEFAULT 0,
    alerts_held BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE audit_log (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    seq BIGSERIAL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    summary TEXT NOT NULL,
    ip TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_log_time ON audit_log (tenant_id, at);

-- Puts a platform table under the tenant policy, forced even for its owner; the owner (the
-- migrator, used by staff commands) keeps a `staff` policy that sees every tenant.
CREATE FUNCTION platform.isolate(t TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE platform.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE platform.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
        'CREATE POLICY tenant_rows ON platform.%I USING (tenant_id = current_setting(''app.tenant_id'', true)) '
        'WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
    EXECUTE format('CREATE POLICY staff ON platform.%I TO CURRENT_USER USING (true) WITH CHECK (true)', t);
END $$;
REVOKE ALL ON FUNCTION platform.isolate(TEXT) FROM PUBLIC;

SELECT platform.isolate(t) FROM unnest(ARRAY['tenants', 'users', 'api_keys', 'subscriptions',
    'thresholds', 'watched_addresses', 'alert_channels', 'usage_daily', 'audit_log']) AS t;
