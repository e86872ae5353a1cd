//! The channel-neutral content of an alert: every channel renders the same facts (severity,
//! lifecycle step, threat type, asset, evidence numbers, times, link), each in its own format.

use kamiyo_core_models::units::{human_field, what_to_check};
use kamiyo_core_models::{Alert, IncidentChange, Severity, Timestamp};

/// What every channel says about one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `[CRITICAL] Opened · JELLY mark +20.0% in 10 min on a thin market`; a resolution reads
    /// `[RESOLVED] … · was critical`, never as an emergency.
    pub headline: String,
    /// The incident's own title.
    pub title: String,
    /// Severity after this step.
    pub severity: Severity,
    /// Lifecycle step, as a word (`Opened`, `Escalated`, `Updated`, `Resolved`).
    pub change: &'static str,
    /// Threat type (`ORACLE_DEVIATION` …).
    pub threat_type: &'static str,
    /// Market concerned, if any.
    pub asset: Option<String>,
    /// Incident status after this step (`open` or `resolved`).
    pub status: &'static str,
    /// Evidence as (words, value with its unit), in a stable order.
    pub evidence: Vec<(String, String)>,
    /// Explorer links of the addresses in the evidence, as (label, URL).
    pub links: Vec<(String, String)>,
    /// The first thing to check, for the person paged.
    pub what_to_check: &'static str,
    /// A group update's related incidents, one line each (`critical opened 15:04:50Z — title`).
    pub related: Vec<String>,
    /// Indicators.
    pub indicators: Vec<String>,
    /// First detection, RFC 3339.
    pub first_seen: String,
    /// This step's time, RFC 3339.
    pub time: String,
    /// This step's time.
    pub timestamp: Timestamp,
    /// Detections folded into the incident so far.
    pub detections: u64,
    /// Incident key (stable across the incident's life).
    pub incident_key: String,
    /// Incident id.
    pub incident_id: String,
    /// Link to the incident on the dashboard.
    pub link: Option<String>,
    /// The idempotency key receivers use to drop a repeat.
    pub idempotency_key: String,
    /// True for `alerts test` messages.
    pub is_test: bool,
    /// The name the message is sent under (`kamiyo`, or a host's brand).
    pub brand: String,
    /// The step's entry in the event log, for people to keep
    /// (`#42 · logged 2026-… · chain 9f2c…`), when it has one.
    pub logged: Option<String>,
}

/// Marker put in front of test messages on every channel.
pub const TEST_MARKER: &str = "[TEST — not a real incident]";

