//! E-mail: the shared subject and HTML body, SendGrid's v3 mail-send API, and SMTP (lettre,
//! STARTTLS or implicit TLS). Each message carries a `Message-ID` (SMTP) or custom header
//! derived from the idempotency key, so mail clients and receivers can drop a repeat.

use async_trait::async_trait;
use kamiyo_core_models::{Alert, DeliveryReceipt, Notifier, NotifyError};
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{Value, json};

use crate::Secret;
use crate::message::{Message, escape_html as h};

/// The public SendGrid API.
pub const SENDGRID_URL: &str = "https://api.sendgrid.com";

/// The subject line.
pub fn subject(m: &Message) -> String {
    crate::message::truncate(&format!("{} {}", m.brand, m.headline), 200)
}

/// The HTML part.
pub fn html(m: &Message) -> String {
    let mut s = format!(
        "<html><body style=\"font-family:sans-serif\"><h2 style=\"color:#{:06x}\">{}</h2>",
        m.colour(),
        h(&m.headline)
    );
    s.push_str("<table cellpadding=\"4\">");
    let mut row = |k: &str, v: &str| {
        s.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            h(k),
            h(v)
        ))
    };
    row("Severity", m.severity.as_str());
    row("Lifecycle", &format!("{} ({})", m.change, m.status));
    row("Threat", m.threat_type);
    if let Some(a) = &m.asset {
        row("Asset", a);
    }
    row("First seen", &m.first_seen);
    row("This step", &m.time);
    row("Detections", &m.detections.to_string());
    if let Some(l) = &m.logged {
        row("Event log", l);
    }
    for (k, v) in &m.evidence {
        row(k, v);
    }
    s.push_str("</table>");
    for (label, url) in &m.links {
        s.push_str(&format!(
            "<p>Explorer: <a href=\"{}\">{}</a></p>",
            h(url),
            h(label)
        ));
    }
    if !m.related.is_empty() {
        s.push_str("<p><b>Related incidents on this market:</b></p><ul>");
        for r in &m.related {
            s.push_str(&format!("<li>{}</li>", h(r)));
        }
        s.push_str("</ul>");
    }
    if m.change != "Resolved" {
        s.push_str(&format!(
            "<p><b>What to check:</b> {}</p>",
            h(m.what_to_check)
        ));
    }
    if !m.indicators.is_empty() {
        s.push_str(&format!(
            "<p>Indicators: {}</p>",
            h(&m.indicators.join(", "))
        ));
    }
    if let Some(l) = &m.link {
        s.push_str(&format!(
            "<p><a href=\"{}\">Open in {}</a></p>",
            h(l),
            h(&m.brand)
        ));
    }
    s.push_str(&format!(
        "<p style=\"color:#888\">Incident key {} · alert id {}</p></body></html>",
        h(&m.incident_key),
        h(&m.idempotency_key)
    ));
    s
}

/// SendGrid v3 `POST /v3/mail/send`.
#[derive(Debug)]
pub struct SendGrid {
    name: String,
    api_url: String,
    api_key: Secret,
    from: String,
    to: Vec<String>,
    http: reqwest::Client,
}

