//! Storage of kamiyo: embedded SQLite by default, PostgreSQL in production.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod error;
pub mod introspect;
pub mod retention;
pub mod rows;
pub mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use futures_util::FutureExt;
use kamiyo_core_models::{
    Address, ApiKeyRecord, ApiKeyStore, AuditEntry, AuditStore, Coin, DeliveryQuery,
    DeviationSample, EventQuery, ExploitStore, Incident, IncidentAction, IncidentQuery,
    IncidentStore, IncidentUpdate, IngestBatch, LiquidationRecord, MarketBar, MarketStore,
    OperatorStore, Order, OutboxEntry, OutboxStore, PositionRecord, ProtocolId, Silence, StableId,
    StoreError, StoreResult, StoredEvent, Timestamp, VaultPoint,
};

pub use crate::error::{pool_err, q};
use kamiyo_core_models::ledger::LogEntry;

use crate::rows::*;
use crate::schema::*;

/// The embedded migrations (one portable set for both backends).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// SQLite through diesel-async's blocking wrapper.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

#[derive(Clone)]
enum Db {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteConn>),
}

/// Which backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    location: String,
    pool_max: u32,
    /// When set, every commit checks and counts itself against this writer fence (name,
    /// epoch) in its transaction.
    fence: Option<Arc<(String, i64)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("location", &self.location)
            .finish()
    }
}

/// Runs `$body` with `$c` bound to a pooled connection of either backend. The body is written
/// once and type-checked for each.
macro_rules! with_conn {
    ($self:expr, |$c:ident| $body:expr) => {
        match &$self.db {
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let $c: &mut AsyncPgConnection = &mut g;
                $body
            }
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let $c: &mut SqliteConn = &mut g;
                $body
            }
        }
    };
}

/// Where the embedded database lives under `data_dir`.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kamiyo.sqlite3")
}

/// Creates `dir` (mode 0700 on Unix) when it does not exist. An existing directory is left as
/// it is — it may be the working directory or one an operator shares on purpose; see
/// [`world_accessible`] to warn about it.
fn prepare_data_dir(dir: &Path) -> StoreResult<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))
}

/// True when other users of the machine may read or enter `dir` (Unix mode bits for "others";
/// always false elsewhere). The self-hosted binary warns about such a data directory.
pub fn world_accessible(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o007 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Runs `$body` with a migration harness `$h` over one connection of `$pool`, on a blocking
/// thread (diesel's harness is synchronous).
macro_rules! harness_on {
    ($pool:expr, |$h:ident| $body:expr) => {{
        let c = $pool.get_owned().await.map_err(pool_err)?;
        tokio::task::spawn_blocking(move || {
            let mut $h = diesel_async::AsyncMigrationHarness::new(c);
            $body.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }};
}

/// [`harness_on!`] over the store's pool, whichever the backend.
macro_rules! with_harness {
    ($store:expr, |$h:ident| $body:expr) => {{
        #[allow(
            unused_imports,
            reason = "the harness trait is used by the caller's body"
        )]
        use diesel_migrations::MigrationHarness as _;
        match &$store.db {
            Db::Pg(p) => harness_on!(p, |$h| $body),
            Db::Sqlite(p) => harness_on!(p, |$h| $body),
        }
    }};
}

/// A PostgreSQL connection manager whose connections are driven on the runtime that creates
/// it (call it from the runtime that outlives the pool's users: the binary's main one).
///
/// The driver's I/O task of a connection is spawned on whichever runtime establishes the
/// connection, and the pool establishes them where one is first wanted — on an HTTP server's
/// worker, say, each a runtime of its own. When that worker stops first in a graceful
/// shutdown, its connections die under the workers still finishing their requests, which then
/// fail with "connection closed" (seen in the platform's rolling restart).
pub fn pg_manager(url: &str) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    let home = tokio::runtime::Handle::current();
    let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
    cfg.custom_setup = Box::new(move |url: &str| {
        let url = url.to_owned();
        let home = home.clone();
        async move {
            home.spawn(async move { AsyncPgConnection::establish(&url).await })
                .await
                .map_err(|e| {
                    diesel::ConnectionError::BadConnection(format!(
                        "establishing a connection: {e}"
                    ))
                })?
        }
        .boxed()
    });
    AsyncDieselConnectionManager::new_with_config(url, cfg)
}

