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

/// PagerDuty Events API v2: trigger with the incident id as `dedup_key` and the payload fields
/// PagerDuty requires (summary ≤ 1,024, source, severity); the resolution resolves the same
/// key; 202 carries the key back; 400 is permanent, 429 waits.
#[tokio::test]
async fn pagerduty_events_v2_trigger_and_resolve() {
    use kamiyo_alerts::channels::PagerDuty;
    use kamiyo_core_models::{IncidentChange, Severity};
    let a = alert("oncall-pd");
    let rx = Receiver::start(|_, req| {
        let v = req.json();
        Reply::new(
            202,
            &serde_json::json!({"status": "success", "message": "Event processed", "dedup_key": v["dedup_key"]}).to_string(),
        )
    })
    .await;
    let key = "0123456789abcdef0123456789ABCDEF";
    let pd = PagerDuty::new("oncall-pd", &rx.url("/v2/enqueue"), Secret::new(key)).unwrap();
    let body = pd.body(&Message::of(&a));
    let mut shown = body.clone();
    shown["routing_key"] = "<routing key>".into();
    snapshot("pagerduty.json", &pretty(&shown));
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], a.update.incident.id.as_str());
    assert_eq!(body["payload"]["severity"], "critical");
    assert!(body["payload"]["summary"].as_str().unwrap().chars().count() <= 1024);
    let receipt = pd.notify(&a).await.unwrap();
    assert_eq!(receipt.status, Some(202));
    assert_eq!(
        receipt.remote_id.as_deref(),
        Some(a.update.incident.id.as_str())
    );
    let r = &rx.received()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v2/enqueue")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["routing_key"], key);

    let mut resolved = a.clone();
    resolved.update = crate::support::update(
        0,
        IncidentChange::Resolved,
        Severity::Critical,
        crate::support::T_OPEN + 60_000,
    );
    pd.notify(&resolved).await.unwrap();
    let r = rx.received()[1].json();
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(r["dedup_key"], a.update.incident.id.as_str());
    assert!(r.get("payload").is_none());

    // PagerDuty's answers to a bad event and to throttling.
    let bad = Receiver::start(|_, _| {
        Reply::new(400, r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#)
    })
    .await;
    let e = PagerDuty::new("x", &bad.url("/v2/enqueue"), Secret::new(key))
        .unwrap()
        .notify(&a)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NotifyError::Permanent(t) if t.contains("routing_key")),
        "{e:?}"
    );
    let busy = Receiver::start(|_, _| Reply::new(429, "")).await;
    let e = PagerDuty::new("x", &busy.url("/v2/enqueue"), Secret::new(key))
        .unwrap()
        .notify(&a)
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::RateLimited { .. }), "{e:?}");
}

/// Opsgenie Alert API v2: create with `alias` = incident id and `GenieKey` auth; an
/// escalation also raises the priority; the resolution closes by alias; 202 carries the
/// request id; a bad key (401/403/422) is permanent.
#[tokio::test]
async fn opsgenie_create_escalate_and_close_by_alias() {
    use kamiyo_alerts::channels::Opsgenie;
    use kamiyo_core_models::{IncidentChange, Severity};
    let a = alert("oncall-og");
    let rx = Receiver::start(|_, _| {
        Reply::new(202, r#"{"result":"Request will be processed","took":0.107,"requestId":"43a29c5c-3dbf-4fa4-9c26-f4f71023e120"}"#)
    })
    .await;
    let og = Opsgenie::new(
        "oncall-og",
        &rx.url(""),
        Secret::new("eb243592-faa2-4ba2-a551q-1afdf565c889"),
    )
    .unwrap();
    let calls = Opsgenie::calls(&Message::of(&a));
    assert_eq!(calls.len(), 1);
    snapshot("opsgenie.json", &pretty(&calls[0].body));
    assert_eq!(calls[0].body["alias"], a.update.incident.id.as_str());
    assert_eq!(calls[0].body["priority"], "P1");
    assert!(calls[0].body["message"].as_str().unwrap().chars().count() <= 130);
    let receipt = og.notify(&a).await.unwrap();
    assert_eq!(
        receipt.remote_id.as_deref(),
        Some("43a29c5c-3dbf-4fa4-9c26-f4f71023e120")
    );
    let r = &rx.received()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v2/alerts"));
    assert_eq!(
        r.header("authorization"),
        Some("GenieKey eb243592-faa2-4ba2-a551q-1afdf565c889")
    );

    let id = a.update.incident.id.to_string();
    let mut esc = a.clone();
    esc.update = crate::support::update(
        0,
        IncidentChange::Escalated,
        Severity::Critical,
        crate::support::T_OPEN + 60_000,
    );
    og.notify(&esc).await.unwrap();
    let got = rx.received();
    assert_eq!(got[1].path, "/v2/alerts");
    assert_eq!(
        (got[2].path.as_str(), got[2].query.as_str()),
        (
            &*format!("/v2/alerts/{id}/priority"),
            "identifierType=alias"
        )
    );
    assert_eq!(got[2].json()["priority"], "P1");
    let mut res = a.clone();
    res.update = crate::support::update(
        0,
        IncidentChange::Resolved,
        Severity::Critical,
        crate::support::T_OPEN + 120_000,
    );
    og.notify(&res).await.unwrap();
    let close = &rx.received()[3];
    assert_eq!(
        (close.path.as_str(), close.query.as_str()),
        (&*format!("/v2/alerts/{id}/close"), "identifierType=alias")
    );
    assert_eq!(close.json()["source"], "kamiyo");

    let denied = Receiver::start(|_, _| {
        Reply::new(
            422,
            r#"{"message":"Key format is not valid!","took":0.001,"requestId":"x"}"#,
        )
    })
    .await;
    let e = Opsgenie::new("x", &denied.url(""), Secret::new("bad"))
        .unwrap()
        .notify(&a)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NotifyError::Permanent(t) if t.contains("Key format")),
        "{e:?}"
    );
}

