//! Shared helpers for the fixture tests: where the recorded HTCondor outputs are.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

/// The `condor` fixtures folder: `$PYMW_FIXTURES_DIR/condor` when the variable
/// is set (it points at the shared `fixtures` folder), else the checkout's
/// `shared/fixtures/condor`. Panics, failing the test, when it is missing:
/// these tests must never pass by skipping.
pub fn fixtures_dir() -> PathBuf {
    let dir = match std::env::var_os("PYMW_FIXTURES_DIR") {
        Some(fixtures) => PathBuf::from(fixtures).join("condor"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/condor"
        )),
    };
    assert!(
        dir.is_dir(),
        "HTCondor fixtures not found: looked for the folder {} (set PYMW_FIXTURES_DIR to the \
         shared `fixtures` folder that holds `condor/`)",
        dir.display()
    );
    dir
}

/// A fixture file's path, failing the test when it does not exist.
pub fn fixture(relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    assert!(path.is_file(), "fixture file missing: {}", path.display());
    path
}

/// A fixture file's bytes.
pub fn read(relative: &str) -> Vec<u8> {
    let path = fixture(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A fixture file's text.
pub fn read_text(relative: &str) -> String {
    String::from_utf8(read(relative)).unwrap_or_else(|e| panic!("{relative}: not UTF-8: {e}"))
}

/// Names of the entries of a fixture folder, sorted.
pub fn list(relative: &str) -> Vec<String> {
    let dir = fixtures_dir().join(relative);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// `path` relative to the fixtures folder, for messages.
pub fn short(path: &Path) -> String {
    path.strip_prefix(fixtures_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}
