//! One `check` helper — events in, incident steps out — and the rules: each fires at its
//! threshold and not below it, respects its sustain duration, resolves, honours per-asset
//! overrides, and is not fooled by out-of-order or duplicate events.

use kamiyo_core_models::{
    Address, AssetCtx, BookLevel, BookSnapshot, Coin, Decimal, FeedState, FeedStatus, Fill,
    FillDir, IncidentChange, LedgerEvent, LedgerKind, LiquidationInfo, LiquidationMethod,
    MarketEvent, OiCapSnapshot, Position, PositionSnapshot, ReferenceQuote, SecurityEvent,
    SeriesPoint, Severity, Side, ThreatType, Timestamp, VaultSnapshot, Venue,
};
use kamiyo_monitors::{Engine, MonitorsConfig};

pub(crate) fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn coin(c: &str) -> Coin {
    Coin::new(c).unwrap()
}

pub(crate) const S: i64 = 1_000;
pub(crate) const T0: i64 = 1_750_000_000_000;

fn t(secs: i64) -> Timestamp {
    Timestamp(T0 + secs * S)
}

fn ctx(c: &str, secs: i64, oracle: &str, mark: &str) -> MarketEvent {
    ctx_full(c, secs, oracle, mark, "1000", "1000000000")
}

pub(crate) fn ctx_full(
    c: &str,
    secs: i64,
    oracle: &str,
    mark: &str,
    oi: &str,
    vol: &str,
) -> MarketEvent {
    MarketEvent::AssetCtx(AssetCtx {
        coin: coin(c),
        time: t(secs),
        oracle_px: d(oracle),
        mark_px: d(mark),
        mid_px: None,
        open_interest: d(oi),
        funding: Decimal::ZERO,
        day_ntl_vlm: d(vol),
        prev_day_px: None,
        premium: None,
        impact_pxs: None,
    })
}

pub(crate) fn refq(venue: &str, c: &str, secs: i64, px: &str) -> MarketEvent {
    MarketEvent::Reference(ReferenceQuote {
        venue: Venue::new(venue).unwrap(),
        coin: coin(c),
        price: d(px),
        bid: None,
        ask: None,
        time: t(secs),
    })
}

pub(crate) fn addr(n: u8) -> Address {
    Address::from_bytes([n; 20])
}

#[expect(
    clippy::too_many_arguments,
    reason = "a fill has that many fields that matter to the rules"
)]
pub(crate) fn liq_fill(
    user: Address,
    c: &str,
    secs: i64,
    px: &str,
    sz: &str,
    victim: Option<Address>,
    tid: u64,
    method: LiquidationMethod,
) -> MarketEvent {
    MarketEvent::Fill(Fill {
        user,
        coin: coin(c),
        px: d(px),
        sz: d(sz),
        side: Side::Sell,
        time: t(secs),
        dir: FillDir::from_wire("Liquidated Cross Long"),
        closed_pnl: Decimal::ZERO,
        start_position: None,
        tid: Some(tid),
        oid: tid,
        fee: Decimal::ZERO,
        hash: None,
        liquidation: Some(LiquidationInfo {
            liquidated_user: victim,
            mark_px: d(px),
            method,
        }),
    })
}

fn adl_fill(user: Address, c: &str, secs: i64, tid: u64) -> MarketEvent {
    let MarketEvent::Fill(mut f) = liq_fill(
        user,
        c,
        secs,
        "22",
        "100",
        Some(addr(0x2e)),
        tid,
        LiquidationMethod::Backstop,
    ) else {
        unreachable!()
    };
    f.dir = FillDir::AutoDeleveraging;
    MarketEvent::Fill(f)
}

fn positions(
    user: Address,
    c: &str,
    secs: i64,
    szi: &str,
    liq: Option<&str>,
    account: &str,
) -> MarketEvent {
    MarketEvent::Positions(PositionSnapshot {
        user,
        time: t(secs),
        account_value: d(account),
        total_ntl_pos: Decimal::ZERO,
        maintenance_margin: Decimal::ZERO,
        withdrawable: Decimal::ZERO,
        positions: vec![Position {
            coin: coin(c),
            szi: d(szi),
            entry_px: Some(d("100")),
            position_value: Decimal::ZERO,
            unrealized_pnl: Decimal::ZERO,
            liquidation_px: liq.map(d),
            margin_used: Decimal::ZERO,
            leverage: None,
        }],
    })
}

fn vault(secs: i64, pnl: &str, av: &str) -> MarketEvent {
    let time = t(secs);
    MarketEvent::Vault(VaultSnapshot {
        vault: MonitorsConfig::default().hlp.vault,
        name: "HLP".into(),
        time,
        account_value: d(av),
        pnl_history: vec![SeriesPoint {
            time,
            value: d(pnl),
        }],
        account_value_history: vec![SeriesPoint { time, value: d(av) }],
    })
}

/// Events in, every incident step out (in order).
fn check_with(config: &MonitorsConfig, events: &[MarketEvent]) -> Vec<SecurityEvent> {
    let mut e = Engine::new(config).unwrap();
    let mut steps = Vec::new();
    for ev in events {
        steps.extend(e.process(ev).updates.into_iter().map(|u| u.event));
    }
    steps
}

fn check(events: &[MarketEvent]) -> Vec<SecurityEvent> {
    check_with(&MonitorsConfig::default(), events)
}

fn opened(steps: &[SecurityEvent], threat: ThreatType) -> Vec<&SecurityEvent> {
    steps
        .iter()
        .filter(|s| s.threat_type == threat && s.change != IncidentChange::Resolved)
        .collect()
}

fn max_sev(steps: &[SecurityEvent], threat: ThreatType) -> Option<Severity> {
    opened(steps, threat).iter().map(|s| s.severity).max()
}

/// Oracle `dev_pct` away from a single fresh Binance reference of 100, every second for `secs`.
fn oracle_run(c: &str, dev: &str, secs: i64) -> Vec<MarketEvent> {
    let oracle = (d("100") * (Decimal::ONE + d(dev) / Decimal::ONE_HUNDRED)).to_string();
    (0..=secs)
        .flat_map(|s| [refq("binance", c, s, "100"), ctx(c, s, &oracle, &oracle)])
        .collect()
}

// --- oracle -----------------------------------------------------------------------------

