DROP TABLE market_bars;
