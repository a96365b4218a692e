#!/usr/bin/env bash
# Every test of pymw, as CI runs it (.ci/run calls exactly this script):
# format and lints, the workspace tests, every example, a bounded fuzz run of
# every decoder, the HTCondor end-to-end suite on a real pool that
# testbeds/condor brings up, and the BOINC suite and examples on a live
# project that testbeds/boinc brings up. Needs root for the testbeds.
#
# Environment: FUZZ_SECONDS (per fuzz target, default 20),
# PYMW_TESTBED_DIR (where testbeds are cached, default /var/cache/pymw-testbed).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

step "every feature combination of the facade builds and passes clippy"
scripts/check-features.sh

step "workspace tests (unit, doc, UI, property, local conformance)"
cargo test --workspace

step "the run report, rendered in headless Chromium"
scripts/install-chromium.sh
cargo test -p pymw-cli --test cli -- --ignored report_renders_in_headless_chromium

step "a run killed and resumed"
scripts/resume-check.sh
# The run store's disk-full and read-only cases mount a tmpfs (root).
cargo test -p pymw-conformance --test crash -- --include-ignored disk_full read_only
cargo test -p pymw-store --test store -- --ignored full_disk_is_reported

step "examples on the local backend"
for example in monte_pi prime_finder null_test string_counter genetic_algorithm; do
    echo "--- $example"
    cargo run -q -p pymw-examples --bin "$example" -- --no-progress
done

step "a new user's crate outside the workspace"
scripts/new-user-check.sh

step "fuzz every decoder (${FUZZ_SECONDS:-20} s each)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" fuzz/run.sh

step "HTCondor testbed"
testbeds/condor/up.sh
eval "$(testbeds/condor/up.sh --print-env)"
testbeds/condor/check.sh

step "HTCondor end-to-end suite on the real pool"
cargo test -p pymw-conformance --features condor --test condor

step "examples on HTCondor"
# Examples that write files for their tasks put them where the pool sees them.
export TMPDIR="$PYMW_CONDOR_SHARED_DIR/tmp"
mkdir -p "$TMPDIR" && chmod 1777 "$TMPDIR"
for example in monte_pi prime_finder null_test string_counter genetic_algorithm; do
    echo "--- $example --backend condor"
    cargo run -q -p pymw-examples --bin "$example" -- --backend condor --no-progress
done

# BOINC: a real project (testbeds/boinc), in project-host mode. Each step
# says how long it took.
timed() {
    local t0=$SECONDS
    "$@"
    printf '(%s: %d s)\n' "$*" $((SECONDS - t0))
}

step "BOINC testbed"
timed testbeds/boinc/up.sh
eval "$(testbeds/boinc/up.sh --print-env)"
timed testbeds/boinc/check.sh

# BOINC's own cases, and the generic ones that show a task behaving as a
# normal program. The whole generic suite is about 350 jobs, which the
# testbed's one client takes 10 minutes or more to drain: it runs by hand
# (`cargo test -p pymw-conformance --features boinc --test boinc`).
step "BOINC end-to-end cases on the live project (project-host mode)"
timed cargo test -p pymw-conformance --features boinc --test boinc -- \
    boinc_ submit_and_wait task_error_is_typed stdin_is_at_end_of_file stack_overflow_is_reported

step "BOINC remote submission on the live project"
timed timeout 1200 cargo test -p pymw-conformance --features boinc --test boinc_remote

step "examples on BOINC"
timed timeout 1800 scripts/boinc-examples.sh

printf '\nall tests passed in %d s\n' $((SECONDS - started))
