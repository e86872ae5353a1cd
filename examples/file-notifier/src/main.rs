//! A custom notifier (a JSON-lines file) plugged into the alert router.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kamiyo_aggregators::replay::Scenario;
use kamiyo_alerts::budget::Budget;
use kamiyo_alerts::router::Route;
use kamiyo_alerts::{AlertService, Channel, Message, Retry};
use kamiyo_core_models::testing::MemoryStore;
use kamiyo_core_models::{
    Alert, DeliveryReceipt, IncidentChange, IngestBatch, MarketStore, Notifier, NotifyError,
    Severity, SystemClock,
};
use kamiyo_monitors::{Engine, MonitorsConfig};

/// Appends one JSON object per alert to a file.
struct JsonLinesFile {
    name: String,
    path: PathBuf,
}

#[async_trait]
impl Notifier for JsonLinesFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "jsonl-file"
    }

    async fn notify(&self, alert: &Alert) -> Result<DeliveryReceipt, NotifyError> {
        let m = Message::of(alert);
        let e = &alert.update.event;
        let line = serde_json::json!({
            "id": alert.idempotency_key,
            "headline": m.headline,
            "change": e.change.as_str(),
            "severity": e.severity.as_str(),
            "threat_type": e.threat_type.as_str(),
            "asset": e.asset,
            "incident_id": e.incident_id,
            "time": e.time.to_rfc3339(),
        })
        .to_string();
        let path = self.path.clone();
        // File I/O off the async threads; a failed write is worth retrying.
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            writeln!(f, "{line}")
        })
        .await
        .map_err(|e| NotifyError::Transient(e.to_string()))?
        .map_err(|e| NotifyError::Transient(format!("writing {}: {e}", self.path.display())))?;
        Ok(DeliveryReceipt::default())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join("kamiyo-alerts.jsonl"),
        PathBuf::from,
    );
    let _ = std::fs::remove_file(&path);
    let store = MemoryStore::default();

    // The alert service with one channel: our notifier, its route and an unlimited budget.
    let channel = Channel {
        notifier: Arc::new(JsonLinesFile {
            name: "audit-file".into(),
            path: path.clone(),
        }),
        budget: Budget::new(Vec::new()),
        route: Route {
            channel: "audit-file".into(),
            min_severity: Severity::High,
            threat_types: Vec::new(),
            assets: Vec::new(),
            changes: vec![
                IncidentChange::Opened,
                IncidentChange::Escalated,
                IncidentChange::Updated,
                IncidentChange::Resolved,
            ],
        },
    };
    let retry = Retry {
        max_attempts: 5,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };
    let mut svc = AlertService::with_channels(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        vec![channel],
        retry,
        0,
        None,
    );
    svc.init().await.map_err(anyhow::Error::msg)?;
    let handle = svc.handle();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let service = tokio::spawn(svc.run(stop_rx));

    // Incidents: the JELLY scenario through the engine, committed as the server commits them.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/jelly-2025-03-26");
    let scenario = Scenario::load(&dir)?;
    let mut engine = Engine::new(&MonitorsConfig::default())?;
    engine
        .state_mut()
        .set_reference_max_age_ms(scenario.stale_after_ms());
    let mut steps = 0;
    for e in &scenario.events {
        let out = engine.process(e);
        if !out.updates.is_empty() {
            steps += out.updates.len();
            store
                .commit(&IngestBatch {
                    updates: out.updates,
                    ..IngestBatch::default()
                })
                .await?;
            handle.wake();
        }
    }
    if !handle.wait_idle(Duration::from_secs(30)).await {
        anyhow::bail!("alerts still pending after 30 s");
    }
    let _ = stop.send(true);
    service.await?;
    let written = std::fs::read_to_string(&path)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{steps} incident steps committed; {} alerts written to {}:",
        written.lines().count(),
        path.display()
    )?;
    for l in written.lines() {
        let v: serde_json::Value = serde_json::from_str(l)?;
        writeln!(out, "  {}", v["headline"].as_str().unwrap_or_default())?;
    }
    Ok(())
}
