//! Errors of the domain vocabulary.
//!
//! Policy (shared by every kamiyo library crate): each crate exposes one documented
//! `thiserror` enum named after it plus a `Result` alias; errors carry the offending input
//! (truncated) so the message names what was wrong; errors never log themselves — whoever
//! handles an error logs it once.

/// A value failed validation at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A coin name was empty, too long or contained whitespace/control characters.
    #[error("invalid coin name {0:?}: expected a non-empty name of at most 64 visible characters")]
    InvalidCoin(String),
    /// An address was not `0x` followed by 40 hex digits.
    #[error("invalid address {0:?}: expected 0x followed by 40 hex digits")]
    InvalidAddress(String),
    /// An incident key was empty, too long or contained control characters.
    #[error("invalid incident key {0:?}")]
    InvalidIncidentKey(String),
    /// An id contained characters other than ASCII letters, digits, `_` and `-`.
    #[error("invalid id {0:?}: expected at most 64 characters of [A-Za-z0-9_-]")]
    InvalidId(String),
    /// A name that should be one of a fixed set was not.
    #[error("unknown {kind} {value:?}; expected one of: {expected}")]
    UnknownName {
        /// What kind of name (severity, threat type …).
        kind: &'static str,
        /// The value received.
        value: String,
        /// The accepted values, comma separated.
        expected: &'static str,
    },
    /// A name (protocol id, custom threat type) broke its spelling rule.
    #[error("invalid {kind} {value:?}: {rule}")]
    InvalidName {
        /// What kind of name.
        kind: &'static str,
        /// The value received (truncated).
        value: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// A number was outside its allowed range.
    #[error("{what} out of range: {value}")]
    OutOfRange {
        /// The quantity.
        what: &'static str,
        /// The value received.
        value: String,
    },
}

/// Result alias for validation.
pub type ModelResult<T> = Result<T, ModelError>;
