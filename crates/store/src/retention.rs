//! Retention: rows older than the configured days are deleted in small time slices, so the job
//! never holds a long lock and never blocks ingest. Open incidents and pending alerts are never
//! deleted.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kamiyo_core_models::{StoreResult, Timestamp};

use crate::schema::*;
use crate::{Db, SqliteConn, Store, pool_err, q};

/// The tables under retention and their time column.
pub const TABLES: &[&str] = &[
    "security_events",
    "incidents",
    "vault_points",
    "market_bars",
    "deviation_samples",
    "liquidations",
    "positions",
    "alert_outbox",
    "audit_log",
    "incident_actions",
    "silences",
];

/// Retention settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Default days.
    pub days: u32,
    /// Per-table days.
    pub overrides: BTreeMap<String, u32>,
}

impl Retention {
    /// Days for `table`.
    pub fn days_for(&self, table: &str) -> u32 {
        self.overrides.get(table).copied().unwrap_or(self.days)
    }
}

/// One slice: rows of `$table` older than `$cut` and within an hour of the oldest.
macro_rules! slice_delete {
    ($c:expr, $table:ident, $col:expr, $cut:expr) => {{
        let oldest: Option<i64> = $table::table
            .select(diesel::dsl::min($col))
            .first($c)
            .await
            .map_err(q)?;
        match oldest {
            Some(o) if o < $cut => {
                let upto = ($cut).min(o + Timestamp::HOUR);
                diesel::delete($table::table.filter($col.lt(upto)))
                    .execute($c)
                    .await
                    .map_err(q)?
            }
            _ => 0,
        }
    }};
}

impl Store {
    /// Deletes one slice of expired rows per table at `now`; returns rows deleted per table.
    /// Call repeatedly until it returns zeros (the background job sleeps between calls).
    pub async fn retention_pass(
        &self,
        r: &Retention,
        now: Timestamp,
    ) -> StoreResult<Vec<(&'static str, usize)>> {
        let cut = |t: &str| now.0 - i64::from(r.days_for(t)) * Timestamp::DAY;
        let _w = self.write_lock.lock().await;
        macro_rules! run_all {
            ($c:expr) => {{
                let c = $c;
                let mut out = Vec::new();
                out.push((
                    "security_events",
                    slice_delete!(
                        c,
                        security_events,
                        security_events::time_ms,
                        cut("security_events")
                    ),
                ));
                let ci = cut("incidents");
                let n = diesel::delete(
                    incidents::table
                        .filter(incidents::status.eq("resolved"))
                        .filter(incidents::last_seen_ms.lt(ci)),
                )
                .execute(c)
                .await
                .map_err(q)?;
                out.push(("incidents", n));
                // People's actions go with their incident: once it is deleted, and old.
                let ca = cut("incident_actions");
                let n = diesel::delete(
                    incident_actions::table
                        .filter(incident_actions::time_ms.lt(ca))
                        .filter(diesel::dsl::not(
                            incident_actions::incident_id
                                .eq_any(incidents::table.select(incidents::id)),
                        )),
                )
                .execute(c)
                .await
                .map_err(q)?;
                out.push(("incident_actions", n));
                // Silences over for the retention period (ended, or ended early).
                let cs = cut("silences");
                let n = diesel::delete(
                    silences::table
                        .filter(silences::ends_ms.lt(cs).or(silences::expired_ms.lt(cs))),
                )
                .execute(c)
                .await
                .map_err(q)?;
                out.push(("silences", n));
                out.push((
                    "vault_points",
                    slice_delete!(c, vault_points, vault_points::time_ms, cut("vault_points")),
                ));
                out.push((
                    "market_bars",
                    slice_delete!(c, market_bars, market_bars::time_ms, cut("market_bars")),
                ));
                out.push((
                    "deviation_samples",
                    slice_delete!(
                        c,
                        deviation_samples,
                        deviation_samples::time_ms,
                        cut("deviation_samples")
                    ),
                ));
                out.push((
                    "liquidations",
                    slice_delete!(c, liquidations, liquidations::time_ms, cut("liquidations")),
                ));
                out.push((
                    "positions",
                    slice_delete!(c, positions, positions::time_ms, cut("positions")),
                ));
                let co = cut("alert_outbox");
                let n = diesel::delete(
                    alert_outbox::table
                        .filter(alert_outbox::status.ne("pending"))
                        .filter(alert_outbox::created_ms.lt(co)),
                )
                .execute(c)
                .await
                .map_err(q)?;
                out.push(("alert_outbox", n));
                out.push((
                    "audit_log",
                    slice_delete!(c, audit_log, audit_log::time_ms, cut("audit_log")),
                ));
                Ok::<_, kamiyo_core_models::StoreError>(out)
            }};
        }
        match self.db() {
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut AsyncPgConnection = &mut g;
                run_all!(c)
            }
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut SqliteConn = &mut g;
                run_all!(c)
            }
        }
    }

    /// Runs passes until nothing is left to delete; returns the total per table.
    pub async fn enforce_retention(
        &self,
        r: &Retention,
        now: Timestamp,
    ) -> StoreResult<BTreeMap<&'static str, usize>> {
        let mut total: BTreeMap<&'static str, usize> = BTreeMap::new();
        loop {
            let pass = self.retention_pass(r, now).await?;
            let any = pass.iter().any(|(_, n)| *n > 0);
            for (t, n) in pass {
                *total.entry(t).or_default() += n;
            }
            if !any {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
