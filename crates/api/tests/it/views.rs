//! The read models answer exactly what the store answers: every event page (any filters, any
//! cursor, small views that must fall back to the store), every incident list, and the
//! dashboard's market figures — checked against the store on generated histories.

use std::sync::Arc;

use kamiyo_api::views::{EventView, IncidentView, MarketView};
use kamiyo_core_models::testing::MemoryStore;
use kamiyo_core_models::{
    Coin, EventQuery, IncidentChange, IncidentQuery, IncidentStatus, IncidentStore, IngestBatch,
    MarketStore, Order, ProtocolId, Severity, ThreatType, Timestamp,
};
use proptest::prelude::*;

use crate::support::{NOW, incident, step};

const ASSETS: [&str; 3] = ["ETH", "BTC", "JELLY"];
const THREATS: [ThreatType; 3] = [
    ThreatType::OracleDeviation,
    ThreatType::LargeLiquidation,
    ThreatType::MlAnomaly,
];
const SEVERITIES: [Severity; 3] = [Severity::Medium, Severity::High, Severity::Critical];

/// `n` incident steps over `incidents` incidents, some of them another protocol's, some
/// resolving.
fn history(n: usize, incidents: usize, seed: u64) -> Vec<IngestBatch> {
    let acme = ProtocolId::parse("acme-perps").unwrap();
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut batches = Vec::new();
    for k in 0..n {
        let j = (next() % incidents as u64) as usize;
        let mut i = incident(
            j,
            SEVERITIES[j % 3],
            THREATS[(j / 3) % 3],
            ASSETS[(j / 9) % 3],
            NOW - 2_000_000,
        );
        if j.is_multiple_of(4) {
            i.key = i.key.clone().in_protocol(&acme);
            i.id = kamiyo_core_models::Incident::derive_id(&i.key, i.first_seen);
            i.protocol = acme.clone();
        }
        i.last_seen = Timestamp(NOW - 1_000_000 + k as i64 * 1000);
        let change = if next() % 5 == 0 {
            i.status = IncidentStatus::Resolved;
            i.resolved_at = Some(i.last_seen);
            IncidentChange::Resolved
        } else {
            IncidentChange::Updated
        };
        let mut u = step(&i, change, i.last_seen.0);
        u.event.protocol = i.protocol.clone();
        batches.push(IngestBatch {
            updates: vec![u],
            ..IngestBatch::default()
        });
    }
    batches
}

fn ids(v: &[kamiyo_core_models::StoredEvent]) -> Vec<i64> {
    v.iter().map(|e| e.seq).collect()
}

