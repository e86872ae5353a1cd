//! The only module of the platform that speaks SQL (PostgreSQL only).
//!
//! Tenant-owned tables are under forced row-level security (migrations in
//! `platform/migrations`). The service connects as an application role that owns nothing
//! ([`Db::check_app_role`] refuses a superuser, a `BYPASSRLS` role or the tables' owner) and
//! every transaction names its tenant first ([`Db::scoped`]: `set_config('app.tenant_id', …,
//! true)`, transaction-local), so a query that forgot it sees no rows. Every change is written
//! with its audit row in the same transaction. Staff commands use the owner's connection
//! ([`Db::staff`]), which the `staff` policy lets see every tenant; they audit what they do
//! into the tenant's log.

use diesel::sql_types::{Array, BigInt, Date, Double, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use serde::Serialize;

use crate::tenancy::TenantId;

/// The platform's migrations.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Every table under the tenant policy (the application role may change all but `audit_log`,
/// which it can only append to).
pub const ISOLATED_TABLES: [&str; 18] = [
    "tenants",
    "users",
    "api_keys",
    "subscriptions",
    "thresholds",
    "watched_addresses",
    "alert_channels",
    "usage_daily",
    "audit_log",
    "fanout_cursors",
    "tenant_outbox",
    "sessions",
    "user_tokens",
    "billing_accounts",
    "incident_actions",
    "branding",
    "sso_settings",
    "sso_logins",
];

/// Why a database call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// No such row (for this tenant).
    #[error("not found")]
    NotFound,
    /// A row with the same key exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A limit of the plan would be passed (`what`, used, max).
    #[error("{0} limit reached ({1} of {2})")]
    Limit(&'static str, i64, i64),
    /// Row-level security or a grant refused the statement.
    #[error("refused by the database: {0}")]
    Refused(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The transaction lost to a concurrent one (a deadlock, or a serialization failure) and
    /// was rolled back: nothing was written, and the same call may simply be made again.
    #[error("lost to a concurrent transaction: {0}")]
    Contention(String),
    /// Anything else (logged, never shown).
    #[error("database error: {0}")]
    Other(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => Self::NotFound,
            E::DatabaseError(K::UniqueViolation, info) => Self::Conflict(info.message().into()),
            E::DatabaseError(K::ForeignKeyViolation, _) => Self::NotFound,
            E::DatabaseError(_, info)
                if info.message().contains("row-level security")
                    || info.message().contains("permission denied") =>
            {
                Self::Refused(info.message().into())
            }
            // A connection lost under a query (closed, or the server gone): retryable.
            E::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, info) => {
                Self::Unavailable(info.message().into())
            }
            // PostgreSQL rolls back the loser of a deadlock (SQLSTATE 40P01, which diesel
            // reports as an unknown kind: known by its message) or of a serialization
            // failure (40001); its documentation's remedy is to run the transaction again.
            E::DatabaseError(K::SerializationFailure, info) => {
                Self::Contention(info.message().into())
            }
            E::DatabaseError(_, info) if info.message().starts_with("deadlock detected") => {
                Self::Contention(info.message().into())
            }
            other => Self::Other(other.to_string()),
        }
    }
}

/// Result of a database call.
pub type DbResult<T> = Result<T, DbError>;

/// Who did it, from where, when: written beside every change.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `key:<id>`, `signup`, `staff:<name>` …
    pub actor: String,
    /// Client address.
    pub ip: String,
    /// Time (epoch ms).
    pub at: i64,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct AuditRow {
    /// Position in the tenant's log.
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    /// Time (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    /// Who.
    #[diesel(sql_type = Text)]
    pub actor: String,
    /// What (`key.create` …).
    #[diesel(sql_type = Text)]
    pub action: String,
    /// On what (an id).
    #[diesel(sql_type = Text)]
    pub target: String,
    /// The change, in words.
    #[diesel(sql_type = Text)]
    pub summary: String,
    /// Client address.
    #[diesel(sql_type = Text)]
    pub ip: String,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct TenantRow {
    /// Id.
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    /// Display name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Plan.
    #[diesel(sql_type = Text)]
    pub plan: String,
    /// `active` or `suspended`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Created (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// A user (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct UserRow {
    /// Id.
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// Email (lower case).
    #[diesel(sql_type = Text)]
    pub email: String,
    /// Role.
    #[diesel(sql_type = Text)]
    pub role: String,
    /// Created (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// An API key (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct KeyRow {
    /// Id.
    #[diesel(sql_type = Text)]
    pub key_id: String,
    /// Label.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Role.
    #[diesel(sql_type = Text)]
    pub role: String,
    /// Who created it.
    #[diesel(sql_type = Text)]
    pub created_by: String,
    /// Created (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    /// Revoked (epoch ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub revoked_at: Option<i64>,
}

/// A protocol subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct SubscriptionRow {
    /// Protocol id.
    #[diesel(sql_type = Text)]
    pub protocol: String,
    /// Since (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// A detector threshold override.
#[derive(Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct ThresholdRow {
    /// Detector.
    #[diesel(sql_type = Text)]
    pub detector: String,
    /// Setting.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Value.
    #[diesel(sql_type = Double)]
    pub value: f64,
    /// Changed (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub updated_at: i64,
}

/// A watched address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct WatchedRow {
    /// Address (lower-case hex).
    #[diesel(sql_type = Text)]
    pub address: String,
    /// Label.
    #[diesel(sql_type = Text)]
    pub label: String,
    /// Added (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// An alert channel (its secret is write-only: only whether one is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct ChannelRow {
    /// Id.
    #[diesel(sql_type = Text)]
    pub channel_id: String,
    /// Name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// Kind (`webhook` …).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Destination URL.
    #[diesel(sql_type = Text)]
    pub url: String,
    /// Least severity sent.
    #[diesel(sql_type = Text)]
    pub min_severity: String,
    /// True when a signing secret or token is stored.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub has_secret: bool,
    /// Added (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// One day of usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct UsageRow {
    /// UTC day.
    #[diesel(sql_type = Date)]
    pub day: chrono_day::Day,
    /// API calls counted.
    #[diesel(sql_type = BigInt)]
    pub api_calls: i64,
    /// Alerts delivered.
    #[diesel(sql_type = BigInt)]
    pub alerts: i64,
    /// Alerts held back by the plan's daily cap.
    #[diesel(sql_type = BigInt)]
    pub alerts_held: i64,
    /// Alerts paused while suspended for non-payment.
    #[diesel(sql_type = BigInt)]
    pub alerts_paused: i64,
}

/// Dates as diesel reads them (`chrono::NaiveDate`), serialised `YYYY-MM-DD`.
pub mod chrono_day {
    /// A UTC day.
    pub type Day = chrono::NaiveDate;
}

/// A row of one of the tenant's lists, readable by [`Db::list`] and shown as JSON.
pub trait ListRow: QueryableByName<diesel::pg::Pg> + Serialize + Send + 'static {}

impl<T: QueryableByName<diesel::pg::Pg> + Serialize + Send + 'static> ListRow for T {}

/// What a presented key resolves to.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct KeyAuth {
    /// The key.
    #[diesel(sql_type = Text)]
    pub key_id: String,
    /// Its role.
    #[diesel(sql_type = Text)]
    pub role: String,
    /// The tenant's plan.
    #[diesel(sql_type = Text)]
    pub plan: String,
    /// The tenant's status.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// For a session: the SHA-256 of its CSRF token (cookie-authenticated writes must show
    /// the token).
    #[diesel(sql_type = Nullable<Text>)]
    pub csrf_hash: Option<String>,
    /// Dunning: `ok`, `grace` or `suspended`.
    #[diesel(sql_type = Text)]
    pub billing_state: String,
    /// End of the grace period.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub grace_until: Option<i64>,
}

/// What a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The SHA-256 of an API key.
    Key(&'a str),
    /// The SHA-256 of a session cookie's secret.
    Session(&'a str),
}

/// A key found by [`Db::authenticate`], with what the request needs about its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key, its role, the tenant's plan and status.
    pub key: KeyAuth,
    /// API calls counted today, this one included (0 when the tenant is not active).
    pub calls: i64,
    /// The tenant's protocols, first subscribed first.
    pub protocols: Vec<String>,
}

/// A user as signing in sees it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LoginRow {
    /// Id.
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// Argon2id PHC string.
    #[diesel(sql_type = Text)]
    pub password_hash: String,
    /// Role.
    #[diesel(sql_type = Text)]
    pub role: String,
    /// True once the address is verified.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub verified: bool,
}

/// Which user a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef<'a> {
    /// By address.
    Email(&'a str),
    /// By id.
    Id(&'a str),
}

/// What a one-time token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Verifies the user's address.
    Verify,
    /// Replaces the user's password.
    Reset,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct Subscriber {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    plan: String,
}

/// A cross-protocol correlated incident as stored.
#[derive(Debug, Clone, PartialEq, QueryableByName, serde::Serialize)]
pub struct CorrelatedRow {
    /// `cor_` id.
    #[diesel(sql_type = Text)]
    pub correlated_id: String,
    /// Pattern.
    #[diesel(sql_type = Text)]
    pub pattern: String,
    /// Shared entity.
    #[diesel(sql_type = Text)]
    pub entity: String,
    /// Protocols involved.
    #[diesel(sql_type = Array<Text>)]
    pub protocols: Vec<String>,
    /// Member incident ids.
    #[diesel(sql_type = Array<Text>)]
    pub members: Vec<String>,
    /// Evidence per attack stage (JSON object).
    #[diesel(sql_type = Text)]
    pub stages: String,
    /// Worst member severity.
    #[diesel(sql_type = Text)]
    pub severity: String,
    /// 0–1.
    #[diesel(sql_type = Double)]
    pub score: f64,
    /// First member's time (ms).
    #[diesel(sql_type = BigInt)]
    pub first_seen: i64,
    /// Latest member's time.
    #[diesel(sql_type = BigInt)]
    pub last_seen: i64,
    /// When it qualified (the step that opened it).
    #[diesel(sql_type = BigInt)]
    pub opened_at: i64,
}

/// A row the router asks [`Db::route_to_tenant`] to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Idempotency key within the tenant (`<seq>:<channel>`, or `digest:<day>:<channel>`).
    pub outbox_id: String,
    /// The incident.
    pub incident_id: String,
    /// The channel.
    pub channel_id: String,
    /// Severity of the step.
    pub severity: String,
    /// The message (JSON).
    pub payload: String,
    /// `pending` (to send), `held` (past the plan's daily cap) or `digest`.
    pub status: &'static str,
    /// When it may be sent.
    pub next_attempt_ms: i64,
}

/// Who claims outbox rows, when, for how long, and since when a worker's heartbeat must date
/// for its claims to stand.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The claiming worker (its heartbeat instance).
    pub worker: &'a str,
    /// Now (epoch ms).
    pub now: i64,
    /// How long the claim holds while its worker lives.
    pub lease_ms: i64,
    /// Workers whose last heartbeat is older have died: their claims are taken over.
    pub alive_since: i64,
}

/// A process's heartbeat as stored.
#[derive(Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct HeartbeatRow {
    /// `api`, `workers` or `ingest:<protocol>`.
    #[diesel(sql_type = Text)]
    pub component: String,
    /// The process.
    #[diesel(sql_type = Text)]
    pub instance: String,
    /// Its last beat (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    /// When it started beating for this component (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub started_at: i64,
    /// What it reports (JSON).
    #[diesel(sql_type = Text)]
    pub detail: String,
}

/// One probe result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct ProbeRow {
    /// The component probed.
    #[diesel(sql_type = Text)]
    pub component: String,
    /// The minute (epoch ms at its start).
    #[diesel(sql_type = BigInt)]
    pub minute: i64,
    /// `up`, `degraded` or `down`.
    #[diesel(sql_type = Text)]
    pub state: String,
    /// How long the probe took, when it measured one.
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    pub latency_ms: Option<i32>,
    /// Why, in words.
    #[diesel(sql_type = Text)]
    pub detail: String,
}

/// A component's probes over one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, QueryableByName)]
pub struct ProbeDay {
    /// The day (epoch ms at 00:00 UTC).
    #[diesel(sql_type = BigInt)]
    pub day: i64,
    /// Minutes probed.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub probed: i32,
    /// Minutes found down.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub down: i32,
    /// Minutes found degraded.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub degraded: i32,
}

/// A component's day row, as [`Db::probe_days`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
struct ComponentDay {
    #[diesel(sql_type = Text)]
    component: String,
    #[diesel(embed)]
    counts: ProbeDay,
}

/// The alert backlog (no tenant named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, QueryableByName)]
pub struct Backlog {
    /// Alerts due now and not yet sent.
    #[diesel(sql_type = BigInt)]
    pub due: i64,
    /// The oldest due time among them (epoch ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub oldest_due_ms: Option<i64>,
}

/// How long a tenant's alerts took from enqueue to delivery over a period (digests excluded:
/// they wait for midnight by design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, QueryableByName)]
pub struct DeliveryLatency {
    /// Alerts delivered.
    #[diesel(sql_type = BigInt)]
    pub delivered: i64,
    /// Alerts given up after their retries.
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    /// Median (ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub p50_ms: Option<i64>,
    /// 99th percentile (ms, nearest rank).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub p99_ms: Option<i64>,
    /// Longest (ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub max_ms: Option<i64>,
}

/// A claimed outbox row with its channel.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Claimed {
    /// Id within the tenant.
    #[diesel(sql_type = Text)]
    pub outbox_id: String,
    /// `pending` or `digest`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// The alert (JSON).
    #[diesel(sql_type = Text)]
    pub payload: String,
    /// Attempts, this one included.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    /// Channel kind.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Channel URL.
    #[diesel(sql_type = Text)]
    pub url: String,
    /// Channel secret.
    #[diesel(sql_type = Nullable<Text>)]
    pub secret: Option<String>,
    /// Channel name.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// When the row was enqueued (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
}

