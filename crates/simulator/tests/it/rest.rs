//! The REST clients against the simulator.

use std::sync::Arc;
use std::time::Duration;

use kamiyo_aggregators::hyperliquid::budget::WeightBudget;
use kamiyo_aggregators::hyperliquid::discovery::discover_hlp;
use kamiyo_aggregators::hyperliquid::rest::InfoClient;
use kamiyo_aggregators::sources::binance::{Binance, BinanceSource};
use kamiyo_aggregators::sources::coinbase::{Coinbase, CoinbaseSource};
use kamiyo_core_models::{
    Address, Coin, LedgerKind, LiquidationMethod, PriceSource, SourceError, SystemClock, Timestamp,
};
use serde_json::json;

use crate::sim;

fn liquidator() -> Address {
    Address::parse("0x2e3d94f0562703b25c83308a05046ddaf9a8dd14").unwrap()
}

fn client(url: &str) -> InfoClient {
    InfoClient::new(
        url,
        Arc::new(WeightBudget::hyperliquid(Duration::from_secs(5))),
        Duration::from_secs(5),
    )
    .unwrap()
}

#[tokio::test]
async fn info_requests_against_the_simulator() {
    let h = sim("2025-03-12T14:00:00Z", 1.0).await;
    let c = client(&h.http_url());
    let now = Timestamp::parse("2025-03-12T14:00:00Z").unwrap();

    let meta = c.meta().await.unwrap();
    assert_eq!(
        meta.coins().iter().map(Coin::as_str).collect::<Vec<_>>(),
        ["ETH", "BTC", "SOL"]
    );
    let (_, ctxs) = c.meta_and_asset_ctxs(now).await.unwrap();
    let eth = ctxs.iter().find(|x| x.coin.as_str() == "ETH").unwrap();
    assert!(
        eth.oracle_px > 1800.into() && eth.oracle_px < 2000.into(),
        "{}",
        eth.oracle_px
    );

    let topo = discover_hlp(
        &c,
        Address::parse("0xdfc24b077bc1425ad1dea75bcb6f8158e10df303").unwrap(),
        now,
    )
    .await
    .unwrap();
    assert_eq!(topo.children.len(), 7);
    assert_eq!(topo.liquidators().len(), 4);
    assert!(topo.liquidators().contains(&liquidator()));

    let v = c.vault_details(topo.parent, now).await.unwrap().unwrap();
    assert!(v.snapshot.pnl_history.len() > 10);
    let last = v.snapshot.pnl_history.last().unwrap();
    assert_eq!(
        last.value,
        "61000000".parse().unwrap(),
        "HLP PnL at 14:00, rebased onto all-time"
    );

    let pos = c.clearinghouse_state(liquidator(), now).await.unwrap();
    assert_eq!(pos.positions[0].coin.as_str(), "ETH");
    assert!(pos.positions[0].szi > 0.into());

    let fills = c
        .user_fills_by_time(
            liquidator(),
            Timestamp::parse("2025-03-12T13:00:00Z").unwrap(),
            None,
            5,
        )
        .await
        .unwrap();
    assert!(fills.len() >= 13, "{}", fills.len());
    let backstop = &fills[0];
    assert_eq!(
        backstop.liquidation.as_ref().unwrap().method,
        LiquidationMethod::Backstop
    );
    assert_eq!(backstop.sz, "160234.18".parse().unwrap());

    let whale = Address::parse("0xf3f40000000000000000000000000000000000a1").unwrap();
    let ledger = c
        .ledger_updates(whale, Timestamp::parse("2025-03-12T12:00:00Z").unwrap())
        .await
        .unwrap();
    assert!(matches!(ledger[0].kind, LedgerKind::Withdraw));
    assert_eq!(ledger[0].usdc, "17090000".parse().unwrap());
    assert!(matches!(ledger[1].kind, LedgerKind::Liquidation { .. }));

    let book = c
        .l2_book(&Coin::new("ETH").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(book.bids[0].px < book.asks[0].px);

    // Malformed requests get the real API's 422, as a typed error.
    let err = c
        .post_raw(&json!({"type": "clearinghouseState", "user": "nope"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Status { status: 422, .. }),
        "{err:?}"
    );
    let err = c
        .post_raw(&json!({"type": "noSuchRequest"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Status { status: 422, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_weight_budget_refuses_before_sending() {
    let h = sim("2025-03-12T14:00:00Z", 1.0).await;
    // 10 weight per minute: five allMids (weight 2) fit, the sixth does not.
    let c = InfoClient::new(
        &h.http_url(),
        Arc::new(WeightBudget::new(10, 60_000, Duration::ZERO)),
        Duration::from_secs(5),
    )
    .unwrap();
    let now = Timestamp(0);
    for _ in 0..5 {
        c.all_mids(now).await.unwrap();
    }
    let err = c.all_mids(now).await.unwrap_err();
    assert!(
        matches!(err, SourceError::BudgetExhausted { wait_ms, .. } if wait_ms > 0),
        "{err:?}"
    );
    assert_eq!(c.budget().used(), 10);
}

#[tokio::test]
async fn reference_venues_against_the_simulator() {
    let h = sim("2025-03-12T14:00:00Z", 1.0).await;
    let clock = Arc::new(SystemClock);
    let coins = vec![
        Coin::new("ETH").unwrap(),
        Coin::new("BTC").unwrap(),
        Coin::new("SOL").unwrap(),
        Coin::new("NOPE").unwrap(),
    ];
    let b = BinanceSource::new(
        Binance,
        &h.http_url(),
        kamiyo_aggregators::sources::binance::default_symbols(),
        clock.clone(),
        Duration::from_secs(5),
    )
    .unwrap();
    let q = b.quotes(&coins).await.unwrap();
    assert_eq!(q.len(), 3, "unlisted coins are omitted, not errors");
    assert!(
        q.iter()
            .all(|q| q.venue.as_str() == "binance" && q.bid < q.ask)
    );
    let cb = CoinbaseSource::new(
        Coinbase,
        &h.http_url(),
        kamiyo_aggregators::sources::coinbase::default_symbols(),
        clock,
        Duration::from_secs(5),
    )
    .unwrap();
    let q = cb.quotes(&coins).await.unwrap();
    assert_eq!(q.len(), 3);
    let eth = q.iter().find(|q| q.coin.as_str() == "ETH").unwrap();
    assert!(eth.price > 1800.into() && eth.price < 2000.into());
}