#[test]
fn oracle_fires_at_the_threshold_and_not_below() {
    assert_eq!(
        max_sev(
            &check(&oracle_run("BTC", "0.49", 600)),
            ThreatType::OracleDeviation
        ),
        None
    );
    let steps = check(&oracle_run("BTC", "0.5", 120));
    assert_eq!(
        max_sev(&steps, ThreatType::OracleDeviation),
        Some(Severity::High)
    );
    // Between warn_pct (0.5) and critical_pct (1): high, not critical.
    assert_eq!(
        max_sev(
            &check(&oracle_run("BTC", "0.99", 120)),
            ThreatType::OracleDeviation
        ),
        Some(Severity::High)
    );
    let steps = check(&oracle_run("BTC", "-1", 120));
    assert_eq!(
        max_sev(&steps, ThreatType::OracleDeviation),
        Some(Severity::Critical)
    );
    assert!(steps[0].title.contains("below"), "{}", steps[0].title);
}

/// A crash the other way inside an incident opened for a small rise is reported within the
/// crash's own sustain time: at critical as an escalation, and at the same level as well (a
/// flip of direction is news, not a throttled update).
#[test]
fn a_crash_inside_an_incident_opened_for_a_small_rise_is_reported_at_once() {
    let run = |crash: &str| {
        let mut ev = Vec::new();
        for s in 0..=300 {
            ev.push(refq("binance", "BTC", s, "100"));
            ev.push(ctx("BTC", s, "100.6", "100.6"));
        }
        for s in 301..=420 {
            ev.push(refq("binance", "BTC", s, "100"));
            ev.push(ctx("BTC", s, crash, crash));
        }
        check(&ev)
    };
    let after = |steps: &[SecurityEvent]| -> Option<(Timestamp, Severity, String)> {
        steps
            .iter()
            .filter(|e| e.threat_type == ThreatType::OracleDeviation && e.time > t(300))
            .find(|e| e.change == IncidentChange::Escalated)
            .map(|e| (e.time, e.severity, e.title.clone()))
    };
    let opened_up = run("97");
    assert_eq!(
        opened_up
            .iter()
            .filter(|e| e.change == IncidentChange::Opened)
            .count(),
        1,
        "one incident: {opened_up:?}"
    );
    let (at, sev, title) = after(&opened_up).expect("the crash is reported");
    assert_eq!(sev, Severity::Critical);
    assert!(at <= t(301 + 60), "within the crash's 60 s sustain: {at}");
    assert!(title.contains("below"), "{title}");
    // The same level the other way (0.8 % below after 0.6 % above): reported at once too.
    let flipped = run("99.2");
    let (at, sev, title) = after(&flipped).expect("the flip is reported");
    assert_eq!(sev, Severity::High);
    assert!(
        at <= t(301 + 60),
        "not after the 900 s update interval: {at}"
    );
    assert!(title.contains("below"), "{title}");
}

// --- venues ---------------------------------------------------------------------------------

const VENUES: [&str; 8] = [
    "binance", "okx", "bybit", "kraken", "kucoin", "gate", "mexc", "coinbase",
];

/// Every venue in `venues` quotes `px` each second, except those in `moved`, which quote
/// `moved_px`; the oracle itself (the asset context) stays at 100.
fn venue_run(venues: &[&str], moved: &[&str], moved_px: &str, secs: i64) -> Vec<MarketEvent> {
    let mut ev = Vec::new();
    for s in 0..=secs {
        for v in venues {
            let px = if moved.contains(v) { moved_px } else { "100" };
            ev.push(refq(v, "BTC", s, px));
        }
        ev.push(ctx("BTC", s, "100", "100"));
    }
    ev
}

fn venue_steps(steps: &[SecurityEvent]) -> Vec<&SecurityEvent> {
    steps
        .iter()
        .filter(|e| e.threat_type == ThreatType::VenueDisagreement)
        .collect()
}

#[test]
fn the_heaviest_venue_dislocating_alone_is_named_with_its_weight() {
    // Binance (weight 3 of the oracle's 11) 3 % above the seven others: high, naming Binance;
    // the oracle rule sees nothing (the oracle stayed at the others' median). Coinbase is an
    // independent reference: it weighs nothing in the oracle.
    let steps = check(&venue_run(&VENUES, &["binance"], "103", 120));
    let v = venue_steps(&steps);
    assert_eq!(v[0].change, IncidentChange::Opened);
    assert_eq!(v[0].severity, Severity::High);
    assert!(v[0].title.contains("binance +3%"), "{}", v[0].title);
    assert!(v[0].title.contains("weight 3 of 11"), "{}", v[0].title);
    assert!(v[0].indicators.contains(&"venue:binance".to_owned()));
    assert_eq!(v[0].time, t(60), "after the 60 s sustain");
    assert!(opened(&steps, ThreatType::OracleDeviation).is_empty());
    // With only Binance and Coinbase quoting, Binance holds all the oracle weight: its move
    // alone sets the replica, whatever the oracle rule says: critical.
    let steps = check(&venue_run(
        &["binance", "coinbase"],
        &["binance"],
        "103",
        120,
    ));
    let v = venue_steps(&steps);
    assert_eq!(v[0].severity, Severity::Critical);
    assert!(v[0].indicators.contains(&"venue:binance".to_owned()));
    assert!(
        v[0].title.contains("enough to move the oracle's median"),
        "{}",
        v[0].title
    );
}

#[test]
fn an_independent_venue_dislocating_alone_is_medium() {
    // Coinbase 3 % away from the seven oracle venues, which agree: the oracle is not at risk.
    let steps = check(&venue_run(&VENUES, &["coinbase"], "103", 120));
    let v = venue_steps(&steps);
    assert_eq!(v[0].severity, Severity::Medium);
    assert!(v[0].indicators.contains(&"venue:coinbase".to_owned()));
    assert!(v[0].title.contains("weight 0 of 11"), "{}", v[0].title);
}

#[test]
fn a_weight_majority_moving_together_is_critical() {
    // Binance, OKX and Bybit (7 of 11) 2 % below the rest, Coinbase among the rest: fewer
    // venues moved, and they carry the weight that sets the oracle.
    let steps = check(&venue_run(&VENUES, &["binance", "okx", "bybit"], "98", 120));
    let v = venue_steps(&steps);
    assert_eq!(v[0].severity, Severity::Critical);
    for name in ["binance", "okx", "bybit"] {
        assert!(
            v[0].indicators.contains(&format!("venue:{name}")),
            "{:?}",
            v[0]
        );
    }
    assert!(v[0].title.contains("weight 7 of 11"), "{}", v[0].title);
}