/// What a delivery attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The channel took it.
    Delivered,
    /// Try again at this time (epoch ms).
    Retry {
        /// When.
        at: i64,
        /// Why the attempt failed.
        error: String,
    },
    /// Given up.
    Failed(String),
}

/// A tenant's alerts so far today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, QueryableByName)]
pub struct Today {
    /// Enqueued to send.
    #[diesel(sql_type = BigInt)]
    pub alerts: i64,
    /// Held back by the plan's cap.
    #[diesel(sql_type = BigInt)]
    pub alerts_held: i64,
}

/// What one event did for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Routed {
    /// Alerts enqueued to send.
    pub sent: i64,
    /// Alerts held back by the daily cap.
    pub held: i64,
    /// Alerts paused (suspended for non-payment).
    pub paused: i64,
}

/// A tenant's outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct OutboxView {
    /// Id within the tenant.
    #[diesel(sql_type = Text)]
    pub outbox_id: String,
    /// The shared event.
    #[diesel(sql_type = BigInt)]
    pub event_seq: i64,
    /// The incident.
    #[diesel(sql_type = Text)]
    pub incident_id: String,
    /// The channel.
    #[diesel(sql_type = Text)]
    pub channel_id: String,
    /// Severity.
    #[diesel(sql_type = Text)]
    pub severity: String,
    /// The message (JSON).
    #[diesel(sql_type = Text)]
    pub payload: String,
    /// Status.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Attempts so far.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    /// Next attempt (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub next_attempt_ms: i64,
    /// Enqueued (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    /// Why the last attempt failed.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct Calls {
    #[diesel(sql_type = BigInt)]
    api_calls: i64,
}

#[derive(QueryableByName)]
struct RoleFlags {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    rolsuper: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    rolbypassrls: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    owns_tables: bool,
}

type Conn = AsyncPgConnection;

/// First statement of a tenant's transaction: the tenant, and the platform's schema first on
/// the search path (both transaction-local, one round trip).
const SCOPE: &str = "SELECT set_config('app.tenant_id', $1, true), set_config('search_path', 'platform, public', true)";
/// First statement of a staff transaction.
const UNSCOPED: &str = "SELECT set_config('search_path', 'platform, public', true)";

/// Runs `$body` in one transaction on a pooled connection `$c`, scoped to `$tenant` first
/// (`set_config('app.tenant_id', …, true)`: transaction-local).
macro_rules! scoped {
    ($db:expr, $tenant:expr, |$c:ident| $body:block) => {{
        let tenant_id: String = $tenant.as_str().to_owned();
        let mut conn = $db.pool.get().await.map_err(pool_err)?;
        conn.transaction::<_, DbError, _>(async |$c| {
            sql_query(SCOPE)
                .bind::<Text, _>(&tenant_id)
                .execute($c)
                .await?;
            $body
        })
        .await
    }};
}

/// Runs `$body` in one transaction with no tenant named (staff, on the owner's connection;
/// on the application role's it sees nothing).
macro_rules! unscoped {
    ($db:expr, |$c:ident| $body:block) => {{
        let mut conn = $db.pool.get().await.map_err(pool_err)?;
        conn.transaction::<_, DbError, _>(async |$c| {
            sql_query(UNSCOPED).execute($c).await?;
            $body
        })
        .await
    }};
}

/// What an outbox row already there does to a new one with its id.
#[derive(Clone, Copy)]
enum OnConflict {
    /// The row there stays (an alert is enqueued once).
    Keep,
    /// A digest takes the newer payload and step.
    UpdateDigest,
}

/// Inserts one outbox row of `tenant` for step `seq`; the rows written (0 when one with its id
/// was there and kept).
async fn insert_outbox(
    c: &mut Conn,
    tenant: &str,
    r: &OutboxRow,
    seq: i64,
    now: i64,
    on_conflict: OnConflict,
) -> Result<usize, DbError> {
    const KEEP: &str = "INSERT INTO tenant_outbox (tenant_id, outbox_id, event_seq, incident_id, channel_id, severity, payload, status, next_attempt_ms, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, outbox_id) DO NOTHING";
    const DIGEST: &str = "INSERT INTO tenant_outbox (tenant_id, outbox_id, event_seq, incident_id, channel_id, severity, payload, status, next_attempt_ms, created_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
        ON CONFLICT (tenant_id, outbox_id) DO UPDATE SET payload = EXCLUDED.payload, event_seq = EXCLUDED.event_seq \
        WHERE tenant_outbox.status = 'digest'";
    Ok(sql_query(match on_conflict {
        OnConflict::Keep => KEEP,
        OnConflict::UpdateDigest => DIGEST,
    })
    .bind::<Text, _>(tenant)
    .bind::<Text, _>(&r.outbox_id)
    .bind::<BigInt, _>(seq)
    .bind::<Text, _>(&r.incident_id)
    .bind::<Text, _>(&r.channel_id)
    .bind::<Text, _>(&r.severity)
    .bind::<Text, _>(&r.payload)
    .bind::<Text, _>(r.status)
    .bind::<BigInt, _>(r.next_attempt_ms)
    .bind::<BigInt, _>(now)
    .execute(c)
    .await?)
}

/// The scoped tenant's alerts counted today.
async fn alerts_today(c: &mut Conn, day: chrono::NaiveDate) -> Result<Today, DbError> {
    let today: Vec<Today> = sql_query(
        "SELECT alerts, alerts_held FROM usage_daily WHERE tenant_id = me() AND day = $1",
    )
    .bind::<Date, _>(day)
    .load(c)
    .await?;
    Ok(today.into_iter().next().unwrap_or_default())
}

/// Suspended for non-payment (or its grace ran out): the scoped tenant's alerts to send are
/// paused — counted and kept (status `paused`) but not delivered.
async fn pause_if_suspended(c: &mut Conn, now: i64, rows: &mut [OutboxRow]) -> Result<(), DbError> {
    let suspended: Flag = sql_query(
        "SELECT (billing_state = 'suspended' OR (billing_state = 'grace' AND grace_until <= $1)) AS flag FROM tenants WHERE tenant_id = me()",
    )
    .bind::<BigInt, _>(now)
    .get_result(c)
    .await?;
    if suspended.flag {
        for r in rows.iter_mut().filter(|r| r.status == "pending") {
            r.status = "paused";
        }
    }
    Ok(())
}

/// A pool of connections to the platform's database.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Conn>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

fn pool_err(e: impl std::fmt::Display) -> DbError {
    DbError::Unavailable(e.to_string())
}

