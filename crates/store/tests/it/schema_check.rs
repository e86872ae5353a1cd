//! `schema.rs` equals what the migrations create, on both backends.

use std::path::PathBuf;

/// The `table!` blocks of schema.rs, without comments and the `allow_tables…` tail.
fn schema_file_tables() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/schema.rs");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("diesel::table!").unwrap();
    let end = text
        .find("diesel::allow_tables_to_appear_in_same_query!")
        .unwrap();
    text[start..end].to_owned()
}

async fn check(store: &kamiyo_store::Store) {
    let live = store.describe_schema().await.unwrap();
    assert_eq!(
        live,
        schema_file_tables(),
        "src/schema.rs does not match the migrations on {:?}",
        store.backend()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_matches_migrations_on_sqlite() {
    check(&crate::sqlite().await.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_matches_migrations_on_postgres() {
    check(&crate::postgres().await.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_api_queries_are_served_by_indexes_on_postgres() {
    let f = crate::postgres().await;
    let plans = f.store.explain_main_queries(true).await.unwrap();
    assert_eq!(plans.len(), kamiyo_store::introspect::MAIN_QUERIES.len());
    for (name, plan) in plans {
        assert!(
            plan.contains("Index"),
            "{name} is not served by an index:\n{plan}"
        );
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fresh/data");
    let _s = kamiyo_store::Store::open("", &dir, 2).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&kamiyo_store::sqlite_path(&dir)), 0o600);
    assert!(!kamiyo_store::world_accessible(&dir));
    // An existing directory (say the working directory, `data_dir = "."`) keeps its mode: the
    // store never changes the permissions of a directory it did not create.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _s2 = kamiyo_store::Store::open("", &shared, 2).await.unwrap();
    assert_eq!(mode(&shared), 0o755);
    assert!(
        kamiyo_store::world_accessible(&shared),
        "reported, for a warning"
    );
    assert_eq!(mode(&kamiyo_store::sqlite_path(&shared)), 0o600);
}

/// An unreachable or malformed `DATABASE_URL` is reported with where and why — never with the
/// password — instead of a pool timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_malformed_postgres_urls_say_why_without_the_password() {
    let refused = kamiyo_store::Store::open_postgres("postgres://kamiyo:s3cret@127.0.0.1:1/x", 2)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("127.0.0.1:1") && !refused.contains("s3cret"),
        "{refused}"
    );
    assert!(refused.to_lowercase().contains("refused"), "{refused}");
    let malformed =
        kamiyo_store::Store::open_postgres("postgres://kamiyo:s3cret@/x?port=notaport", 2)
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
    assert!(
        malformed.contains("cannot connect to PostgreSQL") && !malformed.contains("s3cret"),
        "{malformed}"
    );
}
