//! Opening the configured store and the background retention job.

use std::time::Duration;

use kamiyo_core_models::Clock;
use kamiyo_store::Store;
use kamiyo_store::retention::Retention;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Connects to the configured database (PostgreSQL at `database.url`, else the SQLite file in
/// `server.data_dir`) and runs pending migrations.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let store = connect(cfg).await?;
    let ran = store.migrate().await?;
    tracing::info!(store.backend = ?store.backend(), store.location = store.location(), migrations.applied = ran, "store ready");
    Ok(store)
}

/// Connects without migrating.
pub async fn connect(cfg: &Config) -> anyhow::Result<Store> {
    let d = &cfg.database;
    Ok(Store::connect(&d.url, &cfg.server.data_dir, d.max_connections).await?)
}

/// The retention settings of the configuration.
pub fn retention(cfg: &Config) -> Retention {
    Retention {
        days: cfg.database.retention_days,
        overrides: cfg.database.retention_overrides.clone(),
    }
}

/// Every `interval`, deletes expired rows slice by slice, pausing between slices so ingest
/// (which shares the write lock) never waits for more than one slice.
pub async fn retention_job(
    store: Store,
    r: Retention,
    clock: std::sync::Arc<dyn Clock>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        let mut deleted = 0usize;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match store.retention_pass(&r, clock.now()).await {
                Ok(pass) => {
                    let n: usize = pass.iter().map(|(_, n)| n).sum();
                    deleted += n;
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; retrying next interval");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if deleted > 0 {
            tracing::info!(rows.deleted = deleted, "retention");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
