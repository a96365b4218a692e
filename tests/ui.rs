//! Compile-time diagnostics of `#[pymw::task]` and `#[pymw::main]`.
//!
//! Each `tests/ui/reject_*.rs` must fail to compile with exactly the message in
//! the `.stderr` file next to it; each `tests/ui/pass_*.rs` must compile and run.
//!
//! After an intended change to a message (or a compiler upgrade that rewords
//! rustc's part), regenerate the expected output with
//!
//! ```text
//! TRYBUILD=overwrite cargo test --test ui
//! ```
//!
//! and review the diff of `tests/ui/*.stderr` before committing: every message
//! must still be the intended, actionable one, pointing at the offending token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/reject_*.rs");
    t.pass("tests/ui/pass_*.rs");
}