#[test]
fn venue_disagreement_needs_the_split_sustained_and_quotes_of_the_same_time() {
    // 0.9 % apart: below the 1 % split.
    assert!(venue_steps(&check(&venue_run(&VENUES, &["binance"], "100.9", 300))).is_empty());
    // 3 % apart for 50 s only.
    assert!(venue_steps(&check(&venue_run(&VENUES, &["binance"], "103", 50))).is_empty());
    // Coinbase quoting once per 15 minutes (a held candle close) is not compared with Binance's
    // per-second quotes in between, only at its own closes.
    let mut ev = Vec::new();
    for s in 0..=600 {
        ev.push(refq("binance", "BTC", s, "103"));
        ev.push(refq("coinbase", "BTC", 0, "100"));
        ev.push(ctx("BTC", s, "103", "103"));
    }
    assert!(venue_steps(&check(&ev)).is_empty());
}

#[test]
fn oracle_deviation_must_be_sustained() {
    let steps = check(&oracle_run("ETH", "2", 59));
    assert!(
        opened(&steps, ThreatType::OracleDeviation).is_empty(),
        "59 s is not sustained"
    );
    let steps = check(&oracle_run("ETH", "2", 60));
    let first = opened(&steps, ThreatType::OracleDeviation)[0];
    assert_eq!(first.time, t(60));
    assert_eq!(first.severity, Severity::Critical);
}

#[test]
fn oracle_per_asset_override() {
    let mut cfg = MonitorsConfig::default();
    cfg.oracle.assets.insert(
        coin("HYPE"),
        kamiyo_monitors::config::DeviationThresholds {
            warn_pct: d("2"),
            critical_pct: d("4"),
            sustain_secs: 30,
        },
    );
    let mut ev = oracle_run("HYPE", "1.5", 120);
    ev.extend(oracle_run("BTC", "1.5", 120));
    ev.sort_by_key(MarketEvent::time);
    let steps = check_with(&cfg, &ev);
    let assets: Vec<&str> = opened(&steps, ThreatType::OracleDeviation)
        .iter()
        .filter_map(|s| s.asset.as_ref().map(Coin::as_str))
        .collect();
    assert!(
        assets.contains(&"BTC") && !assets.contains(&"HYPE"),
        "{assets:?}"
    );
    let steps = check_with(&cfg, &oracle_run("HYPE", "2.5", 40));
    assert_eq!(
        max_sev(&steps, ThreatType::OracleDeviation),
        Some(Severity::High),
        "override sustain of 30 s applies"
    );
}

#[test]
fn oracle_names_the_diverging_venues_and_ignores_stale_ones() {
    let mut ev = Vec::new();
    for s in 0..=90 {
        ev.push(refq("binance", "ETH", s, "2000"));
        ev.push(refq("okx", "ETH", s, "2001"));
        ev.push(refq("coinbase", "ETH", s, "2040"));
        ev.push(ctx("ETH", s, "2040", "2040"));
    }
    let steps = check(&ev);
    let s = opened(&steps, ThreatType::OracleDeviation)[0];
    assert!(
        s.indicators.contains(&"venue:binance".to_owned())
            && s.indicators.contains(&"venue:okx".to_owned()),
        "{:?}",
        s.indicators
    );
    assert!(!s.indicators.contains(&"venue:coinbase".to_owned()));
    assert!(s.evidence.get("oracle_vs_binance_pct").is_some());

    // The only reference stops updating: after 30 s it is stale and the oracle check pauses,
    // however far the oracle drifts.
    let mut ev = vec![refq("binance", "SOL", 0, "100")];
    ev.extend((0..=300).map(|s| ctx("SOL", s, "110", "110")));
    assert!(
        opened(&check(&ev), ThreatType::OracleDeviation).is_empty(),
        "stale references never produce deviation alerts"
    );

    // A reference whose feed is DOWN is left out of the median.
    let mut ev = vec![MarketEvent::Feed(FeedStatus {
        feed: "coinbase".into(),
        state: FeedState::Down,
        changed_at: t(0),
        last_data_at: None,
        detail: "timeout".into(),
    })];
    for s in 1..=90 {
        ev.push(refq("coinbase", "BTC", s, "150"));
        ev.push(refq("binance", "BTC", s, "100"));
        ev.push(ctx("BTC", s, "100", "100"));
    }
    let steps = check(&ev);
    assert!(
        opened(&steps, ThreatType::OracleDeviation).is_empty(),
        "{steps:?}"
    );
    assert_eq!(
        max_sev(&steps, ThreatType::FeedHealth),
        Some(Severity::Medium)
    );
}

#[test]
fn deviation_incidents_resolve_after_the_quiet_period() {
    let mut ev = oracle_run("BTC", "1", 90);
    ev.extend((91..=800).flat_map(|s| {
        [
            refq("binance", "BTC", s, "100"),
            ctx("BTC", s, "100", "100"),
        ]
    }));
    let steps = check(&ev);
    let resolved: Vec<_> = steps
        .iter()
        .filter(|s| s.change == IncidentChange::Resolved)
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        resolved[0].time,
        t(90 + 600),
        "resolved 600 s after the last detection"
    );
}

#[test]
fn mark_manipulation_against_the_oracle() {
    let ev: Vec<_> = (0..=61)
        .map(|s| ctx("JELLY", s, "0.0095", "0.0099"))
        .collect();
    let steps = check(&ev);
    assert_eq!(
        max_sev(&steps, ThreatType::MarkManipulation),
        Some(Severity::Critical)
    );
    let ev: Vec<_> = (0..=600)
        .map(|s| ctx("JELLY", s, "0.0095", "0.009547"))
        .collect();
    assert_eq!(
        max_sev(&check(&ev), ThreatType::MarkManipulation),
        None,
        "0.49 % is below the threshold"
    );
}

#[test]
fn out_of_order_and_duplicate_contexts_do_not_fool_the_oracle_rule() {
    let mut ev = oracle_run("BTC", "0.2", 100);
    // A late context from the past with a huge deviation must not count …
    ev.push(ctx("BTC", 50, "150", "150"));
    // … and repeating the latest context changes nothing.
    ev.push(ctx("BTC", 100, "100.2", "100.2"));
    ev.push(ctx("BTC", 100, "100.2", "100.2"));
    assert!(check(&ev).is_empty());
}

// --- liquidations ---------------------------------------------------------------------------

