DROP INDEX security_events_protocol;
DROP INDEX incidents_protocol;
ALTER TABLE security_events DROP COLUMN protocol;
ALTER TABLE incidents DROP COLUMN protocol;
