//! What the harness's integration tests share: where the binaries under
//! test are. (Each file under `tests/` is its own crate and uses only part
//! of this, hence the `dead_code` allowance.)
#![allow(dead_code)]

use std::path::PathBuf;

/// The `chaos` binary cargo built for these tests.
pub fn chaos() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos"))
}

/// The workspace's hserver binary, built next to `chaos`.
pub fn hserver() -> PathBuf {
    let path = chaos().with_file_name("hserver");
    assert!(path.is_file(), "{} missing: build it with `cargo build -p hserver`", path.display());
    path
}
