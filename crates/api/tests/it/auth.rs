//! Keys, rate limits, CORS and size limits.

use kamiyo_core_models::{ApiKeyStore, Timestamp};

use crate::support::{TestApi, config};

#[tokio::test]
async fn keys_required_beyond_loopback_hashed_and_revocable() {
    let api = TestApi::start(kamiyo_api::ApiConfig {
        require_keys: true,
        ..config()
    })
    .await;
    // Public paths stay open, whatever key is sent with the request.
    assert_eq!(api.get("/health").await.status(), 200);
    let probe = api
        .http
        .get(api.url("/health"))
        .bearer_auth("kmy_not_a_key")
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    assert_eq!(api.get("/").await.status(), 200);
    let r = api.get("/security/events").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("www-authenticate"));

    let k =
        kamiyo_api::auth::generate_key("test", kamiyo_core_models::KeyScope::Read, Timestamp(0));
    assert!(
        !k.record.hash.contains(&k.secret),
        "only the hash is stored"
    );
    assert_eq!(k.record.hash, kamiyo_api::auth::hash_key(&k.secret));
    api.store.insert_key(&k.record).await.unwrap();
    let ok = api
        .http
        .get(api.url("/security/events"))
        .bearer_auth(&k.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let ok = api
            .http
            .get(api.url("/security/events"))
            .header("Authorization", format!("{scheme} {}", k.secret))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{scheme}");
    }
    // Another scheme is not a key.
    let basic = api
        .http
        .get(api.url("/security/events"))
        .header("Authorization", format!("Basic {}", k.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let ok = api
        .http
        .get(api.url("/feeds"))
        .header("X-API-Key", &k.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // A wrong key with the right prefix, and garbage, are refused.
    let mut wrong = k.secret.clone();
    wrong.pop();
    wrong.push(if k.secret.ends_with('0') { '1' } else { '0' });
    for bad in [wrong.as_str(), "kmy_", "Bearer", "x"] {
        let r = api
            .http
            .get(api.url("/security/events"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
    }
    // Revocation: a server that has not cached the key refuses it at once.
    assert!(
        api.store
            .revoke_key(&k.record.prefix, Timestamp(1))
            .await
            .unwrap()
    );
    let fresh = TestApi::start(kamiyo_api::ApiConfig {
        require_keys: true,
        ..config()
    })
    .await;
    fresh.store.insert_key(&k.record).await.unwrap();
    fresh
        .store
        .revoke_key(&k.record.prefix, Timestamp(1))
        .await
        .unwrap();
    let r = fresh
        .http
        .get(fresh.url("/security/events"))
        .bearer_auth(&k.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let api = TestApi::start(kamiyo_api::ApiConfig {
        rate_limit_per_minute: 5,
        ..config()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(api.get("/security/events").await.status(), 200);
    }
    let r = api.get("/security/events").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["code"], "rate_limited");
    // Health probes are not limited.
    assert_eq!(api.get("/health").await.status(), 200);
}

#[tokio::test]
async fn cors_allow_list_and_size_limits() {
    let api = TestApi::start(config()).await;
    let allowed = api
        .http
        .get(api.url("/feeds"))
        .header("Origin", "https://allowed.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://allowed.example"
    );
    let other = api
        .http
        .get(api.url("/feeds"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        403,
        "a foreign origin is refused, not only left unreadable"
    );
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let pre = api
        .http
        .request(reqwest::Method::OPTIONS, api.url("/security/events"))
        .header("Origin", "https://allowed.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert!(
        pre.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );

    let long = format!("/security/events?asset={}", "A".repeat(5000));
    let r = api.get(&long).await;
    assert_eq!(r.status(), 400);
    let big = api
        .http
        .post(api.url("/security/events"))
        .body(vec![b'x'; 1 << 20])
        .send()
        .await
        .unwrap();
    assert!(big.status().is_client_error(), "{}", big.status());
}

/// Failed authentications are limited per address before any key is looked up: after
/// `FAILED_AUTH_PER_MINUTE` bad keys the address gets 429 with Retry-After.
#[tokio::test]
async fn failed_authentication_is_rate_limited_per_address() {
    let api = TestApi::start(kamiyo_api::ApiConfig {
        require_keys: true,
        rate_limit_per_minute: 0,
        ..config()
    })
    .await;
    let bad = || {
        api.http
            .get(api.url("/security/events"))
            .bearer_auth("kmy_wrong")
            .send()
    };
    for i in 0..kamiyo_api::auth::FAILED_AUTH_PER_MINUTE {
        assert_eq!(bad().await.unwrap().status(), 401, "attempt {i}");
    }
    let r = bad().await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Public paths stay open to the same address.
    assert_eq!(api.get("/health").await.status(), 200);
}

/// `max_body_bytes` is enforced from the Content-Length header, before the body is read.
#[tokio::test]
async fn bodies_above_the_limit_are_refused_unread() {
    let api = TestApi::start(config()).await;
    let limit = config().max_body_bytes;
    let r = api
        .http
        .get(api.url("/security/events"))
        .body(vec![b'x'; limit + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // A small body on a GET is tolerated (ignored) as before.
    let r = api
        .http
        .get(api.url("/security/events"))
        .body(vec![b'x'; 16])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Sends a raw request (headers under the test's control) and returns the status code.
async fn raw_status(api: &TestApi, lines: &[String]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    let req = format!("{}\r\n\r\n", lines.join("\r\n"));
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

#[tokio::test]
async fn dns_rebinding_and_cross_origin_reads_are_refused() {
    let api = TestApi::start(config()).await;
    let port = api.addr.port();
    let get = |host: &str, path: &str, origin: Option<&str>| {
        let mut l = vec![
            format!("GET {path} HTTP/1.1"),
            format!("Host: {host}"),
            "Connection: close".to_owned(),
        ];
        if let Some(o) = origin {
            l.push(format!("Origin: {o}"));
        }
        l
    };
    // The keyless loopback server answers to its loopback names only: a page on a rebound
    // domain reaches the socket, but under the attacker's name.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            raw_status(&api, &get(&host, "/feeds", None)).await,
            200,
            "{host}"
        );
    }
    assert_eq!(
        raw_status(
            &api,
            &get(&format!("rebind.evil.example:{port}"), "/feeds", None)
        )
        .await,
        421
    );
    assert_eq!(
        raw_status(&api, &get("rebind.evil.example", "/security/events", None)).await,
        421
    );
    // A page of another origin cannot read the API …
    let me = format!("127.0.0.1:{port}");
    assert_eq!(
        raw_status(
            &api,
            &get(&me, "/security/events", Some("https://evil.example"))
        )
        .await,
        403
    );
    // … while the dashboard's own origin and an allowed CORS origin can.
    assert_eq!(
        raw_status(
            &api,
            &get(&me, "/security/events", Some(&format!("http://{me}")))
        )
        .await,
        200
    );
    assert_eq!(
        raw_status(
            &api,
            &get(&me, "/security/events", Some("https://allowed.example"))
        )
        .await,
        200
    );
    // /ws: the upgrade is refused for a foreign origin, accepted for the server's own.
    let upgrade = |origin: &str| {
        vec![
            "GET /ws HTTP/1.1".to_owned(),
            format!("Host: {me}"),
            "Upgrade: websocket".to_owned(),
            "Connection: Upgrade".to_owned(),
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            "Sec-WebSocket-Version: 13".to_owned(),
            format!("Origin: {origin}"),
        ]
    };
    assert_eq!(
        raw_status(&api, &upgrade("https://evil.example")).await,
        403
    );
    assert_eq!(raw_status(&api, &upgrade("null")).await, 403);
    assert_eq!(
        raw_status(&api, &upgrade(&format!("http://{me}"))).await,
        101
    );
    // Without an allow-list (a keyed server bound beyond loopback), any host is answered.
    let open = TestApi::start(kamiyo_api::ApiConfig {
        allowed_hosts: None,
        ..config()
    })
    .await;
    let host = format!("monitor.internal:{}", open.addr.port());
    assert_eq!(raw_status(&open, &get(&host, "/feeds", None)).await, 200);
}
