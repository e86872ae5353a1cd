//! The platform end to end in headless Chromium (WebDriver), against `kamiyo-platform serve`
//! on PostgreSQL with a loopback Stripe (its Checkout page included), SMTP relay, webhook
//! receiver and OpenID Connect provider: sign-up → Checkout trial → address verified → signed
//! in → a protocol followed → a webhook channel added and tested → a replayed incident reaches
//! the webhook and the console (acknowledged there) → upgrade to Enterprise → single sign-on
//! set up and used → staff suspend the tenant → the tenant sees the suspension. Each page is
//! checked for the basics (no sideways scrolling at 375 px, visible focus, text contrast) and
//! a screenshot kept (copied to `docs/platform/` with `KAMIYO_BLESS=1`).

use std::io::Write as _;
use std::time::Duration;

use kamiyo_core_models::Timestamp;
use kamiyo_testing::browser::{Driver, Killed, free_port};
use kamiyo_testing::smtp::{Mode, SmtpServer};

use crate::idp::{Idp, Next};
use crate::stripe_fake::FakeStripe;

const SECS: Duration = Duration::from_secs(60);

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn shot(d: &Driver, name: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = d.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"));
    let out = repo_root().join("target/screenshots/platform");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(format!("{name}.png")), &png).unwrap();
    if std::env::var("KAMIYO_BLESS").is_ok() {
        let docs = repo_root().join("docs/platform");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

/// WCAG contrast of every visible text element against its nearest opaque background, the
/// worst ratio and where (≥ 4.5 expected); whether focus is drawn; whether the page scrolls
/// sideways.
const BASICS: &str = r#"
const lum = (c) => { const m = c.match(/\d+(\.\d+)?/g); if (!m) return null; const [r, g, b] = m.slice(0, 3).map(Number).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const alpha = (c) => { const m = c.match(/rgba\(.*,\s*([\d.]+)\)/); return m ? Number(m[1]) : 1; };
const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (alpha(c) > 0.5 && c !== 'transparent') return c; } return 'rgb(255, 255, 255)'; };
let worst = [99, ''];
for (const el of document.querySelectorAll('body *')) {
  if (!el.offsetParent && el.tagName !== 'BODY') continue;
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const s = getComputedStyle(el);
  if (s.visibility === 'hidden' || el.closest('[hidden]') || el.classList.contains('skip')) continue;
  const a = lum(s.color), b = lum(bg(el));
  if (a === null || b === null) continue;
  const r = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (r < worst[0]) worst = [r, el.tagName + '.' + el.className + ': ' + el.textContent.trim().slice(0, 40)];
}
return {contrast: worst[0], where: worst[1], sideways: document.documentElement.scrollWidth > window.innerWidth + 1};
"#;