/// A SQL identifier we interpolate (role names): `[a-z_][a-z0-9_]{0,62}`.
pub fn valid_identifier(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Db {
    /// Connects a pool of at most `max` connections to `url`.
    pub async fn connect(url: &str, max: u32) -> DbResult<Self> {
        // Connections driven on this (the main) runtime, not on the HTTP worker that first
        // asked for one: a worker stopping first in a graceful shutdown would take them down
        // under the others' requests.
        let mgr = kamiyo_store::pg_manager(url);
        let pool = Pool::builder()
            .max_size(max.max(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(mgr)
            .await
            .map_err(pool_err)?;
        drop(pool.get().await.map_err(pool_err)?);
        Ok(Self { pool })
    }

    /// Runs pending migrations (as the owner) and grants `app_role` what the service needs:
    /// read/write on the tenant tables, insert and read only on the audit log, read only on
    /// the shared facts (the open core's store in `public`, migrated before this).
    pub async fn migrate(&self, app_role: &str) -> DbResult<usize> {
        if !valid_identifier(app_role) {
            return Err(DbError::Other(format!(
                "application role {app_role:?} is not a plain identifier"
            )));
        }
        let c = self.pool.get_owned().await.map_err(pool_err)?;
        let ran = tokio::task::spawn_blocking(move || {
            let mut h = diesel_async::AsyncMigrationHarness::new(c);
            h.run_pending_migrations(MIGRATIONS)
                .map(|v| v.len())
                .map_err(|e| DbError::Other(format!("migration failed: {e}")))
        })
        .await
        .map_err(|e| DbError::Other(e.to_string()))??;
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let grants = format!(
            "GRANT USAGE ON SCHEMA platform TO {app_role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {app_role};
             GRANT SELECT, INSERT ON platform.audit_log TO {app_role};
             REVOKE UPDATE, DELETE, TRUNCATE ON platform.audit_log FROM {app_role};
             GRANT USAGE ON SEQUENCE platform.audit_log_seq_seq TO {app_role};
             GRANT SELECT, INSERT, UPDATE ON platform.fanout_state TO {app_role};
             GRANT SELECT, INSERT, UPDATE ON platform.correlated_incidents TO {app_role};
             GRANT SELECT, INSERT ON platform.billing_events TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.billing_tenant(TEXT) TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.billing_due(BIGINT, BOOLEAN) TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.subscribers(TEXT) TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.due_tenants(BIGINT, INT) TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.due_tenants(BIGINT, INT, BIGINT) TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.delivery_backlog(BIGINT) TO {app_role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON platform.heartbeats, platform.probes, platform.probe_days TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.brand_for_host(TEXT) TO {app_role};
             GRANT EXECUTE ON FUNCTION platform.subscriptions_by_plan() TO {app_role};
             GRANT USAGE ON SEQUENCE platform.incident_actions_seq_seq TO {app_role};
             GRANT USAGE ON SCHEMA public TO {app_role};
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {app_role};",
            ISOLATED_TABLES
                .iter()
                .filter(|t| **t != "audit_log")
                .map(|t| format!("platform.{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        c.batch_execute(&grants).await?;
        Ok(ran)
    }

    /// Refuses to serve through a role that row-level security would not bind: a superuser,
    /// a `BYPASSRLS` role, or the owner of the tables.
    pub async fn check_app_role(&self) -> DbResult<()> {
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let f: RoleFlags = sql_query(
            "SELECT rolsuper, rolbypassrls, \
             EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'platform' AND tablename = 'tenants' AND tableowner = current_user) AS owns_tables \
             FROM pg_roles WHERE rolname = current_user",
        )
        .get_result(&mut c)
        .await?;
        if f.rolsuper || f.rolbypassrls || f.owns_tables {
            return Err(DbError::Refused(
                "the platform must connect as an application role that is not a superuser, has no BYPASSRLS and owns no table (database.app_url)".into(),
            ));
        }
        Ok(())
    }

    // ---- sign-up and authentication ----

    /// Creates a tenant with its owner, the owner's first key and the default protocol
    /// subscription, audited, in one transaction. [`DbError::Conflict`] when the id is taken.
    #[allow(clippy::too_many_arguments, reason = "one transaction's worth of rows")]
    pub async fn create_tenant(
        &self,
        tenant: &TenantId,
        name: &str,
        plan: &str,
        owner_email: &str,
        owner_hash: &str,
        key: (&str, &str),
        protocol: &str,
        who: &Actor,
    ) -> DbResult<String> {
        let (t, name, plan, email, hash) = (
            tenant.as_str().to_owned(),
            name.to_owned(),
            plan.to_owned(),
            owner_email.to_owned(),
            owner_hash.to_owned(),
        );
        let (key_id, key_hash) = (key.0.to_owned(), key.1.to_owned());
        let (protocol, who) = (protocol.to_owned(), who.clone());
        let user_id = crate::tenancy::new_id("usr");
        let uid = user_id.clone();
        scoped!(self, tenant, |c| {
            sql_query(
                "INSERT INTO tenants (tenant_id, name, plan, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind::<Text, _>(&t)
            .bind::<Text, _>(&name)
            .bind::<Text, _>(&plan)
            .bind::<BigInt, _>(who.at)
            .execute(c)
            .await?;
            sql_query("INSERT INTO users (tenant_id, user_id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, 'owner', $5)")
                    .bind::<Text, _>(&t)
                    .bind::<Text, _>(&uid)
                    .bind::<Text, _>(&email)
                    .bind::<Text, _>(&hash)
                    .bind::<BigInt, _>(who.at)
                    .execute(c)
                    .await?;
            sql_query("INSERT INTO api_keys (tenant_id, key_id, name, hash, role, created_by, created_at) VALUES ($1, $2, 'owner (sign-up)', $3, 'owner', $4, $5)")
                    .bind::<Text, _>(&t)
                    .bind::<Text, _>(&key_id)
                    .bind::<Text, _>(&key_hash)
                    .bind::<Text, _>(format!("user:{uid}"))
                    .bind::<BigInt, _>(who.at)
                    .execute(c)
                    .await?;
            sql_query(
                "INSERT INTO subscriptions (tenant_id, protocol, created_at) VALUES ($1, $2, $3)",
            )
            .bind::<Text, _>(&t)
            .bind::<Text, _>(&protocol)
            .bind::<BigInt, _>(who.at)
            .execute(c)
            .await?;
            // Alerts start with what happens after sign-up, not with the past.
            sql_query("INSERT INTO fanout_cursors (tenant_id, seq) SELECT $1, COALESCE(max(seq), 0) FROM public.security_events")
                .bind::<Text, _>(&t)
                .execute(c)
                .await?;
            audit(
                c,
                &t,
                &who,
                "tenant.create",
                &t,
                &format!("plan {plan}, owner {email}, key {key_id}, subscribed to {protocol}"),
            )
            .await?;
            Ok(())
        })?;
        Ok(user_id)
    }

    /// Looks a key up by its hash and counts one API call for the tenant's UTC day, in one
    /// transaction: the key and the day's calls so far. `None` for an unknown or revoked key. `Err(Limit)` when the day's calls
    /// already reached `limit_of(plan)` (the call is then not counted).
    pub async fn authenticate(
        &self,
        tenant: &TenantId,
        credential: Credential<'_>,
        now_ms: i64,
        limit_of: impl Fn(&str) -> i64 + Send + Sync,
    ) -> DbResult<Option<Verified>> {
        let (sql, h) = match credential {
            Credential::Key(h) => (
                "SELECT k.key_id, k.role, t.plan, t.status, NULL::text AS csrf_hash, t.billing_state, t.grace_until FROM api_keys k JOIN tenants t USING (tenant_id) \
                 WHERE k.tenant_id = $1 AND k.hash = $2 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $3)",
                h,
            ),
            Credential::Session(h) => (
                "SELECT 'user:' || s.user_id AS key_id, u.role, t.plan, t.status, s.csrf_hash, t.billing_state, t.grace_until FROM sessions s \
                 JOIN users u ON u.tenant_id = s.tenant_id AND u.user_id = s.user_id JOIN tenants t ON t.tenant_id = s.tenant_id \
                 WHERE s.tenant_id = $1 AND s.session_hash = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 AND u.disabled_at IS NULL",
                h,
            ),
        };
        let (t, h) = (tenant.as_str().to_owned(), h.to_owned());
        let day = utc_day(now_ms);
        scoped!(self, tenant, |c| {
            let found: Option<KeyAuth> = sql_query(sql)
                .bind::<Text, _>(&t)
                .bind::<Text, _>(&h)
                .bind::<BigInt, _>(now_ms)
                .get_result(c)
                .await
                .map(Some)
                .or_else(|e| match e {
                    diesel::result::Error::NotFound => Ok(None),
                    e => Err(e),
                })?;
            let Some(k) = found else { return Ok(None) };
            let protocols: Vec<String> = sql_query(
                "SELECT protocol, created_at FROM subscriptions WHERE tenant_id = me() ORDER BY created_at, protocol",
            )
            .load::<SubscriptionRow>(c)
            .await?
            .into_iter()
            .map(|r| r.protocol)
            .collect();
            if k.status != "active" {
                return Ok(Some(Verified {
                    key: k,
                    calls: 0,
                    protocols,
                }));
            }
            let limit = limit_of(&k.plan);
            let counted: Vec<Calls> = sql_query(
                    "INSERT INTO usage_daily (tenant_id, day, api_calls) VALUES ($1, $2, 1) \
                     ON CONFLICT (tenant_id, day) DO UPDATE SET api_calls = usage_daily.api_calls + 1 \
                     WHERE usage_daily.api_calls < $3 RETURNING api_calls",
                )
                .bind::<Text, _>(&t)
                .bind::<Date, _>(day)
                .bind::<BigInt, _>(limit)
                .load(c)
                .await?;
            match counted.into_iter().next() {
                Some(n) => Ok(Some(Verified {
                    key: k,
                    calls: n.api_calls,
                    protocols,
                })),
                None => Err(DbError::Limit("api_calls_per_day", limit, limit)),
            }
        })
    }

    /// Counts one API call for the tenant's UTC day in one statement (no transaction around
    /// it: the tenant is named inside the statement, before its row is checked against the
    /// policy). The day's calls so far; `Err(Limit)` when they already reached `limit` (the call
    /// is then not counted).
    pub async fn meter(&self, tenant: &TenantId, now_ms: i64, limit: i64) -> DbResult<i64> {
        let mut c = self.pool.get().await.map_err(pool_err)?;
        let counted: Vec<Calls> = sql_query(
            "INSERT INTO platform.usage_daily (tenant_id, day, api_calls) \
             SELECT $1, $2, 1 FROM (SELECT set_config('app.tenant_id', $1, true)) AS scope \
             ON CONFLICT (tenant_id, day) DO UPDATE SET api_calls = platform.usage_daily.api_calls + 1 \
             WHERE platform.usage_daily.api_calls < $3 AND platform.usage_daily.tenant_id = $1 \
             RETURNING api_calls",
        )
        .bind::<Text, _>(tenant.as_str())
        .bind::<Date, _>(utc_day(now_ms))
        .bind::<BigInt, _>(limit)
        .load(&mut c)
        .await?;
        match counted.into_iter().next() {
            Some(n) => Ok(n.api_calls),
            None => Err(DbError::Limit("api_calls_per_day", limit, limit)),
        }
    }

    /// True while a key is accepted (not revoked, not expired, its tenant active); counts
    /// nothing.
    pub async fn key_valid(
        &self,
        tenant: &TenantId,
        key_hash: &str,
        now_ms: i64,
    ) -> DbResult<bool> {
        let h = key_hash.to_owned();
        scoped!(self, tenant, |c| {
            let n: Count = sql_query(
                "SELECT count(*) AS n FROM api_keys k JOIN tenants t USING (tenant_id) \
                 WHERE k.tenant_id = me() AND k.hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2) AND t.status = 'active'",
            )
            .bind::<Text, _>(&h)
            .bind::<BigInt, _>(now_ms)
            .get_result(c)
            .await?;
            Ok(n.n > 0)
        })
    }

    /// True while a session is live and its tenant active (`/ws` re-checks it); never meters.
    pub async fn session_valid(
        &self,
        tenant: &TenantId,
        session_hash: &str,
        now_ms: i64,
    ) -> DbResult<bool> {
        let h = session_hash.to_owned();
        scoped!(self, tenant, |c| {
            let n: Count = sql_query(
                "SELECT count(*) AS n FROM sessions s JOIN tenants t USING (tenant_id) \
                 WHERE s.tenant_id = me() AND s.session_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND t.status = 'active'",
            )
            .bind::<Text, _>(&h)
            .bind::<BigInt, _>(now_ms)
            .get_result(c)
            .await?;
            Ok(n.n > 0)
        })
    }

    // ---- sign-in ----

    /// A user by address, for signing in: (user id, PHC hash, role, verified). `None` for an
    /// unknown or disabled user.
    pub async fn login_user(&self, tenant: &TenantId, email: &str) -> DbResult<Option<LoginRow>> {
        let e = email.to_owned();
        scoped!(self, tenant, |c| {
            let rows: Vec<LoginRow> = sql_query(
                "SELECT user_id, password_hash, role, email_verified_at IS NOT NULL AS verified FROM users \
                 WHERE tenant_id = me() AND email = $1 AND disabled_at IS NULL",
            )
            .bind::<Text, _>(&e)
            .load(c)
            .await?;
            Ok(rows.into_iter().next())
        })
    }

    /// Stores a session (secret and CSRF token as hashes), audited.
    pub async fn create_session(
        &self,
        tenant: &TenantId,
        user_id: &str,
        hashes: (&str, &str),
        expires_at: i64,
        who: &Actor,
    ) -> DbResult<()> {
        let (t, u, sh, ch, who) = (
            tenant.as_str().to_owned(),
            user_id.to_owned(),
            hashes.0.to_owned(),
            hashes.1.to_owned(),
            who.clone(),
        );
        scoped!(self, tenant, |c| {
            sql_query("INSERT INTO sessions (tenant_id, session_hash, csrf_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind::<Text, _>(&t)
                .bind::<Text, _>(&sh)
                .bind::<Text, _>(&ch)
                .bind::<Text, _>(&u)
                .bind::<BigInt, _>(who.at)
                .bind::<BigInt, _>(expires_at)
                .execute(c)
                .await?;
            audit(c, &t, &who, "session.create", &u, "signed in").await
        })
    }

    /// Ends a session, audited. [`DbError::NotFound`] when it was not live.
    pub async fn end_session(
        &self,
        tenant: &TenantId,
        session_hash: &str,
        who: &Actor,
    ) -> DbResult<()> {
        let (t, h, who) = (
            tenant.as_str().to_owned(),
            session_hash.to_owned(),
            who.clone(),
        );
        scoped!(self, tenant, |c| {
            let n = sql_query("UPDATE sessions SET revoked_at = $2 WHERE tenant_id = me() AND session_hash = $1 AND revoked_at IS NULL")
                .bind::<Text, _>(&h)
                .bind::<BigInt, _>(who.at)
                .execute(c)
                .await?;
            found(n)?;
            audit(c, &t, &who, "session.end", &who.actor, "signed out").await
        })
    }

    /// Stores a one-time token for the user with `email` (or `user_id` when given), unless
    /// there is no such user: then nothing is stored and `None` is returned (the caller answers
    /// the same either way, so addresses cannot be probed).
    pub async fn issue_token(
        &self,
        tenant: &TenantId,
        user: UserRef<'_>,
        purpose: TokenPurpose,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> DbResult<Option<String>> {
        let (t, h) = (tenant.as_str().to_owned(), token_hash.to_owned());
        let (by, value) = match user {
            UserRef::Email(e) => ("email", e.to_owned()),
            UserRef::Id(i) => ("user_id", i.to_owned()),
        };
        scoped!(self, tenant, |c| {
            let rows: Vec<IdRow> = sql_query(format!(
                "SELECT user_id AS id FROM users WHERE tenant_id = me() AND {by} = $1 AND disabled_at IS NULL"
            ))
            .bind::<Text, _>(&value)
            .load(c)
            .await?;
            let Some(u) = rows.into_iter().next() else {
                return Ok(None);
            };
            sql_query("INSERT INTO user_tokens (tenant_id, token_hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind::<Text, _>(&t)
                .bind::<Text, _>(&h)
                .bind::<Text, _>(&u.id)
                .bind::<Text, _>(purpose.as_str())
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(expires_at)
                .execute(c)
                .await?;
            Ok(Some(u.id))
        })
    }

    /// Uses a one-time token: marks it used and applies it — a verified address, or a new
    /// password (then every session of the user ends) — audited, in one transaction.
    /// [`DbError::NotFound`] for an unknown, used or expired token.
    pub async fn use_token(
        &self,
        tenant: &TenantId,
        purpose: TokenPurpose,
        token_hash: &str,
        new_password_hash: Option<&str>,
        who: &Actor,
    ) -> DbResult<String> {
        let (t, h, pw, who) = (
            tenant.as_str().to_owned(),
            token_hash.to_owned(),
            new_password_hash.map(str::to_owned),
            who.clone(),
        );
        scoped!(self, tenant, |c| {
            let rows: Vec<IdRow> = sql_query(
                "UPDATE user_tokens SET used_at = $3 WHERE tenant_id = me() AND token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 RETURNING user_id AS id",
            )
            .bind::<Text, _>(&h)
            .bind::<Text, _>(purpose.as_str())
            .bind::<BigInt, _>(who.at)
            .load(c)
            .await?;
            let Some(u) = rows.into_iter().next() else {
                return Err(DbError::NotFound);
            };
            match (purpose, &pw) {
                (TokenPurpose::Verify, _) => {
                    sql_query("UPDATE users SET email_verified_at = $2 WHERE tenant_id = me() AND user_id = $1 AND email_verified_at IS NULL")
                        .bind::<Text, _>(&u.id)
                        .bind::<BigInt, _>(who.at)
                        .execute(c)
                        .await?;
                    audit(c, &t, &who, "user.verify", &u.id, "address verified").await?;
                }
                (TokenPurpose::Reset, Some(pw)) => {
                    sql_query("UPDATE users SET password_hash = $2 WHERE tenant_id = me() AND user_id = $1")
                        .bind::<Text, _>(&u.id)
                        .bind::<Text, _>(pw)
                        .execute(c)
                        .await?;
                    sql_query("UPDATE sessions SET revoked_at = $2 WHERE tenant_id = me() AND user_id = $1 AND revoked_at IS NULL")
                        .bind::<Text, _>(&u.id)
                        .bind::<BigInt, _>(who.at)
                        .execute(c)
                        .await?;
                    audit(
                        c,
                        &t,
                        &who,
                        "user.password_reset",
                        &u.id,
                        "password replaced; sessions ended",
                    )
                    .await?;
                }
                (TokenPurpose::Reset, None) => {
                    return Err(DbError::Other("a reset needs the new password".into()));
                }
            }
            Ok(u.id)
        })
    }

    // ---- reads ----

    /// The tenant's own row.
    pub async fn tenant(&self, tenant: &TenantId) -> DbResult<TenantRow> {
        let t = tenant.as_str().to_owned();
        scoped!(self, tenant, |c| {
            Ok(sql_query("SELECT tenant_id, name, plan, status, created_at FROM tenants WHERE tenant_id = $1")
                    .bind::<Text, _>(t)
                    .get_result(c)
                    .await?)
        })
    }

    /// Rows of one of the tenant's lists (`what` picks the query).
    pub async fn list<R: ListRow>(&self, tenant: &TenantId, what: List) -> DbResult<Vec<R>> {
        scoped!(self, tenant, |c| {
            Ok(sql_query(what.sql()).load(c).await?)
        })
    }

    /// Usage of the last `days` UTC days, newest first.
    pub async fn usage(
        &self,
        tenant: &TenantId,
        since: chrono::NaiveDate,
    ) -> DbResult<Vec<UsageRow>> {
        scoped!(self, tenant, |c| {
            Ok(sql_query("SELECT day, api_calls, alerts, alerts_held, alerts_paused FROM usage_daily WHERE tenant_id = me() AND day >= $1 ORDER BY day DESC")
                    .bind::<Date, _>(since)
                    .load(c)
                    .await?)
        })
    }

    /// Audit rows at or after `since_ms`, newest first, at most `limit` (oldest first when
    /// `ascending`, for exports).
    pub async fn audit_log(
        &self,
        tenant: &TenantId,
        since_ms: i64,
        limit: i64,
        ascending: bool,
    ) -> DbResult<Vec<AuditRow>> {
        let order = if ascending { "ASC" } else { "DESC" };
        scoped!(self, tenant, |c| {
            Ok(sql_query(format!(
                    "SELECT seq, at, actor, action, target, summary, ip FROM audit_log WHERE tenant_id = me() AND at >= $1 ORDER BY seq {order} LIMIT $2"
                ))
                .bind::<BigInt, _>(since_ms)
                .bind::<BigInt, _>(limit)
                .load(c)
                .await?)
        })
    }

    // ---- changes (each audited in its transaction) ----

    /// Applies one audited change: `change` runs first and says what it did (or
    /// [`DbError::NotFound`]); the audit row follows in the same transaction.
    pub async fn change(&self, tenant: &TenantId, who: &Actor, change: Change) -> DbResult<()> {
        let (t, who) = (tenant.as_str().to_owned(), who.clone());
        scoped!(self, tenant, |c| {
            let (action, target, summary) = change.apply(c, &t, who.at, &who.actor).await?;
            audit(c, &t, &who, action, &target, &summary).await
        })
    }

    // ---- per-tenant alerting ----

    /// The router's position in the shared event stream (0 before its first pass).
    pub async fn router_cursor(&self, name: &str) -> DbResult<i64> {
        let name = name.to_owned();
        unscoped!(self, |c| {
            let rows: Vec<Count> = sql_query("SELECT seq AS n FROM fanout_state WHERE name = $1")
                .bind::<Text, _>(&name)
                .load(c)
                .await?;
            Ok(rows.into_iter().next().map_or(0, |r| r.n))
        })
    }

    /// Moves the router's position (never back).
    pub async fn set_router_cursor(&self, name: &str, seq: i64) -> DbResult<()> {
        let name = name.to_owned();
        unscoped!(self, |c| {
            sql_query("INSERT INTO fanout_state (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = GREATEST(fanout_state.seq, EXCLUDED.seq)")
                .bind::<Text, _>(&name)
                .bind::<BigInt, _>(seq)
                .execute(c)
                .await?;
            Ok(())
        })
    }

    /// Records a correlated incident (insert, or its members, stages, score and times when it
    /// grew).
    pub async fn upsert_correlated(&self, r: &CorrelatedRow) -> DbResult<()> {
        let r = r.clone();
        unscoped!(self, |c| {
            sql_query(
                "INSERT INTO correlated_incidents (correlated_id, pattern, entity, protocols, members, stages, severity, score, first_seen, last_seen, opened_at) \
                 VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11) \
                 ON CONFLICT (correlated_id) DO UPDATE SET protocols = EXCLUDED.protocols, members = EXCLUDED.members, \
                 stages = EXCLUDED.stages, severity = EXCLUDED.severity, score = EXCLUDED.score, \
                 first_seen = LEAST(correlated_incidents.first_seen, EXCLUDED.first_seen), \
                 last_seen = GREATEST(correlated_incidents.last_seen, EXCLUDED.last_seen)",
            )
            .bind::<Text, _>(&r.correlated_id)
            .bind::<Text, _>(&r.pattern)
            .bind::<Text, _>(&r.entity)
            .bind::<Array<Text>, _>(&r.protocols)
            .bind::<Array<Text>, _>(&r.members)
            .bind::<Text, _>(&r.stages)
            .bind::<Text, _>(&r.severity)
            .bind::<Double, _>(r.score)
            .bind::<BigInt, _>(r.first_seen)
            .bind::<BigInt, _>(r.last_seen)
            .bind::<BigInt, _>(r.opened_at)
            .execute(c)
            .await?;
            Ok(())
        })
    }

    /// Correlated incidents touching any of `protocols`, latest first.
    pub async fn correlated(
        &self,
        protocols: &[String],
        limit: i64,
    ) -> DbResult<Vec<CorrelatedRow>> {
        let p = protocols.to_vec();
        unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT correlated_id, pattern, entity, protocols, members, stages::text AS stages, severity, score, first_seen, last_seen, opened_at \
                 FROM correlated_incidents WHERE protocols && $1 ORDER BY last_seen DESC, correlated_id LIMIT $2",
            )
            .bind::<Array<Text>, _>(&p)
            .bind::<BigInt, _>(limit.clamp(1, 500))
            .load(c)
            .await?)
        })
    }

    /// Enqueues an alert for `tenant` at most once per outbox id (rows from `rows`, given the
    /// tenant's channels and today's usage), paused while the tenant is suspended; returns the
    /// rows newly enqueued to send.
    pub async fn alert_once<F>(&self, tenant: &TenantId, now: i64, rows: F) -> DbResult<i64>
    where
        F: FnOnce(&TenantView<'_>) -> Vec<OutboxRow> + Send,
    {
        let t = tenant.as_str().to_owned();
        let day = utc_day(now);
        scoped!(self, tenant, |c| {
            let channels: Vec<ChannelRow> = sql_query(List::Channels.sql()).load(c).await?;
            let today = alerts_today(c, day).await?;
            let brand = brand_name(c).await?;
            let mut rows = rows(&TenantView {
                thresholds: &[],
                channels: &channels,
                today,
                brand: brand.as_deref(),
            });
            pause_if_suspended(c, now, &mut rows).await?;
            let mut sent = 0i64;
            for r in &rows {
                let n = insert_outbox(c, &t, r, 0, now, OnConflict::Keep).await?;
                if n > 0 && r.status == "pending" {
                    sent += 1;
                }
            }
            if sent > 0 {
                sql_query("INSERT INTO usage_daily (tenant_id, day, alerts) VALUES ($1, $2, $3) \
                           ON CONFLICT (tenant_id, day) DO UPDATE SET alerts = usage_daily.alerts + EXCLUDED.alerts")
                    .bind::<Text, _>(&t)
                    .bind::<Date, _>(day)
                    .bind::<BigInt, _>(sent)
                    .execute(c)
                    .await?;
            }
            Ok(sent)
        })
    }

    /// Active tenants following `protocol`, with their plans (through the narrow
    /// `platform.subscribers` function; the router reads nothing else across tenants).
    pub async fn subscribers(&self, protocol: &str) -> DbResult<Vec<(TenantId, String)>> {
        let p = protocol.to_owned();
        let rows: Vec<Subscriber> = unscoped!(self, |c| {
            Ok(
                sql_query("SELECT tenant_id, plan FROM platform.subscribers($1)")
                    .bind::<Text, _>(&p)
                    .load(c)
                    .await?,
            )
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|r| TenantId::parse(&r.tenant_id).ok().map(|t| (t, r.plan)))
            .collect())
    }

    /// Routes one shared event (`seq`) to `tenant`, exactly once: in one transaction its
    /// position is locked and, when the event is past it, `judge` decides from the tenant's
    /// thresholds for the event's detector, its channels and its alerts so far today what to
    /// enqueue; the rows, the day's counts and the position are written together. `Ok(None)`
    /// when the tenant had already taken this event.
    #[allow(
        clippy::too_many_arguments,
        reason = "one step's routing to one tenant"
    )]
    pub async fn route_to_tenant<F>(
        &self,
        tenant: &TenantId,
        seq: i64,
        detector: &str,
        incident_id: &str,
        now: i64,
        judge: F,
    ) -> DbResult<Option<Routed>>
    where
        F: FnOnce(&TenantView<'_>) -> Vec<OutboxRow> + Send,
    {
        let (t, d, inc) = (
            tenant.as_str().to_owned(),
            detector.to_owned(),
            incident_id.to_owned(),
        );
        let day = utc_day(now);
        scoped!(self, tenant, |c| {
            sql_query("INSERT INTO fanout_cursors (tenant_id, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind::<Text, _>(&t)
                .bind::<BigInt, _>(seq - 1)
                .execute(c)
                .await?;
            let at: Count =
                sql_query("SELECT seq AS n FROM fanout_cursors WHERE tenant_id = me() FOR UPDATE")
                    .get_result(c)
                    .await?;
            if at.n >= seq {
                return Ok(None);
            }
            let thresholds: Vec<ThresholdRow> = sql_query("SELECT detector, name, value, updated_at FROM thresholds WHERE tenant_id = me() AND detector = $1 ORDER BY name")
                .bind::<Text, _>(&d)
                .load(c)
                .await?;
            let channels: Vec<ChannelRow> = sql_query(List::Channels.sql()).load(c).await?;
            let today = alerts_today(c, day).await?;
            let brand = brand_name(c).await?;
            let mut rows = judge(&TenantView {
                thresholds: &thresholds,
                channels: &channels,
                today,
                brand: brand.as_deref(),
            });
            // The tenant's own handling: a muted incident sends nothing more; one it resolved
            // is reopened by a new alerting step, which is sent.
            if !rows.is_empty() {
                match handled(c, &inc).await?.as_deref() {
                    Some("mute") => rows.clear(),
                    Some("resolve") => {
                        sql_query("INSERT INTO incident_actions (tenant_id, incident_id, action, note, actor, at) VALUES ($1, $2, 'reopen', $3, 'kamiyo', $4)")
                            .bind::<Text, _>(&t)
                            .bind::<Text, _>(&inc)
                            .bind::<Text, _>(format!("a new alerting step (event {seq}) after it was resolved"))
                            .bind::<BigInt, _>(now)
                            .execute(c)
                            .await?;
                    }
                    _ => {}
                }
            }
            pause_if_suspended(c, now, &mut rows).await?;
            let (mut sent, mut held, mut paused) = (0i64, 0i64, 0i64);
            for r in &rows {
                match r.status {
                    "pending" => sent += 1,
                    "held" => held += 1,
                    "paused" => paused += 1,
                    _ => {}
                }
                // A digest row is one per channel and day: later held alerts update it.
                insert_outbox(c, &t, r, seq, now, OnConflict::UpdateDigest).await?;
            }
            if sent + held + paused > 0 {
                sql_query("INSERT INTO usage_daily (tenant_id, day, alerts, alerts_held, alerts_paused) VALUES ($1, $2, $3, $4, $5) \
                           ON CONFLICT (tenant_id, day) DO UPDATE SET alerts = usage_daily.alerts + $3, alerts_held = usage_daily.alerts_held + $4, \
                           alerts_paused = usage_daily.alerts_paused + $5")
                    .bind::<Text, _>(&t)
                    .bind::<Date, _>(day)
                    .bind::<BigInt, _>(sent)
                    .bind::<BigInt, _>(held)
                    .bind::<BigInt, _>(paused)
                    .execute(c)
                    .await?;
            }
            sql_query("UPDATE fanout_cursors SET seq = $1 WHERE tenant_id = me()")
                .bind::<BigInt, _>(seq)
                .execute(c)
                .await?;
            Ok(Some(Routed { sent, held, paused }))
        })
    }

    /// Tenants with alerts due at `now`, or claimed by a worker whose last heartbeat is older
    /// than `alive_since` (through the narrow `platform.due_tenants`).
    pub async fn due_tenants(
        &self,
        now: i64,
        max: i32,
        alive_since: i64,
    ) -> DbResult<Vec<TenantId>> {
        let rows: Vec<IdRow> = unscoped!(self, |c| {
            Ok(
                sql_query("SELECT tenant_id AS id FROM platform.due_tenants($1, $2, $3)")
                    .bind::<BigInt, _>(now)
                    .bind::<diesel::sql_types::Integer, _>(max)
                    .bind::<BigInt, _>(alive_since)
                    .load(c)
                    .await?,
            )
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|r| TenantId::parse(&r.id).ok())
            .collect())
    }

    /// Claims up to `limit` of the tenant's rows for `worker` for `lease_ms`: rows due at
    /// `now`, and rows claimed by a worker whose last heartbeat is older than `alive_since`
    /// (it died holding them).
    pub async fn claim_due(
        &self,
        tenant: &TenantId,
        claim: &Claim<'_>,
        limit: i64,
    ) -> DbResult<Vec<Claimed>> {
        let worker = claim.worker.to_owned();
        let (now, lease, alive_since) = (claim.now, claim.lease_ms, claim.alive_since);
        scoped!(self, tenant, |c| {
            Ok(sql_query(
                "WITH due AS (SELECT outbox_id FROM tenant_outbox o WHERE tenant_id = me() AND status IN ('pending', 'digest') \
                 AND (next_attempt_ms <= $1 OR (claimed_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM heartbeats h WHERE h.component = 'workers' AND h.instance = o.claimed_by AND h.at >= $4))) \
                 ORDER BY next_attempt_ms, outbox_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE tenant_outbox o SET next_attempt_ms = $1 + $2, attempts = o.attempts + 1, claimed_by = $5 FROM due, alert_channels ch \
                 WHERE o.tenant_id = me() AND o.outbox_id = due.outbox_id AND ch.tenant_id = o.tenant_id AND ch.channel_id = o.channel_id \
                 RETURNING o.outbox_id, o.status, o.payload, o.attempts, ch.kind, ch.url, ch.secret, ch.name, o.created_at",
            )
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(lease)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(alive_since)
            .bind::<Text, _>(&worker)
            .load(c)
            .await?)
        })
    }

    /// Records what a delivery attempt did: delivered, due again at `retry_at`, or failed.
    pub async fn finish_delivery(
        &self,
        tenant: &TenantId,
        outbox_id: &str,
        outcome: Outcome,
        now: i64,
    ) -> DbResult<()> {
        let id = outbox_id.to_owned();
        scoped!(self, tenant, |c| {
            let q = match &outcome {
                Outcome::Delivered => sql_query("UPDATE tenant_outbox SET status = 'delivered', delivered_at = $2, last_error = $3, claimed_by = NULL WHERE tenant_id = me() AND outbox_id = $1")
                    .bind::<Text, _>(&id)
                    .bind::<BigInt, _>(now)
                    .bind::<Nullable<Text>, _>(None::<String>),
                Outcome::Retry { at, error } => sql_query("UPDATE tenant_outbox SET next_attempt_ms = $2, last_error = $3, claimed_by = NULL WHERE tenant_id = me() AND outbox_id = $1")
                    .bind::<Text, _>(&id)
                    .bind::<BigInt, _>(*at)
                    .bind::<Nullable<Text>, _>(Some(error.clone())),
                Outcome::Failed(error) => sql_query("UPDATE tenant_outbox SET status = 'failed', last_error = $3, next_attempt_ms = $2, claimed_by = NULL WHERE tenant_id = me() AND outbox_id = $1")
                    .bind::<Text, _>(&id)
                    .bind::<BigInt, _>(now)
                    .bind::<Nullable<Text>, _>(Some(error.clone())),
            };
            q.execute(c).await?;
            Ok(())
        })
    }

    /// The tenant's outbox, newest first.
    pub async fn tenant_outbox(&self, tenant: &TenantId, limit: i64) -> DbResult<Vec<OutboxView>> {
        scoped!(self, tenant, |c| {
            Ok(sql_query("SELECT outbox_id, event_seq, incident_id, channel_id, severity, payload, status, attempts, next_attempt_ms, created_at, last_error \
                          FROM tenant_outbox WHERE tenant_id = me() ORDER BY event_seq DESC, outbox_id LIMIT $1")
                .bind::<BigInt, _>(limit)
                .load(c)
                .await?)
        })
    }

    // ---- staff (owner connection) ----

    /// Every tenant (staff).
    pub async fn staff_tenants(&self) -> DbResult<Vec<TenantRow>> {
        unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT tenant_id, name, plan, status, created_at FROM tenants ORDER BY tenant_id",
            )
            .load(c)
            .await?)
        })
    }

    /// Every address an active tenant watches (the owner's connection: ingest follows them
    /// all; which tenant watches which is not returned).
    pub async fn watched_by_any(&self) -> DbResult<Vec<String>> {
        let rows: Vec<IdRow> = unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT DISTINCT w.address AS id FROM watched_addresses w JOIN tenants t USING (tenant_id) \
                 WHERE t.status = 'active' ORDER BY 1",
            )
            .load(c)
            .await?)
        })?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Sets a tenant's plan or status (staff), audited in the tenant's log.
    pub async fn staff_set(
        &self,
        tenant: &TenantId,
        column: StaffColumn,
        value: &str,
        who: &Actor,
    ) -> DbResult<()> {
        let (t, v, who) = (tenant.as_str().to_owned(), value.to_owned(), who.clone());
        unscoped!(self, |c| {
            let col = column.column();
            let n = sql_query(format!(
                "UPDATE tenants SET {col} = $2 WHERE tenant_id = $1"
            ))
            .bind::<Text, _>(&t)
            .bind::<Text, _>(&v)
            .execute(c)
            .await?;
            if n == 0 {
                return Err(DbError::NotFound);
            }
            audit(c, &t, &who, column.action(), &t, &format!("{col} = {v}")).await
        })
    }
}

/// What staff may set on a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffColumn {
    /// The plan.
    Plan,
    /// `active` / `suspended`.
    Status,
}

