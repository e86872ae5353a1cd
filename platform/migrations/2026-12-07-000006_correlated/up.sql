-- Cross-protocol correlated incidents: shared facts (no tenant), written by the correlator
-- (one replica leads it) and read by tenants whose plan has cross-protocol correlation and who
-- follow one of its protocols. Each links its member incidents (ids in the shared store).
SET LOCAL search_path TO platform, public;

CREATE TABLE correlated_incidents (
    correlated_id TEXT PRIMARY KEY,
    pattern TEXT NOT NULL,
    entity TEXT NOT NULL,
    protocols TEXT[] NOT NULL,
    members TEXT[] NOT NULL,
    stages JSONB NOT NULL,
    severity TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    opened_at BIGINT NOT NULL
);
CREATE INDEX correlated_incidents_recent ON correlated_incidents (last_seen DESC);
CREATE INDEX correlated_incidents_protocols ON correlated_incidents USING GIN (protocols);
