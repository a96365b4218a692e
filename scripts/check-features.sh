#!/usr/bin/env bash
# The pymw facade with default features off, alone and with each feature on
# its own (local, condor, boinc, store): each must build, pass clippy with
# warnings denied, and pass its own unit tests. A user who depends on
# `pymw = { default-features = false, features = ["condor"] }` gets one of
# these builds.
#
# The list is explicit rather than `cargo hack --feature-powerset`, so the
# script needs nothing beyond cargo; with cargo-hack installed,
# `cargo hack clippy -p pymw --each-feature --no-dev-deps` checks the same.
set -euo pipefail
cd "$(dirname "$0")/.."

for features in "" local condor boinc store; do
    printf '\n==> pymw, default features off, features: %s\n' "${features:-(none)}"
    flags=(-p pymw --no-default-features)
    if [[ -n $features ]]; then
        flags+=(--features "$features")
    fi
    cargo clippy "${flags[@]}" --lib --tests -- -D warnings
    cargo test "${flags[@]}" --lib --quiet
done
