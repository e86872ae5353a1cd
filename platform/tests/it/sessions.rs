//! Signing in: sign-up mails a verification link (through the open core's SMTP channel, to a
//! loopback SMTP server), sessions are Secure/HttpOnly/SameSite=Strict cookies whose writes
//! need their CSRF token, sign-in attempts are throttled per account, and a password reset by
//! mailed link ends every session of the user.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use kamiyo_testing::smtp::{Mode, SmtpServer};
use serde_json::json;

use crate::env;

/// The message body with quoted-printable soft breaks and `=3D` undone.
fn text(mail: &kamiyo_testing::smtp::Mail) -> String {
    mail.data.replace("=\r\n", "").replace("=3D", "=")
}

/// The token in the mailed link.
fn token_of(mail: &kamiyo_testing::smtp::Mail) -> String {
    let body = text(mail);
    let at = body.find("token=").expect("a link with a token") + "token=".len();
    body[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

#[tokio::test]
async fn verify_sign_in_with_csrf_and_reset_by_mailed_link() {
    let e = env().await;
    let smtp = SmtpServer::start(Mode::Plain).await;
    let mailer = crate::loopback_mailer(smtp.port());
    let svc = e
        .service_customised(|s| {
            s.mailer = Some(Arc::new(mailer));
            s.public_url = "https://app.kamiyo.test".into();
        })
        .await;
    let (s, _, v) = crate::call(&svc, "post", "/api/v1/signup", None, Some(json!({"tenant": "acme", "name": "Acme", "email": "Ops@Acme.example", "password": "first long password"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["verification"], "sent");
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, ["ops@acme.example"]);
    assert!(
        text(&mails[0]).contains("https://app.kamiyo.test/verify-email?tenant=acme&token="),
        "{}",
        mails[0].data
    );
    let login =
        json!({"tenant": "acme", "email": "ops@acme.example", "password": "first long password"});
    // Not verified yet: refused.
    let (s, _, v) = crate::call(&svc, "post", "/api/v1/login", None, Some(login.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let verify = || {
        crate::call(
            &svc,
            "post",
            "/api/v1/verify-email",
            None,
            Some(json!({"tenant": "acme", "token": token_of(&mails[0])})),
        )
    };
    let (s, _, v) = verify().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A link works once.
    let (s, _, _) = verify().await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Signed in: the cookies and their flags.
    let res = actix_web::test::call_service(
        &svc,
        actix_web::test::TestRequest::post()
            .uri("/api/v1/login")
            .peer_addr("192.0.2.10:1".parse().unwrap())
            .set_json(login.clone())
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("kamiyo_session="))
        .unwrap()
        .clone();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    let body: serde_json::Value = actix_web::test::read_body_json(res).await;
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = session.split(';').next().unwrap().to_owned();
    let with_cookie =
        |method: &str, path: &str, csrf: Option<&str>, body: Option<serde_json::Value>| {
            let mut r = match method {
                "get" => actix_web::test::TestRequest::get(),
                _ => actix_web::test::TestRequest::post(),
            }
            .uri(path)
            .peer_addr("192.0.2.10:1".parse().unwrap())
            .insert_header(("cookie", cookie.clone()));
            if let Some(t) = csrf {
                r = r.insert_header(("x-csrf-token", t.to_owned()));
            }
            if let Some(b) = body {
                r = r.set_json(b);
            }
            r.to_request()
        };
    let status = |r: Result<actix_web::dev::ServiceResponse, actix_web::Error>| match r {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    assert_eq!(
        status(
            actix_web::test::try_call_service(
                &svc,
                with_cookie("get", "/api/v1/tenant", None, None)
            )
            .await
        ),
        StatusCode::OK
    );
    // A write with the cookie alone (what a forged cross-site form sends): refused.
    let key = json!({"name": "ci", "role": "admin"});
    assert_eq!(
        status(
            actix_web::test::try_call_service(
                &svc,
                with_cookie("post", "/api/v1/keys", None, Some(key.clone()))
            )
            .await
        ),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(
            actix_web::test::try_call_service(
                &svc,
                with_cookie("post", "/api/v1/keys", Some("wrong"), Some(key.clone()))
            )
            .await
        ),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(
            actix_web::test::try_call_service(
                &svc,
                with_cookie("post", "/api/v1/keys", Some(&csrf), Some(key))
            )
            .await
        ),
        StatusCode::CREATED
    );
    // Wrong passwords: throttled per account after five.
    let wrong =
        json!({"tenant": "acme", "email": "ops@acme.example", "password": "not the password!"});
    for _ in 0..5 {
        let (s, _, _) = crate::call(&svc, "post", "/api/v1/login", None, Some(wrong.clone())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, h, _) = crate::call(&svc, "post", "/api/v1/login", None, Some(login.clone())).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(h.get("retry-after").is_some());
    // A reset for an unknown address answers the same and mails nothing.
    let (s, _, _) = crate::call(
        &svc,
        "post",
        "/api/v1/password-reset",
        None,
        Some(json!({"tenant": "acme", "email": "nobody@acme.example"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _, _) = crate::call(
        &svc,
        "post",
        "/api/v1/password-reset",
        None,
        Some(json!({"tenant": "acme", "email": "ops@acme.example"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        mails.len(),
        2,
        "one verification and one reset, nothing for the unknown address"
    );
    assert!(text(&mails[1]).contains("reset-password?tenant=acme&token="));
    let (s, _, v) = crate::call(&svc, "post", "/api/v1/password-reset/confirm", None, Some(json!({"tenant": "acme", "token": token_of(&mails[1]), "password": "second long password"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The old session ended with the reset.
    assert_eq!(
        status(
            actix_web::test::try_call_service(
                &svc,
                with_cookie("get", "/api/v1/tenant", None, None)
            )
            .await
        ),
        StatusCode::UNAUTHORIZED
    );
    // The audit log has it all (as the owner reads it with a key on an enterprise plan).
    let log = e
        .owner
        .audit_log(
            &kamiyo_platform::tenancy::TenantId::parse("acme").unwrap(),
            0,
            100,
            true,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "user.verify",
            "session.create",
            "key.create",
            "user.password_reset"
        ],
        "{actions:?}"
    );
}