#[test]
fn large_liquidation_threshold_and_window() {
    let liq = addr(0x2e);
    let ev = |sz: &str| {
        vec![liq_fill(
            liq,
            "ETH",
            0,
            "1000",
            sz,
            Some(addr(1)),
            1,
            LiquidationMethod::Market,
        )]
    };
    assert!(opened(&check(&ev("499.999")), ThreatType::LargeLiquidation).is_empty());
    assert_eq!(
        max_sev(&check(&ev("500")), ThreatType::LargeLiquidation),
        Some(Severity::High)
    );
    // Between large_usd ($500k) and large_critical_usd ($10M): high.
    assert_eq!(
        max_sev(&check(&ev("9999.99")), ThreatType::LargeLiquidation),
        Some(Severity::High)
    );
    assert_eq!(
        max_sev(&check(&ev("10000")), ThreatType::LargeLiquidation),
        Some(Severity::Critical)
    );
    // Two $300k fills 10 s apart add up; 11 s apart they do not.
    let two = |gap| {
        vec![
            liq_fill(
                liq,
                "ETH",
                0,
                "1000",
                "300",
                Some(addr(1)),
                1,
                LiquidationMethod::Market,
            ),
            liq_fill(
                liq,
                "ETH",
                gap,
                "1000",
                "300",
                Some(addr(2)),
                2,
                LiquidationMethod::Market,
            ),
        ]
    };
    assert_eq!(
        max_sev(&check(&two(10)), ThreatType::LargeLiquidation),
        Some(Severity::High)
    );
    assert!(opened(&check(&two(11)), ThreatType::LargeLiquidation).is_empty());
}

#[test]
fn the_same_liquidation_seen_from_both_sides_counts_once() {
    let a = liq_fill(
        addr(0x2e),
        "ETH",
        0,
        "1000",
        "300",
        Some(addr(1)),
        7,
        LiquidationMethod::Market,
    );
    let b = liq_fill(
        addr(1),
        "ETH",
        0,
        "1000",
        "300",
        Some(addr(1)),
        7,
        LiquidationMethod::Market,
    );
    assert!(
        opened(&check(&[a.clone(), b, a]), ThreatType::LargeLiquidation).is_empty(),
        "300k once, not 900k"
    );
}

#[test]
fn cascade_needs_five_within_300_seconds() {
    let liq = addr(0x2e);
    let sized = |n: u64, spacing: i64, sz: &'static str| -> Vec<MarketEvent> {
        (0..n)
            .map(|i| {
                liq_fill(
                    liq,
                    "SOL",
                    i as i64 * spacing,
                    "100",
                    sz,
                    Some(addr(i as u8 + 1)),
                    i + 1,
                    LiquidationMethod::Market,
                )
            })
            .collect()
    };
    let run = |n: u64, spacing: i64| sized(n, spacing, "10");
    assert!(opened(&check(&run(4, 10)), ThreatType::LiquidationCascade).is_empty());
    assert_eq!(
        max_sev(&check(&run(5, 10)), ThreatType::LiquidationCascade),
        Some(Severity::High)
    );
    assert!(
        opened(&check(&run(5, 76)), ThreatType::LiquidationCascade).is_empty(),
        "five spread over 304 s"
    );
    // Between cascade_count (5) and cascade_critical_count (15): high.
    assert_eq!(
        max_sev(&check(&run(14, 10)), ThreatType::LiquidationCascade),
        Some(Severity::High)
    );
    assert_eq!(
        max_sev(&check(&run(15, 10)), ThreatType::LiquidationCascade),
        Some(Severity::Critical)
    );
    // Five liquidations are critical by notional at cascade_critical_usd ($10M), not below.
    // (Spaced 20 s apart so that the 10 s large-liquidation window never sums them.)
    assert_eq!(
        max_sev(
            &check(&sized(5, 20, "19999")),
            ThreatType::LiquidationCascade
        ),
        Some(Severity::High)
    );
    assert_eq!(
        max_sev(
            &check(&sized(5, 20, "20000")),
            ThreatType::LiquidationCascade
        ),
        Some(Severity::Critical)
    );
}

/// 30 markets liquidating at once, $1M per fill, one fill per market per second: one
/// market-wide incident, high when the first window's minimums are met and critical at the
/// fill that crosses the critical ones; the per-market incidents opened after it are grouped
/// under it (their steps name it), the ones opened before it are not.
#[test]
fn a_market_wide_cascade_is_one_incident_with_the_markets_grouped_under_it() {
    let liq = addr(0x2e);
    let mut ev = Vec::new();
    let mut k = 0u64;
    for s in 0..12 {
        for c in 0..30 {
            k += 1;
            ev.push(liq_fill(
                liq,
                &format!("M{c:02}"),
                s,
                "100",
                "10000",
                Some(addr((k % 200) as u8 + 1)),
                k,
                LiquidationMethod::Market,
            ));
        }
    }
    let steps = check(&ev);
    let market: Vec<&SecurityEvent> = steps
        .iter()
        .filter(|e| e.threat_type == ThreatType::MarketCascade)
        .collect();
    let opened_market: Vec<_> = market
        .iter()
        .filter(|e| e.change == IncidentChange::Opened)
        .collect();
    assert_eq!(opened_market.len(), 1, "one incident: {market:?}");
    // The 10 s window: high at the 25th fill (25 fills, $25M, 25 markets), at t = 0.
    assert_eq!(opened_market[0].severity, Severity::High);
    assert_eq!(opened_market[0].time, t(0));
    // Critical needs 250 fills in 10 s: the 250th fill is at t = 8 (9 × 30 = 270 by then).
    let critical = market
        .iter()
        .find(|e| e.severity == Severity::Critical)
        .expect("critical");
    assert_eq!(critical.change, IncidentChange::Escalated);
    assert_eq!(critical.time, t(8), "at the crossing fill");
    let id = opened_market[0].incident_id.as_str();
    // Per-market incidents: the 24 large-liquidation incidents opened before the market-wide
    // one stand alone; every per-market step after it names it.
    let per_market: Vec<&SecurityEvent> = steps
        .iter()
        .filter(|e| {
            matches!(
                e.threat_type,
                ThreatType::LargeLiquidation | ThreatType::LiquidationCascade
            )
        })
        .collect();
    let alone = per_market
        .iter()
        .filter(|e| e.change == IncidentChange::Opened && e.member_of().is_none())
        .count();
    assert_eq!(
        alone, 24,
        "the markets that liquidated before the cascade was seen"
    );
    let grouped_after: Vec<_> = per_market
        .iter()
        .filter(|e| e.time > t(0) && e.change != IncidentChange::Resolved)
        .collect();
    assert!(!grouped_after.is_empty());
    assert!(
        grouped_after.iter().all(|e| e.member_of() == Some(id)),
        "{:?}",
        grouped_after.iter().find(|e| e.member_of() != Some(id))
    );
    // With the rule off, nothing is grouped and no market-wide incident opens.
    let mut cfg = MonitorsConfig::default();
    cfg.liquidations.market_windows.clear();
    let off = check_with(&cfg, &ev);
    assert!(
        off.iter()
            .all(|e| e.threat_type != ThreatType::MarketCascade)
    );
    assert!(off.iter().all(|e| e.member_of().is_none()));
}

