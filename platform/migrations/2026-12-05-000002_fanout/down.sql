DROP FUNCTION IF EXISTS platform.subscribers(TEXT);
DROP TABLE IF EXISTS platform.fanout_state, platform.tenant_outbox, platform.fanout_cursors;
