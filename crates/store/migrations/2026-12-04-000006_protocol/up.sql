-- Protocols are first-class: every incident and security event names the protocol it is about.
-- Rows written before this migration are Hyperliquid's (the only protocol watched until now).
-- Incident keys of other protocols are prefixed `<protocol>/`, so keys stay unique per table.
ALTER TABLE incidents ADD COLUMN protocol TEXT NOT NULL DEFAULT 'hyperliquid';
ALTER TABLE security_events ADD COLUMN protocol TEXT NOT NULL DEFAULT 'hyperliquid';
CREATE INDEX incidents_protocol ON incidents (protocol, last_seen_ms);
CREATE INDEX security_events_protocol ON security_events (protocol, seq);