/// In a burst the per-market rules build one detection per level change and per second, not
/// one per fill; the numbers held back in between reach the incident at the next tick, so its
/// final state is exact.
#[test]
fn a_burst_is_coalesced_and_the_final_numbers_are_exact() {
    let liq = addr(0x2e);
    let mut ev: Vec<MarketEvent> = (0..12)
        .map(|i| {
            liq_fill(
                liq,
                "SOL",
                0,
                "100",
                "10",
                Some(addr(i as u8 + 1)),
                i + 1,
                LiquidationMethod::Market,
            )
        })
        .collect();
    ev.push(ctx("SOL", 2, "100", "100"));
    ev.push(ctx("SOL", 700, "100", "100"));
    let steps = check(&ev);
    let cascade: Vec<&SecurityEvent> = steps
        .iter()
        .filter(|e| e.threat_type == ThreatType::LiquidationCascade)
        .collect();
    assert_eq!(cascade[0].change, IncidentChange::Opened);
    assert!(
        cascade[0].title.contains("5 liquidations"),
        "{}",
        cascade[0].title
    );
    let last = cascade.last().unwrap();
    assert_eq!(last.change, IncidentChange::Resolved);
    assert!(last.title.contains("12 liquidations"), "{}", last.title);
    assert_eq!(
        last.time,
        t(600),
        "resolved a quiet period after the last fill"
    );
}

#[test]
fn coordinated_liquidations_of_one_account() {
    let victim = addr(9);
    let ev: Vec<_> = (0..3)
        .map(|i| {
            liq_fill(
                addr(0x2e),
                "ETH",
                i * 600,
                "1000",
                "340",
                Some(victim),
                i as u64 + 1,
                LiquidationMethod::Market,
            )
        })
        .collect();
    let steps = check(&ev);
    assert_eq!(
        max_sev(&steps, ThreatType::CoordinatedLiquidation),
        Some(Severity::High)
    );
    let ev: Vec<_> = (0..3)
        .map(|i| {
            liq_fill(
                addr(0x2e),
                "ETH",
                i * 600,
                "1000",
                "300",
                Some(victim),
                i as u64 + 1,
                LiquidationMethod::Market,
            )
        })
        .collect();
    assert!(
        opened(&check(&ev), ThreatType::CoordinatedLiquidation).is_empty(),
        "$900k is below $1M"
    );
}

#[test]
fn first_adl_fill_is_critical() {
    let steps = check(&[
        adl_fill(addr(3), "AVAX", 0, 1),
        adl_fill(addr(4), "AVAX", 1, 2),
    ]);
    let adl = opened(&steps, ThreatType::AutoDeleveraging);
    assert_eq!(adl.len(), 1, "one incident, not one per fill");
    assert_eq!(adl[0].severity, Severity::Critical);
    assert_eq!(adl[0].time, t(0));
}

// --- HLP ------------------------------------------------------------------------------------

#[test]
fn hlp_loss_from_pnl_not_from_withdrawals() {
    let run = |loss: &str| {
        vec![
            vault(0, "60000000", "400000000"),
            vault(3600, &(d("60000000") - d(loss)).to_string(), "400000000"),
        ]
    };
    assert!(opened(&check(&run("999999")), ThreatType::HlpLoss).is_empty());
    assert_eq!(
        max_sev(&check(&run("1000000")), ThreatType::HlpLoss),
        Some(Severity::High)
    );
    // Between loss_high_usd ($1M) and loss_critical_usd ($2M): high.
    assert_eq!(
        max_sev(&check(&run("1999999")), ThreatType::HlpLoss),
        Some(Severity::High)
    );
    assert_eq!(
        max_sev(&check(&run("2000000")), ThreatType::HlpLoss),
        Some(Severity::Critical)
    );
    // $130M of withdrawals with flat PnL: not a loss.
    let steps = check(&[
        vault(0, "60000000", "487000000"),
        vault(3600, "60000000", "357000000"),
    ]);
    assert!(steps.is_empty(), "{steps:?}");
}

#[test]
fn hlp_loss_is_measured_over_24_hours() {
    // Lost $3M, but 25 h apart: the 24 h window only sees the last day's flat PnL.
    let steps = check(&[
        vault(0, "60000000", "400000000"),
        vault(3600, "57000000", "400000000"),
        vault(25 * 3600 + 1, "57000000", "400000000"),
    ]);
    let loss_steps = opened(&steps, ThreatType::HlpLoss);
    assert_eq!(
        loss_steps.len(),
        1,
        "opened once at the loss, not again a day later"
    );
}

#[test]
fn hlp_drawdown_from_peak() {
    let steps = check(&[
        vault(0, "10000000", "100000000"),
        vault(86_400 * 2, "40000000", "100000000"),
        vault(86_400 * 4, "29000000", "100000000"),
    ]);
    assert_eq!(
        max_sev(&steps, ThreatType::HlpDrawdown),
        Some(Severity::High),
        "11 % of account value below the PnL peak"
    );
}

#[test]
fn hlp_return_anomaly_needs_enough_samples() {
    let mut ev = Vec::new();
    let mut pnl = d("50000000");
    for i in 0..130 {
        pnl += if i % 2 == 0 { d("1000") } else { d("-800") };
        ev.push(vault(i * 300, &pnl.to_string(), "300000000"));
    }
    ev.push(vault(
        130 * 300,
        &(pnl - d("500000")).to_string(),
        "300000000",
    ));
    let steps = check(&ev);
    assert!(
        max_sev(&steps, ThreatType::HlpAnomaly).is_some_and(|s| s >= Severity::Medium),
        "{steps:?}"
    );
    // The same shock with only 50 samples: not enough history.
    let short: Vec<_> = ev[80..].to_vec();
    assert!(opened(&check(&short), ThreatType::HlpAnomaly).is_empty());
}

