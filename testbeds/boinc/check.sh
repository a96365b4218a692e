#!/usr/bin/env bash
# Smoke test of a running testbed (run after up.sh), the way a project-host
# master drives it: stages 4 inputs with bin/stage_file, creates 4 jobs with
# one `bin/create_work --stdin`, and waits until the client has run them and
# sample_assimilator has written every output, each checked. Exits non-zero,
# loudly, on any failure.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set_paths
TIMEOUT=${PYMW_BOINC_CHECK_TIMEOUT:-180}
JOBS=4

fail() {
    printf '\n[boinc-check] FAILED: %s\n' "$*" >&2
    print_logs
    exit 1
}

need_root "it runs BOINC tools as the project user"
[[ -f $CACHE/ready ]] || fail "the testbed is not up: run testbeds/boinc/up.sh first"
client_pid >/dev/null || fail "the BOINC client is not running: run testbeds/boinc/up.sh"
mariadb_up || fail "MariaDB is not running: run testbeds/boinc/up.sh"
apache_up || fail "Apache is not running: run testbeds/boinc/up.sh"
curl -fsS "$PROJECT_URL" | grep -qi boinc || fail "$PROJECT_URL does not serve the project's page"
sched=$(curl -fsS "${PROJECT_URL}schedulers.txt" 2>/dev/null || curl -fsS "$PROJECT_URL" | grep -o 'boinc_scheduler[^>]*')
[[ $(grep -c 'boinc_scheduler' <<<"$sched") == 1 ]] || fail "the master page must name exactly one scheduler: $sched"

batch=check_$(date +%s)_$$
lines=
for i in $(seq 1 "$JOBS"); do
    name=${batch}_$i
    as_project_user sh -c "printf 'check %s\n' '$name' >'/tmp/$name.in' && bin/stage_file --copy '/tmp/$name.in' >/dev/null && rm -f '/tmp/$name.in'" ||
        fail "bin/stage_file failed for $name"
    lines+="--wu_name $name $name.in"$'\n'
done
t0=$SECONDS
printf '%s' "$lines" | as_project_user bin/create_work --appname "$PROBE_APP" --stdin ||
    fail "bin/create_work --stdin failed"
printf '[boinc-check] created %d jobs\n' "$JOBS"
client_cmd --project "$PROJECT_URL" update >/dev/null 2>&1 || true
for i in $(seq 1 "$JOBS"); do
    name=${batch}_$i
    until [[ -f $PROJECT/sample_results/$name ]]; do
        ((SECONDS - t0 < TIMEOUT)) || fail "job $name was not assimilated within $TIMEOUT s"
        sleep 0.5
    done
    grep -qx "check $name" "$PROJECT/sample_results/$name" || fail "wrong output for $name: $(head -c 200 "$PROJECT/sample_results/$name")"
done
printf '[boinc-check] %d jobs run, validated and assimilated in %d s\n' "$JOBS" "$((SECONDS - t0))"
