//! Helpers shared by the fixture tests: where the recorded BOINC files are,
//! and a std-only temporary directory.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The `fixtures/boinc` directory: `$PYMW_FIXTURES_DIR/boinc` if that is
/// set, else `shared/fixtures/boinc` next to the repository. Panics (failing
/// the test) with the path if it is missing.
pub fn fixtures_dir() -> PathBuf {
    let dir = match std::env::var_os("PYMW_FIXTURES_DIR") {
        Some(d) => PathBuf::from(d).join("boinc"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/boinc"
        )),
    };
    assert!(
        dir.is_dir(),
        "BOINC fixture directory missing: {} (set PYMW_FIXTURES_DIR to the `fixtures` directory)",
        dir.display()
    );
    dir
}

/// Path of a fixture file, which must exist.
pub fn fixture(rel: &str) -> PathBuf {
    let p = fixtures_dir().join(rel);
    assert!(p.exists(), "fixture missing: {}", p.display());
    p
}

/// Bytes of a fixture file.
pub fn bytes(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Text of a fixture file.
pub fn text(rel: &str) -> String {
    String::from_utf8(bytes(rel)).unwrap_or_else(|e| panic!("{rel}: not UTF-8: {e}"))
}

/// The lines `argv[i]=...` of a logged call, `argv[0]` excluded.
pub fn argv_after_0(block: &str) -> Vec<String> {
    let mut args: Vec<(usize, String)> = block
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("argv[")?;
            let (i, v) = rest.split_once("]=")?;
            Some((i.parse().ok()?, v.to_owned()))
        })
        .collect();
    args.sort_by_key(|(i, _)| *i);
    args.into_iter()
        .filter(|(i, _)| *i > 0)
        .map(|(_, v)| v)
        .collect()
}

/// The calls (blocks starting with `=== `) of a `*_calls.log` whose header
/// contains `kind`.
pub fn logged_calls(log: &str, kind: &str) -> Vec<String> {
    log.split("=== ")
        .filter(|b| b.lines().next().is_some_and(|h| h.contains(kind)))
        .map(str::to_owned)
        .collect()
}

/// A temporary directory removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("pymw-boinc-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Copies every file of `src` (not recursive) into `dst`.
pub fn copy_files(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }
}

/// Runs the cases of a test binary without the libtest harness (such a
/// binary can also be started in a pymw role): each case whose name
/// contains one of the command-line filters (all when none), one after the
/// other; exits 101 if any failed.
pub fn run_cases(cases: &[(&str, fn())]) {
    use std::io::Write as _;
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        let started = std::time::Instant::now();
        match std::panic::catch_unwind(case) {
            Ok(()) => {
                passed += 1;
                println!("ok ({:.1} s)", started.elapsed().as_secs_f64());
            }
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed{}",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join(", "))
        }
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