#[test]
fn hlp_child_exposure_against_open_interest() {
    let child = MonitorsConfig::default().hlp.children[0];
    // OI 1,000,000 JELLY at $0.01 = $10M. A 300M-JELLY position = $3M = 30 %.
    let run = |szi: &str| {
        vec![
            ctx_full("JELLY", 0, "0.01", "0.01", "1000000000", "5000000"),
            positions(child, "JELLY", 1, szi, None, "20000000"),
        ]
    };
    assert_eq!(
        max_sev(&check(&run("-300000000")), ThreatType::HlpExposure),
        Some(Severity::High)
    );
    // 49 %: between exposure_high_oi_pct (25) and exposure_critical_oi_pct (50), still high.
    assert_eq!(
        max_sev(&check(&run("-490000000")), ThreatType::HlpExposure),
        Some(Severity::High)
    );
    assert_eq!(
        max_sev(&check(&run("-600000000")), ThreatType::HlpExposure),
        Some(Severity::Critical)
    );
    assert!(
        opened(&check(&run("-200000000")), ThreatType::HlpExposure).is_empty(),
        "20 % is below 25 %"
    );
    assert!(
        opened(&check(&run("-90000000")), ThreatType::HlpExposure).is_empty(),
        "under the $1M minimum"
    );
}

// --- whales ---------------------------------------------------------------------------------

#[test]
fn whale_distance_thresholds_and_withdrawal_boost() {
    let w = addr(0xf3);
    let run = |mark: &str, extra: Vec<MarketEvent>| {
        let mut ev = vec![ctx("ETH", 0, mark, mark)];
        ev.extend(extra);
        ev.push(positions(w, "ETH", 2, "10000", Some("1900"), "1000000"));
        check(&ev)
    };
    // $19.5M long, liquidation at 1900.
    assert!(
        opened(&run("2000", vec![]), ThreatType::WhaleLiquidationRisk).is_empty(),
        "5 % away"
    );
    assert_eq!(
        max_sev(&run("1930", vec![]), ThreatType::WhaleLiquidationRisk),
        Some(Severity::Medium),
        "1.55 %"
    );
    assert_eq!(
        max_sev(&run("1915", vec![]), ThreatType::WhaleLiquidationRisk),
        Some(Severity::High),
        "0.78 %"
    );
    assert_eq!(
        max_sev(&run("1905", vec![]), ThreatType::WhaleLiquidationRisk),
        Some(Severity::Critical),
        "0.26 %"
    );
    let withdrawal = MarketEvent::Ledger(LedgerEvent {
        user: w,
        time: t(1),
        kind: LedgerKind::Withdraw,
        usdc: d("5000000"),
        hash: None,
    });
    let steps = run("1930", vec![withdrawal]);
    let s = opened(&steps, ThreatType::WhaleLiquidationRisk)[0];
    assert_eq!(
        s.severity,
        Severity::High,
        "a recent withdrawal raises one level"
    );
    assert!(s.indicators.contains(&"margin_withdrawal".to_owned()));
    // Small positions and HLP vaults are not whales.
    let mut ev = vec![ctx("ETH", 0, "1901", "1901")];
    ev.push(positions(w, "ETH", 1, "100", Some("1900"), "1000"));
    ev.push(positions(
        MonitorsConfig::default().hlp.children[1],
        "ETH",
        2,
        "10000",
        Some("1900"),
        "1000000",
    ));
    assert!(opened(&check(&ev), ThreatType::WhaleLiquidationRisk).is_empty());
}

// --- thin markets ----------------------------------------------------------------------------

/// Every threshold of the rule is crossed on its own: a move between two thresholds gets the
/// lower one's severity, so removing or reordering any threshold fails a case here.
#[test]
fn thin_market_price_move() {
    let run = |to: &str, vol: &str| -> Vec<MarketEvent> {
        (0..=600)
            .step_by(10)
            .map(|s| ctx_full("X", s, "1", if s == 600 { to } else { "1" }, "1000", vol))
            .collect()
    };
    let sev =
        |to: &str, vol: &str| max_sev(&check(&run(to, vol)), ThreatType::ThinMarketManipulation);
    let (thin, deep) = ("1000000", "900000000");
    // Thin market: high at 20 % (move_high_pct), critical at 30 % (move_critical_pct).
    assert_eq!(sev("1.19", thin), None);
    assert_eq!(sev("1.2", thin), Some(Severity::High));
    assert_eq!(
        sev("1.29", thin),
        Some(Severity::High),
        "below move_critical_pct"
    );
    assert_eq!(
        sev("1.3", thin),
        Some(Severity::Critical),
        "move_critical_pct"
    );
    // Deep market: nothing until 40 % (any_market_critical_pct), then critical.
    assert_eq!(sev("1.35", deep), None, "a deep market may move 35 %");
    assert_eq!(sev("1.39", deep), None);
    assert_eq!(
        sev("1.4", deep),
        Some(Severity::Critical),
        "40 % on any market"
    );
    // Each threshold is read from the configuration: raising the thin-market critical
    // threshold alone turns the 30 % thin case back into high.
    let mut cfg = MonitorsConfig::default();
    cfg.thin_market.move_critical_pct = d("35");
    let steps = check_with(&cfg, &run("1.3", thin));
    assert_eq!(
        max_sev(&steps, ThreatType::ThinMarketManipulation),
        Some(Severity::High)
    );
}

#[test]
fn open_interest_cap_and_book_walls() {
    let steps = check(&[
        ctx("JELLY", 0, "1", "1"),
        MarketEvent::OiCap(OiCapSnapshot {
            time: t(1),
            coins: vec![coin("JELLY")],
        }),
    ]);
    assert_eq!(
        max_sev(&steps, ThreatType::OpenInterestCap),
        Some(Severity::Medium)
    );
    let lvl = |px: &str, sz: &str| BookLevel {
        px: d(px),
        sz: d(sz),
        n: 1,
    };
    let book = |secs: i64, wall: bool| {
        let mut bids: Vec<BookLevel> = (1..=10).map(|i| lvl(&format!("0.2{i}"), "10000")).collect();
        if wall {
            bids[0] = lvl("0.21", "100000000");
        }
        MarketEvent::Book(BookSnapshot {
            coin: coin("POPCAT"),
            time: t(secs),
            bids,
            asks: (1..=10).map(|i| lvl(&format!("0.3{i}"), "10000")).collect(),
        })
    };
    let steps = check(&[book(0, false), book(10, true), book(60, false)]);
    let walls = opened(&steps, ThreatType::BookWall);
    assert_eq!(
        walls.first().map(|s| s.severity),
        Some(Severity::Medium),
        "a one-sided $21M bid wall appears"
    );
    assert_eq!(
        max_sev(&steps, ThreatType::BookWall),
        Some(Severity::High),
        "and is pulled 50 s later"
    );
}

