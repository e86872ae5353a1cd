-- What on-call people do: key scopes (read or write), operator actions on incidents
-- (acknowledge, resolve with a note, notes), silences by matcher, and the incident each
-- outbox row alerts on (the incident page lists its alerts and their deliveries; rows written
-- before this migration carry NULL and are not listed there).
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'read';

CREATE TABLE incident_actions (
    id TEXT PRIMARY KEY NOT NULL,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    note TEXT NOT NULL,
    time_ms BIGINT NOT NULL
);
CREATE INDEX incident_actions_incident ON incident_actions (incident_id, time_ms);

CREATE TABLE silences (
    id TEXT PRIMARY KEY NOT NULL,
    detector TEXT,
    asset TEXT,
    severity TEXT,
    protocol TEXT,
    starts_ms BIGINT NOT NULL,
    ends_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expired_ms BIGINT
);
CREATE INDEX silences_ends ON silences (ends_ms);

ALTER TABLE alert_outbox ADD COLUMN incident_id TEXT;
CREATE INDEX alert_outbox_incident ON alert_outbox (incident_id, created_ms);
