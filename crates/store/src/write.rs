//! The batched, transactional write path ([`MarketStore::commit`](kamiyo_core_models::MarketStore::commit)).
//!
//! The steps are written once (the `steps!` macro) and expanded twice: natively async for
//! PostgreSQL, and as plain synchronous diesel inside one blocking task for SQLite. SQLite is
//! embedded, so the whole transaction runs on one thread with multi-row statements, instead of
//! one thread hop per statement through diesel-async's wrapper.

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use diesel::upsert::excluded;
use kamiyo_core_models::IngestBatch;

use crate::rows::*;
use crate::schema::*;

/// Rows per statement (SQLite allows 32,766 bound variables; the widest row has 16 columns).
pub(crate) const CHUNK: usize = 400;

/// A batch turned into rows, owned so it can move into a blocking task.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    vault_points: Vec<VaultPointRow>,
    deviations: Vec<DeviationRow>,
    liquidations: Vec<LiquidationRow>,
    positions: Vec<PositionRow>,
    bars: Vec<MarketBarRow>,
    /// Events in order, `seq` assigned in the transaction.
    events: Vec<SecurityEventRow>,
    /// The latest state of each incident touched.
    incidents: Vec<IncidentRow>,
    outbox: Vec<OutboxRow>,
    actions: Vec<ActionRow>,
    cursors: Vec<CursorRow>,
    /// The writer fence (name, epoch) the commit must hold, if any.
    pub(crate) fence: Option<(String, i64)>,
}

/// A fenced commit whose epoch was superseded (carried out of the transaction as a
/// `QueryBuilderError`, which rolls it back).
#[derive(Debug)]
pub(crate) struct Superseded;

impl std::fmt::Display for Superseded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("writer fence superseded")
    }
}

impl std::error::Error for Superseded {}

impl Prepared {
    pub(crate) fn new(batch: &IngestBatch) -> Self {
        let mut latest: BTreeMap<String, IncidentRow> = BTreeMap::new();
        for u in &batch.updates {
            latest.insert(u.incident.id.to_string(), IncidentRow::from(&u.incident));
        }
        let now = batch
            .updates
            .iter()
            .map(|u| u.event.time.0)
            .max()
            .unwrap_or(0);
        Self {
            vault_points: batch.vault_points.iter().map(Into::into).collect(),
            deviations: batch.deviations.iter().map(Into::into).collect(),
            liquidations: batch.liquidations.iter().map(Into::into).collect(),
            positions: batch.positions.iter().map(Into::into).collect(),
            bars: batch.bars.iter().map(Into::into).collect(),
            events: batch
                .updates
                .iter()
                .map(|u| SecurityEventRow::new(0, &u.event))
                .collect(),
            incidents: latest.into_values().collect(),
            outbox: batch.outbox.iter().map(Into::into).collect(),
            actions: batch.actions.iter().map(Into::into).collect(),
            cursors: batch
                .cursors
                .iter()
                .map(|(s, p)| CursorRow {
                    source: s.clone(),
                    position: p.clone(),
                    updated_ms: now,
                })
                .collect(),
            fence: None,
        }
    }
}

/// Numbers the events not stored yet (and not repeated within the batch) from `max + 1`.
fn number(
    events: Vec<SecurityEventRow>,
    existing: Vec<String>,
    max: Option<i64>,
) -> Vec<SecurityEventRow> {
    let mut seen: BTreeSet<String> = existing.into_iter().collect();
    let mut seq = max.unwrap_or(0);
    events
        .into_iter()
        .filter(|e| seen.insert(e.id.clone()))
        .map(|mut e| {
            seq += 1;
            e.seq = seq;
            e
        })
        .collect()
}