impl StaffColumn {
    fn column(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Status => "status",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::Plan => "staff.plan",
            Self::Status => "staff.status",
        }
    }
}

/// The tenant's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// Users ([`UserRow`]).
    Users,
    /// Keys ([`KeyRow`]).
    Keys,
    /// Subscriptions ([`SubscriptionRow`]).
    Subscriptions,
    /// Thresholds ([`ThresholdRow`]).
    Thresholds,
    /// Watched addresses ([`WatchedRow`]).
    Watched,
    /// Channels ([`ChannelRow`]).
    Channels,
}

impl List {
    fn sql(self) -> &'static str {
        match self {
            Self::Users => {
                "SELECT user_id, email, role, created_at FROM users WHERE tenant_id = me() AND disabled_at IS NULL ORDER BY created_at, user_id"
            }
            Self::Keys => {
                "SELECT key_id, name, role, created_by, created_at, revoked_at FROM api_keys WHERE tenant_id = me() ORDER BY created_at DESC, key_id"
            }
            Self::Subscriptions => {
                "SELECT protocol, created_at FROM subscriptions WHERE tenant_id = me() ORDER BY protocol"
            }
            Self::Thresholds => {
                "SELECT detector, name, value, updated_at FROM thresholds WHERE tenant_id = me() ORDER BY detector, name"
            }
            Self::Watched => {
                "SELECT address, label, created_at FROM watched_addresses WHERE tenant_id = me() ORDER BY address"
            }
            Self::Channels => {
                "SELECT channel_id, name, kind, url, min_severity, secret IS NOT NULL AS has_secret, created_at FROM alert_channels WHERE tenant_id = me() ORDER BY name"
            }
        }
    }
}