#[test]
fn feed_down_opens_and_live_resolves() {
    let down = MarketEvent::Feed(FeedStatus {
        feed: "hyperliquid.ws".into(),
        state: FeedState::Down,
        changed_at: t(0),
        last_data_at: Some(t(-5)),
        detail: "connection reset".into(),
    });
    let live = MarketEvent::Feed(FeedStatus {
        feed: "hyperliquid.ws".into(),
        state: FeedState::Live,
        changed_at: t(20),
        last_data_at: Some(t(20)),
        detail: String::new(),
    });
    let mut ev = vec![down, live];
    ev.extend((21..=200).map(|s| ctx("BTC", s, "1", "1")));
    let steps = check(&ev);
    assert_eq!(
        steps[0].severity,
        Severity::High,
        "the Hyperliquid feed down is high"
    );
    assert!(
        steps.iter().any(
            |s| s.change == IncidentChange::Resolved && s.threat_type == ThreatType::FeedHealth
        )
    );
}

// --- protocols and the detector registry -------------------------------------------------

/// One engine per protocol: the same detector on the same asset opens one incident per
/// protocol, with the protocol on every step and in the key; a Hyperliquid key is unchanged.
#[test]
fn engines_of_two_protocols_keep_incidents_apart() {
    use kamiyo_core_models::ProtocolId;
    use kamiyo_monitors::DetectorRegistry;
    let events = oracle_run("BTC", "1.5", 120);
    let cfg = MonitorsConfig::default();
    let run = |protocol: ProtocolId| {
        let mut e = Engine::for_protocol(
            protocol,
            &DetectorRegistry::builtin(),
            Some(&["oracle"]),
            &cfg,
        )
        .unwrap();
        let mut steps = Vec::new();
        let mut samples = Vec::new();
        for ev in &events {
            let out = e.process(ev);
            steps.extend(out.updates.into_iter().map(|u| u.event));
            samples.extend(out.observations.deviations);
        }
        (steps, samples)
    };
    let (hl, hl_samples) = run(ProtocolId::HYPERLIQUID);
    let (other, other_samples) = run(ProtocolId::parse("acme-perps").unwrap());
    // The engine names its protocol on the market facts it stores, too.
    assert!(!hl_samples.is_empty() && hl_samples.len() == other_samples.len());
    assert!(hl_samples.iter().all(|s| s.protocol.is_default()));
    assert!(
        other_samples
            .iter()
            .all(|s| s.protocol.as_str() == "acme-perps")
    );
    let hl_open = opened(&hl, ThreatType::OracleDeviation);
    let other_open = opened(&other, ThreatType::OracleDeviation);
    assert!(!hl_open.is_empty() && hl_open.len() == other_open.len());
    assert!(hl.iter().all(|s| s.protocol.is_default()));
    assert!(other.iter().all(|s| s.protocol.as_str() == "acme-perps"));
    assert_eq!(
        hl,
        check(&events)
            .into_iter()
            .filter(|s| s.detector == "oracle_deviation")
            .collect::<Vec<_>>(),
        "the oracle detector alone, on Hyperliquid, is what the full engine says for it"
    );
    for (a, b) in hl_open.iter().zip(&other_open) {
        assert_eq!(
            b.incident_key.as_str(),
            format!("acme-perps/{}", a.incident_key)
        );
        assert_ne!(a.incident_id, b.incident_id);
    }
}

/// A detector set names what runs: the HLP vault is one registered detector like the others.
#[test]
fn an_engine_without_the_hlp_detector_says_nothing_about_the_vault() {
    use kamiyo_core_models::ProtocolId;
    use kamiyo_monitors::DetectorRegistry;
    let cfg = MonitorsConfig::default();
    let events: Vec<MarketEvent> = (0..30)
        .map(|k| vault(k * 3600, &format!("-{}", k * 500_000), "60000000"))
        .collect();
    let with = check(&events);
    assert!(!opened(&with, ThreatType::HlpLoss).is_empty(), "{with:?}");
    let mut without = Engine::for_protocol(
        ProtocolId::HYPERLIQUID,
        &DetectorRegistry::builtin(),
        Some(&["oracle", "venues", "liquidations"]),
        &cfg,
    )
    .unwrap();
    assert!(without.hlp_summary().is_none());
    for ev in &events {
        assert!(without.process(ev).updates.is_empty());
    }
    assert!(Engine::new(&cfg).unwrap().hlp_summary().is_some());
}

/// A `vaultDetails` poll at `poll_secs`: the vault's day PnL history as the server returns it,
/// points an hour or more apart, whatever the poll's own time.
fn vault_poll(poll_secs: i64, history: &[(i64, &str)], av: &str) -> MarketEvent {
    MarketEvent::Vault(VaultSnapshot {
        vault: MonitorsConfig::default().hlp.vault,
        name: "HLP".into(),
        time: t(poll_secs),
        account_value: d(av),
        pnl_history: series(history.iter().map(|(s, v)| (*s, *v))),
        account_value_history: series(history.iter().map(|(s, _)| (*s, av))),
    })
}

fn series<'a>(points: impl Iterator<Item = (i64, &'a str)>) -> Vec<SeriesPoint> {
    points
        .map(|(s, v)| SeriesPoint {
            time: t(s),
            value: d(v),
        })
        .collect()
}

#[test]
fn an_hlp_loss_stays_one_incident_between_sparse_pnl_points() {
    // The real day series has a point every 53 min to 2.3 h (the 2025-08-22 recording), polled
    // every minute: the loss stands on every poll until the PnL recovers.
    let lost = [(0, "60000000"), (3600, "57000000")];
    let recovered = [(0, "60000000"), (3600, "57000000"), (3 * 3600, "60000000")];
    let mut events: Vec<MarketEvent> = (0..120)
        .map(|k| vault_poll(3600 + 60 * k, &lost, "400000000"))
        .collect();
    events.extend((0..30).map(|k| vault_poll(3 * 3600 + 60 * k, &recovered, "400000000")));
    let steps = check(&events);
    let loss: Vec<_> = steps
        .iter()
        .filter(|s| s.threat_type == ThreatType::HlpLoss)
        .map(|s| (s.change, (s.time.0 - T0) / S))
        .collect();
    // Opened at the first poll that showed it; resolved the quiet period (600 s) after the
    // last poll that still did — not after the PnL point that recorded it.
    let last_lost_poll = 3600 + 60 * 119;
    assert_eq!(
        loss,
        [
            (IncidentChange::Opened, 3600),
            (IncidentChange::Resolved, last_lost_poll + 600),
        ],
        "one incident for the whole loss, not one a poll"
    );
}

