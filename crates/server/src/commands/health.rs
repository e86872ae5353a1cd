//! `kamiyo-hyperliquid health`: probes a running server's `/health` (or `/ready`) over plain
//! HTTP/1.1 with the standard library only, for container health checks and service managers
//! that have no curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

/// The address to probe for a bind address: a wildcard bind is probed on loopback.
pub fn probe_addr(bind: SocketAddr) -> SocketAddr {
    let ip = if bind.ip().is_unspecified() {
        if bind.is_ipv6() {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        } else {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
    } else {
        bind.ip()
    };
    SocketAddr::new(ip, bind.port())
}

/// Splits `http://host:port/path` into (`host:port`, `/path`).
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// URLs can be probed"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/health"),
    };
    if host.is_empty() {
        bail!("{url:?}: no host");
    }
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_owned()))
}

/// GETs `url` and returns the status code and the body.
pub fn probe(url: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let (host, path) = split_url(url)?;
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kamiyo-hyperliquid-health\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading the answer of {addr}"))?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("{addr} did not answer HTTP"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Probes and prints one line; `Ok(true)` when the server answered 2xx.
pub fn run(url: &str, out: &mut impl Write) -> anyhow::Result<bool> {
    match probe(url, Duration::from_secs(3)) {
        Ok((status, body)) => {
            let ok = (200..300).contains(&status);
            writeln!(
                out,
                "{url}: {status} {}",
                if ok { "healthy" } else { "unhealthy" }
            )?;
            if !ok && !body.is_empty() {
                writeln!(out, "{body}")?;
            }
            Ok(ok)
        }
        Err(e) => {
            writeln!(out, "{url}: unreachable: {e:#}")?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn urls_and_wildcard_binds() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/ready").unwrap(),
            ("127.0.0.1:8080".into(), "/ready".into())
        );
        assert_eq!(
            split_url("http://localhost").unwrap(),
            ("localhost:80".into(), "/health".into())
        );
        assert!(split_url("https://x").is_err());
        assert_eq!(
            probe_addr("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
    }

    #[test]
    fn a_closed_port_is_unhealthy_not_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut out = Vec::new();
        let ok = run(&format!("http://127.0.0.1:{port}/health"), &mut out).unwrap();
        assert!(!ok);
        assert!(String::from_utf8(out).unwrap().contains("unreachable"));
    }
}