/// One audited change to a tenant's state.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add a user.
    AddUser {
        /// Id.
        user_id: String,
        /// Email.
        email: String,
        /// Argon2id PHC string.
        password_hash: String,
        /// Role.
        role: String,
    },
    /// Disable a user (never the last owner).
    RemoveUser(String),
    /// Add a key.
    AddKey {
        /// Id.
        key_id: String,
        /// Label.
        name: String,
        /// SHA-256 of the key.
        hash: String,
        /// Role.
        role: String,
        /// Creator.
        created_by: String,
    },
    /// Revoke a key.
    RevokeKey(String),
    /// A read-only key for staff, expiring.
    Impersonate {
        /// Id.
        key_id: String,
        /// SHA-256 of the key.
        hash: String,
        /// Who asked, and why.
        reason: String,
        /// Expiry (epoch ms).
        expires_at: i64,
    },
    /// Subscribe to a protocol, within `max` protocols.
    Subscribe {
        /// Protocol id.
        protocol: String,
        /// The plan's protocol limit.
        max: i64,
    },
    /// Unsubscribe.
    Unsubscribe(String),
    /// Set a threshold.
    SetThreshold {
        /// Detector.
        detector: String,
        /// Setting.
        name: String,
        /// Value.
        value: f64,
    },
    /// Remove a threshold override.
    RemoveThreshold {
        /// Detector.
        detector: String,
        /// Setting.
        name: String,
    },
    /// Watch an address.
    Watch {
        /// Address.
        address: String,
        /// Label.
        label: String,
    },
    /// Stop watching.
    Unwatch(String),
    /// Add an alert channel.
    AddChannel {
        /// Id.
        channel_id: String,
        /// Name.
        name: String,
        /// Kind.
        kind: String,
        /// URL.
        url: String,
        /// Secret or token.
        secret: Option<String>,
        /// Least severity.
        min_severity: String,
    },
    /// Remove a channel.
    RemoveChannel(String),
    /// Act on a shared incident (the tenant's own state of it).
    IncidentAction {
        /// The incident.
        incident_id: String,
        /// `acknowledge`, `mute`, `resolve` or `reopen`.
        action: String,
        /// Why.
        note: String,
    },
    /// Set the brand (white label).
    SetBrand {
        /// Name.
        name: String,
        /// Logo (`data:` URL).
        logo: Option<String>,
        /// Main colour.
        primary_colour: String,
        /// Accent colour.
        accent_colour: String,
        /// Custom domain.
        domain: Option<String>,
    },
    /// Back to kamiyo's own look.
    RemoveBrand,
    /// Set single sign-on.
    SetSso {
        /// Issuer URL.
        issuer: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// The claim roles come from.
        role_claim: String,
        /// Claim value → role (JSON object).
        role_map: String,
        /// The role of a user no mapping names.
        default_role: Option<String>,
        /// Refuse password sign-in.
        enforced: bool,
    },
    /// Remove single sign-on.
    RemoveSso,
}

/// What the router knows of one tenant when it decides a step's alerts.
#[derive(Debug, Clone, Copy)]
pub struct TenantView<'a> {
    /// Its threshold overrides for the step's detector.
    pub thresholds: &'a [ThresholdRow],
    /// Its channels.
    pub channels: &'a [ChannelRow],
    /// Its alerts so far today.
    pub today: Today,
    /// The name its alerts are sent under (white label), if it set one.
    pub brand: Option<&'a str>,
}

/// The tenant's brand name, if any (inside its transaction).
async fn brand_name(c: &mut Conn) -> DbResult<Option<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let rows: Vec<Name> = sql_query("SELECT name FROM branding WHERE tenant_id = me()")
        .load(c)
        .await?;
    Ok(rows.into_iter().next().map(|n| n.name))
}

/// The tenant's newest action on an incident, if any (inside its transaction).
async fn handled(c: &mut Conn, incident: &str) -> DbResult<Option<String>> {
    #[derive(QueryableByName)]
    struct Action {
        #[diesel(sql_type = Text)]
        action: String,
    }
    let rows: Vec<Action> = sql_query(
        "SELECT action FROM incident_actions WHERE tenant_id = me() AND incident_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind::<Text, _>(incident)
    .load(c)
    .await?;
    Ok(rows.into_iter().next().map(|a| a.action))
}

/// The audit action of an incident action.
fn incident_verb(action: &str) -> &'static str {
    match action {
        "acknowledge" => "incident.acknowledge",
        "mute" => "incident.mute",
        "resolve" => "incident.resolve",
        _ => "incident.reopen",
    }
}

/// The UTC day of an epoch-ms time.
pub fn utc_day(ms: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive()
}

fn found(n: usize) -> DbResult<()> {
    if n == 0 {
        Err(DbError::NotFound)
    } else {
        Ok(())
    }
}

