#!/usr/bin/env bash
# Tries pymw as a new user would: a fresh crate outside the workspace that
# depends on pymw by path, annotates its own functions, and runs them on the
# local backend, by hand through the worker role, and with a task that fails.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cat >"$dir/Cargo.toml" <<TOML
[package]
name = "newcomer"
version = "0.1.0"
edition = "2024"

[dependencies]
pymw = { path = "$repo" }
serde = { version = "1", features = ["derive"] }
clap = { version = "4", features = ["derive"] }

[workspace]
TOML
cat >"$dir/src/main.rs" <<'RUST'
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: f64,
    y: f64,
}

#[pymw::task]
fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

#[pymw::task(name = "newcomer::parse")]
fn parse_number(text: String) -> Result<i64, std::num::ParseIntError> {
    text.trim().parse()
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    pymw: pymw::Args,
}

#[pymw::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let master = cli.pymw.start_blocking()?;
    let norms: Vec<f64> = master
        .map(norm::task(), (0..1000).map(|i| Point { x: 3.0 * i as f64, y: 4.0 * i as f64 }))
        .collect_values()?;
    assert_eq!(norms[10], 50.0);
    assert_eq!(master.submit(parse_number::task(), " 42 ".into()).wait()?, 42);
    let error = master.submit(parse_number::task(), "forty-two".into()).wait().unwrap_err();
    assert!(error.to_string().contains("invalid digit"), "{error}");
    println!("newcomer: OK, {} norms, status {:?}", norms.len(), master.status());
    Ok(())
}
RUST
cd "$dir"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}/newcomer" cargo run -q -- --no-progress
bin="${CARGO_TARGET_DIR:-$repo/target}/newcomer/debug/newcomer"
"$bin" __pymw list | grep -q $'\tnewcomer::parse$'
"$bin" __pymw list | grep -q $'\tnewcomer::norm$'
set +e
"$bin" __pymw worker --task newcomer::nope --input /nonexistent --output "$dir/out" 2>"$dir/err"
code=$?
set -e
[ "$code" -eq 3 ] || { echo "unknown task: exit $code, expected 3"; cat "$dir/err"; exit 1; }
grep -q "no task named \`newcomer::nope\`" "$dir/err"

# Two tasks under one name: the binary says which, at start, in either role.
cat >>"$dir/src/main.rs" <<'RUST'

#[cfg(feature = "dupes")]
mod twin {
    #[pymw::task(name = "newcomer::parse")]
    fn parse_again(text: String) -> usize {
        text.len()
    }
}
RUST
printf '\n[features]\ndupes = []\n' >>"$dir/Cargo.toml"
set +e
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}/newcomer" cargo run -q --features dupes -- --no-progress 2>"$dir/err"
code=$?
set -e
[ "$code" -eq 2 ] || { echo "duplicate names: exit $code, expected 2"; cat "$dir/err"; exit 1; }
grep -q "two tasks are registered as \`newcomer::parse\`: \`newcomer::parse_number\` and \`newcomer::twin::parse_again\`" "$dir/err" \
    || { echo "duplicate names: unexpected message"; cat "$dir/err"; exit 1; }
echo "new-user check passed"
