//! Helpers shared by the binary's tests.

use std::path::{Path, PathBuf};
use std::process::Child;

/// The repository root (the binary finds `scenarios/` and `testdata/` from there).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Waits for a child and fails the test with its stderr unless it exited successfully.
pub(crate) fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kamiyo-hyperliquid failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
