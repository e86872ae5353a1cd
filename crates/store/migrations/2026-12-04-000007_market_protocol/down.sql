-- Back to protocol-less keys: only Hyperliquid's rows fit them; other protocols' rows are dropped.

ALTER TABLE vault_points RENAME TO vault_points_v2;
CREATE TABLE vault_points (
    vault TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    account_value TEXT NOT NULL,
    pnl TEXT NOT NULL,
    CONSTRAINT vault_points_key1 PRIMARY KEY (vault, time_ms)
);
INSERT INTO vault_points (vault, time_ms, account_value, pnl)
    SELECT vault, time_ms, account_value, pnl FROM vault_points_v2 WHERE protocol = 'hyperliquid';
DROP TABLE vault_points_v2;
CREATE INDEX vault_points_time ON vault_points (time_ms);

ALTER TABLE deviation_samples RENAME TO deviation_samples_v2;
CREATE TABLE deviation_samples (
    coin TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    venue TEXT,
    value TEXT NOT NULL,
    reference TEXT NOT NULL,
    deviation_pct TEXT NOT NULL,
    CONSTRAINT deviation_samples_key1 PRIMARY KEY (coin, kind, time_ms)
);
INSERT INTO deviation_samples (coin, kind, time_ms, venue, value, reference, deviation_pct)
    SELECT coin, kind, time_ms, venue, value, reference, deviation_pct FROM deviation_samples_v2 WHERE protocol = 'hyperliquid';
DROP TABLE deviation_samples_v2;
CREATE INDEX deviation_samples_time ON deviation_samples (time_ms);
CREATE INDEX deviation_samples_coin_time ON deviation_samples (coin, time_ms);

ALTER TABLE liquidations RENAME TO liquidations_v2;
CREATE TABLE liquidations (
    time_ms BIGINT NOT NULL,
    coin TEXT NOT NULL,
    tid BIGINT NOT NULL,
    user_addr TEXT NOT NULL,
    liquidated_user TEXT,
    side TEXT NOT NULL,
    px TEXT NOT NULL,
    sz TEXT NOT NULL,
    notional TEXT NOT NULL,
    method TEXT,
    is_adl BOOLEAN NOT NULL DEFAULT FALSE,
    CONSTRAINT liquidations_key1 PRIMARY KEY (time_ms, coin, tid, user_addr)
);
INSERT INTO liquidations (time_ms, coin, tid, user_addr, liquidated_user, side, px, sz, notional, method, is_adl)
    SELECT time_ms, coin, tid, user_addr, liquidated_user, side, px, sz, notional, method, is_adl FROM liquidations_v2 WHERE protocol = 'hyperliquid';
DROP TABLE liquidations_v2;
CREATE INDEX liquidations_coin_time ON liquidations (coin, time_ms);

ALTER TABLE positions RENAME TO positions_v2;
CREATE TABLE positions (
    user_addr TEXT NOT NULL,
    coin TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    szi TEXT NOT NULL,
    position_value TEXT NOT NULL,
    liquidation_px TEXT,
    account_value TEXT NOT NULL,
    CONSTRAINT positions_key1 PRIMARY KEY (user_addr, coin, time_ms)
);
INSERT INTO positions (user_addr, coin, time_ms, szi, position_value, liquidation_px, account_value)
    SELECT user_addr, coin, time_ms, szi, position_value, liquidation_px, account_value FROM positions_v2 WHERE protocol = 'hyperliquid';
DROP TABLE positions_v2;
CREATE INDEX positions_time ON positions (time_ms);

ALTER TABLE market_bars RENAME TO market_bars_v2;
CREATE TABLE market_bars (
    coin TEXT NOT NULL,
    interval_ms BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    open TEXT NOT NULL,
    high TEXT NOT NULL,
    low TEXT NOT NULL,
    close TEXT NOT NULL,
    volume TEXT NOT NULL,
    funding TEXT NOT NULL,
    ref_px TEXT,
    open_interest TEXT,
    liq_notional TEXT,
    hlp_pnl TEXT,
    hlp_equity TEXT,
    CONSTRAINT market_bars_key1 PRIMARY KEY (coin, interval_ms, time_ms)
);
INSERT INTO market_bars (coin, interval_ms, time_ms, open, high, low, close, volume, funding, ref_px, open_interest, liq_notional, hlp_pnl, hlp_equity)
    SELECT coin, interval_ms, time_ms, open, high, low, close, volume, funding, ref_px, open_interest, liq_notional, hlp_pnl, hlp_equity FROM market_bars_v2 WHERE protocol = 'hyperliquid';
DROP TABLE market_bars_v2;
CREATE INDEX market_bars_time ON market_bars (time_ms);

ALTER TABLE alert_outbox DROP COLUMN protocol;
