-- Sign-in: sessions (cookie secrets and their CSRF tokens stored as SHA-256 only), one-time
-- tokens for address verification and password reset (hashed, expiring, used once), and the
-- time a user's address was verified. Under the same forced row-level security.
SET LOCAL search_path TO platform, public;

ALTER TABLE users ADD COLUMN email_verified_at BIGINT;

CREATE TABLE sessions (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL,
    csrf_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (tenant_id, session_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);

CREATE TABLE user_tokens (
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);

SELECT platform.isolate('sessions'), platform.isolate('user_tokens');
