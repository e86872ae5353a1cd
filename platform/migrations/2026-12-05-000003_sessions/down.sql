DROP TABLE IF EXISTS platform.user_tokens, platform.sessions;
ALTER TABLE platform.users DROP COLUMN IF EXISTS email_verified_at;
