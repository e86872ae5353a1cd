//! Every channel's exact payload (snapshots), and a real request to a loopback receiver that
//! checks method, path, headers and body as the vendor documents them.

use std::time::Duration;

use kamiyo_alerts::channels::{Discord, SendGrid, Slack, Telegram, Webhook, webhook};
use kamiyo_alerts::{Message, Secret};
use kamiyo_core_models::{Notifier, NotifyError};
use kamiyo_testing::receiver::{Receiver, Reply};

use crate::support::{alert, pretty, snapshot};

#[tokio::test]
async fn discord_embed() {
    let a = alert("ops-discord");
    let body = Discord::body(&Message::of(&a));
    snapshot("discord.json", &pretty(&body));
    // Documented limits.
    let e = &body["embeds"][0];
    assert!(e["title"].as_str().unwrap().chars().count() <= 256);
    assert!(e["fields"].as_array().unwrap().len() <= 25);
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));

    let rx = Receiver::start(|_, _| Reply::new(200, r#"{"id":"1311111111111111111"}"#)).await;
    let d = Discord::new("ops-discord", Secret::new(rx.url("/api/webhooks/123/tok"))).unwrap();
    let receipt = d.notify(&a).await.unwrap();
    assert_eq!(receipt.remote_id.as_deref(), Some("1311111111111111111"));
    let r = &rx.received()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/webhooks/123/tok");
    assert_eq!(r.query, "wait=true");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), body);
}

#[tokio::test]
async fn slack_block_kit() {
    let a = alert("ops-slack");
    let body = Slack::body(&Message::of(&a));
    snapshot("slack.json", &pretty(&body));
    let header = &body["blocks"][0];
    assert_eq!(header["type"], "header");
    assert!(header["text"]["text"].as_str().unwrap().chars().count() <= 150);
    // mrkdwn is escaped: the title's "<script>&" cannot become markup or a link.
    let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(section.contains("&lt;script&gt;&amp;"), "{section}");

    let rx = Receiver::start(|_, _| Reply::new(200, "ok")).await;
    let s = Slack::new("ops-slack", Secret::new(rx.url("/services/T0/B0/x"))).unwrap();
    s.notify(&a).await.unwrap();
    let r = &rx.received()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/services/T0/B0/x")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), body);
}

#[tokio::test]
async fn telegram_send_message_html() {
    let a = alert("ops-telegram");
    let rx = Receiver::start(|_, _| {
        Reply::new(
            200,
            r#"{"ok":true,"result":{"message_id":42,"chat":{"id":-1001}}}"#,
        )
    })
    .await;
    let t = Telegram::new(
        "ops-telegram",
        &rx.url(""),
        Secret::new("123456:ABC-DEF"),
        "-1001234567890",
    )
    .unwrap();
    assert!(t.is_group());
    let body = t.body(&Message::of(&a));
    snapshot("telegram.json", &pretty(&body));
    let html = body["text"].as_str().unwrap();
    assert!(html.contains("&lt;script&gt;&amp;") && !html.contains("<script>"));
    let receipt = t.notify(&a).await.unwrap();
    assert_eq!(receipt.remote_id.as_deref(), Some("42"));
    let r = &rx.received()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/bot123456:ABC-DEF/sendMessage");
    assert_eq!(r.json(), body);
    assert_eq!(r.json()["parse_mode"], "HTML");
}

#[tokio::test]
async fn sendgrid_mail_send() {
    let a = alert("ops-mail");
    let rx = Receiver::start(|_, _| Reply::new(202, "").header("X-Message-Id", "sg-abc123")).await;
    let s = SendGrid::new(
        "ops-mail",
        &rx.url(""),
        Secret::new("SG.test-key"),
        "alerts@kamiyo.example",
        &["risk@fund.example".into(), "oncall@fund.example".into()],
    )
    .unwrap();
    let body = s.body(&Message::of(&a));
    snapshot("sendgrid.json", &pretty(&body));
    assert_eq!(body["content"][0]["type"], "text/plain");
    assert_eq!(body["content"][1]["type"], "text/html");
    let receipt = s.notify(&a).await.unwrap();
    assert_eq!(receipt.status, Some(202));
    assert_eq!(receipt.remote_id.as_deref(), Some("sg-abc123"));
    let r = &rx.received()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v3/mail/send")
    );
    assert_eq!(r.header("authorization"), Some("Bearer SG.test-key"));
    assert_eq!(r.json(), body);
}

