DROP INDEX alert_outbox_incident;
ALTER TABLE alert_outbox DROP COLUMN incident_id;
DROP TABLE silences;
DROP TABLE incident_actions;
ALTER TABLE api_keys DROP COLUMN scope;
