-- Which consumer of the event sequence enqueued each outbox row (its routing cursor's name).
-- Several consumers share one outbox (the self-hosted router, a per-tenant router …); each
-- delivers only its own rows, so one never marks another's channel "not configured".
-- Rows written before this migration belong to the self-hosted router.
ALTER TABLE alert_outbox ADD COLUMN consumer TEXT NOT NULL DEFAULT 'alerts:routed';
CREATE INDEX alert_outbox_consumer_due ON alert_outbox (consumer, status, next_attempt_ms);
