//! The cross-protocol correlator against PostgreSQL: the Mango Markets replay's shared steps
//! (two protocols, through their platform engines) correlated into one incident with its four
//! attack stages, stored, and alerted once to each tenant whose plan has cross-protocol
//! correlation and who follows one of its protocols — not to a plan without it, not to a
//! tenant of another protocol; growing does not alert again, and a correlator restarted from
//! its position (warmed with the steps before it) carries the same incident on.

use actix_web::http::StatusCode;
use kamiyo_core_models::{IngestBatch, MarketStore};
use kamiyo_platform::correlator::Correlator;
use kamiyo_platform::db::{Actor, StaffColumn};
use kamiyo_platform::fanout::{correlate_once, warm_correlator};
use kamiyo_platform::tenancy::TenantId;
use kamiyo_platform::tiers::TierMatrix;
use serde_json::json;

use crate::{T0, call, env, outbox, signup};

fn mango_steps() -> Vec<kamiyo_core_models::IncidentUpdate> {
    crate::replay_steps("mango-2022-10-11")
}

#[tokio::test]
async fn a_correlated_incident_is_stored_and_alerted_once_to_the_plans_that_have_it() {
    let e = env().await;
    let svc = e.service().await;
    let staff = Actor {
        actor: "staff:test".into(),
        ip: "cli".into(),
        at: T0,
    };
    // pro: Cloud Pro, follows Serum. basic: Cloud Basic (no correlation), follows Mango.
    // other: Cloud Enterprise, follows dYdX only.
    let mut keys = Vec::new();
    for (t, plan, protocol) in [
        ("pro", "cloud_pro", "serum"),
        ("basic", "cloud_basic", "mango-markets"),
        ("other", "cloud_enterprise", "dydx"),
    ] {
        let k = signup(&svc, t).await;
        e.staff_set(
            &TenantId::parse(t).unwrap(),
            StaffColumn::Plan,
            plan,
            &staff,
        )
        .await
        .unwrap();
        for (m, p) in [
            ("put", format!("/api/v1/subscriptions/{protocol}")),
            ("delete", "/api/v1/subscriptions/hyperliquid".to_owned()),
        ] {
            let (s, _, v) = call(&svc, m, &p, Some(&k), None).await;
            assert!(s.is_success(), "{t} {m} {p}: {s} {v}");
        }
        let (s, _, v) = call(
            &svc,
            "post",
            "/api/v1/channels",
            Some(&k),
            Some(json!({"name": "hook", "kind": "webhook", "url": format!("https://hooks.example/{t}"), "min_severity": "info"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        keys.push((t, k));
    }
    let steps = mango_steps();
    // Up to the first withdrawal: the correlation opens; the withdrawals come after a restart.
    let cut = steps
        .iter()
        .position(|u| u.event.threat_type.as_str() == "large_withdrawal")
        .unwrap();
    e.facts
        .commit(&IngestBatch {
            updates: steps[..cut].to_vec(),
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let tiers = TierMatrix::default_matrix().unwrap();
    let mut cor = Correlator::default();
    let pass = correlate_once(&e.app, &e.facts_app, &tiers, &mut cor, T0, 1000)
        .await
        .unwrap();
    assert_eq!(
        (pass.steps, pass.opened, pass.sent),
        (cut, 1, 1),
        "{pass:?}"
    );
    let stored = e.app.correlated(&["serum".into()], 10).await.unwrap();
    let [row] = stored.as_slice() else {
        panic!("{stored:?}")
    };
    assert_eq!(
        (row.pattern.as_str(), row.entity.as_str()),
        ("oracle_arbitrage", "asset:MNGO")
    );
    assert_eq!(row.protocols, ["mango-markets", "serum"]);
    let stages: serde_json::Value = serde_json::from_str(&row.stages).unwrap();
    for s in ["funding", "preparation", "exploitation"] {
        assert!(stages.get(s).is_some(), "{s}: {stages}");
    }
    assert!(stages.get("laundering").is_none(), "{stages}");
    // Only pro's channel has it.
    let pro = outbox(&svc, &keys[0].1).await;
    assert_eq!(pro.len(), 1, "{pro:?}");
    assert_eq!(pro[0]["incident_id"], row.correlated_id.as_str());
    assert!(outbox(&svc, &keys[1].1).await.is_empty());
    assert!(outbox(&svc, &keys[2].1).await.is_empty());
    // A restart: a new correlator warmed from the position; the withdrawals join the
    // same correlated incident (stored with its laundering stage), no second alert.
    e.facts
        .commit(&IngestBatch {
            updates: steps[cut..].to_vec(),
            ..IngestBatch::default()
        })
        .await
        .unwrap();
    let mut again = Correlator::default();
    let warmed = warm_correlator(&e.app, &e.facts_app, &mut again, 5000)
        .await
        .unwrap();
    assert_eq!(warmed, cut);
    let pass = correlate_once(&e.app, &e.facts_app, &tiers, &mut again, T0 + 1000, 1000)
        .await
        .unwrap();
    assert_eq!((pass.opened, pass.sent), (0, 0), "{pass:?}");
    let stored = e
        .app
        .correlated(&["mango-markets".into()], 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].members.len() > row.members.len());
    let stages: serde_json::Value = serde_json::from_str(&stored[0].stages).unwrap();
    assert!(stages.get("laundering").is_some(), "{stages}");
    assert_eq!(outbox(&svc, &keys[0].1).await.len(), 1);
    // The tenant reads it with its members and stages; a plan without the feature is told
    // which plan has it.
    let (s, _, v) = call(&svc, "get", "/api/v1/correlated", Some(&keys[0].1), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["pattern"], "oracle_arbitrage");
    assert_eq!(items[0]["stages"].as_object().unwrap().len(), 4, "{v}");
    let (s, _, v) = call(&svc, "get", "/api/v1/correlated", Some(&keys[1].1), None).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    let (s, _, v) = call(&svc, "get", "/api/v1/correlated", Some(&keys[2].1), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["items"].as_array().unwrap().is_empty(), "{v}");
}
