-- The dashboard reads one asset's deviations over a time range for every kind at once; the
-- primary key (coin, kind, time_ms) cannot serve that in time order, and a year of one-minute
-- samples made the query scan and sort ~260k rows (75 ms p50 on SQLite). See docs/PERFORMANCE.md.
CREATE INDEX deviation_samples_coin_time ON deviation_samples (coin, time_ms);
