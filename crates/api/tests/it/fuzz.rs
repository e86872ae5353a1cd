//! Random parameters at every route: never a 5xx, never a panic, and every error is a
//! problem document with a stable code.

use proptest::prelude::*;

use crate::support::seeded;

const PARAMS: &[&str] = &[
    "severity",
    "threat_type",
    "asset",
    "since",
    "cursor",
    "limit",
    "hours",
    "status",
    "last_event_id",
    "api_key",
    "bogus",
    "",
    "limit[]",
    "a%00b",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("critical".to_owned()),
        Just("ETH".to_owned()),
        Just("oracle_deviation".to_owned()),
        Just("open".to_owned()),
        Just("e12".to_owned()),
        Just("2025-03-26T15:00:00Z".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("NaN".to_owned()),
        Just("1e308".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("' OR 1=1 --".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        "\\PC{0,40}",
        "[a-zA-Z0-9_:.-]{0,80}",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request() -> impl Strategy<Value = String> {
    let routes: Vec<String> = kamiyo_api::ROUTES
        .iter()
        .map(|(_, p)| (*p).to_owned())
        .collect();
    (
        proptest::sample::select(routes),
        value(),
        proptest::collection::vec((proptest::sample::select(PARAMS), value()), 0..4),
    )
        .prop_map(|(route, id, params)| {
            let path = route.replace("{id}", &encode(&id));
            let q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            if q.is_empty() {
                path
            } else {
                format!("{path}?{}", q.join("&"))
            }
        })
}

#[test]
fn random_parameters_never_cause_a_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(seeded());
    let _guard = rt.enter();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 600,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&request(), |path| {
            let (status, ctype) = rt.block_on(async {
                let r = api.http.get(api.url(&path)).send().await.unwrap();
                let ctype = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                let status = r.status().as_u16();
                let body = r.text().await.unwrap();
                if status >= 400 {
                    let p: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| {
                        panic!("{path}: {status} body is not JSON ({e}): {body}")
                    });
                    assert!(p["code"].is_string(), "{path}: {body}");
                }
                (status, ctype)
            });
            prop_assert!(status < 500, "{} answered {}", path, status);
            if status >= 400 {
                prop_assert_eq!(ctype, "application/problem+json");
            }
            Ok(())
        })
        .unwrap();
}
