//! Schema introspection: reads the tables the migrations created, from the live database, and
//! renders them as the `diesel::table!` definitions of `schema.rs` — `diesel print-schema` for
//! both backends without the CLI. A test compares the result with `schema.rs` on SQLite and on
//! PostgreSQL, so the schema file can never drift from the migrations.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use kamiyo_core_models::StoreResult;

use crate::{Db, SqliteConn, Store, pool_err, q};

#[derive(QueryableByName)]
struct SqliteTable {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text, column_name = "type")]
    ty: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
    #[diesel(sql_type = BigInt)]
    ordinal_position: i64,
    #[diesel(sql_type = BigInt)]
    pk_position: i64,
}

/// A column: name, diesel type, nullable.
type Col = (String, String, bool);

fn diesel_type(sql: &str) -> String {
    match sql.to_ascii_lowercase().as_str() {
        "text" => "Text",
        "bigint" => "BigInt",
        "integer" => "Integer",
        "boolean" => "Bool",
        "double precision" | "double" => "Double",
        other => return format!("Unknown<{other}>"),
    }
    .to_owned()
}

fn render(tables: &BTreeMap<String, (Vec<Col>, Vec<String>)>) -> String {
    let mut s = String::new();
    for (name, (cols, pk)) in tables {
        let _ = writeln!(s, "diesel::table! {{\n    {name} ({}) {{", pk.join(", "));
        for (c, ty, nullable) in cols {
            let ty = if *nullable {
                format!("Nullable<{ty}>")
            } else {
                ty.clone()
            };
            let _ = writeln!(s, "        {c} -> {ty},");
        }
        let _ = writeln!(s, "    }}\n}}\n");
    }
    s
}