async fn basics(d: &Driver, page: &str) {
    let v = d.js(BASICS).await;
    let ratio = v["contrast"].as_f64().unwrap();
    assert!(
        ratio >= 4.5,
        "{page}: text contrast {ratio:.2} at {}",
        v["where"]
    );
    // Focus is drawn: the first focusable element, focused by the keyboard's Tab.
    let outline = d
        .js("const a = document.querySelector('a[href], button, input'); a.focus(); const s = getComputedStyle(a); return s.outlineStyle + ' ' + s.outlineWidth;")
        .await;
    assert!(
        !outline.as_str().unwrap().starts_with("none"),
        "{page}: focus not drawn ({outline})"
    );
    // At 375 px wide nothing scrolls sideways.
    d.cmd(
        reqwest::Method::POST,
        "/window/rect",
        Some(serde_json::json!({"width": 375, "height": 900})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let narrow = d.js(BASICS).await;
    d.cmd(
        reqwest::Method::POST,
        "/window/rect",
        Some(serde_json::json!({"width": 1280, "height": 1100})),
    )
    .await;
    assert_eq!(
        narrow["sideways"], false,
        "{page} scrolls sideways at 375 px"
    );
    d.js("document.activeElement.blur(); return true").await;
}

/// Types into an input (by id) and fires its events.
async fn fill(d: &Driver, id: &str, value: &str) {
    let v = serde_json::to_string(value).unwrap();
    d.js(&format!(
        "const e = document.getElementById('{id}'); e.value = {v}; e.dispatchEvent(new Event('input')); return true"
    ))
    .await;
}

async fn click(d: &Driver, css: &str) {
    let sel = serde_json::to_string(css).unwrap();
    d.wait_for(
        css,
        &format!(
            "const e = document.querySelector({sel}); if (!e) return false; e.click(); return true"
        ),
        SECS,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_to_suspension_in_headless_chromium() {
    kamiyo_aggregators::install_crypto_provider();
    let (_chromedriver, d) = Driver::start().await;
    let e = crate::env().await;
    let smtp = SmtpServer::start(Mode::Plain).await;
    let hook = kamiyo_testing::receiver::Receiver::start(|_, _| {
        kamiyo_testing::receiver::Reply::new(204, "")
    })
    .await;
    let clock: std::sync::Arc<dyn Fn() -> i64 + Send + Sync> =
        std::sync::Arc::new(kamiyo_platform::fanout::now_ms);
    let stripe = FakeStripe::start(clock).await;
    let idp = Idp::start("kamiyo-acme", "acme-client-secret").await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    stripe.host_checkout(&format!("{base}/api/v1/billing/webhook"), "whsec_e2e");
    let staff_token = "staff-token-of-ops";
    let config = format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
[database]
url = "{owner}"
app_url = "{app}"
[platform]
protocols = ["hyperliquid", "binance-futures"]
router_interval_ms = 200
public_url = "{base}"
allow_loopback_channels = true
[smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
[admin]
tokens = ["ops:{staff}"]
[billing]
secret_key = "sk_test_e2e"
api_base = "{stripe}"
webhook_secrets = ["whsec_e2e"]
trial_days = 14
unpaid_plan = "open_source"
[billing.prices]
cloud_basic = "price_basic"
cloud_pro = "price_pro"
cloud_enterprise = "price_enterprise"
"#,
        owner = e.tdb.url,
        app = e.app_url,
        smtp = smtp.port(),
        staff = kamiyo_platform::tenancy::hash_key(staff_token),
        stripe = stripe.url,
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(config.as_bytes()).unwrap();
    let _server = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_kamiyo-platform"))
            .args(["--config", file.path().to_str().unwrap(), "serve"])
            .env("KAMIYO_PLATFORM_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.cmd(
        reqwest::Method::POST,
        "/window/rect",
        Some(serde_json::json!({"width": 1280, "height": 1100})),
    )
    .await;

    // The public status page: a component per row, 90 daily bars each, no script.
    d.goto(&format!("{base}/status")).await;
    d.wait_for(
        "the components",
        "return document.querySelectorAll('.component').length >= 3 && document.querySelectorAll('.component .day').length === 90 * document.querySelectorAll('.component').length",
        SECS,
    )
    .await;
    basics(&d, "status").await;
    shot(&d, "status").await;

    // The landing page: the plans from the tier matrix.
    d.goto(&format!("{base}/")).await;
    d.wait_for(
        "the plans",
        "return document.querySelectorAll('.plan').length === 4",
        SECS,
    )
    .await;
    basics(&d, "landing").await;
    shot(&d, "landing").await;

    // Sign-up with Pro → Stripe Checkout (the trial) → back to the console.
    click(&d, ".plan[data-plan=cloud_pro] .button").await;
    d.wait_for(
        "the sign-up form",
        "return !document.getElementById('view-signup').hidden",
        SECS,
    )
    .await;
    assert_eq!(
        d.js("return document.getElementById('su-plan').value")
            .await,
        "cloud_pro"
    );
    basics(&d, "sign-up").await;
    shot(&d, "signup").await;
    for (id, v) in [
        ("su-name", "Acme Risk Desk"),
        ("su-tenant", "acme"),
        ("su-email", "owner@acme.example"),
        ("su-password", "a long enough password"),
    ] {
        fill(&d, id, v).await;
    }
    click(&d, "#signup button[type=submit]").await;
    d.wait_for(
        "the Checkout page",
        "return document.getElementById('pay') !== null",
        SECS,
    )
    .await;
    assert!(
        d.js("return document.body.innerText")
            .await
            .as_str()
            .unwrap()
            .contains("14-day free trial")
    );
    click(&d, "#pay").await;
    d.wait_for(
        "back from Checkout",
        "return location.pathname === '/app' && location.search.includes('checkout=done')",
        SECS,
    )
    .await;
    // Stripe's events made the trial the plan.
    let acme = kamiyo_platform::tenancy::TenantId::parse("acme").unwrap();
    let row = e.owner.billing(&acme).await.unwrap();
    assert_eq!(row.status.as_deref(), Some("trialing"), "{row:?}");

    // The mailed link verifies the address; then sign in.
    let mails = smtp.wait_for(1, SECS).await;
    let body = mails[0].data.replace("=\r\n", "").replace("=3D", "=");
    let at = body
        .find(&format!("{base}/verify-email?"))
        .expect("a verification link");
    let link: String = body[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    d.goto(&link).await;
    d.wait_for(
        "the address verified",
        "return document.getElementById('tk-msg').textContent.includes('verified')",
        SECS,
    )
    .await;
    d.goto(&format!("{base}/app")).await;
    d.wait_for(
        "the sign-in form",
        "return !document.getElementById('view-signin').hidden",
        SECS,
    )
    .await;
    basics(&d, "sign-in").await;
    shot(&d, "signin").await;
    for (id, v) in [
        ("si-tenant", "acme"),
        ("si-email", "owner@acme.example"),
        ("si-password", "a long enough password"),
    ] {
        fill(&d, id, v).await;
    }
    click(&d, "#signin button[type=submit]").await;
    d.wait_for(
        "the console's empty incident list",
        "const l = document.getElementById('inc-list'); return l && l.innerText.includes('No incidents')",
        SECS,
    )
    .await;
    d.wait_for(
        "the live stream",
        "const l = document.getElementById('live'); return l && l.dataset.state === 'live'",
        SECS,
    )
    .await;

    // Follow Binance USD-M futures.
    d.goto(&format!("{base}/app#protocols")).await;
    click(&d, "[data-sub='binance-futures']").await;
    d.wait_for(
        "followed",
        "return document.querySelector(\"[data-unsub='binance-futures']\") !== null",
        SECS,
    )
    .await;
    basics(&d, "protocols").await;
    shot(&d, "protocols").await;

    // A webhook channel, tested.
    d.goto(&format!("{base}/app#channels")).await;
    d.wait_for(
        "the channel form",
        "return document.getElementById('ch-form') !== null",
        SECS,
    )
    .await;
    fill(&d, "ch-name", "ops hook").await;
    fill(&d, "ch-url", &hook.url("/in")).await;
    d.js("document.getElementById('ch-sev').value = 'low'; return true")
        .await;
    click(&d, "#ch-form button[type=submit]").await;
    click(&d, "[data-test]").await;
    d.wait_for(
        "the test delivered",
        "return document.getElementById('ch-msg').textContent === 'Test message delivered.'",
        SECS,
    )
    .await;
    let test_msg = hook.wait_for(1, SECS).await;
    assert_eq!(test_msg[0].json()["test"], true, "{}", test_msg[0].json());
    shot(&d, "channels").await;

    // The 2025-10-10 cascade, replayed now: its steps (times moved to the present) into the
    // shared store, as the ingest would write them.
    d.goto(&format!("{base}/app#incidents")).await;
    d.wait_for(
        "the live stream",
        "const l = document.getElementById('live'); return l && l.dataset.state === 'live'",
        SECS,
    )
    .await;
    let mut steps = crate::replay_steps("cascade-2025-10-10");
    assert!(!steps.is_empty());
    let shift = kamiyo_platform::fanout::now_ms() - steps[0].event.time.0;
    let moved = |t: Timestamp| Timestamp(t.0 + shift);
    for s in &mut steps {
        s.event.time = moved(s.event.time);
        s.incident.first_seen = moved(s.incident.first_seen);
        s.incident.last_seen = moved(s.incident.last_seen);
        s.incident.resolved_at = s.incident.resolved_at.map(moved);
    }
    crate::commit(&e, steps).await;
    // It reaches the webhook…
    let got = hook.wait_for(2, Duration::from_secs(60)).await;
    let alert = got
        .iter()
        .map(|r| r.json())
        .find(|j| j["test"] != true)
        .unwrap();
    assert!(
        alert["type"].as_str().unwrap().starts_with("incident."),
        "{alert}"
    );
    assert!(alert["incident"]["title"].is_string(), "{alert}");
    // …and the console, live.
    let title = d
        .wait_for(
            "an incident in the list",
            "const r = document.querySelector('.incident-row a'); return r ? r.textContent : ''",
            Duration::from_secs(60),
        )
        .await;
    assert!(!title.as_str().unwrap().is_empty());
    basics(&d, "incidents").await;
    shot(&d, "incidents").await;
    click(&d, ".incident-row a").await;
    d.wait_for(
        "the incident page",
        "return document.getElementById('ip-act') !== null",
        SECS,
    )
    .await;
    fill(&d, "ip-note", "cascade: watching HLP exposure").await;
    click(&d, "#ip-act button[data-act=acknowledge]").await;
    d.wait_for(
        "the acknowledgement in the timeline",
        "return document.getElementById('ip-state') && document.getElementById('ip-state').textContent.includes('acknowledged by user')",
        SECS,
    )
    .await;
    basics(&d, "incident").await;
    shot(&d, "incident").await;

    // Upgrade to Enterprise.
    d.goto(&format!("{base}/app#billing")).await;
    d.wait_for(
        "the billing page",
        "return document.getElementById('bill-choice') !== null",
        SECS,
    )
    .await;
    d.js("document.getElementById('bill-choice').value = 'cloud_enterprise'; return true")
        .await;
    click(&d, "#bill-form button[type=submit]").await;
    let said = d
        .wait_for(
            "the billing answer",
            "const m = document.getElementById('bill-msg'); return m ? m.textContent : ''",
            SECS,
        )
        .await;
    assert!(
        said.as_str().unwrap().contains("cloud_enterprise"),
        "{said}"
    );
    shot(&d, "billing").await;

    // Single sign-on, set up in the console, then used.
    d.goto(&format!("{base}/app#sso")).await;
    d.wait_for(
        "the SSO form",
        "return document.getElementById('sso-form') !== null",
        SECS,
    )
    .await;
    fill(&d, "sso-issuer", &idp.issuer).await;
    fill(&d, "sso-client", "kamiyo-acme").await;
    fill(&d, "sso-secret", "acme-client-secret").await;
    fill(&d, "sso-map", "acme-ops=analyst").await;
    d.js("document.getElementById('sso-enforced').checked = true; return true")
        .await;
    click(&d, "#sso-form button[type=submit]").await;
    d.wait_for(
        "SSO saved",
        "return document.getElementById('sso-msg') && document.getElementById('sso-msg').textContent === 'Saved.'",
        SECS,
    )
    .await;
    shot(&d, "sso").await;
    basics(&d, "sso").await;
    // The rest of the console, each page checked and kept.
    for (page, ready) in [
        ("thresholds", "th-form"),
        ("watched", "wa-form"),
        ("keys", "key-form"),
        ("usage", "pane"),
        ("team", "tm-form"),
        ("audit", "pane"),
        ("brand", "br-form"),
    ] {
        d.goto(&format!("{base}/app#{page}")).await;
        d.wait_for(
            page,
            &format!("const p = document.getElementById('pane'); return document.getElementById('{ready}') !== null && p.querySelector('h1') !== null && p.querySelector('h1').textContent.length > 0"),
            SECS,
        )
        .await;
        basics(&d, page).await;
        shot(&d, page).await;
    }
    // White label from the console: the brand's name and colours on every page.
    fill(&d, "br-name", "Acme Watch").await;
    fill(&d, "br-primary", "#7c2d12").await;
    fill(&d, "br-accent", "#14532d").await;
    click(&d, "#br-form button[type=submit]").await;
    d.wait_for(
        "the brand applied",
        "return document.getElementById('brand-name').textContent === 'Acme Watch' && getComputedStyle(document.querySelector('.bar')).backgroundColor === 'rgb(124, 45, 18)'",
        SECS,
    )
    .await;
    basics(&d, "brand").await;
    shot(&d, "brand").await;
    click(&d, "#signout").await;
    d.wait_for(
        "signed out",
        "return !document.getElementById('view-signin').hidden",
        SECS,
    )
    .await;
    idp.sign_in_next(Next {
        email: "analyst@acme.example".into(),
        groups: vec!["acme-ops".into()],
        foreign_key: false,
    });
    fill(&d, "si-tenant", "acme").await;
    click(&d, "#si-sso").await;
    d.wait_for(
        "signed in through the provider",
        "const l = document.getElementById('inc-list'); return location.pathname === '/app' && l && l.querySelector('.incident-row')",
        SECS,
    )
    .await;
    let me: serde_json::Value = serde_json::from_str(
        d.js("const r = new XMLHttpRequest(); r.open('GET', '/api/v1/tenant', false); r.send(); return r.responseText")
            .await
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(me["you"]["role"], "analyst", "{me}");
    assert_eq!(me["plan"], "cloud_enterprise", "{me}");
    assert_eq!(idp.tokens_issued(), 1);

    // Staff suspend the tenant.
    d.goto(&format!("{base}/admin")).await;
    d.wait_for(
        "the staff sign-in",
        "return !document.getElementById('staff-login').hidden",
        SECS,
    )
    .await;
    fill(&d, "staff-token", staff_token).await;
    click(&d, "#staff-login button[type=submit]").await;
    d.wait_for(
        "the tenants",
        "return document.querySelector('tr[data-tenant=acme]') !== null",
        SECS,
    )
    .await;
    basics(&d, "admin").await;
    click(&d, "button[data-act=suspend][data-id=acme]").await;
    d.wait_for(
        "suspended",
        "const r = document.querySelector('tr[data-tenant=acme] .status'); return r && r.textContent === 'suspended'",
        SECS,
    )
    .await;
    shot(&d, "admin-tenants").await;
    d.goto(&format!("{base}/admin#health")).await;
    let health = d
        .wait_for(
            "system health",
            "const h = document.getElementById('health'); return h ? h.innerText : ''",
            SECS,
        )
        .await;
    // The router (in serve) has taken every replayed step; the correlator runs in `ingest`,
    // which this test does not start, and the page says how far behind it is.
    assert!(
        health
            .as_str()
            .unwrap()
            .contains("Router behind the stream\t0 steps"),
        "{health}"
    );
    shot(&d, "admin-health").await;
    d.goto(&format!("{base}/admin#audit")).await;
    d.wait_for(
        "the audit log",
        "return document.getElementById('admin-pane').innerText.includes('staff.status')",
        SECS,
    )
    .await;
    basics(&d, "admin audit").await;
    shot(&d, "admin-audit").await;
    d.goto(&format!("{base}/admin#plans")).await;
    d.wait_for(
        "the plans with their tenants",
        "return document.getElementById('admin-pane').innerText.includes('Cloud Enterprise')",
        SECS,
    )
    .await;
    basics(&d, "admin plans").await;
    shot(&d, "admin-plans").await;

    // The tenant sees the suspension.
    d.goto(&format!("{base}/app")).await;
    d.wait_for(
        "the suspension",
        "const b = document.getElementById('banner'); return b && b.innerText.includes('suspended')",
        SECS,
    )
    .await;
    basics(&d, "suspended").await;
    shot(&d, "suspended").await;
    d.quit().await;
    idp.stop().await;
    stripe.stop().await;
}
