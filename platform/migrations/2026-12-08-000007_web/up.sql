-- The web: a tenant's own handling of the shared incidents it sees (acknowledge, mute, resolve,
-- reopen — appended, the newest is the state), its branding (white label, looked up by the
-- Host of a request before anyone signs in), OpenID Connect single sign-on per tenant and the
-- sign-ins in flight (state, PKCE verifier and nonce, used once). Under the same forced
-- row-level security as every tenant table.
SET LOCAL search_path TO platform, public;

CREATE TABLE incident_actions (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    incident_id TEXT NOT NULL,
    seq BIGSERIAL,
    action TEXT NOT NULL CHECK (action IN ('acknowledge', 'mute', 'resolve', 'reopen')),
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, seq)
);

CREATE TABLE branding (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    logo TEXT,
    primary_colour TEXT NOT NULL,
    accent_colour TEXT NOT NULL,
    domain TEXT UNIQUE,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sso_settings (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    role_claim TEXT NOT NULL,
    role_map JSONB NOT NULL,
    default_role TEXT CHECK (default_role IN ('admin', 'analyst', 'viewer')),
    enforced BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sso_logins (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    state_hash TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (tenant_id, state_hash)
);

SELECT platform.isolate('incident_actions'), platform.isolate('branding'),
    platform.isolate('sso_settings'), platform.isolate('sso_logins');

-- The brand of a custom domain (requests arrive before any tenant is known). Public facts
-- only: name, logo, colours.
CREATE FUNCTION platform.brand_for_host(host TEXT)
RETURNS TABLE (tenant_id TEXT, name TEXT, logo TEXT, primary_colour TEXT, accent_colour TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT b.tenant_id, b.name, b.logo, b.primary_colour, b.accent_colour FROM platform.branding b
    WHERE b.domain = lower(host)
$$;
REVOKE ALL ON FUNCTION platform.brand_for_host(TEXT) FROM PUBLIC;
