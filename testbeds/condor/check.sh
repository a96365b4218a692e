#!/usr/bin/env bash
# Smoke test of a running testbed (run after up.sh), driving the pool the way a
# master on the host does: through the ${CACHE}/bin wrappers, from a directory
# under the shared dir. Submits a 5-job cluster of /bin/echo with output
# transfer, waits for the 5 terminations in the event log and checks outputs.
# Exits non-zero, loudly, on any failure. Keeps the work dir only on failure.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set_paths
TIMEOUT=${PYMW_CONDOR_CHECK_TIMEOUT:-120}

fail() {
    printf '\n[condor-check] FAILED: %s\n' "$*" >&2
    if [[ -n ${work:-} && -d $work ]]; then
        printf '[condor-check] work dir kept: %s\n' "$work" >&2
        if [[ -f $work/check.log ]]; then
            printf '[condor-check] event log:\n' >&2
            cat "$work/check.log" >&2
        fi
    fi
    print_daemon_logs
    exit 1
}

[[ -f $CACHE/env.sh ]] || fail "$CACHE/env.sh is missing: run testbeds/condor/up.sh first"
# shellcheck source=/dev/null
. "$CACHE/env.sh"
[[ $(command -v condor_submit) == "$BIN/condor_submit" ]] || fail "condor_submit does not resolve to the wrapper in $BIN"

# The wrappers refuse a directory outside the shared dir, in one line.
cd /
if err=$(condor_q 2>&1); then
    fail "condor_q from / should have failed"
fi
[[ $err == *"not under the HTCondor testbed shared dir"* && $(wc -l <<<"$err") == 1 ]] ||
    fail "unexpected error from condor_q outside the shared dir: $err"

work=$(mktemp -d "$PYMW_CONDOR_SHARED_DIR/check.XXXXXX")
# Root-made dirs must be writable by the job user (uid 1000): see README.md.
chmod 0777 "$work"
cd "$work"
cat >check.sub <<'EOF'
universe = vanilla
executable = /bin/echo
transfer_executable = false
arguments = pymw check $(Process)
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
transfer_output_files =
output = out.$(Process)
error = err.$(Process)
log = check.log
queue 5
EOF

t0=$SECONDS
submitted=$(condor_submit -terse check.sub) || fail "condor_submit exited $?"
[[ $submitted =~ ^([0-9]+)\.0\ -\ ([0-9]+)\.4$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] ||
    fail "unexpected condor_submit -terse output: '$submitted'"
cluster=${BASH_REMATCH[1]}
printf '[condor-check] submitted cluster %s (5 jobs)\n' "$cluster"

# Poll the event log for the five 005 (terminated) events.
while :; do
    done_count=$(grep -c '^005 ' check.log 2>/dev/null || true)
    [[ ${done_count:-0} -ge 5 ]] && break
    if grep -qE '^(009|012) ' check.log 2>/dev/null; then
        fail "a job was held or aborted"
    fi
    ((SECONDS - t0 < TIMEOUT)) || fail "only ${done_count:-0} of 5 jobs terminated within $TIMEOUT s"
    sleep 0.2
done
printf '[condor-check] 5 jobs terminated in %s s\n' "$((SECONDS - t0))"

for p in 0 1 2 3 4; do
    id=$(printf '%03d.%03d.000' "$cluster" "$p")
    grep -q "^005 ($id) " check.log || fail "no termination event for job $cluster.$p"
    normal=$(awk -v id="($id)" '$1 == "005" && $2 == id { getline; print; exit }' check.log)
    [[ $normal == *"Normal termination (return value 0)"* ]] || fail "job $cluster.$p: $normal"
    [[ -f out.$p ]] || fail "output file out.$p was not transferred"
    got=$(<"out.$p")
    [[ $got == "pymw check $p" ]] || fail "out.$p holds '$got', expected 'pymw check $p'"
    [[ ! -s err.$p ]] || fail "err.$p is not empty: $(<"err.$p")"
done

# Arguments pass through the wrapper as single words, unexpanded.
# shellcheck disable=SC2016
expr='strcat("two  spaces", " $HOME * ", Args)'
got=$(condor_history -limit 1 "$cluster.0" -af "$expr") || fail "condor_history exited $?"
# shellcheck disable=SC2016
[[ $got == 'two  spaces $HOME * pymw check 0' ]] || fail "condor_history -af returned '$got'"

# Exit codes pass through: removing a job that does not exist exits 1.
rc=0
condor_rm 999999.0 >/dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "condor_rm of a missing job exited $rc, expected 1"

# stdin passes through: a submit description read from '-'.
sub=$(printf 'executable = /bin/true\ntransfer_executable = false\nhold = true\nqueue\n' |
    condor_submit -terse -) || fail "condor_submit - exited $?"
condor_rm "${sub%%.*}" >/dev/null || fail "condor_rm of the held stdin job failed"

cd /
rm -rf "$work"
printf '[condor-check] OK: cluster %s ran 5/5, outputs right; wrapper cwd/args/stdin/exit code checks passed\n' "$cluster"
