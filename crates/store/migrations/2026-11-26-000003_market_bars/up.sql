-- Closed bars per market as the engine builds them from the event stream (prices, volume,
-- funding, the outside-exchange reference, open interest, liquidation notional, HLP): the
-- history `ml train --from-store` learns the extended features from. Decimals as text, as in
-- every other table; NULL where an input was unknown.
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
    PRIMARY KEY (coin, interval_ms, time_ms)
);
CREATE INDEX market_bars_time ON market_bars (time_ms);
