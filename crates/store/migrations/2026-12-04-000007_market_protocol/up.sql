-- Market facts name their protocol too (vault history, deviation samples, liquidations,
-- positions, bars): the same coin on two venues is two series. Rows written before this
-- migration are Hyperliquid's. The protocol joins each natural key (last, so every existing
-- query by coin/vault/user still uses the key's prefix); a primary key cannot be altered on
-- SQLite, so each table is rebuilt: renamed aside, created anew, copied, dropped. The new keys
-- are named (`*_key`) so they cannot collide with the old tables' `*_pkey` on PostgreSQL.

ALTER TABLE vault_points RENAME TO vault_points_v1;
CREATE TABLE vault_points (
    vault TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    account_value TEXT NOT NULL,
    pnl TEXT NOT NULL,
    protocol TEXT NOT NULL DEFAULT 'hyperliquid',
    CONSTRAINT vault_points_key PRIMARY KEY (vault, time_ms, protocol)
);
INSERT INTO vault_points (vault, time_ms, account_value, pnl, protocol)
    SELECT vault, time_ms, account_value, pnl, 'hyperliquid' FROM vault_points_v1;
DROP TABLE vault_points_v1;
CREATE INDEX vault_points_time ON vault_points (time_ms);

ALTER TABLE deviation_samples RENAME TO deviation_samples_v1;
CREATE TABLE deviation_samples (
    coin TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    venue TEXT,
    value TEXT NOT NULL,
    reference TEXT NOT NULL,
    deviation_pct TEXT NOT NULL,
    protocol TEXT NOT NULL DEFAULT 'hyperliquid',
    CONSTRAINT deviation_samples_key PRIMARY KEY (coin, kind, time_ms, protocol)
);
INSERT INTO deviation_samples (coin, kind, time_ms, venue, value, reference, deviation_pct, protocol)
    SELECT coin, kind, time_ms, venue, value, reference, deviation_pct, 'hyperliquid'
    FROM deviation_samples_v1;
DROP TABLE deviation_samples_v1;
CREATE INDEX deviation_samples_time ON deviation_samples (time_ms);
CREATE INDEX deviation_samples_coin_time ON deviation_samples (coin, time_ms);

ALTER TABLE liquidations RENAME TO liquidations_v1;
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
    protocol TEXT NOT NULL DEFAULT 'hyperliquid',
    CONSTRAINT liquidations_key PRIMARY KEY (time_ms, coin, tid, user_addr, protocol)
);
INSERT INTO liquidations (time_ms, coin, tid, user_addr, liquidated_user, side, px, sz, notional, method, is_adl, protocol)
    SELECT time_ms, coin, tid, user_addr, liquidated_user, side, px, sz, notional, method, is_adl, 'hyperliquid'
    FROM liquidations_v1;
DROP TABLE liquidations_v1;
CREATE INDEX liquidations_coin_time ON liquidations (coin, time_ms);

ALTER TABLE positions RENAME TO positions_v1;
CREATE TABLE positions (
    user_addr TEXT NOT NULL,
    coin TEXT NOT NULL,
    time_ms BIGINT NOT NULL,
    szi TEXT NOT NULL,
    position_value TEXT NOT NULL,
    liquidation_px TEXT,
    account_value TEXT NOT NULL,
    protocol TEXT NOT NULL DEFAULT 'hyperliquid',
    CONSTRAINT positions_key PRIMARY KEY (user_addr, coin, time_ms, protocol)
);
INSERT INTO positions (user_addr, coin, time_ms, szi, position_value, liquidation_px, account_value, protocol)
    SELECT user_addr, coin, time_ms, szi, position_value, liquidation_px, account_value, 'hyperliquid'
    FROM positions_v1;
DROP TABLE positions_v1;
CREATE INDEX positions_time ON positions (time_ms);

ALTER TABLE market_bars RENAME TO market_bars_v1;
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
    protocol TEXT NOT NULL DEFAULT 'hyperliquid',
    CONSTRAINT market_bars_key PRIMARY KEY (coin, interval_ms, time_ms, protocol)
);
INSERT INTO market_bars (coin, interval_ms, time_ms, open, high, low, close, volume, funding, ref_px, open_interest, liq_notional, hlp_pnl, hlp_equity, protocol)
    SELECT coin, interval_ms, time_ms, open, high, low, close, volume, funding, ref_px, open_interest, liq_notional, hlp_pnl, hlp_equity, 'hyperliquid'
    FROM market_bars_v1;
DROP TABLE market_bars_v1;
CREATE INDEX market_bars_time ON market_bars (time_ms);

-- Alert deliveries name the protocol of the incident they are about (read from the alert's
-- event when written), so `/alerts/deliveries?protocol=` needs no JSON scan.
ALTER TABLE alert_outbox ADD COLUMN protocol TEXT NOT NULL DEFAULT 'hyperliquid';
