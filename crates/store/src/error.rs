//! Errors of the store. Policy: every failure becomes a [`StoreError`] from core-models
//! (`Backend` with the database's message for logs, `Corrupt` for a row that does not convert,
//! `Invalid` for a bad request); nothing here logs; callers log once where they handle it.

use kamiyo_core_models::StoreError;

/// Maps a query error.
pub fn q(e: diesel::result::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps a pool error.
pub fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("database connection unavailable: {e}"))
}