impl Store {
    /// Opens PostgreSQL at `url`, or, when `url` is empty, the SQLite file under `data_dir`
    /// (creating the directory with mode 0700 and the file with mode 0600). Runs pending
    /// migrations.
    pub async fn open(url: &str, data_dir: &Path, max_connections: u32) -> StoreResult<Self> {
        let store = Self::connect(url, data_dir, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// [`Store::open`] without running migrations.
    pub async fn connect(url: &str, data_dir: &Path, max_connections: u32) -> StoreResult<Self> {
        if url.is_empty() {
            prepare_data_dir(data_dir)?;
            Self::open_sqlite(&sqlite_path(data_dir), max_connections).await
        } else {
            Self::open_postgres(url, max_connections).await
        }
    }

    /// Opens (creating) a SQLite database file without migrating.
    pub async fn open_sqlite(path: &Path, max_connections: u32) -> StoreResult<Self> {
        let url = path.to_string_lossy().into_owned();
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
        }
        let mut cfg = ManagerConfig::<SqliteConn>::default();
        cfg.custom_setup = Box::new(|url: &str| {
            let url = url.to_owned();
            async move {
                let mut c = SqliteConn::establish(&url).await?;
                c.batch_execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
                    .await
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(c)
            }
            .boxed()
        });
        let mgr = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(url.clone(), cfg);
        // SQLite has one writer; a small pool keeps readers concurrent without lock storms.
        let pool_max = max_connections.clamp(1, 4);
        let pool = Pool::builder()
            .max_size(pool_max)
            .build(mgr)
            .await
            .map_err(|e| StoreError::Backend(format!("opening {url}: {e}")))?;
        Ok(Self {
            db: Db::Sqlite(pool),
            write_lock: Arc::default(),
            location: url,
            pool_max,
            fence: None,
        })
    }

    /// Connects to PostgreSQL without migrating.
    pub async fn open_postgres(url: &str, max_connections: u32) -> StoreResult<Self> {
        // One direct connection first: its error names the cause (refused, unknown host,
        // malformed URL, authentication) where the pool would only say it timed out.
        let where_ = redact(url);
        // Reachability first, by TCP: the driver reports a refused or unreachable server only
        // as "error connecting to server".
        if let Some((host, port)) = pg_host_port(url) {
            let probe = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await;
            let why = match probe {
                Err(_) => Some("no answer within 10 s".to_owned()),
                Ok(Err(e)) => Some(e.to_string()),
                Ok(Ok(_)) => None,
            };
            if let Some(why) = why {
                return Err(StoreError::Backend(format!(
                    "cannot reach PostgreSQL at {host}:{port} ({where_}): {why}"
                )));
            }
        }
        let first = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            AsyncPgConnection::establish(url),
        )
        .await;
        match first {
            Err(_) => {
                return Err(StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {where_}: no answer within 10 s"
                )));
            }
            Ok(Err(e)) => {
                // The driver's message and its causes ("Connection refused", …).
                let mut why = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    let text = c.to_string();
                    if !why.contains(&text) {
                        why.push_str(": ");
                        why.push_str(&text);
                    }
                    cause = c.source();
                }
                return Err(StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {where_}: {}",
                    without_password(url, &why)
                )));
            }
            Ok(Ok(c)) => drop(c),
        }
        let mgr = pg_manager(url);
        let pool_max = max_connections.max(1);
        let pool = Pool::builder()
            .max_size(pool_max)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(mgr)
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        // Fail now, with a clear message, rather than on the first query.
        drop(pool.get().await.map_err(pool_err)?);
        Ok(Self {
            db: Db::Pg(pool),
            write_lock: Arc::default(),
            location: redact(url),
            pool_max,
            fence: None,
        })
    }

    /// Takes the next epoch of the writer fence `name` (1 for a new fence; its commit count
    /// starts again at 0) and returns it. A
    /// writer that must be the only one (one ingest per protocol across replicas) calls this
    /// when it becomes the writer, then commits through [`Store::fenced`]: from this moment
    /// the previous writer's commits are refused.
    pub async fn advance_fence(&self, name: &str) -> StoreResult<i64> {
        #[derive(diesel::QueryableByName)]
        struct Epoch {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            epoch: i64,
        }
        let sql = "INSERT INTO writer_fences (name, epoch) VALUES ($1, 1) \
                   ON CONFLICT (name) DO UPDATE SET epoch = writer_fences.epoch + 1, commits = 0 RETURNING epoch";
        let query = diesel::sql_query(sql).bind::<diesel::sql_types::Text, _>(name.to_owned());
        let e: Epoch = match &self.db {
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                diesel_async::RunQueryDsl::get_result(query, &mut *g)
                    .await
                    .map_err(q)?
            }
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                diesel_async::RunQueryDsl::get_result(query, &mut *g)
                    .await
                    .map_err(q)?
            }
        };
        Ok(e.epoch)
    }

    /// This store with its commits fenced: each checks, in its transaction, that fence `name`
    /// is still at `epoch` (and counts itself there); otherwise it writes nothing and fails
    /// with [`StoreError::Fenced`].
    pub fn fenced(&self, name: &str, epoch: i64) -> Self {
        let mut s = self.clone();
        s.fence = Some(Arc::new((name.to_owned(), epoch)));
        s
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Pg(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Connections of the pool right now (for metrics).
    pub fn pool_state(&self) -> PoolState {
        let st = match &self.db {
            Db::Pg(p) => p.state(),
            Db::Sqlite(p) => p.state(),
        };
        PoolState {
            connections: st.connections,
            idle: st.idle_connections,
            max: self.pool_max,
        }
    }

    /// Where the data is (credentials masked).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs pending migrations; returns how many ran.
    pub async fn migrate(&self) -> StoreResult<usize> {
        with_harness!(self, |h| h
            .run_pending_migrations(MIGRATIONS)
            .map(|v| v.len()))
    }

    /// Reverts the last `n` migrations that ran (each one's `down.sql`), newest first; returns
    /// how many were reverted. For an operator rolling a release back and for the tests that
    /// prove a migration carries existing rows over; [`Store::migrate`] re-applies them.
    pub async fn revert_migrations(&self, n: usize) -> StoreResult<usize> {
        with_harness!(self, |h| (0..n).try_fold(0, |done, _| h
            .revert_last_migration(MIGRATIONS)
            .map(|_| done + 1)))
    }

    /// Settles the database after a bulk load (an import, a backfill, a benchmark's seed): the
    /// planner's statistics brought up to date and dead rows reclaimed now rather than by the
    /// background workers in the middle of what follows — `VACUUM (ANALYZE)` on PostgreSQL,
    /// `ANALYZE` and a truncating WAL checkpoint on SQLite.
    pub async fn settle(&self) -> StoreResult<()> {
        match &self.db {
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut AsyncPgConnection = &mut g;
                c.batch_execute("VACUUM (ANALYZE)").await.map_err(q)
            }
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut SqliteConn = &mut g;
                c.batch_execute("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")
                    .await
                    .map_err(q)
            }
        }
    }

    /// True when a trivial query succeeds.
    pub async fn ping(&self) -> StoreResult<()> {
        with_conn!(self, |c| c.batch_execute("SELECT 1").await.map_err(q))
    }

    /// Rows per table (for status pages and tests).
    pub async fn counts(&self) -> StoreResult<Vec<(&'static str, i64)>> {
        macro_rules! count {
            ($c:expr, $t:ident) => {
                $t::table.count().get_result::<i64>($c).await.map_err(q)?
            };
        }
        with_conn!(self, |c| Ok(vec![
            ("security_events", count!(c, security_events)),
            ("incidents", count!(c, incidents)),
            ("vault_points", count!(c, vault_points)),
            ("market_bars", count!(c, market_bars)),
            ("deviation_samples", count!(c, deviation_samples)),
            ("liquidations", count!(c, liquidations)),
            ("positions", count!(c, positions)),
            ("ingest_cursors", count!(c, ingest_cursors)),
            ("alert_outbox", count!(c, alert_outbox)),
            ("api_keys", count!(c, api_keys)),
            ("audit_log", count!(c, audit_log)),
        ]))
    }

    /// Sets ingest cursors outside of a batch.
    pub async fn set_cursor(
        &self,
        source: &str,
        position: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let row = CursorRow {
            source: source.into(),
            position: position.into(),
            updated_ms: now.0,
        };
        with_conn!(self, |c| diesel::insert_into(ingest_cursors::table)
            .values(&row)
            .on_conflict(ingest_cursors::source)
            .do_update()
            .set(&row)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(q))
    }

    /// Cursors whose source starts with `prefix`, by source.
    pub async fn cursors_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(String, String)>> {
        // `LIKE` would need escaping of `_` and `%`; the table is small, so filter here.
        let rows: Vec<(String, String)> = with_conn!(self, |c| ingest_cursors::table
            .order(ingest_cursors::source.asc())
            .select((ingest_cursors::source, ingest_cursors::position))
            .load(c)
            .await
            .map_err(q))?;
        Ok(rows
            .into_iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .collect())
    }

    /// Every security event in sequence order, with its `seq` (tests and exports).
    pub async fn all_events(&self) -> StoreResult<Vec<StoredEvent>> {
        let rows: Vec<SecurityEventRow> = with_conn!(self, |c| security_events::table
            .order(security_events::seq.asc())
            .select(SecurityEventRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The pool of a backend, for the query helpers of `retention`.
    fn db(&self) -> &Db {
        &self.db
    }
}

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections.
    pub connections: u32,
    /// Of which idle.
    pub idle: u32,
    /// The pool's maximum size.
    pub max: u32,
}

/// Host and port of a `postgres://[user[:password]@]host[:port][/db][?…]` URL (port 5432 by
/// default); `None` for other forms (Unix sockets, key=value strings), which the driver checks.
fn pg_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() || hostport.contains(',') {
        return None;
    }
    let (host, port) = match hostport.strip_prefix('[') {
        // [v6]:port
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

/// `message` with the password of `url` (if any) masked, whatever the driver put in it.
fn without_password(url: &str, message: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_owned(),
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &url[..s + 3], &url[a..]),
        _ => url.to_owned(),
    }
}

