DROP INDEX alert_outbox_consumer_due;
ALTER TABLE alert_outbox DROP COLUMN consumer;
