//! The dashboard and the API documents in a real headless browser (Debian's `chromium`, driven
//! through `chromedriver` over the W3C WebDriver protocol): the server replays the JELLY
//! scenario, the page — loaded before any incident exists — shows the incident when it opens,
//! live over `/ws`; Swagger UI and ReDoc render offline. A screenshot is saved (and copied to
//! `docs/dashboard.png` with `KAMIYO_BLESS=1`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(names: &[&str]) -> String {
    for n in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let p = Path::new(dir).join(n);
            if p.exists() {
                return p.to_string_lossy().into_owned();
            }
        }
    }
    panic!(
        "{names:?} not found: this test needs Debian's chromium and chromium-driver packages (`apt-get install chromium chromium-driver`; .ci/run installs them)"
    )
}

struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Driver {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "WebDriver error: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Polls `script` until it returns a truthy value.
    async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_a_live_incident_in_headless_chromium() {
    kamiyo_aggregators::install_crypto_provider();
    let chromium = which(&["chromium", "chromium-browser"]);
    let chromedriver = which(&["chromedriver"]);
    let data = tempfile::tempdir().unwrap();

    // The server: a paced replay, serving the dashboard on the replay's clock.
    let mut server = Command::new(env!("CARGO_BIN_EXE_kamiyo-hyperliquid"));
    server
        .current_dir(root())
        .args(["replay", "jelly-2025-03-26", "--serve", "--speed", "900x"])
        .env_remove("DATABASE_URL")
        .env_remove("KAMIYO_CONFIG")
        .env("KAMIYO_SERVER__DATA_DIR", data.path())
        .env("KAMIYO_SERVER__BIND", "127.0.0.1:0")
        .env("KAMIYO_TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut server = Killed(server.spawn().unwrap());
    let stdout = server.0.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(l).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let l = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server announces its address");
        if let Some(rest) = l.strip_prefix("serving the dashboard at ") {
            break rest.trim_end_matches('/').to_owned();
        }
    };

    // The browser.
    let port = free_port();
    let _driver = Killed(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let wd = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{wd}/status")).send().await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,1500", "--hide-scrollbars"]
        }
    }}});
    let v: Value = http
        .post(format!("{wd}/session"))
        .json(&caps)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
        .to_owned();
    let d = Driver {
        http: http.clone(),
        base: wd.clone(),
        session,
    };

    // Loaded before the first incident (14:30 scenario time, ~10 s into the replay).
    d.goto(&format!("{base}/")).await;
    let before = d
        .js("return document.querySelectorAll('#incidents .incident').length")
        .await;
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
        "return document.querySelectorAll('#hlp-chart path').length > 0 && document.querySelectorAll('#oracle-chart path').length > 0 && document.querySelectorAll('#feeds li[data-feed]').length > 0",
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
    let _ = http
        .delete(format!("{wd}/session/{}", d.session))
        .send()
        .await;
}