#[tokio::test]
async fn webhook_is_signed_and_verifiable() {
    let a = alert("ops-hook");
    let body = Webhook::body(&a);
    snapshot("webhook.json", &pretty(&body));
    let rx = Receiver::start(|_, _| Reply::new(204, "")).await;
    let w = Webhook::new(
        "ops-hook",
        Secret::new(rx.url("/kamiyo")),
        Secret::new("whsec_test"),
    )
    .unwrap();
    w.notify(&a).await.unwrap();
    let r = &rx.received()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/kamiyo"));
    assert_eq!(
        r.header(&webhook::IDEMPOTENCY_HEADER.to_ascii_lowercase()),
        Some(a.idempotency_key.as_str())
    );
    assert_eq!(r.header("kamiyo-event"), Some("incident.opened"));
    let sig = r.header("kamiyo-signature").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The receiver's check, on the raw bytes received.
    webhook::verify(b"whsec_test", sig, &r.body, now, webhook::TOLERANCE_SECS).unwrap();
    assert!(webhook::verify(b"wrong", sig, &r.body, now, 300).is_err());
    assert_eq!(r.json(), body);
}

#[tokio::test]
async fn responses_map_to_retry_decisions() {
    let rx = Receiver::start(|n, _| match n {
        0 => Reply::new(
            429,
            r#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
        )
        .header("Retry-After", "2"),
        1 => Reply::new(
            429,
            r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#,
        ),
        2 => Reply::new(503, "upstream down"),
        3 => Reply::new(404, r#"{"message":"Unknown Webhook","code":10015}"#),
        _ => Reply::new(200, "{}").delay(Duration::from_secs(30)),
    })
    .await;
    let d = Discord::new("d", Secret::new(rx.url("/api/webhooks/1/secret-token"))).unwrap();
    let a = alert("d");
    assert_eq!(
        d.notify(&a).await,
        Err(NotifyError::RateLimited {
            retry_after_ms: 2000
        }),
        "the Retry-After header wins"
    );
    assert_eq!(
        d.notify(&a).await,
        Err(NotifyError::RateLimited {
            retry_after_ms: 250
        }),
        "else the body's retry_after"
    );
    assert!(matches!(d.notify(&a).await, Err(NotifyError::Transient(m)) if m.contains("503")));
    let e = d.notify(&a).await.unwrap_err();
    assert!(
        matches!(&e, NotifyError::Permanent(m) if m.contains("Unknown Webhook")),
        "{e}"
    );
    // Nothing in an error reveals the webhook token.
    let dead = Discord::new(
        "d",
        Secret::new("http://127.0.0.1:9/api/webhooks/1/secret-token"),
    )
    .unwrap();
    let e = dead.notify(&a).await.unwrap_err();
    assert!(matches!(e, NotifyError::Transient(_)));
    assert!(!e.to_string().contains("secret-token"), "{e}");
    // A secret's Debug and serialized forms are masked.
    let s = Secret::new("secret-token");
    assert_eq!(format!("{s:?}"), "\"***\"");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
}

/// A resolution never reads as an emergency: `[RESOLVED] … · was critical` on every channel,
/// the resolved colour, no "what to check".
#[test]
fn resolutions_read_as_resolved_on_every_channel() {
    use kamiyo_alerts::message::Message;
    use kamiyo_core_models::{IncidentChange, Severity};
    let mut a = crate::support::alert("ops");
    a.update = crate::support::update(
        0,
        IncidentChange::Resolved,
        Severity::Critical,
        crate::support::T_OPEN + 600_000,
    );
    let m = Message::of(&a);
    assert!(m.headline.starts_with("[RESOLVED] "), "{}", m.headline);
    assert!(m.headline.ends_with(" · was critical"), "{}", m.headline);
    assert!(!m.headline.contains("[CRITICAL]"));
    assert_eq!(m.colour(), 0x2E_A0_43);
    assert!(!m.plain_text().contains("What to check"));
    let slack = kamiyo_alerts::channels::slack::Slack::body(&m).to_string();
    assert!(slack.contains("[RESOLVED]") && !slack.contains("What to check"));
    let tg = kamiyo_alerts::channels::telegram::Telegram::html(&m);
    assert!(tg.starts_with("<b>[RESOLVED]"), "{tg}");
    let discord = kamiyo_alerts::channels::discord::Discord::body(&m).to_string();
    assert!(discord.contains("[RESOLVED]"));
    let subject = kamiyo_alerts::channels::email::subject(&m);
    assert!(subject.starts_with("kamiyo [RESOLVED]"), "{subject}");
}