/// The event-log entries of `stored` (new events, numbered) after `head`, logged now.
fn log_entries(
    head: Option<LogRow>,
    stored: &[SecurityEventRow],
) -> diesel::result::QueryResult<Vec<LogRow>> {
    let events = stored
        .iter()
        .cloned()
        .map(kamiyo_core_models::StoredEvent::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    let head = head.map(kamiyo_core_models::ledger::LogEntry::from);
    let now = kamiyo_core_models::Clock::now(&kamiyo_core_models::SystemClock);
    Ok(
        kamiyo_core_models::ledger::append(head.as_ref(), &events, now)
            .into_iter()
            .map(LogRow::from)
            .collect(),
    )
}

/// The steps of a commit; `$aw` is `.await` for the async connection and empty for the
/// synchronous one, `$ignore` the backend's insert-or-ignore.
macro_rules! steps {
    ($c:ident, $p:ident, $ignore:ident, [$($aw:tt)*]) => {{
        let p: Prepared = $p;
        // A fenced writer first proves its epoch is current, and counts itself, in this
        // transaction (the row lock orders it against a newer writer taking the fence).
        if let Some((name, epoch)) = &p.fence {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let n = diesel::sql_query(
                "UPDATE writer_fences SET commits = commits + 1, last_commit_ms = $1 WHERE name = $2 AND epoch = $3",
            )
            .bind::<diesel::sql_types::BigInt, _>(now)
            .bind::<diesel::sql_types::Text, _>(name.as_str())
            .bind::<diesel::sql_types::BigInt, _>(*epoch)
            .execute($c)
            $($aw)*?;
            if n == 0 {
                return Err(diesel::result::Error::QueryBuilderError(Box::new(Superseded)));
            }
        }
        $ignore!($c, vault_points::table, p.vault_points, [$($aw)*]);
        $ignore!($c, deviation_samples::table, p.deviations, [$($aw)*]);
        $ignore!($c, liquidations::table, p.liquidations, [$($aw)*]);
        $ignore!($c, positions::table, p.positions, [$($aw)*]);
        $ignore!($c, market_bars::table, p.bars, [$($aw)*]);
        let mut stored = Vec::new();
        if !p.events.is_empty() {
            let ids: Vec<&str> = p.events.iter().map(|e| e.id.as_str()).collect();
            let mut existing: Vec<String> = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                existing.extend(
                    security_events::table
                        .filter(security_events::id.eq_any(chunk))
                        .select(security_events::id)
                        .load::<String>($c)
                        $($aw)*?,
                );
            }
            let max: Option<i64> = security_events::table
                .select(diesel::dsl::max(security_events::seq))
                .first($c)
                $($aw)*?;
            // The log outlives the events retention deletes: numbering goes on after its head,
            // so a `seq` is never given twice.
            let head: Option<LogRow> = event_log::table
                .order(event_log::seq.desc())
                .select(LogRow::as_select())
                .first($c)
                $($aw)*
                .optional()?;
            let max = max.max(head.as_ref().map(|h| h.seq));
            stored = number(p.events, existing, max);
            for chunk in stored.chunks(CHUNK) {
                diesel::insert_into(security_events::table)
                    .values(chunk)
                    .execute($c)
                    $($aw)*?;
            }
            // Each new event's entry in the event log, chained to the newest entry (a
            // concurrent writer of the same `seq` fails on the events' insert above).
            if !stored.is_empty() {
                let entries = log_entries(head, &stored)?;
                for chunk in entries.chunks(CHUNK) {
                    diesel::insert_into(event_log::table)
                        .values(chunk)
                        .execute($c)
                        $($aw)*?;
                }
            }
            // A resolved incident stays resolved (an operator may close one the engine still
            // updates): its row is not rewritten; a condition that persists opens a new one.
            let mut closed: BTreeSet<String> = BTreeSet::new();
            for chunk in p.incidents.chunks(CHUNK) {
                let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
                closed.extend(
                    incidents::table
                        .filter(incidents::id.eq_any(ids))
                        .filter(incidents::status.eq(kamiyo_core_models::IncidentStatus::Resolved.as_str()))
                        .select(incidents::id)
                        .load::<String>($c)
                        $($aw)*?,
                );
            }
            let upserts: Vec<IncidentRow> = p
                .incidents
                .into_iter()
                .filter(|r| !closed.contains(&r.id))
                .collect();
            for chunk in upserts.chunks(CHUNK) {
                use incidents::dsl as i;
                let upsert = diesel::insert_into(incidents::table)
                    .values(chunk)
                    .on_conflict(i::id)
                    .do_update()
                    .set((
                        i::incident_key.eq(excluded(i::incident_key)),
                        i::detector.eq(excluded(i::detector)),
                        i::threat_type.eq(excluded(i::threat_type)),
                        i::severity.eq(excluded(i::severity)),
                        i::peak_severity.eq(excluded(i::peak_severity)),
                        i::asset.eq(excluded(i::asset)),
                        i::status.eq(excluded(i::status)),
                        i::title.eq(excluded(i::title)),
                        i::indicators.eq(excluded(i::indicators)),
                        i::evidence.eq(excluded(i::evidence)),
                        i::first_seen_ms.eq(excluded(i::first_seen_ms)),
                        i::last_seen_ms.eq(excluded(i::last_seen_ms)),
                        i::resolved_at_ms.eq(excluded(i::resolved_at_ms)),
                        i::detections.eq(excluded(i::detections)),
                    ));
                upsert.execute($c)
                    $($aw)*?;
            }
        }
        $ignore!($c, alert_outbox::table, p.outbox, [$($aw)*]);
        $ignore!($c, incident_actions::table, p.actions, [$($aw)*]);
        if !p.cursors.is_empty() {
            use ingest_cursors::dsl as k;
            diesel::insert_into(ingest_cursors::table)
                .values(&p.cursors)
                .on_conflict(k::source)
                .do_update()
                .set((
                    k::position.eq(excluded(k::position)),
                    k::updated_ms.eq(excluded(k::updated_ms)),
                ))
                .execute($c)
                $($aw)*?;
        }
        Ok(stored)
    }};
}

