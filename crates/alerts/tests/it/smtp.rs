//! E-mail over a real SMTP conversation with a loopback server: STARTTLS and implicit TLS with
//! a certificate the client must verify, AUTH, the exact MIME parts.

use std::time::Duration;

use kamiyo_alerts::Secret;
use kamiyo_alerts::channels::{Smtp, SmtpSecurity, SmtpSettings};
use kamiyo_core_models::{Notifier, NotifyError};
use kamiyo_testing::smtp::{CA_PEM, Mode, SmtpServer};

use crate::support::alert;

fn settings(port: u16, security: SmtpSecurity, ca: bool) -> SmtpSettings {
    SmtpSettings {
        host: "localhost".into(),
        port,
        security,
        username: "kamiyo".into(),
        password: Secret::new("p@ss"),
        from: "kamiyo <alerts@kamiyo.example>".into(),
        to: vec!["risk@fund.example".into()],
        ca_pem: ca.then(|| CA_PEM.to_vec()),
    }
}

#[tokio::test]
async fn starttls_with_auth_delivers_a_multipart_message() {
    let server = SmtpServer::start(Mode::Starttls).await;
    let smtp = Smtp::new(
        "mail",
        &settings(server.port(), SmtpSecurity::Starttls, true),
    )
    .unwrap();
    let a = alert("mail");
    let receipt = smtp.notify(&a).await.unwrap();
    assert_eq!(receipt.status, Some(250));
    let mails = server.wait_for(1, Duration::from_secs(5)).await;
    let m = &mails[0];
    assert!(m.tls, "the message travelled over TLS");
    assert_eq!(m.auth, Some(("kamiyo".into(), "p@ss".into())));
    assert_eq!(m.from, "alerts@kamiyo.example");
    assert_eq!(m.to, vec!["risk@fund.example".to_owned()]);
    let d = &m.data;
    for needle in [
        "Subject: kamiyo [CRITICAL] Opened",
        &format!("Message-ID: <{}@kamiyo.alert>", a.idempotency_key),
        &format!("X-Kamiyo-Idempotency-Key: {}", a.idempotency_key),
        "Content-Type: multipart/alternative",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Type: text/html; charset=utf-8",
        "To: risk@fund.example",
    ] {
        assert!(d.contains(needle), "missing {needle:?} in\n{d}");
    }
    // The text part precedes the HTML part, as multipart/alternative requires.
    assert!(d.find("text/plain").unwrap() < d.find("text/html").unwrap());
}

#[tokio::test]
async fn implicit_tls_and_certificate_checks() {
    let server = SmtpServer::start(Mode::Tls).await;
    let smtp = Smtp::new("mail", &settings(server.port(), SmtpSecurity::Tls, true)).unwrap();
    smtp.notify(&alert("mail")).await.unwrap();
    assert!(server.wait_for(1, Duration::from_secs(5)).await[0].tls);
    // Without the CA the certificate is not trusted: the delivery fails, nothing is sent.
    let untrusted = Smtp::new("mail", &settings(server.port(), SmtpSecurity::Tls, false)).unwrap();
    let e = untrusted.notify(&alert("mail")).await.unwrap_err();
    assert!(matches!(
        e,
        NotifyError::Transient(_) | NotifyError::Permanent(_)
    ));
    assert_eq!(server.mails().len(), 1);
    // STARTTLS required but not offered: refused rather than sent in clear.
    let plain = SmtpServer::start(Mode::Plain).await;
    let smtp = Smtp::new(
        "mail",
        &settings(plain.port(), SmtpSecurity::Starttls, true),
    )
    .unwrap();
    assert!(smtp.notify(&alert("mail")).await.is_err());
    assert!(plain.mails().is_empty());
    // Bad addresses are configuration errors.
    let mut s = settings(1, SmtpSecurity::None, false);
    s.to = vec!["not an address".into()];
    assert!(matches!(
        Smtp::new("mail", &s),
        Err(NotifyError::Permanent(_))
    ));
}
