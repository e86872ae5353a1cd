//! Helpers shared by the binary's tests: paths, child processes and a WebDriver client for
//! Debian's headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

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

pub(crate) use kamiyo_testing::browser::{Driver, Killed, free_port};

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
