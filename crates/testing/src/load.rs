//! A closed-loop or paced HTTP load generator for the benches (one keep-alive connection per
//! client, wrk2-style pacing: latency counts from when a request was due, so coordinated
//! omission does not hide stalls).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// The `p` quantile of sorted microsecond latencies, in milliseconds.
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// One keep-alive connection (reconnecting after an error) sending `path` until `stop`, with
/// `Authorization: Bearer <key>` when a key is given. Closed loop when `pace` is `None`;
/// otherwise request k is due at `start + k × interval` and its latency counts from then.
/// Latencies in µs of requests completed before `deadline`, and the errors.
async fn client(
    addr: SocketAddr,
    path: Arc<str>,
    key: Option<Arc<str>>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    pace: Option<(Instant, Duration)>,
) -> (Vec<u64>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut k: u32 = 0;
    'outer: while !stop.load(Ordering::Relaxed) {
        let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let Ok((mut tx, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let due = match pace {
                Some((start, interval)) => {
                    let due = start + interval * k;
                    k += 1;
                    // The timer has a 1 ms grain: sleep only for longer waits, then send up to
                    // a millisecond early rather than late (latency still counts from `due`).
                    if due > Instant::now() + Duration::from_millis(1) {
                        tokio::time::sleep_until((due - Duration::from_millis(1)).into()).await;
                    }
                    due
                }
                None => Instant::now(),
            };
            let mut req = hyper::Request::get(&*path).header(hyper::header::HOST, addr.to_string());
            if let Some(key) = &key {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
            }
            let Ok(req) = req.body(Empty::<hyper::body::Bytes>::new()) else {
                errors += 1;
                continue;
            };
            match tx.send_request(req).await {
                Ok(res) => {
                    let ok = res.status().is_success();
                    if res.into_body().collect().await.is_err() || !ok {
                        errors += 1;
                        continue 'outer;
                    }
                    let now = Instant::now();
                    if now <= deadline {
                        lat.push(now.duration_since(due).as_micros() as u64);
                    }
                }
                Err(_) => {
                    errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    (lat, errors)
}

/// What one cell measured.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// Completed requests per second.
    pub rate: f64,
    /// Median latency (ms).
    pub p50: f64,
    /// 99th percentile latency (ms).
    pub p99: f64,
    /// Failed requests and connections.
    pub errors: u64,
}

/// `conns` connections on `path` for `secs`; paced at `rate` requests/s in total when given.
/// Connection i presents `keys[i % keys.len()]` (none when `keys` is empty).
pub async fn http_load(
    addr: SocketAddr,
    path: &str,
    conns: usize,
    secs: u64,
    rate: Option<f64>,
    keys: &[String],
) -> Cell {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + Duration::from_secs(secs);
    let path: Arc<str> = Arc::from(path);
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            // Each connection offers rate/conns requests/s, the connections staggered evenly.
            let pace = rate.map(|r| {
                let interval = Duration::from_secs_f64(conns as f64 / r);
                (start + interval.mul_f64(i as f64 / conns as f64), interval)
            });
            let key = (!keys.is_empty()).then(|| Arc::from(keys[i % keys.len()].as_str()));
            tokio::spawn(client(
                addr,
                path.clone(),
                key,
                stop.clone(),
                deadline,
                pace,
            ))
        })
        .collect();
    tokio::time::sleep_until(deadline.into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    all.sort_unstable();
    Cell {
        rate: all.len() as f64 / secs as f64,
        p50: pct(&all, 0.5),
        p99: pct(&all, 0.99),
        errors,
    }
}

/// Pins every thread of this process to `cpu` (`taskset`, util-linux); false when it could not.
pub fn pin_self(cpu: &str) -> bool {
    std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` pinned to `cpu` (`taskset`) and reads the address it prints first, after
/// `prefix` (`ADDR 127.0.0.1:…`, `listening on http://…`). Panics (failing the bench) when it
/// cannot.
pub fn spawn_pinned(
    cmd: &mut std::process::Command,
    cpu: &str,
    prefix: &str,
) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead as _;
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let mut pinned = std::process::Command::new("taskset");
    pinned.args(["-c", cpu]).arg(program).args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => pinned.env(k, v),
            None => pinned.env_remove(k),
        };
    }
    let mut child = pinned
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("taskset (util-linux) runs the server pinned to core {cpu}: {e}")
        });
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let addr = line
        .trim()
        .strip_prefix(prefix)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the server said {line:?}"));
    (child, addr)
}
