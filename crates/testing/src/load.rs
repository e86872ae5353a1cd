//! A closed-loop or paced HTTP load generator for the benches (one keep-alive connection per
//! client, wrk2-style pacing: latency counts from when a request was due, so coordinated
//! omission does not hide stalls).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `p` quantile of sorted microsecond latencies, in milliseconds.
pub fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// One keep-alive connection (reconnecting after an error or `Connection: close`) sending
/// `GET path` until `deadline`, with `Authorization: Bearer <key>` when a key is given. Like wrk,
/// the request's bytes are built once and the response is framed by hand (status line,
/// `Content-Length` or chunked), so the generator's own cost per request is a write and a read,
/// not an HTTP client's machinery. Closed loop when `pace` is `None`; otherwise request k is
/// due at `start + k × interval` and its latency counts from then (from when it was sent, when
/// the timer's grain sent it early). Latencies in µs of requests
/// completed before `deadline`, and the errors (non-2xx answers, broken connections).
async fn client(
    addr: SocketAddr,
    path: Arc<str>,
    key: Option<Arc<str>>,
    deadline: Instant,
    pace: Option<(Instant, Duration)>,
) -> (Vec<u64>, u64) {
    use tokio::io::AsyncWriteExt as _;
    let request = request_bytes(addr, &path, key.as_deref());
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut k: u32 = 0;
    let going = || Instant::now() < deadline;
    'outer: while going() {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        buf.clear();
        while going() {
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
            // A request sent early (the timer's grain) counts from when it was sent.
            let due = due.min(Instant::now());
            if tcp.write_all(&request).await.is_err() {
                errors += 1;
                continue 'outer;
            }
            let Some((status, close)) = read_response(&mut tcp, &mut buf).await else {
                errors += 1;
                continue 'outer;
            };
            if (200..300).contains(&status) {
                let now = Instant::now();
                if now <= deadline {
                    lat.push(now.duration_since(due).as_micros() as u64);
                }
            } else {
                errors += 1;
            }
            if close {
                continue 'outer;
            }
        }
    }
    (lat, errors)
}

/// Where one HTTP/1.1 response in `buf` ends: `Ok(Some((length, status, close)))` once it is
/// all there, `Ok(None)` while bytes are missing, `Err` when it is not a response this
/// generator reads (a status line or length it cannot parse). Framing by `Content-Length` or
/// `Transfer-Encoding: chunked`; `close` when the server said `Connection: close`.
pub fn response_len(buf: &[u8]) -> Result<Option<(usize, u16, bool)>, &'static str> {
    let Some(head) = find(buf, 0, b"\r\n\r\n") else {
        return Ok(None);
    };
    let body = head + 4;
    let mut lines = buf[..head].split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .get(9..12)
        .filter(|_| status_line.starts_with(b"HTTP/1."))
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("not an HTTP/1.x status line")?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or("a Content-Length that is not a number")?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    if chunked {
        // Chunks: a hexadecimal size line, the data and CRLF; a zero size, trailers, CRLF.
        let mut at = body;
        loop {
            let Some(eol) = find(buf, at, b"\r\n") else {
                return Ok(None);
            };
            let size = buf[at..eol]
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            let size = std::str::from_utf8(size.trim_ascii())
                .ok()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or("a chunk size that is not hexadecimal")?;
            if size == 0 {
                let mut line = eol + 2;
                loop {
                    let Some(end) = find(buf, line, b"\r\n") else {
                        return Ok(None);
                    };
                    if end == line {
                        return Ok(Some((end + 2, status, close)));
                    }
                    line = end + 2;
                }
            }
            at = eol + 2 + size + 2;
            if at > buf.len() {
                return Ok(None);
            }
        }
    }
    let total = body + length.unwrap_or(0);
    Ok((total <= buf.len()).then_some((total, status, close)))
}

