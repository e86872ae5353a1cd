//! Helpers shared by the binary's tests: paths, child processes and a WebDriver client for
//! Debian's headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The repository root (the binary finds `scenarios/` and `testdata/` from there).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Waits for a child and fails the test with its stderr unless it exited successfully.
pub(crate) fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kamiyo-hyperliquid failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GETs `url` and returns the body as text (failing the test on a transport error).
pub(crate) async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// GETs `url` and parses the body as JSON.
pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    serde_json::from_str(&get_text(http, url).await).unwrap()
}

/// A child process killed when the test ends, however it ends.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
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

/// A W3C WebDriver session on headless Chromium.
pub(crate) struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Driver {
    /// Starts chromedriver and opens a session; keep the returned process alive.
    pub(crate) async fn start() -> (Killed, Self) {
        let chromium = which(&["chromium", "chromium-browser"]);
        let chromedriver = which(&["chromedriver"]);
        let port = free_port();
        let driver = Killed(
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
        (
            driver,
            Self {
                http,
                base: wd,
                session,
            },
        )
    }

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

    /// Navigates to `url`.
    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` in the page and returns its value.
    pub(crate) async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Polls `script` until it returns a truthy value.
    pub(crate) async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
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

    /// A PNG of the viewport.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    }

    /// Ends the session.
    pub(crate) async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// A `replay --serve` process, its base URL, the lines it printed before announcing the
/// address, and a channel with the lines after.
pub(crate) struct Serving {
    pub(crate) server: Killed,
    pub(crate) base: String,
    pub(crate) before: Vec<String>,
    pub(crate) lines: std::sync::mpsc::Receiver<String>,
}

/// Spawns `cmd` (a `replay --serve`) with its stdout piped and waits up to a minute for
/// "serving the dashboard at <url>".
pub(crate) fn serve(cmd: Command) -> Serving {
    serve_with_stderr(cmd, Stdio::inherit())
}

/// [`serve`], with the server's stderr (its log) going to `stderr`.
pub(crate) fn serve_with_stderr(mut cmd: Command, stderr: Stdio) -> Serving {
    use std::io::{BufRead, BufReader};
    cmd.stdout(Stdio::piped()).stderr(stderr);
    let mut server = Killed(cmd.spawn().unwrap());
    let stdout = server.0.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Keep draining after the receiver is gone (a test that does not read the rest):
        // a closed pipe would make the server's next line a broken-pipe exit.
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut before = Vec::new();
    let base = loop {
        let l = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server announces its address");
        if let Some(rest) = l.strip_prefix("serving the dashboard at ") {
            break rest.trim_end_matches('/').to_owned();
        }
        before.push(l);
    };
    Serving {
        server,
        base,
        before,
        lines,
    }
}
