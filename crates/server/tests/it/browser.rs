//! The dashboard and the API documents in a real headless browser (Debian's `chromium`, driven
//! through `chromedriver` over the W3C WebDriver protocol): the server replays the JELLY
//! scenario, the page — loaded before any incident exists — shows the incident when it opens,
//! its page is opened, acknowledged and its market silenced, resolved incidents stay reachable,
//! live over `/ws`; Swagger UI and ReDoc render offline. A screenshot is saved (and copied to
//! `docs/dashboard.png` with `KAMIYO_BLESS=1`).

use std::process::Command;
use std::time::Duration;

use crate::support::{Driver, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_a_live_incident_in_headless_chromium() {
    kamiyo_aggregators::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();

    // The browser first: it takes the longest to start, and the replay's clock starts with
    // the server.
    let (_driver, d) = Driver::start().await;
    let hook = kamiyo_testing::receiver::Receiver::start(|_, _| {
        kamiyo_testing::receiver::Reply::new(204, "")
    })
    .await;

    // The server: a paced replay, serving the dashboard on the replay's clock, that starts only
    // once the page's live stream is connected — so the page is loaded before any incident by
    // construction, not by a race (450x: the first incident, at 14:30 scenario time, comes
    // about 20 s after that).
    let mut server = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"));
    server
        .current_dir(root())
        .args([
            "replay",
            "jelly-2025-03-26",
            "--serve",
            "--wait-for-viewer",
            "--speed",
            "450x",
        ])
        .env_remove("DATABASE_URL")
        .env_remove("KAMIYO_CONFIG")
        .env("KAMIYO_SERVER__DATA_DIR", data.path())
        // A webhook channel: the incident pages show their alerts, grouped ones included.
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__KIND", "webhook")
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__URL", hook.url("/in"))
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__SECRET", "whsec_browser")
        .env("KAMIYO_ALERTS__CHANNELS__HOOK__MIN_SEVERITY", "medium")
        .env("KAMIYO_SERVER__BIND", "127.0.0.1:0")
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "warn");
    let crate::support::Serving {
        server: _server,
        base,
        lines: lines_rx,
        ..
    } = crate::support::serve(server);

    // Loaded before the first incident (14:30 scenario time), which the replay guarantees; the
    // page's own clock confirms it.
    d.goto(&format!("{base}/")).await;
    let seen = d
        .wait_for(
            "the page's first data",
            "const c = document.getElementById('clock').textContent; return c.startsWith('2025') ? [c, document.querySelectorAll('#incidents .incident').length] : null",
            Duration::from_secs(30),
        )
        .await;
    let (clock, before) = (seen[0].clone(), seen[1].clone());
    assert!(
        clock.as_str().is_some_and(|c| c < "2025-03-26 14:30"),
        "the page loaded at scenario time {clock}, after the first incident: the machine is too slow for 450x"
    );
    assert_eq!(before, 0, "the page was loaded before any incident");
    d.wait_for(
        "the live stream",
        "return document.getElementById('ws-status').dataset.state === 'live'",
        Duration::from_secs(30),
    )
    .await;
    let title = d
        .wait_for(
            "an incident card",
            "const c = document.querySelector('#incidents .incident'); return c ? c.innerText : ''",
            Duration::from_secs(90),
        )
        .await;
    assert!(title.as_str().unwrap().contains("JELLY"), "{title}");
    let risk = d
        .js("return document.getElementById('risk').dataset.level")
        .await;
    assert!(
        ["high", "critical"].contains(&risk.as_str().unwrap()),
        "{risk}"
    );

    // At the height of the squeeze (scenario 15:45), keep a screenshot.
    d.wait_for(
        "scenario time 15:45",
        "return document.getElementById('clock').textContent >= '2025-03-26 15:45'",
        Duration::from_secs(60),
    )
    .await;
    d.wait_for(
        "charts",
        "return document.querySelectorAll('#hlp-chart path').length > 0 && document.querySelectorAll('#oracle-chart path').length > 0 && document.querySelectorAll('#feeds li[data-feed]').length > 0 && document.querySelectorAll('#positions tr').length > 0 && document.getElementById('ml-stats').innerText.includes('anomaly model')",
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let png = d.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = root().join("target/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("dashboard.png"), &png).unwrap();
    if std::env::var("KAMIYO_BLESS").is_ok() {
        std::fs::write(root().join("docs/dashboard.png"), &png).unwrap();
    }

    // Working the incident: a click opens its page (lifecycle, evidence in human units, the
    // chart with the detection marked); acknowledge, silence its market, back to the overview.
    d.js("document.querySelector('#incidents .incident').click(); return true")
        .await;
    let head = d
        .wait_for(
            "the incident page",
            "const p = document.getElementById('incident-page'); const t = document.getElementById('ip-title'); return !p.hidden && t ? document.getElementById('ip-head').innerText : null",
            Duration::from_secs(30),
        )
        .await;
    // Every open incident of the squeeze is about JELLY (its badge, whatever the title says).
    assert!(head.as_str().unwrap().contains("JELLY"), "{head}");
    d.wait_for(
        "the chart with the detection marked",
        "return document.querySelectorAll('#ip-chart line.marker').length > 0 && document.querySelectorAll('#ip-chart path').length > 0",
        Duration::from_secs(30),
    )
    .await;
    let evidence = d
        .js("return document.getElementById('ip-evidence').innerText")
        .await;
    assert!(
        !evidence.as_str().unwrap().contains("sustained_ms"),
        "labels are words, durations human: {evidence}"
    );
    d.js("document.getElementById('ip-ack').click(); return true")
        .await;
    d.wait_for(
        "the acknowledgement",
        "return document.getElementById('ip-head').innerText.includes('acknowledged by local') && document.getElementById('ip-history').innerText.includes('acknowledge')",
        Duration::from_secs(30),
    )
    .await;
    d.js("document.getElementById('ip-note').value = 'JELLY squeeze: watching HLP exposure'; document.getElementById('ip-silence').click(); return true")
        .await;
    d.wait_for(
        "the silence",
        "return document.getElementById('ip-message').innerText === 'silence created'",
        Duration::from_secs(30),
    )
    .await;
    let png = d.screenshot().await;
    std::fs::write(out.join("incident.png"), &png).unwrap();
    if std::env::var("KAMIYO_BLESS").is_ok() {
        std::fs::write(root().join("docs/incident.png"), &png).unwrap();
    }
    // Grouping: the JELLY incidents share one thread on the channel; an incident folded into
    // it shows why on its page.
    let grouped: serde_json::Value = reqwest::get(format!(
        "{base}/alerts/deliveries?status=suppressed&limit=100"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let member = grouped["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["last_error"]
                .as_str()
                .is_some_and(|r| r.starts_with("grouped with incident "))
        })
        .unwrap_or_else(|| panic!("no grouped delivery: {grouped}"))["incident_id"]
        .as_str()
        .unwrap()
        .to_owned();
    d.goto(&format!("{base}/#incident/{member}")).await;
    d.wait_for(
        "a grouped incident's deliveries",
        "return document.getElementById('ip-deliveries').innerText.includes('grouped with incident')",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        hook.received()
            .iter()
            .any(|r| r.json()["type"] == "incident.group_update"),
        "a group update reached the channel"
    );
    d.js("document.getElementById('incident-back').click(); return true")
        .await;
    d.wait_for(
        "the overview with the silence listed",
        "return !document.getElementById('overview').hidden && document.getElementById('silences').innerText.includes('JELLY squeeze')",
        Duration::from_secs(30),
    )
    .await;

    // After the replay the incidents resolve; the page follows without a reload.
    loop {
        let l = lines_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the replay finishes");
        if l.starts_with("replay done") {
            break;
        }
    }
    d.wait_for(
        "resolution shown live",
        "return document.querySelector('#events tr') && document.querySelector('#events tr').innerText.includes('resolved') && document.querySelectorAll('#incidents .incident').length === 0",
        Duration::from_secs(30),
    )
    .await;
    // The resolved incidents are listed, and their pages still answer (alert links land there).
    d.wait_for(
        "recently resolved",
        "const a = document.querySelector('#resolved a'); if (a) { a.click(); return true; } return null",
        Duration::from_secs(30),
    )
    .await;
    d.wait_for(
        "a resolved incident's page",
        "const p = document.getElementById('incident-page'); return !p.hidden && document.getElementById('ip-head').innerText.includes('resolved') && document.getElementById('ip-resolve').hidden",
        Duration::from_secs(30),
    )
    .await;

    // The API documents render offline.
    d.goto(&format!("{base}/docs")).await;
    let ops = d
        .wait_for(
            "Swagger UI",
            "return document.querySelectorAll('.opblock').length",
            Duration::from_secs(30),
        )
        .await;
    assert!(ops.as_u64().unwrap() >= 13, "{ops}");
    d.goto(&format!("{base}/redoc")).await;
    d.wait_for(
        "ReDoc",
        "return document.body.innerText.includes('/security/events')",
        Duration::from_secs(30),
    )
    .await;
    d.quit().await;
}