impl Store {
    /// The live schema as `diesel::table!` definitions (tables in name order).
    pub async fn describe_schema(&self) -> StoreResult<String> {
        let mut tables: BTreeMap<String, (Vec<Col>, Vec<String>)> = BTreeMap::new();
        match self.db() {
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut SqliteConn = &mut g;
                let names: Vec<SqliteTable> = diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%' ORDER BY name").load(c).await.map_err(q)?;
                for t in names {
                    let cols: Vec<SqliteColumn> =
                        diesel::sql_query(format!("PRAGMA table_info({})", t.name))
                            .load(c)
                            .await
                            .map_err(q)?;
                    let mut pk: Vec<(i32, String)> = cols
                        .iter()
                        .filter(|x| x.pk > 0)
                        .map(|x| (x.pk, x.name.clone()))
                        .collect();
                    pk.sort();
                    let cols = cols
                        .into_iter()
                        .map(|x| (x.name, diesel_type(&x.ty), x.notnull == 0 && x.pk == 0))
                        .collect();
                    tables.insert(t.name, (cols, pk.into_iter().map(|x| x.1).collect()));
                }
            }
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut AsyncPgConnection = &mut g;
                let rows: Vec<PgColumn> = diesel::sql_query(
                    "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, c.data_type::text AS data_type, \
                            c.is_nullable::text AS is_nullable, c.ordinal_position::bigint AS ordinal_position, \
                            COALESCE(k.ordinal_position, 0)::bigint AS pk_position \
                     FROM information_schema.columns c \
                     LEFT JOIN information_schema.table_constraints tc \
                       ON tc.table_schema = c.table_schema AND tc.table_name = c.table_name AND tc.constraint_type = 'PRIMARY KEY' \
                     LEFT JOIN information_schema.key_column_usage k \
                       ON k.constraint_name = tc.constraint_name AND k.table_schema = c.table_schema AND k.table_name = c.table_name AND k.column_name = c.column_name \
                     WHERE c.table_schema = current_schema() AND c.table_name NOT LIKE '__diesel%' \
                     ORDER BY c.table_name, c.ordinal_position",
                )
                .load(c)
                .await
                .map_err(q)?;
                let mut pks: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
                for r in rows {
                    let e = tables.entry(r.table_name.clone()).or_default();
                    e.0.push((
                        r.column_name.clone(),
                        diesel_type(&r.data_type),
                        r.is_nullable == "YES",
                    ));
                    if r.pk_position > 0 {
                        pks.entry(r.table_name)
                            .or_default()
                            .push((r.pk_position, r.column_name));
                    }
                    let _ = r.ordinal_position;
                }
                for (t, mut v) in pks {
                    v.sort();
                    if let Some(e) = tables.get_mut(&t) {
                        e.1 = v.into_iter().map(|x| x.1).collect();
                    }
                }
            }
        }
        Ok(render(&tables))
    }
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The API's main queries, named, as SQL (PostgreSQL dialect).
pub const MAIN_QUERIES: &[(&str, &str)] = &[
    (
        "events, newest first, severity filter",
        "SELECT * FROM security_events WHERE severity_rank >= 3 ORDER BY seq DESC LIMIT 50",
    ),
    (
        "events, by threat type",
        "SELECT * FROM security_events WHERE threat_type = 'oracle_deviation' ORDER BY seq DESC LIMIT 50",
    ),
    (
        "events, by asset",
        "SELECT * FROM security_events WHERE asset = 'ETH' ORDER BY seq DESC LIMIT 50",
    ),
    (
        "events, since a time",
        "SELECT * FROM security_events WHERE time_ms >= 1750000000000 ORDER BY time_ms LIMIT 50",
    ),
    (
        "events of one incident",
        "SELECT * FROM security_events WHERE incident_id = 'inc_0000000000000000' ORDER BY seq",
    ),
    (
        "event log after a seq",
        "SELECT * FROM event_log WHERE seq > 1000 ORDER BY seq LIMIT 500",
    ),
    (
        "event log head",
        "SELECT * FROM event_log ORDER BY seq DESC LIMIT 1",
    ),
    (
        "incidents by status",
        "SELECT * FROM incidents WHERE status = 'open' ORDER BY last_seen_ms DESC LIMIT 50",
    ),
    (
        "deviations by asset and time",
        "SELECT * FROM deviation_samples WHERE coin = 'ETH' AND time_ms >= 1750000000000 ORDER BY time_ms LIMIT 1000",
    ),
    (
        "liquidations by asset and time",
        "SELECT * FROM liquidations WHERE coin = 'ETH' AND time_ms >= 1750000000000 ORDER BY time_ms DESC LIMIT 200",
    ),
    (
        "vault history",
        "SELECT * FROM vault_points WHERE vault = '0xdfc24b077bc1425ad1dea75bcb6f8158e10df303' AND time_ms >= 1750000000000 ORDER BY time_ms LIMIT 2000",
    ),
    (
        "bars for training",
        "SELECT * FROM market_bars WHERE interval_ms = 300000 AND time_ms >= 1750000000000 AND time_ms < 1760000000000 ORDER BY coin, time_ms LIMIT 1000000",
    ),
    (
        "due alerts",
        "SELECT * FROM alert_outbox WHERE status = 'pending' AND next_attempt_ms <= 1750000000000 ORDER BY created_ms LIMIT 100",
    ),
];

impl Store {
    /// PostgreSQL's plan for each of [`MAIN_QUERIES`]. With `force_index`, sequential scans are
    /// disabled for the transaction (small test tables would otherwise be scanned), which shows
    /// that an index can serve the query.
    pub async fn explain_main_queries(
        &self,
        force_index: bool,
    ) -> StoreResult<Vec<(&'static str, String)>> {
        use diesel_async::AsyncConnection;
        let Db::Pg(p) = self.db() else {
            return Ok(Vec::new());
        };
        let mut g = p.get().await.map_err(pool_err)?;
        let c: &mut AsyncPgConnection = &mut g;
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            if force_index {
                diesel::sql_query("SET LOCAL enable_seqscan = off")
                    .execute(c)
                    .await?;
            }
            let mut out = Vec::new();
            for (name, sql) in MAIN_QUERIES {
                let plan: Vec<PlanLine> =
                    diesel::sql_query(format!("EXPLAIN {sql}")).load(c).await?;
                out.push((
                    *name,
                    plan.into_iter()
                        .map(|l| l.line)
                        .collect::<Vec<_>>()
                        .join("\n"),
                ));
            }
            Ok(out)
        })
        .await
        .map_err(q)
    }
}