/// PostgreSQL: multi-row `INSERT … ON CONFLICT DO NOTHING`.
macro_rules! pg_ignore {
    ($c:ident, $table:path, $rows:expr, [$($aw:tt)*]) => {
        for chunk in $rows.chunks(CHUNK) {
            diesel::insert_into($table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute($c)
                $($aw)*?;
        }
    };
}

/// SQLite: multi-row `INSERT OR IGNORE`.
macro_rules! sqlite_ignore {
    ($c:ident, $table:path, $rows:expr, [$($aw:tt)*]) => {
        for chunk in $rows.chunks(CHUNK) {
            diesel::insert_or_ignore_into($table)
                .values(chunk)
                .execute($c)
                $($aw)*?;
        }
    };
}

/// The PostgreSQL commit.
pub(crate) mod pg {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    use super::*;

    /// Commits `p` in one transaction; returns the stored events.
    pub(crate) async fn commit(
        c: &mut AsyncPgConnection,
        p: Prepared,
    ) -> QueryResult<Vec<SecurityEventRow>> {
        c.transaction::<_, diesel::result::Error, _>(async |c| steps!(c, p, pg_ignore, [.await]))
            .await
    }

    /// Replaces the exploit table with `rows` in one transaction.
    pub(crate) async fn replace_exploits(
        c: &mut AsyncPgConnection,
        rows: &[crate::rows::ExploitRow],
    ) -> QueryResult<()> {
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::delete(exploits::table).execute(c).await?;
            for chunk in rows.chunks(CHUNK) {
                diesel::insert_into(exploits::table)
                    .values(chunk)
                    .execute(c)
                    .await?;
            }
            Ok(())
        })
        .await
    }
}

/// The SQLite commit (synchronous; run it in a blocking task).
pub(crate) mod sqlite {
    use diesel::RunQueryDsl;
    use diesel::sqlite::SqliteConnection;

    use super::*;

    /// Replaces the exploit table with `rows` in one transaction (multi-row `INSERT OR
    /// IGNORE`, chunked under SQLite's parameter limit; ids are unique after the delete).
    pub(crate) fn replace_exploits(
        c: &mut SqliteConnection,
        rows: &[crate::rows::ExploitRow],
    ) -> QueryResult<()> {
        c.immediate_transaction(|c| {
            diesel::delete(exploits::table).execute(c)?;
            for chunk in rows.chunks(CHUNK) {
                diesel::insert_or_ignore_into(exploits::table)
                    .values(chunk)
                    .execute(c)?;
            }
            Ok(())
        })
    }

    /// Commits `p` in one `BEGIN IMMEDIATE` transaction; returns the stored events.
    pub(crate) fn commit(
        c: &mut SqliteConnection,
        p: Prepared,
    ) -> QueryResult<Vec<SecurityEventRow>> {
        c.immediate_transaction(|c| steps!(c, p, sqlite_ignore, []))
    }
}