impl Change {
    async fn apply(
        self,
        c: &mut Conn,
        t: &str,
        now: i64,
        actor: &str,
    ) -> DbResult<(&'static str, String, String)> {
        Ok(match self {
            Self::AddUser {
                user_id,
                email,
                password_hash,
                role,
            } => {
                sql_query("INSERT INTO users (tenant_id, user_id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&user_id)
                    .bind::<Text, _>(&email)
                    .bind::<Text, _>(&password_hash)
                    .bind::<Text, _>(&role)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                ("user.create", user_id, format!("{email} as {role}"))
            }
            Self::RemoveUser(id) => {
                let owners: Count = sql_query("SELECT count(*) AS n FROM users WHERE tenant_id = me() AND role = 'owner' AND disabled_at IS NULL AND user_id <> $1")
                    .bind::<Text, _>(&id)
                    .get_result(c)
                    .await?;
                let n = sql_query("UPDATE users SET disabled_at = $2 WHERE tenant_id = me() AND user_id = $1 AND disabled_at IS NULL AND (role <> 'owner' OR $3)")
                    .bind::<Text, _>(&id)
                    .bind::<BigInt, _>(now)
                    .bind::<diesel::sql_types::Bool, _>(owners.n > 0)
                    .execute(c)
                    .await?;
                if n == 0 && owners.n == 0 {
                    let exists: Count = sql_query("SELECT count(*) AS n FROM users WHERE tenant_id = me() AND user_id = $1 AND disabled_at IS NULL")
                        .bind::<Text, _>(&id)
                        .get_result(c)
                        .await?;
                    if exists.n > 0 {
                        return Err(DbError::Conflict("the last owner cannot be removed".into()));
                    }
                }
                found(n)?;
                (
                    "user.disable",
                    id,
                    "disabled; its keys stay until revoked".into(),
                )
            }
            Self::AddKey {
                key_id,
                name,
                hash,
                role,
                created_by,
            } => {
                sql_query("INSERT INTO api_keys (tenant_id, key_id, name, hash, role, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&key_id)
                    .bind::<Text, _>(&name)
                    .bind::<Text, _>(&hash)
                    .bind::<Text, _>(&role)
                    .bind::<Text, _>(&created_by)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                ("key.create", key_id, format!("{name:?} as {role}"))
            }
            Self::Impersonate {
                key_id,
                hash,
                reason,
                expires_at,
            } => {
                sql_query("INSERT INTO api_keys (tenant_id, key_id, name, hash, role, created_by, created_at, expires_at) VALUES ($1, $2, 'staff impersonation (read-only)', $3, 'viewer', 'staff', $4, $5)")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&key_id)
                    .bind::<Text, _>(&hash)
                    .bind::<BigInt, _>(now)
                    .bind::<BigInt, _>(expires_at)
                    .execute(c)
                    .await?;
                (
                    "staff.impersonate",
                    key_id,
                    format!("read-only key until {expires_at}: {reason}"),
                )
            }
            Self::RevokeKey(id) => {
                let n = sql_query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE tenant_id = me() AND key_id = $1 AND revoked_at IS NULL",
                )
                .bind::<Text, _>(&id)
                .bind::<BigInt, _>(now)
                .execute(c)
                .await?;
                found(n)?;
                ("key.revoke", id, "revoked".into())
            }
            Self::Subscribe { protocol, max } => {
                let have: Count =
                    sql_query("SELECT count(*) AS n FROM subscriptions WHERE tenant_id = me() AND protocol <> $1")
                        .bind::<Text, _>(&protocol)
                        .get_result(c)
                        .await?;
                if have.n + 1 > max {
                    return Err(DbError::Limit("protocols", have.n + 1, max));
                }
                let n = sql_query("INSERT INTO subscriptions (tenant_id, protocol, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&protocol)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                let what = if n == 0 {
                    "already subscribed"
                } else {
                    "subscribed"
                };
                ("subscription.add", protocol, what.into())
            }
            Self::Unsubscribe(p) => {
                let n =
                    sql_query("DELETE FROM subscriptions WHERE tenant_id = me() AND protocol = $1")
                        .bind::<Text, _>(&p)
                        .execute(c)
                        .await?;
                found(n)?;
                ("subscription.remove", p, "unsubscribed".into())
            }
            Self::SetThreshold {
                detector,
                name,
                value,
            } => {
                sql_query("INSERT INTO thresholds (tenant_id, detector, name, value, updated_at) VALUES ($1, $2, $3, $4, $5) \
                           ON CONFLICT (tenant_id, detector, name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&detector)
                    .bind::<Text, _>(&name)
                    .bind::<Double, _>(value)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                (
                    "threshold.set",
                    format!("{detector}.{name}"),
                    format!("= {value}"),
                )
            }
            Self::RemoveThreshold { detector, name } => {
                let n = sql_query(
                    "DELETE FROM thresholds WHERE tenant_id = me() AND detector = $1 AND name = $2",
                )
                .bind::<Text, _>(&detector)
                .bind::<Text, _>(&name)
                .execute(c)
                .await?;
                found(n)?;
                (
                    "threshold.remove",
                    format!("{detector}.{name}"),
                    "back to the default".into(),
                )
            }
            Self::Watch { address, label } => {
                sql_query("INSERT INTO watched_addresses (tenant_id, address, label, created_at) VALUES ($1, $2, $3, $4) \
                           ON CONFLICT (tenant_id, address) DO UPDATE SET label = EXCLUDED.label")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&address)
                    .bind::<Text, _>(&label)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                ("watch.set", address, format!("label {label:?}"))
            }
            Self::Unwatch(a) => {
                let n = sql_query(
                    "DELETE FROM watched_addresses WHERE tenant_id = me() AND address = $1",
                )
                .bind::<Text, _>(&a)
                .execute(c)
                .await?;
                found(n)?;
                ("watch.remove", a, "no longer watched".into())
            }
            Self::AddChannel {
                channel_id,
                name,
                kind,
                url,
                secret,
                min_severity,
            } => {
                sql_query("INSERT INTO alert_channels (tenant_id, channel_id, name, kind, url, secret, min_severity, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&channel_id)
                    .bind::<Text, _>(&name)
                    .bind::<Text, _>(&kind)
                    .bind::<Text, _>(&url)
                    .bind::<Nullable<Text>, _>(&secret)
                    .bind::<Text, _>(&min_severity)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                (
                    "channel.create",
                    channel_id,
                    format!("{name:?} ({kind}, {min_severity} and above)"),
                )
            }
            Self::RemoveChannel(id) => {
                let n = sql_query(
                    "DELETE FROM alert_channels WHERE tenant_id = me() AND channel_id = $1",
                )
                .bind::<Text, _>(&id)
                .execute(c)
                .await?;
                found(n)?;
                ("channel.remove", id, "removed".into())
            }
            Self::IncidentAction {
                incident_id,
                action,
                note,
            } => {
                sql_query("INSERT INTO incident_actions (tenant_id, incident_id, action, note, actor, at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&incident_id)
                    .bind::<Text, _>(&action)
                    .bind::<Text, _>(&note)
                    .bind::<Text, _>(actor)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                let words = if note.is_empty() {
                    "no note".to_owned()
                } else {
                    format!("{note:?}")
                };
                (incident_verb(&action), incident_id, words)
            }
            Self::SetBrand {
                name,
                logo,
                primary_colour,
                accent_colour,
                domain,
            } => {
                sql_query("INSERT INTO branding (tenant_id, name, logo, primary_colour, accent_colour, domain, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                           ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name, logo = EXCLUDED.logo, primary_colour = EXCLUDED.primary_colour, \
                           accent_colour = EXCLUDED.accent_colour, domain = EXCLUDED.domain, updated_at = EXCLUDED.updated_at")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&name)
                    .bind::<Nullable<Text>, _>(&logo)
                    .bind::<Text, _>(&primary_colour)
                    .bind::<Text, _>(&accent_colour)
                    .bind::<Nullable<Text>, _>(&domain)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                (
                    "brand.set",
                    t.to_owned(),
                    format!(
                        "{name:?}, {primary_colour}/{accent_colour}, domain {}, {}",
                        domain.as_deref().unwrap_or("none"),
                        if logo.is_some() { "logo" } else { "no logo" }
                    ),
                )
            }
            Self::RemoveBrand => {
                let n = sql_query("DELETE FROM branding WHERE tenant_id = me()")
                    .execute(c)
                    .await?;
                found(n)?;
                ("brand.remove", t.to_owned(), "kamiyo's own look".into())
            }
            Self::SetSso {
                issuer,
                client_id,
                client_secret,
                role_claim,
                role_map,
                default_role,
                enforced,
            } => {
                sql_query("INSERT INTO sso_settings (tenant_id, issuer, client_id, client_secret, role_claim, role_map, default_role, enforced, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9) ON CONFLICT (tenant_id) DO UPDATE SET issuer = EXCLUDED.issuer, \
                           client_id = EXCLUDED.client_id, client_secret = EXCLUDED.client_secret, role_claim = EXCLUDED.role_claim, \
                           role_map = EXCLUDED.role_map, default_role = EXCLUDED.default_role, enforced = EXCLUDED.enforced, updated_at = EXCLUDED.updated_at")
                    .bind::<Text, _>(t)
                    .bind::<Text, _>(&issuer)
                    .bind::<Text, _>(&client_id)
                    .bind::<Text, _>(&client_secret)
                    .bind::<Text, _>(&role_claim)
                    .bind::<Text, _>(&role_map)
                    .bind::<Nullable<Text>, _>(&default_role)
                    .bind::<diesel::sql_types::Bool, _>(enforced)
                    .bind::<BigInt, _>(now)
                    .execute(c)
                    .await?;
                (
                    "sso.set",
                    issuer,
                    format!(
                        "client {client_id}, roles from {role_claim:?}, default {}, {}",
                        default_role.as_deref().unwrap_or("refuse"),
                        if enforced {
                            "password sign-in refused"
                        } else {
                            "password sign-in allowed"
                        }
                    ),
                )
            }
            Self::RemoveSso => {
                let n = sql_query("DELETE FROM sso_settings WHERE tenant_id = me()")
                    .execute(c)
                    .await?;
                found(n)?;
                ("sso.remove", t.to_owned(), "password sign-in only".into())
            }
        })
    }
}

async fn audit(
    c: &mut Conn,
    tenant: &str,
    who: &Actor,
    action: &str,
    target: &str,
    summary: &str,
) -> DbResult<()> {
    sql_query("INSERT INTO audit_log (tenant_id, at, actor, action, target, summary, ip) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind::<Text, _>(tenant)
        .bind::<BigInt, _>(who.at)
        .bind::<Text, _>(&who.actor)
        .bind::<Text, _>(action)
        .bind::<Text, _>(target)
        .bind::<Text, _>(summary)
        .bind::<Text, _>(&who.ip)
        .execute(c)
        .await?;
    Ok(())
}

// ---- billing (Stripe's confirmed state; decisions are made in `billing`) ----

/// A tenant's billing as stored: its Stripe customer and subscription (when any), the plan
/// enforced and the dunning state.
#[derive(Debug, Clone, Default, PartialEq, Eq, QueryableByName, Serialize)]
pub struct BillingRow {
    /// The tenant.
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    /// The plan enforced.
    #[diesel(sql_type = Text)]
    pub plan: String,
    /// `ok`, `grace` or `suspended`.
    #[diesel(sql_type = Text)]
    pub billing_state: String,
    /// End of the grace period (epoch ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub grace_until: Option<i64>,
    /// `cus_…`.
    #[diesel(sql_type = Nullable<Text>)]
    pub customer_id: Option<String>,
    /// `sub_…`.
    #[diesel(sql_type = Nullable<Text>)]
    pub subscription_id: Option<String>,
    /// Stripe's status of the subscription.
    #[diesel(sql_type = Nullable<Text>)]
    pub status: Option<String>,
    /// The subscription's price.
    #[diesel(sql_type = Nullable<Text>)]
    pub price_id: Option<String>,
    /// The subscription's item.
    #[diesel(sql_type = Nullable<Text>)]
    pub item_id: Option<String>,
    /// Current period's end (epoch ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub period_end: Option<i64>,
    /// Trial's end (epoch ms).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub trial_end: Option<i64>,
    /// Cancels at the period's end.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub cancel_at_period_end: bool,
    /// A trial was had (one per tenant).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub trial_used: bool,
    /// Stripe time (ms) of the subscription state stored.
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    /// Stripe time (ms) of the last payment outcome applied.
    #[diesel(sql_type = BigInt)]
    pub payment_version: i64,
}

/// What billing decided to write for a tenant (all in one transaction, with its audit rows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingWrite {
    /// The new state of the row (subscription fields, versions, plan, dunning).
    pub row: BillingRow,
    /// Audit rows: (action, summary).
    pub audits: Vec<(&'static str, String)>,
}

/// A Stripe event being applied (recorded once; a second delivery finds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMark {
    /// `evt_…`.
    pub id: String,
    /// Its type.
    pub kind: String,
    /// Stripe's `created` (epoch ms).
    pub created: i64,
}

/// What [`Db::billing_write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingOutcome {
    /// The event was applied before: nothing done.
    Duplicate,
    /// Nothing to change (the decision was `None`).
    Unchanged,
    /// Written.
    Written(Box<BillingWrite>),
}

const BILLING_SELECT: &str = "SELECT t.tenant_id, t.plan, t.billing_state, t.grace_until, b.customer_id, b.subscription_id, b.status, \
     b.price_id, b.item_id, b.period_end, b.trial_end, COALESCE(b.cancel_at_period_end, false) AS cancel_at_period_end, \
     COALESCE(b.trial_used, false) AS trial_used, COALESCE(b.version, 0) AS version, COALESCE(b.payment_version, 0) AS payment_version \
     FROM tenants t LEFT JOIN billing_accounts b ON b.tenant_id = t.tenant_id WHERE t.tenant_id = me()";

async fn mark_event(
    c: &mut Conn,
    e: &EventMark,
    tenant: Option<&str>,
    now: i64,
    outcome: &str,
) -> DbResult<bool> {
    let n = sql_query(
        "INSERT INTO billing_events (event_id, type, created, tenant_id, received_at, outcome) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind::<Text, _>(&e.id)
    .bind::<Text, _>(&e.kind)
    .bind::<BigInt, _>(e.created)
    .bind::<Nullable<Text>, _>(tenant)
    .bind::<BigInt, _>(now)
    .bind::<Text, _>(outcome)
    .execute(c)
    .await?;
    Ok(n == 1)
}

impl Db {
    /// The tenant's billing.
    pub async fn billing(&self, tenant: &TenantId) -> DbResult<BillingRow> {
        scoped!(self, tenant, |c| {
            Ok(sql_query(BILLING_SELECT).get_result(c).await?)
        })
    }

    /// The tenant of a Stripe customer (through the narrow `platform.billing_tenant`).
    pub async fn billing_tenant(&self, customer: &str) -> DbResult<Option<TenantId>> {
        let cus = customer.to_owned();
        let rows: Vec<IdRow> = unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT id FROM (SELECT platform.billing_tenant($1) AS id) x WHERE id IS NOT NULL",
            )
            .bind::<Text, _>(&cus)
            .load(c)
            .await?)
        })?;
        Ok(rows.into_iter().find_map(|r| TenantId::parse(&r.id).ok()))
    }

    /// Tenants whose grace ended at `now` and, with `all`, every active tenant (through the
    /// narrow `platform.billing_due`).
    pub async fn billing_due(&self, now: i64, all: bool) -> DbResult<Vec<TenantId>> {
        let rows: Vec<IdRow> = unscoped!(self, |c| {
            Ok(
                sql_query("SELECT tenant_id AS id FROM platform.billing_due($1, $2)")
                    .bind::<BigInt, _>(now)
                    .bind::<diesel::sql_types::Bool, _>(all)
                    .load(c)
                    .await?,
            )
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|r| TenantId::parse(&r.id).ok())
            .collect())
    }

    /// Whether a Stripe event was recorded already.
    pub async fn billing_event_seen(&self, id: &str) -> DbResult<bool> {
        let id = id.to_owned();
        unscoped!(self, |c| {
            let n: Count =
                sql_query("SELECT count(*) AS n FROM billing_events WHERE event_id = $1")
                    .bind::<Text, _>(&id)
                    .get_result(c)
                    .await?;
            Ok(n.n > 0)
        })
    }

    /// Records a Stripe event that concerns no tenant's state (unknown customer, a type not
    /// handled); `false` when it was recorded before.
    pub async fn billing_event_note(
        &self,
        e: &EventMark,
        now: i64,
        outcome: &str,
    ) -> DbResult<bool> {
        let (e, outcome) = (e.clone(), outcome.to_owned());
        unscoped!(self, |c| { mark_event(c, &e, None, now, &outcome).await })
    }

    /// Applies a billing decision for `tenant` in one transaction: the event (if any) is
    /// recorded first — a second delivery of it finds it and changes nothing — then the row is
    /// read under lock, `decide` says what to write (`None`: nothing), and the billing
    /// account, the tenant's plan and dunning state and the audit rows are written together.
    pub async fn billing_write<F>(
        &self,
        tenant: &TenantId,
        event: Option<&EventMark>,
        who: &Actor,
        decide: F,
    ) -> DbResult<BillingOutcome>
    where
        F: FnOnce(&BillingRow) -> Option<BillingWrite> + Send,
    {
        let (t, who, event) = (tenant.as_str().to_owned(), who.clone(), event.cloned());
        scoped!(self, tenant, |c| {
            if let Some(e) = &event
                && !mark_event(c, e, Some(&t), who.at, "applied").await?
            {
                return Ok(BillingOutcome::Duplicate);
            }
            let cur: BillingRow = sql_query(format!("{BILLING_SELECT} FOR UPDATE OF t"))
                .get_result(c)
                .await?;
            let Some(w) = decide(&cur) else {
                return Ok(BillingOutcome::Unchanged);
            };
            let r = &w.row;
            if let Some(cus) = &r.customer_id {
                sql_query(
                    "INSERT INTO billing_accounts (tenant_id, customer_id, subscription_id, status, price_id, item_id, plan, period_end, trial_end, \
                     cancel_at_period_end, trial_used, version, payment_version, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (tenant_id) DO UPDATE SET customer_id = $2, subscription_id = $3, status = $4, price_id = $5, item_id = $6, plan = $7, \
                     period_end = $8, trial_end = $9, cancel_at_period_end = $10, trial_used = $11, version = $12, payment_version = $13, updated_at = $14",
                )
                .bind::<Text, _>(&t)
                .bind::<Text, _>(cus)
                .bind::<Nullable<Text>, _>(&r.subscription_id)
                .bind::<Nullable<Text>, _>(&r.status)
                .bind::<Nullable<Text>, _>(&r.price_id)
                .bind::<Nullable<Text>, _>(&r.item_id)
                .bind::<Text, _>(&r.plan)
                .bind::<Nullable<BigInt>, _>(r.period_end)
                .bind::<Nullable<BigInt>, _>(r.trial_end)
                .bind::<diesel::sql_types::Bool, _>(r.cancel_at_period_end)
                .bind::<diesel::sql_types::Bool, _>(r.trial_used)
                .bind::<BigInt, _>(r.version)
                .bind::<BigInt, _>(r.payment_version)
                .bind::<BigInt, _>(who.at)
                .execute(c)
                .await?;
            }
            sql_query("UPDATE tenants SET plan = $2, billing_state = $3, grace_until = $4 WHERE tenant_id = $1 AND tenant_id = me()")
                .bind::<Text, _>(&t)
                .bind::<Text, _>(&r.plan)
                .bind::<Text, _>(&r.billing_state)
                .bind::<Nullable<BigInt>, _>(r.grace_until)
                .execute(c)
                .await?;
            for (action, summary) in &w.audits {
                audit(c, &t, &who, action, &t, summary).await?;
            }
            Ok(BillingOutcome::Written(Box::new(w)))
        })
    }

    /// The address billing mail goes to: the tenant's first active owner.
    pub async fn billing_contact(&self, tenant: &TenantId) -> DbResult<Option<String>> {
        scoped!(self, tenant, |c| {
            let rows: Vec<IdRow> = sql_query(
                "SELECT email AS id FROM users WHERE tenant_id = me() AND role = 'owner' AND disabled_at IS NULL ORDER BY created_at LIMIT 1",
            )
            .load(c)
            .await?;
            Ok(rows.into_iter().next().map(|r| r.id))
        })
    }
}