/// Every row of every table, in primary-key order: a faithful, comparable export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dump {
    /// Security events.
    pub security_events: Vec<crate::rows::SecurityEventRow>,
    /// Incidents.
    pub incidents: Vec<crate::rows::IncidentRow>,
    /// Vault points.
    pub vault_points: Vec<crate::rows::VaultPointRow>,
    /// Deviation samples.
    pub deviation_samples: Vec<crate::rows::DeviationRow>,
    /// Liquidations.
    pub liquidations: Vec<crate::rows::LiquidationRow>,
    /// Positions.
    pub positions: Vec<crate::rows::PositionRow>,
    /// Market bars.
    pub market_bars: Vec<crate::rows::MarketBarRow>,
    /// Ingest cursors (without their update times).
    pub ingest_cursors: Vec<(String, String)>,
    /// Alert outbox.
    pub alert_outbox: Vec<crate::rows::OutboxRow>,
}

impl Store {
    /// Dumps the data tables (not keys or audit) in a deterministic order.
    pub async fn dump(&self) -> StoreResult<Dump> {
        use crate::rows::*;
        use crate::schema::*;
        use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
        macro_rules! all {
            ($c:expr, $t:ident, $row:ty, $order:expr) => {
                $t::table
                    .order($order)
                    .select(<$row>::as_select())
                    .load::<$row>($c)
                    .await
                    .map_err(q)?
            };
        }
        macro_rules! body {
            ($c:expr) => {{
                let c = $c;
                let cursors: Vec<CursorRow> =
                    all!(c, ingest_cursors, CursorRow, ingest_cursors::source.asc());
                Dump {
                    security_events: all!(
                        c,
                        security_events,
                        SecurityEventRow,
                        security_events::seq.asc()
                    ),
                    incidents: all!(c, incidents, IncidentRow, incidents::id.asc()),
                    vault_points: all!(
                        c,
                        vault_points,
                        VaultPointRow,
                        (vault_points::vault.asc(), vault_points::time_ms.asc())
                    ),
                    deviation_samples: all!(
                        c,
                        deviation_samples,
                        DeviationRow,
                        (
                            deviation_samples::coin.asc(),
                            deviation_samples::kind.asc(),
                            deviation_samples::time_ms.asc()
                        )
                    ),
                    liquidations: all!(
                        c,
                        liquidations,
                        LiquidationRow,
                        (
                            liquidations::time_ms.asc(),
                            liquidations::coin.asc(),
                            liquidations::tid.asc(),
                            liquidations::user_addr.asc()
                        )
                    ),
                    positions: all!(
                        c,
                        positions,
                        PositionRow,
                        (
                            positions::user_addr.asc(),
                            positions::coin.asc(),
                            positions::time_ms.asc()
                        )
                    ),
                    market_bars: all!(
                        c,
                        market_bars,
                        MarketBarRow,
                        (
                            market_bars::coin.asc(),
                            market_bars::interval_ms.asc(),
                            market_bars::time_ms.asc()
                        )
                    ),
                    ingest_cursors: cursors
                        .into_iter()
                        .map(|r| (r.source, r.position))
                        .collect(),
                    alert_outbox: all!(c, alert_outbox, OutboxRow, alert_outbox::id.asc()),
                }
            }};
        }
        Ok(match self.db() {
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut SqliteConn = &mut g;
                body!(c)
            }
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut AsyncPgConnection = &mut g;
                body!(c)
            }
        })
    }
}
