//! `kamiyo-hyperliquid alerts test [--channel NAME]`: sends a clearly marked test message to
//! each configured channel (or one) directly — no outbox, no budget wait — and reports the
//! destination's answer or the exact failure.

use std::io::Write;
use std::time::Instant;

use kamiyo_core_models::{Clock, SystemClock};

use crate::config::Config;

/// Returns whether every channel accepted its test message.
pub async fn test(cfg: &Config, only: Option<&str>, out: &mut impl Write) -> anyhow::Result<bool> {
    kamiyo_aggregators::install_crypto_provider();
    let channels: Vec<_> = cfg
        .alerts
        .channels
        .iter()
        .filter(|(name, c)| only.map_or(c.enabled, |o| o == name.as_str()))
        .collect();
    if channels.is_empty() {
        match only {
            Some(o) => writeln!(
                out,
                "no channel named {o:?}; configured: {}",
                cfg.alerts
                    .channels
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
            None => writeln!(
                out,
                "no alert channels configured (add [alerts.channels.<name>]; see docs/ALERTS.md)"
            )?,
        }
        return Ok(false);
    }
    let base = (!cfg.server.public_url.is_empty()).then_some(cfg.server.public_url.as_str());
    let mut all_ok = true;
    for (name, c) in channels {
        let kind = c.kind.as_str();
        let notifier = match c.build(name) {
            Ok(n) => n,
            Err(e) => {
                all_ok = false;
                writeln!(out, "{name} ({kind}): FAILED before sending: {e}")?;
                continue;
            }
        };
        let alert = kamiyo_alerts::test_alert(name, SystemClock.now(), base);
        let t = Instant::now();
        match notifier.notify(&alert).await {
            Ok(r) => writeln!(
                out,
                "{name} ({kind}): delivered in {} ms{}{}",
                t.elapsed().as_millis(),
                r.status.map_or(String::new(), |s| format!(", status {s}")),
                r.remote_id.map_or(String::new(), |id| format!(", id {id}")),
            )?,
            Err(e) => {
                all_ok = false;
                writeln!(
                    out,
                    "{name} ({kind}): FAILED after {} ms: {e}",
                    t.elapsed().as_millis()
                )?;
            }
        }
    }
    Ok(all_ok)
}
