//! The store test suite, run against both backends: embedded SQLite (a temporary file) and
//! PostgreSQL (a fresh database per test on the server of `KAMIYO_TEST_PG_URL`; the tests fail,
//! never skip, when it is unreachable).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a test failure"
)]

mod schema_check;
mod suite;

use kamiyo_store::Store;
use kamiyo_testing::TestDatabase;

/// A migrated store and what keeps it alive.
pub(crate) struct Fixture {
    pub(crate) store: Store,
    _tmp: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

pub(crate) async fn sqlite() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open("", &tmp.path().join("data"), 4).await.unwrap();
    Fixture {
        store,
        _tmp: Some(tmp),
        _db: None,
    }
}

pub(crate) async fn postgres() -> Fixture {
    let db = TestDatabase::new().await;
    let store = Store::open(&db.url, std::path::Path::new("unused"), 4)
        .await
        .unwrap();
    Fixture {
        store,
        _tmp: None,
        _db: Some(db),
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let f = crate::sqlite().await;
                    crate::suite::$name(&f.store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let f = crate::postgres().await;
                    crate::suite::$name(&f.store).await;
                }
            )*
        }
    };
}

both!(
    migrations_are_idempotent,
    events_get_dense_sequence_numbers_and_duplicates_are_ignored,
    event_filters_and_cursor_pagination,
    incidents_are_upserted_with_their_latest_state,
    market_history_dedups_and_cursors_commit_with_the_batch,
    outbox_lifecycle_and_delivery_log,
    api_keys_and_audit_log,
    operator_actions_silences_and_the_resolved_guard,
    retention_deletes_old_rows_only,
    concurrent_commits_keep_sequence_numbers_unique,
    the_event_log_chains_every_event_and_outlives_retention,
    market_facts_are_kept_apart_by_protocol,
    the_market_protocol_migration_keeps_existing_rows,
    a_superseded_writer_is_refused_and_writes_nothing,
    the_exploit_database_is_replaced_whole_and_queried,
);
