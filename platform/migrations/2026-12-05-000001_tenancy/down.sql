DROP TABLE IF EXISTS audit_log, usage_daily, alert_channels, watched_addresses, thresholds,
    subscriptions, api_keys, users, tenants;
