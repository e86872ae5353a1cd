//! A small ESMTP server on loopback for e-mail tests: EHLO/HELO, STARTTLS and implicit TLS
//! (test certificate for `localhost`, CA in `testdata/ca.cert.pem`), AUTH PLAIN and LOGIN,
//! MAIL, RCPT, DATA (dot-unstuffed), RSET, NOOP, QUIT. Every accepted message is recorded
//! with its envelope, whether it travelled over TLS, and the credentials used.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject};

/// The CA that signed the server certificate (PEM).
pub const CA_PEM: &[u8] = include_bytes!("../testdata/ca.cert.pem");
const CERT_PEM: &[u8] = include_bytes!("../testdata/localhost.cert.pem");
const KEY_PEM: &[u8] = include_bytes!("../testdata/localhost.key.pem");

/// How the server secures connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain; STARTTLS offered.
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// Plain; STARTTLS not offered.
    Plain,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The message (headers and body, CRLF line ends, dot-unstuffed).
    pub data: String,
    /// Whether it travelled over TLS.
    pub tls: bool,
    /// (user, password) if the client authenticated.
    pub auth: Option<(String, String)>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A running SMTP server.
pub struct SmtpServer {
    /// Its address.
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("addr", &self.addr)
            .finish()
    }
}

fn acceptor() -> TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(CERT_PEM)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("test certificate: {e}"));
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(KEY_PEM)
        .unwrap_or_else(|e| panic!("test key: {e}"));
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| panic!("TLS config: {e}"));
    TlsAcceptor::from(Arc::new(cfg))
}

impl SmtpServer {
    /// Starts a server in `mode` on 127.0.0.1.
    pub async fn start(mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let m2 = mails.clone();
        let tls = acceptor();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (mails, tls) = (m2.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = match mode {
                        Mode::Tls => match tls.accept(tcp).await {
                            Ok(s) => session(Box::new(s), true, mode, tls, mails).await,
                            Err(_) => Ok(()),
                        },
                        _ => session(Box::new(tcp), false, mode, tls, mails).await,
                    };
                });
            }
        });
        Self { addr, mails, task }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Messages accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `n` messages arrived (or `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let end = Instant::now() + timeout;
        loop {
            let m = self.mails();
            if m.len() >= n || Instant::now() >= end {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

async fn session(
    stream: Box<dyn Stream>,
    mut tls: bool,
    mode: Mode,
    acceptor: TlsAcceptor,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(stream);
    io.get_mut()
        .write_all(b"220 localhost kamiyo-test ESMTP\r\n")
        .await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth = None;
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-localhost\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n");
            if mode == Mode::Starttls && !tls {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250 SIZE 10485760\r\n");
            r
        } else if upper.starts_with("HELO") {
            "250 localhost\r\n".into()
        } else if upper == "STARTTLS" && mode == Mode::Starttls && !tls {
            io.get_mut()
                .write_all(b"220 ready to start TLS\r\n")
                .await?;
            let inner = io.into_inner();
            let s = acceptor.accept(inner).await?;
            io = BufReader::new(Box::new(s) as Box<dyn Stream>);
            tls = true;
            from.clear();
            to.clear();
            continue;
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN") {
            let arg = if rest.trim().is_empty() {
                io.get_mut().write_all(b"334 \r\n").await?;
                line.clear();
                io.read_line(&mut line).await?;
                line.trim().to_owned()
            } else {
                cmd[10..].trim().to_owned()
            };
            let decoded = b64(&arg);
            let parts: Vec<&str> = decoded.split('\0').collect();
            auth = Some((
                parts.get(1).copied().unwrap_or_default().to_owned(),
                parts.get(2).copied().unwrap_or_default().to_owned(),
            ));
            "235 2.7.0 authenticated\r\n".into()
        } else if upper.starts_with("AUTH LOGIN") {
            io.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            line.clear();
            io.read_line(&mut line).await?;
            let user = b64(&line);
            io.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            line.clear();
            io.read_line(&mut line).await?;
            auth = Some((user, b64(&line)));
            "235 2.7.0 authenticated\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..]
                .trim()
                .trim_matches(['<', '>'])
                .split(' ')
                .next()
                .unwrap_or_default()
                .trim_matches(['<', '>'])
                .to_owned();
            to.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().trim_matches(['<', '>']).to_owned());
            "250 2.1.5 ok\r\n".into()
        } else if upper == "DATA" {
            if from.is_empty() || to.is_empty() {
                "503 5.5.1 need MAIL and RCPT first\r\n".into()
            } else {
                io.get_mut()
                    .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if io.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(l);
                }
                let n = {
                    let mut m = mails.lock().unwrap_or_else(|p| p.into_inner());
                    m.push(Mail {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data,
                        tls,
                        auth: auth.clone(),
                    });
                    m.len()
                };
                format!("250 2.0.0 ok queued as test-{n}\r\n")
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 2.0.0 ok\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 ok\r\n".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 command not recognized\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
    }
}
