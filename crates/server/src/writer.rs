//! The fill resume points of the live source, read from the cursors the pipeline's writer
//! commits (the writer itself is `kamiyo_pipeline::Writer`).

use std::collections::BTreeMap;

use kamiyo_core_models::{Address, StoreResult, Timestamp};
use kamiyo_pipeline::FILL_CURSOR_PREFIX;
use kamiyo_store::Store;

/// The per-user fill resume points stored by a previous run.
pub async fn fill_resume_points(store: &Store) -> StoreResult<BTreeMap<Address, Timestamp>> {
    let mut out = BTreeMap::new();
    for (source, position) in store.cursors_with_prefix(FILL_CURSOR_PREFIX).await? {
        let user = source
            .trim_start_matches(FILL_CURSOR_PREFIX)
            .parse::<Address>();
        let time = position.parse::<i64>();
        match (user, time) {
            (Ok(u), Ok(t)) => {
                out.insert(u, Timestamp(t));
            }
            _ => tracing::warn!(
                cursor = source,
                position,
                "ignoring an unreadable fill cursor"
            ),
        }
    }
    Ok(out)
}
