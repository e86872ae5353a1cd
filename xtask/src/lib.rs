//! Maintainer automation for kamiyo, as a library so that every task is also testable.

pub mod export;
pub mod frozen;
pub mod release;
pub mod testcmd;
pub mod tidy;
pub mod workspace;