impl Message {
    /// Builds the message of `alert`.
    pub fn of(alert: &Alert) -> Self {
        let e = &alert.update.event;
        let i = &alert.update.incident;
        let group = !alert.related.is_empty();
        let change = match e.change {
            _ if group => "Group update",
            IncidentChange::Opened => "Opened",
            IncidentChange::Escalated => "Escalated",
            IncidentChange::Updated => "Updated",
            IncidentChange::Resolved => "Resolved",
        };
        let related: Vec<String> = alert
            .related
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} — {}",
                    r.severity.as_str(),
                    r.change.as_str(),
                    r.time.to_rfc3339(),
                    r.title
                )
            })
            .collect();
        let status = if e.change == IncidentChange::Resolved {
            "resolved"
        } else {
            i.status.as_str()
        };
        let mut headline = if group {
            // The thread's severity: the highest of its incidents still open.
            let open = alert
                .related
                .iter()
                .filter(|r| r.change != IncidentChange::Resolved)
                .map(|r| r.severity)
                .chain((e.change != IncidentChange::Resolved).then_some(e.severity))
                .max();
            let market = e
                .asset
                .as_ref()
                .map_or("the market".to_owned(), ToString::to_string);
            format!(
                "[{}] Group update · {} related incident(s) on {market} · {}",
                open.map_or("RESOLVED".to_owned(), |s| s.as_str().to_ascii_uppercase()),
                alert.related.len(),
                e.title
            )
        } else if e.change == IncidentChange::Resolved {
            format!("[RESOLVED] {} · was {}", e.title, i.peak_severity.as_str())
        } else {
            format!(
                "[{}] {change} · {}",
                e.severity.as_str().to_ascii_uppercase(),
                e.title
            )
        };
        if alert.is_test {
            headline = format!("{TEST_MARKER} {headline}");
        }
        let fields: Vec<_> = e
            .evidence
            .0
            .iter()
            .map(|(k, v)| human_field(k, v))
            .collect();
        Self {
            headline,
            links: fields
                .iter()
                .filter_map(|f| f.link.clone().map(|l| (f.value.clone(), l)))
                .collect(),
            what_to_check: what_to_check(e.threat_type),
            related,
            title: e.title.clone(),
            severity: e.severity,
            change,
            threat_type: e.threat_type.as_str(),
            asset: e.asset.as_ref().map(ToString::to_string),
            status,
            evidence: fields.into_iter().map(|f| (f.label, f.value)).collect(),
            indicators: e.indicators.clone(),
            first_seen: i.first_seen.to_rfc3339(),
            time: e.time.to_rfc3339(),
            timestamp: e.time,
            detections: i.detections,
            incident_key: e.incident_key.to_string(),
            incident_id: e.incident_id.to_string(),
            link: alert.dashboard_url.clone(),
            logged: alert.log.as_ref().map(|l| {
                format!(
                    "#{} · logged {} · chain {}",
                    l.seq,
                    Timestamp(l.logged_ms).to_rfc3339(),
                    l.chain
                )
            }),
            idempotency_key: alert.idempotency_key.to_string(),
            brand: alert
                .brand
                .clone()
                .filter(|b| !b.trim().is_empty())
                .unwrap_or_else(|| "kamiyo".to_owned()),
            is_test: alert.is_test,
        }
    }

    /// Plain-text body (email text part, fallbacks).
    pub fn plain_text(&self) -> String {
        let mut s = format!("{}\n\n", self.headline);
        s.push_str(&format!("Severity: {}\n", self.severity.as_str()));
        s.push_str(&format!(
            "Lifecycle: {} (incident {})\n",
            self.change, self.status
        ));
        s.push_str(&format!("Threat: {}\n", self.threat_type));
        if let Some(a) = &self.asset {
            s.push_str(&format!("Asset: {a}\n"));
        }
        s.push_str(&format!(
            "First seen: {} · this step: {} · detections: {}\n",
            self.first_seen, self.time, self.detections
        ));
        if !self.evidence.is_empty() {
            s.push_str("\nEvidence:\n");
            for (k, v) in &self.evidence {
                s.push_str(&format!("  {k}: {v}\n"));
            }
        }
        for (label, url) in &self.links {
            s.push_str(&format!("Explorer ({label}): {url}\n"));
        }
        if !self.related.is_empty() {
            s.push_str("\nRelated incidents on this market:\n");
            for r in &self.related {
                s.push_str(&format!("  {r}\n"));
            }
        }
        if !self.indicators.is_empty() {
            s.push_str(&format!("\nIndicators: {}\n", self.indicators.join(", ")));
        }
        if self.change != "Resolved" {
            s.push_str(&format!("\nWhat to check: {}\n", self.what_to_check));
        }
        if let Some(l) = &self.link {
            s.push_str(&format!("\nIncident page: {l}\n"));
        }
        if let Some(l) = &self.logged {
            s.push_str(&format!("Event log: {l}\n"));
        }
        s.push_str(&format!(
            "\nIncident key: {} · alert id: {}\n",
            self.incident_key, self.idempotency_key
        ));
        s
    }

    /// Colour of the severity (RGB), for channels that show one.
    pub fn colour(&self) -> u32 {
        if self.change == "Resolved" {
            return 0x2E_A0_43;
        }
        match self.severity {
            Severity::Critical => 0xD7_26_1E,
            Severity::High => 0xF0_88_3E,
            Severity::Medium => 0xE3_B3_41,
            Severity::Low => 0x58_8B_D6,
            Severity::Info => 0x8B_94_9E,
        }
    }
}

pub use kamiyo_core_models::units::group_thousands;

/// Escapes `&`, `<`, `>` (and quotes) for HTML text and attributes — Telegram's HTML parse
/// mode, e-mail HTML, and Slack's mrkdwn (which needs the first three).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(group_thousands("1000"), "1,000");
        assert_eq!(group_thousands("0.031"), "0.031");
        assert_eq!(group_thousands("abc"), "abc");
        assert_eq!(escape_html("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