fn query_strategy() -> impl Strategy<Value = EventQuery> {
    (
        prop::option::of(0..2usize),
        prop::option::of(0..3usize),
        prop::option::of(0..3usize),
        prop::option::of(0..3usize),
        prop::option::of(0..160i64),
        prop::option::of(0..120i64),
        1..60u32,
    )
        .prop_map(|(p, s, t, a, before, since, limit)| EventQuery {
            protocol: p.map(|p| {
                if p == 0 {
                    ProtocolId::HYPERLIQUID
                } else {
                    ProtocolId::parse("acme-perps").unwrap()
                }
            }),
            min_severity: s.map(|s| SEVERITIES[s]),
            threat_type: t.map(|t| THREATS[t]),
            asset: a.map(|a| Coin::new(ASSETS[a]).unwrap()),
            since: since.map(|m| Timestamp(NOW - 1_000_000 + m * 1000)),
            before_seq: before,
            after_seq: None,
            order: Order::Desc,
            limit,
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any page from a view (of any size, so some pages must come from the store) is the
    /// store's page, event for event, and encodes to the same JSON.
    #[test]
    fn event_pages_equal_the_stores(
        seed in any::<u64>(),
        capacity in 1..200usize,
        queries in prop::collection::vec(query_strategy(), 1..12),
    ) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let batches = history(150, 40, seed);
            let (early, late) = batches.split_at(100);
            for b in early {
                store.commit(b).await.unwrap();
            }
            let view = EventView::new(capacity);
            view.sync(&store, 0).await.unwrap();
            // Events committed after the view was filled: the hub announces them.
            let mut last = 0;
            for b in late {
                last = store.commit(b).await.unwrap().last().map_or(last, |e| e.seq);
            }
            for q in &queries {
                let got = view.query(&store, last, q).await.unwrap();
                let want = store.events(q).await.unwrap();
                let got_ids: Vec<i64> = got.iter().map(|e| e.seq).collect();
                prop_assert_eq!(&got_ids, &ids(&want), "{:?}", q);
                for (g, w) in got.iter().zip(&want) {
                    let json = serde_json::to_vec(&kamiyo_api::dto::EventResponse::from(w)).unwrap();
                    prop_assert_eq!(&g.json[..], &json[..]);
                }
            }
            Ok(())
        })?;
    }

    /// Any incident list from a view (small views fall back to the store) is the store's,
    /// before and after the incidents change.
    #[test]
    fn incident_lists_equal_the_stores(
        seed in any::<u64>(),
        capacity in 1..60usize,
        status in prop::option::of(prop::bool::ANY),
        asset in prop::option::of(0..3usize),
        protocol in prop::option::of(prop::bool::ANY),
        seen in prop::option::of(0..160i64),
        limit in 1..50u32,
    ) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let batches = history(150, 40, seed);
            let events = EventView::new(500);
            let view = IncidentView::new(capacity);
            let q = IncidentQuery {
                // A caller's history floor, anywhere across the steps' times.
                seen_since: seen.map(|k| Timestamp(NOW - 1_000_000 + k * 1000)),
                protocol: protocol.map(|p| if p { ProtocolId::HYPERLIQUID } else { ProtocolId::parse("acme-perps").unwrap() }),
                status: status.map(|s| if s { IncidentStatus::Open } else { IncidentStatus::Resolved }),
                asset: asset.map(|a| Coin::new(ASSETS[a]).unwrap()),
                limit,
            };
            for (k, b) in batches.iter().enumerate() {
                let stored = store.commit(b).await.unwrap();
                if k % 37 == 0 || k == batches.len() - 1 {
                    events.sync(&store, stored.last().map_or(0, |e| e.seq)).await.unwrap();
                    view.sync(&store, &store, &events).await.unwrap();
                    let want: Vec<String> = store
                        .incidents(&q)
                        .await
                        .unwrap()
                        .iter()
                        .map(|i| i.id.to_string())
                        .collect();
                    if let Some(got) = view.list(&q) {
                        let got: Vec<String> = got.iter().map(|i| i.incident.id.to_string()).collect();
                        prop_assert_eq!(got, want, "after {} steps", k + 1);
                    } else {
                        // Not held: the caller reads the store; only when the view is full.
                        prop_assert!(capacity < 40);
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// The market figures follow rows stored after the first read, and leave the day's window.
#[tokio::test]
async fn market_figures_follow_the_store() {
    use kamiyo_core_models::Decimal;
    let store = MemoryStore::new();
    let mut b = crate::support::history();
    let hlp: kamiyo_core_models::Address = crate::support::HLP.parse().unwrap();
    store.commit(&b).await.unwrap();
    let view = Arc::new(MarketView::default());
    let now = Timestamp(NOW);
    view.sync(Arc::new(store.clone()), hlp, now).await.unwrap();
    let f = view.figures(None, now);
    let want = store
        .liquidations(None, None, now.plus_millis(-Timestamp::DAY), 1000)
        .await
        .unwrap();
    assert_eq!(f.liquidations.0, want.len());
    assert_eq!(
        f.liquidations.1,
        want.iter().map(|l| l.notional).sum::<Decimal>()
    );
    let points = store
        .vault_points(None, Some(hlp), now.plus_millis(-Timestamp::DAY), 10_000)
        .await
        .unwrap();
    assert_eq!(f.vault, kamiyo_api::views::vault_stats(&points));
    assert!(f.vault.2.is_some());
    // Newer rows after the first read: seen once MAX_STALE has passed.
    let newer: Vec<_> = want
        .iter()
        .take(3)
        .enumerate()
        .map(|(k, l)| {
            let mut l = l.clone();
            l.time = now.plus_millis(-(k as i64 + 1) * 60_000);
            l.tid += 10_000;
            l
        })
        .collect();
    store
        .commit(&IngestBatch {
            liquidations: newer,
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(EventView::MAX_STALE).await;
    // That look runs in the background; requests meanwhile get what is held.
    view.sync(Arc::new(store.clone()), hlp, now).await.unwrap();
    let started = std::time::Instant::now();
    while view.figures(None, now).liquidations.0 != want.len() + 3 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "never seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Back-dated rows (a backfill): seen at the next full read.
    for l in &mut b.liquidations {
        l.tid += 20_000;
    }
    b.deviations.clear();
    b.vault_points.clear();
    b.positions.clear();
    store.commit(&b).await.unwrap();
    let reloading = Arc::new(MarketView::new(std::time::Duration::ZERO));
    reloading
        .sync(Arc::new(store.clone()), hlp, now)
        .await
        .unwrap();
    assert_eq!(
        reloading.figures(None, now).liquidations.0,
        2 * want.len() + 3
    );
    let acme = ProtocolId::parse("acme-perps").unwrap();
    assert_eq!(view.figures(Some(&acme), now).liquidations.0, 0);
    // A day later everything has left the window.
    let later = now.plus_millis(2 * Timestamp::DAY);
    assert_eq!(view.figures(None, later).liquidations.0, 0);
    assert_eq!(view.figures(None, later).vault, (None, None, None));
}
