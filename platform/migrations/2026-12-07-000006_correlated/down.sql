DROP TABLE IF EXISTS platform.correlated_incidents;