/// A group update names the thread's market and severity and lists the related incidents on
/// every channel; the webhook's type is `incident.group_update`.
#[test]
fn group_updates_list_the_related_incidents() {
    use kamiyo_core_models::{IncidentChange, RelatedIncident, Severity, StableId, Timestamp};
    let mut a = alert("ops");
    a.related = vec![
        RelatedIncident {
            incident_id: StableId::parse("inc_1").unwrap(),
            title: "JELLY mark +20.1% in 10 min on a thin market".into(),
            severity: Severity::Critical,
            change: IncidentChange::Opened,
            time: Timestamp(crate::support::T_OPEN + 60_000),
        },
        RelatedIncident {
            incident_id: StableId::parse("inc_2").unwrap(),
            title: "HLP child 0x2e3d…dd14 holds 90.2% of JELLY open interest ($3,781,000)".into(),
            severity: Severity::High,
            change: IncidentChange::Resolved,
            time: Timestamp(crate::support::T_OPEN + 120_000),
        },
    ];
    let m = Message::of(&a);
    assert!(
        m.headline
            .starts_with("[CRITICAL] Group update · 2 related incident(s) on JELLY · "),
        "{}",
        m.headline
    );
    assert_eq!(m.related.len(), 2);
    assert!(
        m.related[1].starts_with("high resolved "),
        "{:?}",
        m.related
    );
    assert!(m.plain_text().contains("Related incidents on this market:"));
    assert!(
        Slack::body(&m)
            .to_string()
            .contains("Related incidents on this market")
    );
    assert!(Telegram::html(&m).contains("• critical opened"));
    assert!(
        Discord::body(&m)
            .to_string()
            .contains("Related incidents on this market")
    );
    let w = Webhook::body(&a);
    assert_eq!(w["type"], "incident.group_update");
    assert_eq!(w["related"].as_array().unwrap().len(), 2);
}

/// The Python check of a received alert in docs/EVENT-LOG.md, run as printed there, accepts the
/// webhook body of the snapshot (its entry is the log's first: the genesis is its previous
/// chain) and refuses it with a wrong previous chain or one changed field.
#[test]
fn the_documented_alert_check_accepts_a_webhook_body_as_sent() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let doc = std::fs::read_to_string(format!("{root}/docs/EVENT-LOG.md")).unwrap();
    let snippet = doc
        .split("```python\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("docs/EVENT-LOG.md has the Python check");
    let body = pretty(&Webhook::body(&alert("hook")));
    let script = format!(
        "{snippet}\nimport sys\nb = json.loads(sys.stdin.read())\nbad = json.loads(json.dumps(b))\nbad['event']['severity'] = 'low'\nprint(check_alert(b), check_alert(b, '0' * 64), check_alert(b, '1' * 64), check_alert(bad))"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (CI installs it)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True True False False",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