fn find(buf: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    buf.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// `GET path` with its `Host` (and `Authorization` when a key is given), as bytes.
fn request_bytes(addr: SocketAddr, path: &str, key: Option<&str>) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(key) = key {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Reads one response from `tcp` into `buf`, leaving whatever follows it; its status and
/// whether the server closes the connection after it, or `None` when the connection broke or
/// the response could not be read.
async fn read_response(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<(u16, bool)> {
    loop {
        if let Some(done) = take_response(buf) {
            return done;
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match tokio::io::AsyncReadExt::read_buf(tcp, buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The first response in `buf`, removed from it: `Some(Some((status, close)))`; `Some(None)`
/// when what is there cannot be read as a response; `None` while it is incomplete.
fn take_response(buf: &mut Vec<u8>) -> Option<Option<(u16, bool)>> {
    match response_len(buf) {
        Ok(Some((len, status, close))) => {
            buf.drain(..len);
            Some(Some((status, close)))
        }
        Ok(None) => None,
        Err(_) => Some(None),
    }
}

/// One `GET path` on a fresh connection: the status and the whole response's length in bytes
/// (head and body), or `None` when no response could be read (to show what a cell serves).
pub fn fetch(addr: SocketAddr, path: &str) -> Option<(u16, usize)> {
    use std::io::Write as _;
    let mut tcp = std::net::TcpStream::connect(addr).ok()?;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    tcp.write_all(&request_bytes(addr, path, None)).ok()?;
    let (mut buf, mut filled) = (vec![0u8; 64 * 1024], 0);
    let (len, status, _) = next_response(&mut tcp, &mut buf, &mut filled)?;
    Some((status, len))
}

/// Reads one response from a std socket into `buf[filled..]` (growing it as needed) and takes
/// it off the front, leaving whatever follows: its length, status and whether the server
/// closes after it; `None` when the connection broke or the bytes are not a response. Blocking
/// sockets wait in the kernel; non-blocking ones are busy-polled.
fn next_response(
    tcp: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    filled: &mut usize,
) -> Option<(usize, u16, bool)> {
    use std::io::Read as _;
    loop {
        if let Some((len, status, close)) = response_len(&buf[..*filled]).ok()? {
            buf.copy_within(len..*filled, 0);
            *filled -= len;
            return Some((len, status, close));
        }
        if *filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match polled(|| tcp.read(&mut buf[*filled..])) {
            Ok(n @ 1..) => *filled += n,
            _ => return None,
        }
    }
}

/// A busy-polled operation on a non-blocking socket: retried while it would block.
fn polled<T>(mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            other => return other,
        }
    }
}

/// The closed loop of one connection on a thread of its own, its socket busy-polled (see
/// [`http_load`]): latencies in µs of the requests completed before `deadline`, and the errors.
fn polled_client(addr: SocketAddr, request: &[u8], deadline: Instant) -> (Vec<u64>, u64) {
    use std::io::Write as _;
    let (mut lat, mut errors) = (Vec::new(), 0);
    // Read in place: `buf[..filled]` holds what arrived and is not yet taken.
    let mut buf = vec![0u8; 256 * 1024];
    'outer: while Instant::now() < deadline {
        let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
            errors += 1;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if tcp.set_nonblocking(true).is_err() {
            errors += 1;
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let mut filled = 0;
        while Instant::now() < deadline {
            let sent = Instant::now();
            let mut at = 0;
            while at < request.len() {
                match polled(|| tcp.write(&request[at..])) {
                    Ok(n @ 1..) => at += n,
                    _ => {
                        errors += 1;
                        continue 'outer;
                    }
                }
            }
            let Some((_, status, close)) = next_response(&mut tcp, &mut buf, &mut filled) else {
                errors += 1;
                continue 'outer;
            };
            let now = Instant::now();
            if !(200..300).contains(&status) {
                errors += 1;
            } else if now <= deadline {
                lat.push(now.duration_since(sent).as_micros() as u64);
            }
            if close {
                continue 'outer;
            }
        }
    }
    (lat, errors)
}

/// The loopback round trip between this process's core and a one-byte echo at `addr` (see
/// [`echo_server`]): round trips per second over one connection for `secs`, waiting for
/// each echo parked in the kernel (`spin` false, as a blocking client does) or polling the
/// socket (`spin` true). The ceiling of any request/response exchange on one connection.
pub fn round_trips(addr: SocketAddr, secs: f64, spin: bool) -> f64 {
    use std::io::{Read as _, Write as _};
    let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
        return 0.0;
    };
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_nonblocking(spin);
    let start = Instant::now();
    let mut n = 0u64;
    let mut byte = [0u8; 1];
    while start.elapsed().as_secs_f64() < secs {
        if tcp.write_all(b"x").is_err() {
            return 0.0;
        }
        if !matches!(polled(|| tcp.read(&mut byte)), Ok(1)) {
            return 0.0;
        }
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A one-byte echo on a loopback port, one connection at a time, for [`round_trips`]: prints
/// `ADDR <address>` and serves until this process ends (run it as a pinned child).
pub fn echo_server() {
    use std::io::{Read as _, Write as _};
    let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return;
    };
    if let Ok(addr) = listener.local_addr() {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ADDR {addr}");
        let _ = out.flush();
    }
    for mut tcp in listener.incoming().flatten() {
        let _ = tcp.set_nodelay(true);
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = tcp.read(&mut buf) {
            if tcp.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
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
///
/// One connection is one request in flight, so its rate is one over the round trip, and on a
/// virtual machine most of a loopback round trip is waking the two sleeping cores (measure it
/// with [`round_trips`]). A single unpaced connection therefore runs on a thread of its own
/// and busy-polls its non-blocking socket, as latency tools do (sockperf's `--busy-poll`): the
/// generator's own wake-up leaves the measurement and the server's stays in it. Several
/// connections keep the generator busy and wait normally.
pub async fn http_load(
    addr: SocketAddr,
    path: &str,
    conns: usize,
    secs: u64,
    rate: Option<f64>,
    keys: &[String],
) -> Cell {
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + Duration::from_secs(secs);
    let path: Arc<str> = Arc::from(path);
    if conns == 1 && rate.is_none() {
        let request = request_bytes(addr, &path, keys.first().map(String::as_str));
        let (lat, errors) =
            tokio::task::spawn_blocking(move || polled_client(addr, &request, deadline))
                .await
                .unwrap_or_default();
        return cell(lat, errors, secs);
    }
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            // Each connection offers rate/conns requests/s, the connections staggered evenly.
            let pace = rate.map(|r| {
                let interval = Duration::from_secs_f64(conns as f64 / r);
                (start + interval.mul_f64(i as f64 / conns as f64), interval)
            });
            let key = (!keys.is_empty()).then(|| Arc::from(keys[i % keys.len()].as_str()));
            tokio::spawn(client(addr, path.clone(), key, deadline, pace))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    // A connection still waiting for an answer well after the deadline (a hung server) is
    // abandoned and counted as an error, so a cell always ends.
    let given_up = deadline + Duration::from_secs(5);
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(given_up.into(), t).await {
            Ok(Ok((l, e))) => {
                all.extend(l);
                errors += e;
            }
            Ok(Err(_)) => errors += 1,
            Err(_) => {
                abort.abort();
                errors += 1;
            }
        }
    }
    cell(all, errors, secs)
}

/// The figures of a cell from its latencies (µs, any order) and errors.
fn cell(mut all: Vec<u64>, errors: u64, secs: u64) -> Cell {
    all.sort_unstable();
    Cell {
        rate: all.len() as f64 / secs as f64,
        p50: pct(&all, 0.5),
        p99: pct(&all, 0.99),
        errors,
    }
}

/// CPU time of the first two cores since boot, in ms (`/proc/stat`, 10 ms ticks): `busy`
/// (running a task, in user or system mode: the time `/proc/<pid>/stat` charges to processes;
/// interrupt and softirq time, which no process is charged, left out) and `steal` (kept from
/// running by the hypervisor). Zero where the file cannot be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cores {
    /// Time each core ran a task.
    pub busy: [u64; 2],
    /// Time the hypervisor kept each core from running.
    pub steal: [u64; 2],
}

/// The [`Cores`] figures now.
pub fn cores() -> Cores {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = Cores::default();
    for (i, cpu) in ["cpu0 ", "cpu1 "].iter().enumerate() {
        let Some(line) = stat.lines().find(|l| l.starts_with(cpu)) else {
            continue;
        };
        // user nice system idle iowait irq softirq steal ...
        let f: Vec<u64> = line
            .split_ascii_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let at = |k: usize| f.get(k).copied().unwrap_or(0) * 10;
        out.busy[i] = at(0) + at(1) + at(2);
        out.steal[i] = at(7);
    }
    out
}

/// CPU time (user and system, ms) of this process alone (its children not counted).
pub fn own_cpu_ms() -> u64 {
    process_stat("/proc/self/stat").map_or(0, |(_, cpu)| cpu)
}

/// How steady the core running the calling thread was over a stretch of time: the same fixed
/// piece of work ([`Probe`]) timed back to back, the chunks grouped into 100 ms windows. The
/// host can slow a vCPU without descheduling it (a busy sibling hyperthread, frequency
/// changes, another tenant's traffic on the shared memory), which no guest counter shows; a
/// paced cell's queue grows whenever the server's core runs slower than the offered rate needs.
#[derive(Debug, Clone, Copy)]
pub struct Steadiness {
    /// Median time of one chunk (µs).
    pub median_us: f64,
    /// Longest chunk (ms): the longest the thread was held up at once.
    pub worst_ms: f64,
    /// 100 ms windows whose mean chunk took more than 10 % over the median.
    pub slow_windows: usize,
    /// 100 ms windows measured.
    pub windows: usize,
    /// The slowest window's mean chunk over the median, in percent.
    pub worst_window_pct: f64,
}

/// The work a [`steadiness`] probe times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Arithmetic in registers: the core's own speed.
    Arithmetic,
    /// Copies of 256 KiB blocks streamed from a 64 MiB buffer (larger than the caches): the
    /// speed of memory, which a server's answer copies depend on and arithmetic does not show.
    Memory,
}

/// Measures [`Steadiness`] of `probe` for `dur` on the calling thread (which it keeps busy).
pub fn steadiness(dur: Duration, probe: Probe) -> Steadiness {
    const BLOCK: usize = 256 << 10;
    let (source, mut block) = match probe {
        Probe::Arithmetic => (Vec::new(), Vec::new()),
        // Filled, so every page is backed before the clock starts.
        Probe::Memory => (
            (0..64usize << 20).map(|i| i as u8).collect::<Vec<u8>>(),
            vec![0u8; BLOCK],
        ),
    };
    let mut at = 0;
    let start = Instant::now();
    let mut x: u64 = 1;
    let mut chunks: Vec<(u64, f64)> = Vec::new();
    while start.elapsed() < dur {
        let t = Instant::now();
        match probe {
            Probe::Arithmetic => {
                for i in 0..100_000u64 {
                    x = std::hint::black_box(
                        x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i),
                    );
                }
            }
            Probe::Memory => {
                for _ in 0..16 {
                    at = (at + BLOCK) % source.len();
                    block.copy_from_slice(&source[at..at + BLOCK]);
                    std::hint::black_box(&mut block);
                }
            }
        }
        let took = t.elapsed().as_secs_f64() * 1e6;
        chunks.push(((t.duration_since(start).as_millis() / 100) as u64, took));
    }
    let mut sorted: Vec<f64> = chunks.iter().map(|c| c.1).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted
        .get(sorted.len() / 2)
        .copied()
        .unwrap_or(0.0)
        .max(1e-9);
    let mut windows: std::collections::BTreeMap<u64, (f64, usize)> = Default::default();
    for (w, took) in &chunks {
        let e = windows.entry(*w).or_default();
        e.0 += took;
        e.1 += 1;
    }
    let excess: Vec<f64> = windows
        .values()
        .map(|(sum, n)| (sum / *n as f64 / median - 1.0) * 100.0)
        .collect();
    Steadiness {
        median_us: median,
        worst_ms: sorted.last().copied().unwrap_or(0.0) / 1e3,
        slow_windows: excess.iter().filter(|e| **e > 10.0).count(),
        windows: excess.len(),
        worst_window_pct: excess.iter().copied().fold(0.0, f64::max),
    }
}

/// The parent and the CPU time (user and system, ms) of one process, from its `stat` file.
fn process_stat(path: &str) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: fields are counted after its `)`.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let num = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let parent = u32::try_from(num(1)?).ok()?;
    Some((parent, (num(11)? + num(12)?) * 10))
}

/// CPU time (user and system, ms) of process `root` and every process descending from it
/// (`/proc/<pid>/stat`; a server's workers included), 0 where `/proc` cannot be read. With
/// [`cores`] it tells the time a core spent on anything but the process pinned to it.
pub fn tree_cpu_ms(root: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // (pid, parent, cpu ms) of every process.
    let procs: Vec<(u32, u32, u64)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (parent, cpu) = process_stat(&format!("/proc/{pid}/stat"))?;
            Some((pid, parent, cpu))
        })
        .collect();
    let mut tree = vec![root];
    let mut total = 0;
    let mut i = 0;
    while let Some(&pid) = tree.get(i) {
        for &(child, parent, cpu) in &procs {
            if child == pid {
                total += cpu;
            }
            if parent == pid && !tree.contains(&child) {
                tree.push(child);
            }
        }
        i += 1;
    }
    total
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

#[cfg(test)]
mod tests {
    use super::{Probe, response_len, steadiness};
    use std::time::Duration;

    /// A keep-alive server answering every request with a fixed body, on a loopback port.
    async fn fixed_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = tcp.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if tcp.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// The busy-polled single connection, several connections closed-loop and paced: each
    /// completes requests without errors, and a paced cell offers about the rate asked.
    #[test]
    fn cells_complete_requests_against_a_server() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let addr = fixed_server().await;
            let one = super::http_load(addr, "/x", 1, 1, None, &[]).await;
            assert!(one.rate > 100.0 && one.errors == 0, "{one:?}");
            let many = super::http_load(addr, "/x", 8, 1, None, &[]).await;
            assert!(many.rate > 100.0 && many.errors == 0, "{many:?}");
            let paced = super::http_load(addr, "/x", 8, 1, Some(400.0), &[]).await;
            assert!(paced.errors == 0, "{paced:?}");
            assert!(
                (300.0..=420.0).contains(&paced.rate),
                "400/s offered: {paced:?}"
            );
        });
    }

    /// CPU time burnt by a child is counted in its parent's tree and not in the parent's own.
    #[test]
    fn a_process_tree_counts_its_childrens_cpu() {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .expect("sh runs");
        // Until the busy loop's ticks show (well under a second on any machine).
        let started = std::time::Instant::now();
        let mut tree = 0;
        while tree < 50 && started.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tree = super::tree_cpu_ms(std::process::id());
        }
        let own = super::own_cpu_ms();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            tree >= 50,
            "the child's busy loop shows in the tree: {tree} ms"
        );
        assert!(
            tree >= own + 40,
            "the tree ({tree} ms) holds the child's time beyond this process's own ({own} ms)"
        );
        let cores = super::cores();
        assert!(cores.busy[0] + cores.busy[1] > 0, "{cores:?}");
    }

    #[test]
    fn responses_are_framed_by_length_or_chunks() {
        let fixed = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1";
        assert_eq!(response_len(fixed), Ok(Some((43, 200, false))));
        assert_eq!(response_len(&fixed[..42]), Ok(None));
        assert_eq!(response_len(&fixed[..20]), Ok(None));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n";
        assert_eq!(response_len(chunked), Ok(Some((chunked.len(), 404, true))));
        for cut in 0..chunked.len() {
            assert_eq!(response_len(&chunked[..cut]), Ok(None), "cut at {cut}");
        }
        let empty = b"HTTP/1.0 204 No Content\r\n\r\n";
        assert_eq!(response_len(empty), Ok(Some((empty.len(), 204, false))));
    }

    #[test]
    fn what_is_not_a_response_is_an_error() {
        assert!(response_len(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(response_len(b"HTTP/1.1 2x0 OK\r\n\r\n").is_err());
        assert!(response_len(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(
            response_len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }

    #[test]
    fn steadiness_times_windows_of_the_running_core() {
        for probe in [Probe::Arithmetic, Probe::Memory] {
            let s = steadiness(Duration::from_millis(350), probe);
            assert!(s.windows >= 3, "{probe:?}: {s:?}");
            assert!(
                s.median_us > 0.0 && s.worst_ms * 1e3 >= s.median_us,
                "{probe:?}: {s:?}"
            );
            assert!(
                s.slow_windows <= s.windows && s.worst_window_pct >= 0.0,
                "{probe:?}: {s:?}"
            );
        }
    }
}