// ---- ingest leadership ----

/// A dedicated connection that holds an ingest leadership: a PostgreSQL session advisory lock,
/// which lives exactly as long as this connection (not pooled: a lost connection is lost
/// leadership, and the server releases the lock at once).
pub struct LeaderConn {
    conn: AsyncPgConnection,
}

impl std::fmt::Debug for LeaderConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderConn").finish_non_exhaustive()
    }
}

impl LeaderConn {
    /// Opens the connection (`application_name` names the holder in `pg_stat_activity`).
    pub async fn connect(url: &str, application_name: &str) -> DbResult<Self> {
        let sep = if url.contains('?') { '&' } else { '?' };
        let name: String = application_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            .take(60)
            .collect();
        let url = format!("{url}{sep}application_name={name}");
        let conn = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            AsyncPgConnection::establish(&url),
        )
        .await
        .map_err(|_| DbError::Unavailable("no answer within 10 s".into()))?
        .map_err(pool_err)?;
        Ok(Self { conn })
    }

    /// Tries to take the lock named `name` without waiting.
    pub async fn try_lock(&mut self, name: &str) -> DbResult<bool> {
        let f: Flag = sql_query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS flag")
            .bind::<Text, _>(name)
            .get_result(&mut self.conn)
            .await?;
        Ok(f.flag)
    }

    /// Whether the connection (and so the lock) is still there, asked within `within`.
    pub async fn alive(&mut self, within: std::time::Duration) -> bool {
        let probe = sql_query("SELECT 1::bigint AS n").get_result::<Count>(&mut self.conn);
        matches!(tokio::time::timeout(within, probe).await, Ok(Ok(_)))
    }
}

// ---- the web: a tenant's handling of incidents, its brand, its single sign-on ----

/// One of a tenant's actions on a shared incident (the newest is its state for the tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct IncidentActionRow {
    /// The shared incident.
    #[diesel(sql_type = Text)]
    pub incident_id: String,
    /// `acknowledge`, `mute`, `resolve` or `reopen`.
    #[diesel(sql_type = Text)]
    pub action: String,
    /// Why, in the actor's words.
    #[diesel(sql_type = Text)]
    pub note: String,
    /// Who (`user:…`, `key:…`, or `kamiyo` when a new step reopened it).
    #[diesel(sql_type = Text)]
    pub actor: String,
    /// When (epoch ms).
    #[diesel(sql_type = BigInt)]
    pub at: i64,
}

/// A tenant's brand (white label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct BrandRow {
    /// Its tenant.
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    /// The name shown and alerts are sent under.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// The logo, a `data:image/png` or `data:image/svg+xml` URL.
    #[diesel(sql_type = Nullable<Text>)]
    pub logo: Option<String>,
    /// Main colour (`#rrggbb`).
    #[diesel(sql_type = Text)]
    pub primary_colour: String,
    /// Accent colour (`#rrggbb`).
    #[diesel(sql_type = Text)]
    pub accent_colour: String,
    /// The custom domain it is served at, lower case.
    #[diesel(sql_type = Nullable<Text>)]
    pub domain: Option<String>,
}

/// A tenant's OpenID Connect settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct SsoRow {
    /// The identity provider's issuer URL (discovery is at
    /// `<issuer>/.well-known/openid-configuration`).
    #[diesel(sql_type = Text)]
    pub issuer: String,
    /// The client id the provider issued.
    #[diesel(sql_type = Text)]
    pub client_id: String,
    /// The client secret (never serialised).
    #[diesel(sql_type = Text)]
    #[serde(skip)]
    pub client_secret: String,
    /// The ID-token claim that carries roles or groups.
    #[diesel(sql_type = Text)]
    pub role_claim: String,
    /// Claim value → role, as a JSON object.
    #[diesel(sql_type = Text)]
    pub role_map: String,
    /// The role of a user no mapping names (`None`: such a user is refused).
    #[diesel(sql_type = Nullable<Text>)]
    pub default_role: Option<String>,
    /// Password sign-in refused.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub enforced: bool,
}

/// A sign-in through the identity provider in flight.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct SsoLogin {
    /// The PKCE code verifier.
    #[diesel(sql_type = Text)]
    pub pkce_verifier: String,
    /// The nonce the ID token must carry.
    #[diesel(sql_type = Text)]
    pub nonce: String,
}

/// A tenant's audit row seen by staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct StaffAuditRow {
    /// Tenant.
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    /// The row.
    #[diesel(embed)]
    #[serde(flatten)]
    pub row: AuditRow,
}

/// Counts staff watch on the system-health page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct StaffHealth {
    /// Tenants by status: active.
    #[diesel(sql_type = BigInt)]
    pub tenants_active: i64,
    /// Suspended tenants.
    #[diesel(sql_type = BigInt)]
    pub tenants_suspended: i64,
    /// Alerts waiting to be sent.
    #[diesel(sql_type = BigInt)]
    pub outbox_pending: i64,
    /// Alerts given up after their retries.
    #[diesel(sql_type = BigInt)]
    pub outbox_failed: i64,
    /// The oldest pending alert's due time (epoch ms), if any.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub oldest_pending_ms: Option<i64>,
    /// The tenant router's position in the shared event stream.
    #[diesel(sql_type = BigInt)]
    pub router_seq: i64,
    /// The correlator's position.
    #[diesel(sql_type = BigInt)]
    pub correlator_seq: i64,
}

impl Db {
    /// The tenant's newest action on each of `incidents` (those it never acted on are absent).
    pub async fn incident_states(
        &self,
        tenant: &TenantId,
        incidents: &[String],
    ) -> DbResult<Vec<IncidentActionRow>> {
        let ids = incidents.to_vec();
        scoped!(self, tenant, |c| {
            Ok(sql_query(
                "SELECT DISTINCT ON (incident_id) incident_id, action, note, actor, at FROM incident_actions \
                 WHERE tenant_id = me() AND incident_id = ANY($1) ORDER BY incident_id, seq DESC",
            )
            .bind::<Array<Text>, _>(&ids)
            .load(c)
            .await?)
        })
    }

    /// Every action of the tenant on one incident, oldest first.
    pub async fn incident_history(
        &self,
        tenant: &TenantId,
        incident: &str,
    ) -> DbResult<Vec<IncidentActionRow>> {
        let id = incident.to_owned();
        scoped!(self, tenant, |c| {
            Ok(sql_query(
                "SELECT incident_id, action, note, actor, at FROM incident_actions \
                 WHERE tenant_id = me() AND incident_id = $1 ORDER BY seq",
            )
            .bind::<Text, _>(&id)
            .load(c)
            .await?)
        })
    }

    /// The tenant's brand, if it set one.
    pub async fn brand(&self, tenant: &TenantId) -> DbResult<Option<BrandRow>> {
        scoped!(self, tenant, |c| {
            let rows: Vec<BrandRow> = sql_query(
                "SELECT tenant_id, name, logo, primary_colour, accent_colour, domain FROM branding WHERE tenant_id = me()",
            )
            .load(c)
            .await?;
            Ok(rows.into_iter().next())
        })
    }