#[async_trait]
impl MarketStore for Store {
    async fn commit(&self, batch: &IngestBatch) -> StoreResult<Vec<StoredEvent>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // One writer at a time: sequence numbers stay dense and SQLite never sees two writers.
        let _w = self.write_lock.lock().await;
        let mut prepared = write::Prepared::new(batch);
        prepared.fence = self.fence.as_deref().cloned();
        let fenced = |e: diesel::result::Error| match (&e, self.fence.as_deref()) {
            (diesel::result::Error::QueryBuilderError(b), Some((name, epoch)))
                if b.is::<write::Superseded>() =>
            {
                StoreError::Fenced {
                    name: name.clone(),
                    epoch: *epoch,
                }
            }
            _ => q(e),
        };
        let rows: Vec<SecurityEventRow> = match &self.db {
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut AsyncPgConnection = &mut g;
                write::pg::commit(c, prepared).await.map_err(fenced)?
            }
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut SqliteConn = &mut g;
                c.spawn_blocking(move |c| write::sqlite::commit(c, prepared))
                    .await
                    .map_err(fenced)?
            }
        };
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn cursor(&self, source: &str) -> StoreResult<Option<String>> {
        with_conn!(self, |c| ingest_cursors::table
            .find(source)
            .select(ingest_cursors::position)
            .first::<String>(c)
            .await
            .optional()
            .map_err(q))
    }

    async fn vault_points(
        &self,
        protocol: Option<&ProtocolId>,
        vault: Option<Address>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<VaultPoint>> {
        let rows: Vec<VaultPointRow> = with_conn!(self, |c| {
            let mut qy = vault_points::table
                .filter(vault_points::time_ms.ge(since.0))
                .into_boxed();
            if let Some(p) = protocol {
                qy = qy.filter(vault_points::protocol.eq(p.as_str()));
            }
            if let Some(v) = vault {
                qy = qy.filter(vault_points::vault.eq(v.to_string()));
            }
            qy.order(vault_points::time_ms.asc())
                .limit(i64::from(limit))
                .select(VaultPointRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn bars(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        interval_ms: i64,
        since: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<MarketBar>> {
        let rows: Vec<MarketBarRow> = with_conn!(self, |c| {
            let mut qy = market_bars::table
                .filter(market_bars::interval_ms.eq(interval_ms))
                .filter(market_bars::time_ms.ge(since.0))
                .filter(market_bars::time_ms.lt(until.0))
                .into_boxed();
            if let Some(p) = protocol {
                qy = qy.filter(market_bars::protocol.eq(p.as_str()));
            }
            if let Some(coin) = coin {
                qy = qy.filter(market_bars::coin.eq(coin.to_string()));
            }
            qy.order((market_bars::coin.asc(), market_bars::time_ms.asc()))
                .limit(i64::from(limit))
                .select(MarketBarRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn deviations(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DeviationSample>> {
        let rows: Vec<DeviationRow> = with_conn!(self, |c| {
            let mut qy = deviation_samples::table
                .filter(deviation_samples::time_ms.ge(since.0))
                .into_boxed();
            if let Some(p) = protocol {
                qy = qy.filter(deviation_samples::protocol.eq(p.as_str()));
            }
            if let Some(coin) = coin {
                qy = qy.filter(deviation_samples::coin.eq(coin.to_string()));
            }
            qy.order(deviation_samples::time_ms.asc())
                .limit(i64::from(limit))
                .select(DeviationRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn liquidations(
        &self,
        protocol: Option<&ProtocolId>,
        coin: Option<&Coin>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<LiquidationRecord>> {
        let rows: Vec<LiquidationRow> = with_conn!(self, |c| {
            let mut qy = liquidations::table
                .filter(liquidations::time_ms.ge(since.0))
                .into_boxed();
            if let Some(p) = protocol {
                qy = qy.filter(liquidations::protocol.eq(p.as_str()));
            }
            if let Some(coin) = coin {
                qy = qy.filter(liquidations::coin.eq(coin.to_string()));
            }
            qy.order(liquidations::time_ms.desc())
                .limit(i64::from(limit))
                .select(LiquidationRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn positions(
        &self,
        protocol: Option<&ProtocolId>,
        user: Option<Address>,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<PositionRecord>> {
        let rows: Vec<PositionRow> = with_conn!(self, |c| {
            let mut qy = positions::table
                .filter(positions::time_ms.ge(since.0))
                .into_boxed();
            if let Some(p) = protocol {
                qy = qy.filter(positions::protocol.eq(p.as_str()));
            }
            if let Some(u) = user {
                qy = qy.filter(positions::user_addr.eq(u.to_string()));
            }
            qy.order(positions::time_ms.desc())
                .limit(20_000)
                .select(PositionRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        // Latest per (user, coin), largest first.
        let mut latest: std::collections::BTreeMap<(String, String, String), PositionRow> =
            std::collections::BTreeMap::new();
        for r in rows {
            latest
                .entry((r.protocol.clone(), r.user_addr.clone(), r.coin.clone()))
                .or_insert(r);
        }
        let mut v: Vec<PositionRecord> = latest
            .into_values()
            .map(TryInto::try_into)
            .collect::<StoreResult<_>>()?;
        v.sort_by_key(|p| std::cmp::Reverse(p.position_value.abs()));
        v.truncate(limit as usize);
        Ok(v)
    }
}

#[async_trait]
impl IncidentStore for Store {
    async fn record_updates(&self, updates: &[IncidentUpdate]) -> StoreResult<Vec<StoredEvent>> {
        self.commit(&IngestBatch {
            updates: updates.to_vec(),
            ..Default::default()
        })
        .await
    }

    async fn incident(&self, id: &StableId) -> StoreResult<Option<Incident>> {
        let row: Option<IncidentRow> = with_conn!(self, |c| incidents::table
            .find(id.as_str())
            .select(IncidentRow::as_select())
            .first(c)
            .await
            .optional()
            .map_err(q))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn incidents(&self, qy: &IncidentQuery) -> StoreResult<Vec<Incident>> {
        let rows: Vec<IncidentRow> = with_conn!(self, |c| {
            let mut b = incidents::table.into_boxed();
            if let Some(p) = &qy.protocol {
                b = b.filter(incidents::protocol.eq(p.as_str()));
            }
            if let Some(s) = qy.status {
                b = b.filter(incidents::status.eq(s.as_str()));
            }
            if let Some(a) = &qy.asset {
                b = b.filter(incidents::asset.eq(a.to_string()));
            }
            if let Some(t) = qy.seen_since {
                b = b.filter(incidents::last_seen_ms.ge(t.0));
            }
            b.order((incidents::last_seen_ms.desc(), incidents::id.asc()))
                .limit(i64::from(qy.limit))
                .select(IncidentRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn events(&self, qy: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        let rows: Vec<SecurityEventRow> = with_conn!(self, |c| {
            let mut b = security_events::table.into_boxed();
            if let Some(p) = &qy.protocol {
                b = b.filter(security_events::protocol.eq(p.as_str()));
            }
            if let Some(s) = qy.min_severity {
                b = b.filter(security_events::severity_rank.ge(severity_rank(s)));
            }
            if let Some(t) = qy.threat_type {
                b = b.filter(security_events::threat_type.eq(t.as_str()));
            }
            if let Some(a) = &qy.asset {
                b = b.filter(security_events::asset.eq(a.to_string()));
            }
            if let Some(s) = qy.since {
                b = b.filter(security_events::time_ms.ge(s.0));
            }
            if let Some(s) = qy.before_seq {
                b = b.filter(security_events::seq.lt(s));
            }
            if let Some(s) = qy.after_seq {
                b = b.filter(security_events::seq.gt(s));
            }
            b = match qy.order {
                Order::Desc => b.order(security_events::seq.desc()),
                Order::Asc => b.order(security_events::seq.asc()),
            };
            b.limit(i64::from(qy.limit))
                .select(SecurityEventRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn incident_events(&self, id: &StableId) -> StoreResult<Vec<StoredEvent>> {
        let rows: Vec<SecurityEventRow> = with_conn!(self, |c| security_events::table
            .filter(security_events::incident_id.eq(id.as_str()))
            .order(security_events::seq.asc())
            .select(SecurityEventRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn event_log(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<LogEntry>> {
        let rows: Vec<LogRow> = with_conn!(self, |c| event_log::table
            .filter(event_log::seq.gt(after_seq))
            .order(event_log::seq.asc())
            .limit(i64::from(limit))
            .select(LogRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn event_log_head(&self) -> StoreResult<Option<LogEntry>> {
        let row: Option<LogRow> = with_conn!(self, |c| event_log::table
            .order(event_log::seq.desc())
            .select(LogRow::as_select())
            .first(c)
            .await
            .optional()
            .map_err(q))?;
        Ok(row.map(Into::into))
    }
}

#[async_trait]
impl OutboxStore for Store {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> StoreResult<usize> {
        let rows: Vec<OutboxRow> = entries.iter().map(Into::into).collect();
        let _w = self.write_lock.lock().await;
        with_conn!(self, |c| {
            let mut n = 0;
            for row in &rows {
                n += diesel::insert_into(alert_outbox::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
                    .map_err(q)?;
            }
            Ok(n)
        })
    }

    async fn due(
        &self,
        consumer: &str,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = with_conn!(self, |c| alert_outbox::table
            .filter(alert_outbox::consumer.eq(consumer))
            .filter(alert_outbox::status.eq("pending"))
            .filter(alert_outbox::next_attempt_ms.le(now.0))
            .order((alert_outbox::created_ms.asc(), alert_outbox::id.asc()))
            .limit(i64::from(limit))
            .select(OutboxRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn mark_delivered(&self, id: &StableId, attempts: u32, at: Timestamp) -> StoreResult<()> {
        let _w = self.write_lock.lock().await;
        with_conn!(self, |c| diesel::update(
            alert_outbox::table.find(id.as_str())
        )
        .set((
            alert_outbox::status.eq("delivered"),
            alert_outbox::attempts.eq(i32::try_from(attempts).unwrap_or(i32::MAX)),
            alert_outbox::delivered_ms.eq(Some(at.0))
        ))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(q))
    }

    async fn mark_retry(
        &self,
        id: &StableId,
        attempts: u32,
        next: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        let _w = self.write_lock.lock().await;
        with_conn!(self, |c| diesel::update(
            alert_outbox::table.find(id.as_str())
        )
        .set((
            alert_outbox::attempts.eq(i32::try_from(attempts).unwrap_or(i32::MAX)),
            alert_outbox::next_attempt_ms.eq(next.0),
            alert_outbox::last_error.eq(Some(error.chars().take(2000).collect::<String>()))
        ))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(q))
    }

    async fn mark_failed(&self, id: &StableId, attempts: u32, error: &str) -> StoreResult<()> {
        let _w = self.write_lock.lock().await;
        with_conn!(self, |c| diesel::update(
            alert_outbox::table.find(id.as_str())
        )
        .set((
            alert_outbox::status.eq("failed"),
            alert_outbox::attempts.eq(i32::try_from(attempts).unwrap_or(i32::MAX)),
            alert_outbox::last_error.eq(Some(error.chars().take(2000).collect::<String>()))
        ))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(q))
    }

    async fn deliveries(&self, qy: &DeliveryQuery) -> StoreResult<Vec<OutboxEntry>> {
        let rows: Vec<OutboxRow> = with_conn!(self, |c| {
            let mut b = alert_outbox::table.into_boxed();
            if let Some(ch) = &qy.channel {
                b = b.filter(alert_outbox::channel.eq(ch.clone()));
            }
            if let Some(s) = qy.status {
                b = b.filter(alert_outbox::status.eq(s.as_str()));
            }
            if let Some(t) = qy.since {
                b = b.filter(alert_outbox::created_ms.ge(t.0));
            }
            if let Some(i) = &qy.incident {
                b = b.filter(alert_outbox::incident_id.eq(i.to_string()));
            }
            if let Some(p) = &qy.protocol {
                b = b.filter(alert_outbox::protocol.eq(p.as_str()));
            }
            b.order((alert_outbox::created_ms.desc(), alert_outbox::id.asc()))
                .limit(i64::from(qy.limit))
                .select(OutboxRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn routed_cursor(&self, consumer: &str) -> StoreResult<Option<i64>> {
        kamiyo_core_models::store::routed_cursor_of(
            consumer,
            MarketStore::cursor(self, consumer).await?,
        )
    }

    async fn commit_routed(
        &self,
        consumer: &str,
        entries: Vec<OutboxEntry>,
        cursor: Option<i64>,
    ) -> StoreResult<()> {
        MarketStore::commit(
            self,
            &kamiyo_core_models::store::routed_batch(consumer, entries, cursor),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl ApiKeyStore for Store {
    async fn insert_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let row = ApiKeyRow::from(key);
        with_conn!(self, |c| diesel::insert_into(api_keys::table)
            .values(&row)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(q))
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = with_conn!(self, |c| api_keys::table
            .order((api_keys::created_ms.desc(), api_keys::id.asc()))
            .select(ApiKeyRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn keys_by_prefix(&self, prefix: &str) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = with_conn!(self, |c| api_keys::table
            .filter(api_keys::prefix.eq(prefix))
            .select(ApiKeyRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn revoke_key(&self, id_or_prefix: &str, at: Timestamp) -> StoreResult<bool> {
        let n = with_conn!(self, |c| diesel::update(
            api_keys::table
                .filter(
                    api_keys::id
                        .eq(id_or_prefix)
                        .or(api_keys::prefix.eq(id_or_prefix))
                )
                .filter(api_keys::revoked_ms.is_null())
        )
        .set(api_keys::revoked_ms.eq(Some(at.0)))
        .execute(c)
        .await
        .map_err(q))?;
        Ok(n > 0)
    }
}

#[async_trait]
impl AuditStore for Store {
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let row = AuditRow::from(entry);
        with_conn!(self, |c| diesel::insert_into(audit_log::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(c)
            .await
            .map(|_| ())
            .map_err(q))
    }

    async fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = with_conn!(self, |c| audit_log::table
            .order((audit_log::time_ms.desc(), audit_log::id.asc()))
            .limit(i64::from(limit))
            .select(AuditRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[async_trait]
impl OperatorStore for Store {
    async fn record_action(&self, action: &IncidentAction) -> StoreResult<()> {
        self.commit(&IngestBatch {
            actions: vec![action.clone()],
            ..IngestBatch::default()
        })
        .await
        .map(|_| ())
    }

    async fn incident_actions(&self, ids: &[StableId]) -> StoreResult<Vec<IncidentAction>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let rows: Vec<ActionRow> = with_conn!(self, |c| incident_actions::table
            .filter(incident_actions::incident_id.eq_any(&ids))
            .order((incident_actions::time_ms.asc(), incident_actions::id.asc()))
            .select(ActionRow::as_select())
            .load(c)
            .await
            .map_err(q))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn insert_silence(&self, silence: &Silence) -> StoreResult<()> {
        let row = SilenceRow::from(silence);
        with_conn!(self, |c| diesel::insert_into(silences::table)
            .values(&row)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(q))
    }

    async fn silences(&self, since: Option<Timestamp>, limit: u32) -> StoreResult<Vec<Silence>> {
        let rows: Vec<SilenceRow> = with_conn!(self, |c| {
            let mut b = silences::table.into_boxed();
            if let Some(t) = since {
                b = b.filter(silences::ends_ms.gt(t.0)).filter(
                    silences::expired_ms
                        .is_null()
                        .or(silences::expired_ms.gt(t.0)),
                );
            }
            b.order((silences::created_ms.desc(), silences::id.asc()))
                .limit(i64::from(limit))
                .select(SilenceRow::as_select())
                .load(c)
                .await
                .map_err(q)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn expire_silence(&self, id: &StableId, at: Timestamp) -> StoreResult<bool> {
        let n = with_conn!(self, |c| diesel::update(
            silences::table
                .filter(silences::id.eq(id.as_str()))
                .filter(silences::expired_ms.is_null())
                .filter(silences::starts_ms.le(at.0))
                .filter(silences::ends_ms.gt(at.0))
        )
        .set(silences::expired_ms.eq(Some(at.0)))
        .execute(c)
        .await
        .map_err(q))?;
        Ok(n > 0)
    }
}

#[async_trait]
impl ExploitStore for Store {
    async fn replace_exploits(&self, all: &[kamiyo_core_models::Exploit]) -> StoreResult<usize> {
        let rows: Vec<ExploitRow> = all.iter().map(Into::into).collect();
        let rows = &rows;
        match &self.db {
            Db::Pg(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                write::pg::replace_exploits(&mut g, rows).await.map_err(q)?;
            }
            Db::Sqlite(p) => {
                let mut g = p.get().await.map_err(pool_err)?;
                let c: &mut SqliteConn = &mut g;
                let owned = rows.clone();
                c.spawn_blocking(move |c| write::sqlite::replace_exploits(c, &owned))
                    .await
                    .map_err(q)?;
            }
        }
        Ok(rows.len())
    }

    async fn exploits(
        &self,
        qy: &kamiyo_core_models::ExploitQuery,
    ) -> StoreResult<kamiyo_core_models::ExploitPage> {
        // The same filters for the page and the count.
        macro_rules! filtered {
            () => {{
                let mut b = exploits::table.into_boxed();
                if let Some(t) = qy.from {
                    b = b.filter(exploits::day_ms.ge(t.0));
                }
                if let Some(t) = qy.to {
                    b = b.filter(exploits::day_ms.lt(t.0));
                }
                if let Some(p) = &qy.protocol {
                    let key = kamiyo_core_models::Exploit::fold(p);
                    b = b.filter(exploits::protocol_key.like(format!("%{key}%")));
                }
                if let Some(ch) = &qy.chain {
                    b = b.filter(exploits::chain.eq(ch.clone()));
                }
                if let Some(cat) = qy.category {
                    b = b.filter(exploits::category.eq(cat.as_str()));
                }
                if let Some(m) = qy.min_loss_usd {
                    b = b.filter(exploits::loss_usd.ge(m));
                }
                b
            }};
        }
        let (rows, total): (Vec<ExploitRow>, i64) = with_conn!(self, |c| {
            let rows = filtered!()
                .order((exploits::day_ms.desc(), exploits::id.asc()))
                .limit(i64::from(qy.limit))
                .offset(i64::from(qy.offset))
                .select(ExploitRow::as_select())
                .load(c)
                .await
                .map_err(q)?;
            let total: i64 = filtered!().count().get_result(c).await.map_err(q)?;
            Ok::<_, StoreError>((rows, total))
        })?;
        Ok(kamiyo_core_models::ExploitPage {
            items: rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<StoreResult<_>>()?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }
}