fn feed(name: &str, state: FeedState, secs: i64) -> MarketEvent {
    MarketEvent::Feed(FeedStatus {
        feed: name.into(),
        state,
        changed_at: t(secs),
        last_data_at: None,
        detail: String::new(),
    })
}

#[test]
fn an_incident_does_not_resolve_while_the_exchange_cannot_be_seen() {
    let lost = [(0, "60000000"), (3600, "57000000")];
    // (what happens after the loss is seen at 3600 s, when the last HLP step is)
    let run = |after: &[MarketEvent]| {
        let mut e = Engine::new(&MonitorsConfig::default()).unwrap();
        let mut steps = Vec::new();
        let mut push = |out: kamiyo_monitors::EngineOutput| {
            steps.extend(
                out.updates
                    .into_iter()
                    .filter(|u| u.event.threat_type == ThreatType::HlpLoss)
                    .map(|u| (u.event.change, (u.event.time.0 - T0) / S)),
            );
        };
        push(e.process(&vault_poll(3600, &lost, "400000000")));
        for ev in after {
            push(e.process(ev));
            // The live runner ticks every second whatever arrives; every 10 s is enough here.
            let now = match ev {
                MarketEvent::Feed(f) => f.changed_at,
                _ => continue,
            };
            for k in 1..=360 {
                push(e.tick(now.plus_millis(k * 10 * S)));
            }
        }
        steps
    };
    // The vault polls fail from 3660 s (the REST feed goes down) for an hour: the loss is
    // not seen to end, so it does not end. Back at 7260 s, the quiet period starts over.
    let steps = run(&[
        feed("hyperliquid.rest", FeedState::Down, 3660),
        feed("hyperliquid.rest", FeedState::Live, 7260),
    ]);
    assert_eq!(
        steps,
        [
            (IncidentChange::Opened, 3600),
            (IncidentChange::Resolved, 7260 + 600)
        ],
        "held while blind, resolved a quiet period after sight came back"
    );
    // Stale counts as blind too, and so does the socket feed.
    let steps = run(&[
        feed("hyperliquid.ws", FeedState::Stale, 3660),
        feed("hyperliquid.ws", FeedState::Live, 4800),
    ]);
    assert_eq!(steps[1], (IncidentChange::Resolved, 4800 + 600));
    // Two feeds down, one back: still blind until both are.
    let steps = run(&[
        feed("hyperliquid.ws", FeedState::Down, 3660),
        feed("hyperliquid.rest", FeedState::Down, 3700),
        feed("hyperliquid.ws", FeedState::Live, 4000),
        feed("hyperliquid.rest", FeedState::Live, 5000),
    ]);
    assert_eq!(steps[1], (IncidentChange::Resolved, 5000 + 600));
    // A reference venue down is not the exchange: the incident resolves on time.
    let steps = run(&[feed("binance", FeedState::Down, 3660)]);
    assert_eq!(steps[1], (IncidentChange::Resolved, 3600 + 600));
}

/// A vault series polled once per point, each poll carrying the whole history so far: points
/// `spans_min` apart (minutes), losing `drift_per_hour` with noise that grows with each span as
/// a random walk's does (deterministic; about ±$20k in an hour). Returns the polls and the
/// history.
fn spaced_vault(spans_min: &[i64], drift_per_hour: f64) -> (Vec<MarketEvent>, Vec<(i64, f64)>) {
    let mut history: Vec<(i64, f64)> = Vec::new();
    let (mut secs, mut pnl) = (0i64, 50_000_000.0f64);
    let mut events = Vec::new();
    for (i, span_min) in spans_min.iter().enumerate() {
        let hours = *span_min as f64 / 60.0;
        let noise = (((i * 7919) % 1001) as f64 - 500.0) / 500.0 * 20_000.0 * hours.sqrt();
        secs += span_min * 60;
        pnl += drift_per_hour * hours + noise;
        history.push((secs, pnl));
        events.push(poll_of(&history));
    }
    (events, history)
}

fn poll_of(history: &[(i64, f64)]) -> MarketEvent {
    let text: Vec<(i64, String)> = history
        .iter()
        .map(|(s, p)| (*s, format!("{p:.0}")))
        .collect();
    let h: Vec<(i64, &str)> = text.iter().map(|(s, p)| (*s, p.as_str())).collect();
    vault_poll(history.last().map_or(0, |p| p.0), &h, "300000000")
}

#[test]
fn hlp_return_anomaly_weighs_each_return_by_the_time_it_spans() {
    // A steady loss of $10k an hour over points 30 min to 3 h apart: the 3 h returns are six
    // times the 30 min ones, which is the drift, not an anomaly.
    let irregular: Vec<i64> = (0..240)
        .map(|i| [30, 180, 60, 150, 45, 120, 90, 170][i % 8])
        .collect();
    let (events, _) = spaced_vault(&irregular, -10_000.0);
    let steps = check(&events);
    assert!(
        opened(&steps, ThreatType::HlpAnomaly).is_empty(),
        "{steps:?}"
    );
    // The series as the first poll finds it: the portfolio's older periods merged in, points a
    // day apart, then the day series' points 90 minutes apart. Then $200k lost in the next 90
    // minutes — ten times the hour's usual move. Weighed by the time each return spans, the
    // day-long returns of the backfill do not drown it.
    let mut spans = vec![24 * 60; 80];
    spans.extend([90; 40]);
    let (mut events, mut history) = spaced_vault(&spans, -10_000.0);
    assert!(opened(&check(&events), ThreatType::HlpAnomaly).is_empty());
    let (secs, pnl) = *history.last().unwrap();
    history.push((secs + 90 * 60, pnl - 200_000.0));
    events.push(poll_of(&history));
    let steps = check(&events);
    assert_eq!(opened(&steps, ThreatType::HlpAnomaly).len(), 1, "{steps:?}");
}
