DROP FUNCTION IF EXISTS platform.brand_for_host(TEXT);
DROP TABLE IF EXISTS platform.sso_logins;
DROP TABLE IF EXISTS platform.sso_settings;
DROP TABLE IF EXISTS platform.branding;
DROP TABLE IF EXISTS platform.incident_actions;
