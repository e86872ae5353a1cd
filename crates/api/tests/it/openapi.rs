//! The served OpenAPI document matches the routes, and every documented route answers.

use std::collections::BTreeSet;

use crate::support::seeded;

#[tokio::test]
async fn document_lists_exactly_the_registered_routes() {
    let api = seeded().await;
    let doc = api.json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let registered: BTreeSet<(String, String)> = kamiyo_api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, registered);
    // Every referenced schema exists.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| *c != '"').collect();
        assert!(schemas.contains_key(&name), "missing schema {name}");
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let api = seeded().await;
    let incident = api.json("/security/incidents?limit=1").await["incidents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in kamiyo_api::ROUTES {
        let concrete = path.replace("{id}", &incident);
        if *method != "GET" {
            // Served (answered by its handler, whatever the verdict), not a 404 or 405 of the router.
            let r = api
                .http
                .request(method.parse().unwrap(), api.url(&concrete))
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_ne!(status, 405, "{method} {concrete}");
            assert!(
                !body["detail"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("no route"),
                "{method} {concrete}: {body}"
            );
            continue;
        }
        let r = api.get(&concrete).await;
        if concrete == "/ws" {
            // A plain GET without the upgrade headers: 426 Upgrade Required, not a 404.
            assert_eq!(r.status(), 426, "{concrete}");
            assert_eq!(r.headers()["upgrade"], "websocket");
        } else if concrete == "/ml/forecast" {
            // Served, and documented as 409 while the store holds under 48 hours of HLP history.
            assert_eq!(r.status(), 409, "{concrete}");
        } else {
            assert_eq!(r.status(), 200, "{concrete}");
        }
    }
}

/// The document is a contract a generated client can trust (found by schemathesis before):
/// every operation documents the gate's answers, 401 wherever a key can be required; query
/// parameters carry their real types, and values valid by the schema are accepted; a
/// documented path asked with another method answers 405 with `Allow`.
#[tokio::test]
async fn the_document_states_types_errors_and_methods() {
    let api = seeded().await;
    let doc = api.json("/openapi.json").await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some((method, op)) = item.as_object().unwrap().iter().next() else {
            continue;
        };
        if method != "get" {
            assert!(
                op["responses"].get("403").is_some(),
                "{path} {method} lacks 403"
            );
        }
        for code in ["400", "413", "429"] {
            assert!(op["responses"].get(code).is_some(), "{path} lacks {code}");
        }
        let public = ["/health", "/ready", "/"].contains(&path.as_str());
        assert_eq!(
            op["responses"].get("401").is_some(),
            !public,
            "{path} and 401"
        );
        for p in op["parameters"].as_array().into_iter().flatten() {
            if ["limit", "hours"].contains(&p["name"].as_str().unwrap()) {
                assert_eq!(p["schema"]["type"], "integer", "{path} {}", p["name"]);
            }
        }
    }
    let events = &doc["paths"]["/security/events"]["get"]["parameters"];
    let severity = events
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "severity")
        .unwrap();
    assert!(severity["schema"]["enum"].as_array().unwrap().len() == 5);
    // Values the schema allows, at their edges, are accepted.
    for q in [
        "/security/events?limit=1000&severity=critical&since=1969-07-20T20:17:40Z&cursor=e1",
        "/security/events?since=0001-01-01T00:00:00Z&asset=kPEPE",
        "/security/incidents?limit=500&status=resolved",
        "/security/liquidations?hours=8760&limit=1000",
        "/ml/forecast?hours=48&series=hlp_pnl",
    ] {
        let r = api.get(q).await;
        assert!(r.status() != 400, "{q}: {}", r.status());
    }
    // Another method on a documented path: 405, with the method it has.
    let r = api
        .http
        .delete(api.url("/security/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let r = api
        .http
        .post(api.url("/security/incidents/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = api.get("/security/incidents/abc/resolve").await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = api.http.put(api.url("/silences")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_eq!(api.get("/no/such/path").await.status(), 404);
}