    /// The brand served at a custom domain (through the narrow `platform.brand_for_host`),
    /// before anyone signs in.
    pub async fn brand_for_host(&self, host: &str) -> DbResult<Option<BrandRow>> {
        let h = host.to_ascii_lowercase();
        let rows: Vec<BrandRow> = unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT tenant_id, name, logo, primary_colour, accent_colour, NULL::text AS domain FROM platform.brand_for_host($1)",
            )
            .bind::<Text, _>(&h)
            .load(c)
            .await?)
        })?;
        Ok(rows.into_iter().next())
    }

    /// The tenant's single sign-on settings, if any.
    pub async fn sso(&self, tenant: &TenantId) -> DbResult<Option<SsoRow>> {
        scoped!(self, tenant, |c| {
            let rows: Vec<SsoRow> = sql_query(
                "SELECT issuer, client_id, client_secret, role_claim, role_map::text AS role_map, default_role, enforced \
                 FROM sso_settings WHERE tenant_id = me()",
            )
            .load(c)
            .await?;
            Ok(rows.into_iter().next())
        })
    }

    /// Stores a sign-in through the identity provider in flight (its state as a hash).
    pub async fn sso_begin(
        &self,
        tenant: &TenantId,
        state_hash: &str,
        login: &SsoLogin,
        now: i64,
        expires_at: i64,
    ) -> DbResult<()> {
        let (t, h, l) = (
            tenant.as_str().to_owned(),
            state_hash.to_owned(),
            login.clone(),
        );
        scoped!(self, tenant, |c| {
            // Old attempts go (they expire in minutes).
            sql_query("DELETE FROM sso_logins WHERE tenant_id = me() AND expires_at < $1")
                .bind::<BigInt, _>(now)
                .execute(c)
                .await?;
            sql_query("INSERT INTO sso_logins (tenant_id, state_hash, pkce_verifier, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind::<Text, _>(&t)
                .bind::<Text, _>(&h)
                .bind::<Text, _>(&l.pkce_verifier)
                .bind::<Text, _>(&l.nonce)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(expires_at)
                .execute(c)
                .await?;
            Ok(())
        })
    }

    /// Takes a sign-in in flight by its state: once, before it expires.
    pub async fn sso_take(
        &self,
        tenant: &TenantId,
        state_hash: &str,
        now: i64,
    ) -> DbResult<Option<SsoLogin>> {
        let h = state_hash.to_owned();
        scoped!(self, tenant, |c| {
            let rows: Vec<SsoLogin> = sql_query(
                "UPDATE sso_logins SET used_at = $2 WHERE tenant_id = me() AND state_hash = $1 \
                 AND used_at IS NULL AND expires_at > $2 RETURNING pkce_verifier, nonce",
            )
            .bind::<Text, _>(&h)
            .bind::<BigInt, _>(now)
            .load(c)
            .await?;
            Ok(rows.into_iter().next())
        })
    }

    /// The user an identity provider vouched for: the active user with `email` (its role set
    /// to `role` unless it is an owner), or a new one (no password; the address is verified by
    /// the provider). Audited. Returns the user id and the role it acts with.
    pub async fn sso_user(
        &self,
        tenant: &TenantId,
        email: &str,
        role: &str,
        new_id: &str,
        who: &Actor,
    ) -> DbResult<(String, String)> {
        let (t, e, r, id, who) = (
            tenant.as_str().to_owned(),
            email.to_owned(),
            role.to_owned(),
            new_id.to_owned(),
            who.clone(),
        );
        scoped!(self, tenant, |c| {
            let found: Vec<LoginRow> = sql_query(
                "SELECT user_id, password_hash, role, email_verified_at IS NOT NULL AS verified FROM users \
                 WHERE tenant_id = me() AND email = $1 AND disabled_at IS NULL FOR UPDATE",
            )
            .bind::<Text, _>(&e)
            .load(c)
            .await?;
            if let Some(u) = found.into_iter().next() {
                if u.role == "owner" || u.role == r {
                    return Ok((u.user_id, u.role));
                }
                sql_query("UPDATE users SET role = $2 WHERE tenant_id = me() AND user_id = $1")
                    .bind::<Text, _>(&u.user_id)
                    .bind::<Text, _>(&r)
                    .execute(c)
                    .await?;
                audit(
                    c,
                    &t,
                    &who,
                    "user.role",
                    &u.user_id,
                    &format!("{} → {r} (identity provider)", u.role),
                )
                .await?;
                return Ok((u.user_id, r));
            }
            let disabled: Count =
                sql_query("SELECT count(*) AS n FROM users WHERE tenant_id = me() AND email = $1")
                    .bind::<Text, _>(&e)
                    .get_result(c)
                    .await?;
            if disabled.n > 0 {
                // A disabled user stays disabled: the provider cannot bring it back.
                return Err(DbError::NotFound);
            }
            sql_query("INSERT INTO users (tenant_id, user_id, email, password_hash, role, created_at, email_verified_at) VALUES ($1, $2, $3, '!sso', $4, $5, $5)")
                .bind::<Text, _>(&t)
                .bind::<Text, _>(&id)
                .bind::<Text, _>(&e)
                .bind::<Text, _>(&r)
                .bind::<BigInt, _>(who.at)
                .execute(c)
                .await?;
            audit(
                c,
                &t,
                &who,
                "user.create",
                &id,
                &format!("{e} as {r} (identity provider)"),
            )
            .await?;
            Ok((id, r))
        })
    }

    /// One of the tenant's channels with its secret, as a delivery would claim it, carrying
    /// `payload` (a test message).
    pub async fn channel_with(
        &self,
        tenant: &TenantId,
        channel_id: &str,
        payload: &str,
    ) -> DbResult<Option<Claimed>> {
        let (id, body) = (channel_id.to_owned(), payload.to_owned());
        scoped!(self, tenant, |c| {
            let rows: Vec<Claimed> = sql_query(
                "SELECT 'test:' || channel_id AS outbox_id, 'pending' AS status, $2 AS payload, 1 AS attempts, kind, url, secret, name, \
                 0::bigint AS created_at FROM alert_channels WHERE tenant_id = me() AND channel_id = $1",
            )
            .bind::<Text, _>(&id)
            .bind::<Text, _>(&body)
            .load(c)
            .await?;
            Ok(rows.into_iter().next())
        })
    }

    /// An audit row for something done outside the tenant's tables (a test message sent).
    pub async fn note(
        &self,
        tenant: &TenantId,
        who: &Actor,
        action: &str,
        target: &str,
        summary: &str,
    ) -> DbResult<()> {
        let (t, who, a, tg, sm) = (
            tenant.as_str().to_owned(),
            who.clone(),
            action.to_owned(),
            target.to_owned(),
            summary.to_owned(),
        );
        scoped!(self, tenant, |c| { audit(c, &t, &who, &a, &tg, &sm).await })
    }

    /// Protocol subscriptions of active tenants by plan (through the narrow
    /// `platform.subscriptions_by_plan`: counts only).
    pub async fn subscriptions_by_plan(&self) -> DbResult<Vec<(String, i64)>> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            plan: String,
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let rows: Vec<Row> = unscoped!(self, |c| {
            Ok(
                sql_query("SELECT plan, n FROM platform.subscriptions_by_plan()")
                    .load(c)
                    .await?,
            )
        })?;
        Ok(rows.into_iter().map(|r| (r.plan, r.n)).collect())
    }

    /// This pool's connections: (open, idle).
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    /// The newest audit rows of every tenant (staff).
    pub async fn staff_audit(&self, limit: i64) -> DbResult<Vec<StaffAuditRow>> {
        unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT tenant_id, seq, at, actor, action, target, summary, ip FROM audit_log ORDER BY at DESC, seq DESC LIMIT $1",
            )
            .bind::<BigInt, _>(limit)
            .load(c)
            .await?)
        })
    }

    /// What the system-health page shows (staff).
    pub async fn staff_health(&self) -> DbResult<StaffHealth> {
        unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT \
                 (SELECT count(*) FROM tenants WHERE status = 'active') AS tenants_active, \
                 (SELECT count(*) FROM tenants WHERE status = 'suspended') AS tenants_suspended, \
                 (SELECT count(*) FROM tenant_outbox WHERE status = 'pending') AS outbox_pending, \
                 (SELECT count(*) FROM tenant_outbox WHERE status = 'failed') AS outbox_failed, \
                 (SELECT min(next_attempt_ms) FROM tenant_outbox WHERE status = 'pending') AS oldest_pending_ms, \
                 COALESCE((SELECT seq FROM fanout_state WHERE name = $1), 0) AS router_seq, \
                 COALESCE((SELECT seq FROM fanout_state WHERE name = $2), 0) AS correlator_seq",
            )
            .bind::<Text, _>(crate::fanout::ROUTER)
            .bind::<Text, _>(crate::fanout::CORRELATOR)
            .get_result(c)
            .await?)
        })
    }

    // ---- availability: heartbeats, probes, SLA ----

    /// Records `instance`'s heartbeat for `component` at `now` with what it reports.
    pub async fn heartbeat(
        &self,
        component: &str,
        instance: &str,
        now: i64,
        detail: &serde_json::Value,
    ) -> DbResult<()> {
        let (component, instance, detail) = (
            component.to_owned(),
            instance.to_owned(),
            detail.to_string(),
        );
        unscoped!(self, |c| {
            sql_query(
                "INSERT INTO heartbeats (component, instance, at, started_at, detail) VALUES ($1, $2, $3, $3, $4::jsonb) \
                 ON CONFLICT (component, instance) DO UPDATE SET at = GREATEST(heartbeats.at, EXCLUDED.at), detail = EXCLUDED.detail",
            )
            .bind::<Text, _>(&component)
            .bind::<Text, _>(&instance)
            .bind::<BigInt, _>(now)
            .bind::<Text, _>(&detail)
            .execute(c)
            .await?;
            Ok(())
        })
    }

    /// Removes `instance`'s heartbeat for `component` (it stopped cleanly).
    pub async fn forget_heartbeat(&self, component: &str, instance: &str) -> DbResult<()> {
        let (component, instance) = (component.to_owned(), instance.to_owned());
        unscoped!(self, |c| {
            sql_query("DELETE FROM heartbeats WHERE component = $1 AND instance = $2")
                .bind::<Text, _>(&component)
                .bind::<Text, _>(&instance)
                .execute(c)
                .await?;
            Ok(())
        })
    }

    /// Heartbeats at or after `since` (epoch ms), by component then newest first.
    pub async fn heartbeats(&self, since: i64) -> DbResult<Vec<HeartbeatRow>> {
        unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT component, instance, at, started_at, detail::text AS detail FROM heartbeats \
                 WHERE at >= $1 ORDER BY component, at DESC, instance",
            )
            .bind::<BigInt, _>(since)
            .load(c)
            .await?)
        })
    }

    /// Records a probe of `component` for its minute unless one is there (another replica
    /// probed that minute first), with its day's counts; whether it was recorded.
    pub async fn record_probe(&self, p: &ProbeRow) -> DbResult<bool> {
        let p = p.clone();
        unscoped!(self, |c| {
            let n = sql_query(
                "INSERT INTO probes (component, minute, state, latency_ms, detail) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (component, minute) DO NOTHING",
            )
            .bind::<Text, _>(&p.component)
            .bind::<BigInt, _>(p.minute)
            .bind::<Text, _>(&p.state)
            .bind::<Nullable<diesel::sql_types::Integer>, _>(p.latency_ms)
            .bind::<Text, _>(&p.detail)
            .execute(c)
            .await?;
            if n == 0 {
                return Ok(false);
            }
            sql_query(
                "INSERT INTO probe_days (component, day, probed, down, degraded) \
                 VALUES ($1, $2 - ($2 % 86400000), 1, ($3 = 'down')::int, ($3 = 'degraded')::int) \
                 ON CONFLICT (component, day) DO UPDATE SET probed = probe_days.probed + 1, \
                 down = probe_days.down + EXCLUDED.down, degraded = probe_days.degraded + EXCLUDED.degraded",
            )
            .bind::<Text, _>(&p.component)
            .bind::<BigInt, _>(p.minute)
            .bind::<Text, _>(&p.state)
            .execute(c)
            .await?;
            Ok(true)
        })
    }

    /// Each component's latest probe.
    pub async fn latest_probes(&self) -> DbResult<Vec<ProbeRow>> {
        unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT DISTINCT ON (component) component, minute, state, latency_ms, detail FROM probes \
                 ORDER BY component, minute DESC",
            )
            .load(c)
            .await?)
        })
    }

    /// Each component's probe counts per UTC day from `from_day` (epoch ms) up to `to_day`
    /// (excluded), oldest first.
    pub async fn probe_days(
        &self,
        from_day: i64,
        to_day: i64,
    ) -> DbResult<Vec<(String, ProbeDay)>> {
        let rows: Vec<ComponentDay> = unscoped!(self, |c| {
            Ok(sql_query(
                "SELECT component, day, probed, down, degraded FROM probe_days \
                 WHERE day >= $1 AND day < $2 ORDER BY component, day",
            )
            .bind::<BigInt, _>(from_day)
            .bind::<BigInt, _>(to_day)
            .load(c)
            .await?)
        })?;
        Ok(rows.into_iter().map(|r| (r.component, r.counts)).collect())
    }

    /// Forgets probes of minutes before `before` (epoch ms), day counts of days before it, and
    /// heartbeats older than `beats_before`.
    pub async fn prune_availability(&self, before: i64, beats_before: i64) -> DbResult<()> {
        unscoped!(self, |c| {
            sql_query("DELETE FROM probes WHERE minute < $1")
                .bind::<BigInt, _>(before)
                .execute(c)
                .await?;
            sql_query("DELETE FROM probe_days WHERE day < $1 - ($1 % 86400000)")
                .bind::<BigInt, _>(before)
                .execute(c)
                .await?;
            sql_query("DELETE FROM heartbeats WHERE at < $1")
                .bind::<BigInt, _>(beats_before)
                .execute(c)
                .await?;
            Ok(())
        })
    }

    /// The alert backlog at `now` (through the narrow `platform.delivery_backlog`).
    pub async fn delivery_backlog(&self, now: i64) -> DbResult<Backlog> {
        unscoped!(self, |c| {
            Ok(
                sql_query("SELECT due, oldest_due_ms FROM platform.delivery_backlog($1)")
                    .bind::<BigInt, _>(now)
                    .get_result(c)
                    .await?,
            )
        })
    }

    /// How long `tenant`'s alerts delivered in `[from, to)` (epoch ms) waited from enqueue to
    /// delivery, and how many of its alerts were given up in that period.
    pub async fn delivery_latency(
        &self,
        tenant: &TenantId,
        from: i64,
        to: i64,
    ) -> DbResult<DeliveryLatency> {
        scoped!(self, tenant, |c| {
            Ok(sql_query(
                "SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered, \
                 count(*) FILTER (WHERE status = 'failed') AS failed, \
                 (percentile_disc(0.5) WITHIN GROUP (ORDER BY delivered_at - created_at) FILTER (WHERE status = 'delivered'))::bigint AS p50_ms, \
                 (percentile_disc(0.99) WITHIN GROUP (ORDER BY delivered_at - created_at) FILTER (WHERE status = 'delivered'))::bigint AS p99_ms, \
                 max(delivered_at - created_at) FILTER (WHERE status = 'delivered') AS max_ms \
                 FROM tenant_outbox WHERE tenant_id = me() AND outbox_id NOT LIKE 'digest:%' \
                 AND ((status = 'delivered' AND delivered_at >= $1 AND delivered_at < $2) \
                   OR (status = 'failed' AND next_attempt_ms >= $1 AND next_attempt_ms < $2))",
            )
            .bind::<BigInt, _>(from)
            .bind::<BigInt, _>(to)
            .get_result(c)
            .await?)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests fail loudly on broken setup"
    )]

    use super::*;

    /// Two transactions that each hold a row the other wants: PostgreSQL rolls one back, and
    /// the loser's error is a `Contention` (503, retry), not an internal error (500) —
    /// checked against the real server's message.
    #[tokio::test]
    async fn the_loser_of_a_real_deadlock_is_told_to_retry() {
        let tdb = kamiyo_testing::TestDatabase::new().await;
        let db = Db::connect(&tdb.url, 2).await.unwrap();
        let mut setup = db.pool.get().await.unwrap();
        setup
            .batch_execute(
                "CREATE TABLE deadlock_probe (id INT PRIMARY KEY, n INT NOT NULL);
                 INSERT INTO deadlock_probe VALUES (1, 0), (2, 0);",
            )
            .await
            .unwrap();
        drop(setup);
        // Each side locks its first row, waits until the other has too, then wants the
        // other's.
        let both_hold = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let side = |first: i32, second: i32| {
            let (db, both_hold) = (db.clone(), both_hold.clone());
            async move {
                let mut c = db.pool.get().await.map_err(pool_err)?;
                c.transaction::<_, DbError, _>(async |c| {
                    let bump = "UPDATE deadlock_probe SET n = n + 1 WHERE id = $1";
                    sql_query(bump)
                        .bind::<diesel::sql_types::Integer, _>(first)
                        .execute(c)
                        .await?;
                    both_hold.wait().await;
                    sql_query(bump)
                        .bind::<diesel::sql_types::Integer, _>(second)
                        .execute(c)
                        .await?;
                    Ok(())
                })
                .await
            }
        };
        let (a, b) = tokio::join!(side(1, 2), side(2, 1));
        let mut outcomes = [a, b];
        outcomes.sort_by_key(Result::is_err);
        assert_eq!(outcomes[0], Ok(()), "{outcomes:?}");
        assert!(
            matches!(&outcomes[1], Err(DbError::Contention(m)) if m.starts_with("deadlock detected")),
            "{outcomes:?}"
        );
        let web: crate::web::WebError = outcomes[1].clone().unwrap_err().into();
        assert_eq!(
            actix_web::ResponseError::status_code(&web),
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn a_serialization_failure_is_contention_and_other_errors_are_not() {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        let err = |kind, msg: &str| DbError::from(E::DatabaseError(kind, Box::new(msg.to_owned())));
        assert!(matches!(
            err(
                K::SerializationFailure,
                "could not serialize access due to concurrent update"
            ),
            DbError::Contention(_)
        ));
        assert!(matches!(
            err(K::Unknown, "division by zero"),
            DbError::Other(_)
        ));
    }
}
