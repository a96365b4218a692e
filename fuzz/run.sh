#!/usr/bin/env bash
# Builds pymw's fuzz targets with libFuzzer coverage instrumentation on the
# STABLE toolchain, seeds the corpora, and runs each target for a bounded time.
# Exits non-zero if any target finds a crash (panic, abort, timeout, OOM).
#
#   fuzz/run.sh                      # every target, 30 s each
#   FUZZ_SECONDS=300 fuzz/run.sh     # longer
#   fuzz/run.sh fuzz_frames          # one target
#
# Extra libFuzzer flags can be given in FUZZ_FLAGS, e.g. FUZZ_FLAGS=-jobs=2.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(fuzz_decode_input fuzz_decode_output fuzz_frames)
fi
seconds="${FUZZ_SECONDS:-30}"

# What `cargo fuzz` passes on nightly, minus the sanitizer: `-Cpasses` and
# `-Cllvm-args` are stable. 8-bit counters + PC table give libFuzzer its
# coverage feedback; trace-compares lets it solve magic bytes and lengths.
# Debug assertions and overflow checks turn silent arithmetic bugs into crashes.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks ${RUSTFLAGS_EXTRA:-}"

# An explicit --target keeps RUSTFLAGS off build scripts and proc macros,
# which would otherwise need libFuzzer's callbacks to link.
host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$here/target"
echo "==> building fuzz targets (release, instrumented, $host)"
build_start=$SECONDS
cargo build --release --target "$host" --bins
echo "==> built in $((SECONDS - build_start)) s"
bin="$CARGO_TARGET_DIR/$host/release"

echo "==> seeding corpus/"
"$bin/seed" corpus

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target/last-run.log"
    echo "==> $target for ${seconds} s (log: fuzz/$log)"
    set +e
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    "$bin/$target" "corpus/$target" \
        -max_total_time="$seconds" \
        -artifact_prefix="artifacts/$target/" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -print_final_stats=1 \
        ${FUZZ_FLAGS:-} >"$log" 2>&1
    code=$?
    set -e
    # libFuzzer's last status line (cov/ft/corp/exec/s) and the totals.
    grep -E '^#[0-9]+' "$log" | tail -n 1 || true
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    echo "    executions: ${runs:-?} (${rate:-?}/s)"
    grep -m1 'INFO: Loaded [0-9]* modules' "$log" | cut -c1-70 | sed 's/^/    /' || true
    if ! grep -q 'INFO: Loaded [1-9][0-9]* modules' "$log" ||
        grep -q 'no interesting inputs were found' "$log"; then
        echo "!!! $target: libFuzzer sees no coverage; the instrumentation flags are not taking effect" >&2
        status=1
    fi
    if [ "$code" -ne 0 ]; then
        echo "!!! $target FAILED (exit $code): see fuzz/$log" >&2
        grep -E '^(==[0-9]+== ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" >&2 || true
        echo "    reproduce: $bin/$target <artifact file>" >&2
        status=1
    fi
done

if [ "$status" -ne 0 ]; then
    echo "==> FUZZING FOUND PROBLEMS" >&2
else
    echo "==> no crashes"
fi
exit "$status"