impl SendGrid {
    /// A SendGrid channel sending from `from` to every address in `to`.
    pub fn new(
        name: &str,
        api_url: &str,
        api_key: Secret,
        from: &str,
        to: &[String],
    ) -> Result<Self, NotifyError> {
        Ok(Self {
            name: name.to_owned(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_key,
            from: from.to_owned(),
            to: to.to_vec(),
            http: crate::http::client()?,
        })
    }

    /// The JSON body of the mail-send request (text/plain first, then text/html, as the API
    /// requires).
    pub fn body(&self, m: &Message) -> Value {
        json!({
            "personalizations": [{"to": self.to.iter().map(|a| json!({"email": a})).collect::<Vec<_>>()}],
            "from": {"email": self.from, "name": m.brand},
            "subject": subject(m),
            "content": [
                {"type": "text/plain", "value": m.plain_text()},
                {"type": "text/html", "value": html(m)},
            ],
            "headers": {"X-Kamiyo-Idempotency-Key": m.idempotency_key},
            "custom_args": {"kamiyo_alert_id": m.idempotency_key, "kamiyo_incident": m.incident_id},
            "categories": ["kamiyo", m.severity.as_str()],
        })
    }
}

#[async_trait]
impl Notifier for SendGrid {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "sendgrid"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let req = self
            .http
            .post(format!("{}/v3/mail/send", self.api_url))
            .bearer_auth(self.api_key.expose())
            .json(&self.body(&Message::of(alert)));
        crate::http::send(req, |h, _| {
            h.get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .await
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required; port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on loopback or a private network.
    None,
}

/// SMTP settings.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Server host name (checked against its certificate).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Security.
    pub security: SmtpSecurity,
    /// Login, if the relay needs one.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// An extra trusted root certificate (PEM), for a relay with a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

/// SMTP through lettre.
pub struct Smtp {
    name: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("name", &self.name)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// Validates the addresses and builds the transport (connections are made per delivery).
    pub fn new(name: &str, s: &SmtpSettings) -> Result<Self, NotifyError> {
        let bad = |e: String| NotifyError::Permanent(e);
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| bad(format!("invalid from address {:?}: {e}", s.from)))?;
        let to =
            s.to.iter()
                .map(|a| {
                    a.parse::<Mailbox>()
                        .map_err(|e| bad(format!("invalid recipient {a:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(bad("no recipients".into()));
        }
        crate::http::install_crypto_provider();
        let tls = || -> Result<TlsParameters, NotifyError> {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| bad(format!("invalid CA certificate: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| bad(format!("TLS settings: {e}")))
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(crate::http::TIMEOUT));
        b = match s.security {
            SmtpSecurity::Starttls => b.tls(Tls::Required(tls()?)),
            SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::None => b.tls(Tls::None),
        };
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(
                s.username.clone(),
                s.password.expose().to_owned(),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            from,
            to,
            transport: b.build(),
        })
    }

    /// The MIME message (multipart/alternative: text, then HTML).
    pub fn message(&self, m: &Message) -> Result<lettre::Message, NotifyError> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject(m))
            .message_id(Some(format!("<{}@kamiyo.alert>", m.idempotency_key)))
            .date(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(m.timestamp.millis().max(0) as u64),
            )
            .header(IdempotencyHeader(m.idempotency_key.clone()));
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(m.plain_text(), html(m)))
            .map_err(|e| NotifyError::Permanent(format!("cannot build the message: {e}")))
    }
}

/// `X-Kamiyo-Idempotency-Key`.
#[derive(Debug, Clone)]
struct IdempotencyHeader(String);

impl header::Header for IdempotencyHeader {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("X-Kamiyo-Idempotency-Key")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[async_trait]
impl Notifier for Smtp {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "smtp"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let msg = self.message(&Message::of(alert))?;
        self.send(msg).await
    }
}

impl Smtp {
    async fn send(&self, msg: lettre::Message) -> Result<DeliveryReceipt, NotifyError> {
        match self.transport.send(msg).await {
            Ok(r) => Ok(DeliveryReceipt {
                status: r.code().to_string().parse().ok(),
                remote_id: r.message().next().map(str::to_owned),
            }),
            Err(e) if e.is_permanent() => Err(NotifyError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(NotifyError::Transient(format!("SMTP: {e}"))),
        }
    }

    /// Sends a plain-text message to `to` (not the channel's recipients) through the same
    /// relay and sender: account mail (address verification, password reset) for a host.
    pub async fn send_text(
        &self,
        to: &str,
        subject: &str,
        text: &str,
    ) -> Result<DeliveryReceipt, NotifyError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| NotifyError::Permanent(format!("invalid recipient {to:?}: {e}")))?;
        let msg = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(text.to_owned())
            .map_err(|e| NotifyError::Permanent(format!("cannot build the message: {e}")))?;
        self.send(msg).await
    }
}
