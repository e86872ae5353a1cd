//! kamiyo-ml against scikit-learn and statsmodels on committed real data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests stop at the first broken expectation"
)]

mod features;
mod validation;
