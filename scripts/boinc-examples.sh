#!/usr/bin/env bash
# Every example with --backend boinc in project-host mode, on the BOINC
# testbed (testbeds/boinc), checked against the same run on the local
# backend: the outputs must be the same once times and the backend's name
# are taken out.
#
# Each example binary is registered as an app of its own name
# (testbeds/boinc/register-app.sh: project.xml + bin/xadd, boinc-install, the
# <daemon> entries in config.xml; the daemons are restarted only when an
# entry was added). The masters run as the project user (they write into
# the project and run bin/create_work), from /tmp, all five at once; the
# string_counter data file is written in /tmp, readable by the client's
# user.
#
# Needs: eval "$(testbeds/boinc/up.sh --print-env)"; run as root or as the
# project user. Prints each example's time.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PYMW_BOINC_PROJECT:?run testbeds/boinc/up.sh and eval \"\$(testbeds/boinc/up.sh --print-env)\" first}"
: "${PYMW_BOINC_PROJECT_USER:?run eval \"\$(testbeds/boinc/up.sh --print-env)\" first}"

cargo build -q -p pymw-examples --bins
bin=$(pwd)/target/debug
out=$(mktemp -d /tmp/pymw-boinc-examples.XXXXXX)
chmod 777 "$out"

# name and arguments: small enough for a single 8-CPU client, the same for
# both backends.
examples=(
    "monte_pi --tasks 8 --samples 200000"
    "prime_finder --end 200000 --tasks 8"
    "null_test --tasks 16"
    "string_counter --tasks 4 --lines 2000"
    "genetic_algorithm --rounds 3 --population 8"
)

as_user() {
    # PYMW_BOINC_URL (the testbed's environment) is read by --boinc-url,
    # which conflicts with --boinc-project.
    if [ "$(id -un)" = "$PYMW_BOINC_PROJECT_USER" ]; then
        env -u PYMW_BOINC_URL "$@"
    else
        runuser -u "$PYMW_BOINC_PROJECT_USER" -- env -u PYMW_BOINC_URL "$@"
    fi
}

# Times, the backend's name and throughput differ between runs.
normalize() {
    sed -E 's/ on the [a-z]+ backend//; s/ in [0-9.]+s: [0-9.]+ tasks\/s, [0-9.]+ MB\/s in \+ out//; s/, [0-9.]+s//g'
}

for example in "${examples[@]}"; do
    name=${example%% *}
    testbeds/boinc/register-app.sh "$bin/$name" "$name"
done

# A client that polled while register-app.sh restarted the daemons was told
# "maintenance, come back in an hour" (seen in CI: the examples waited on
# unsent jobs): ask it to update every 10 s while the examples run, as the
# conformance harness does.
(
    while sleep 10; do
        boinccmd --host "$PYMW_BOINC_CLIENT" --passwd "$PYMW_BOINC_CLIENT_PASSWD" \
            --project "$PYMW_BOINC_URL" update >/dev/null 2>&1 || true
    done
) &
kicker=$!
trap 'kill "$kicker" 2>/dev/null || true' EXIT

pids=()
for example in "${examples[@]}"; do
    read -r -a words <<<"$example"
    name=${words[0]}
    args=("${words[@]:1}")
    # Both variables are options' defaults (--boinc-project, --boinc-url),
    # which clap refuses together.
    env -u PYMW_BOINC_URL -u PYMW_BOINC_PROJECT "$bin/$name" "${args[@]}" --no-progress >"$out/$name.local"
    (
        cd /tmp
        t0=$SECONDS
        if as_user TMPDIR=/tmp "$bin/$name" "${args[@]}" --no-progress --backend boinc \
            --boinc-project "$PYMW_BOINC_PROJECT" --boinc-app "$name" \
            >"$out/$name.boinc" 2>"$out/$name.stderr"; then
            echo "$((SECONDS - t0))" >"$out/$name.time"
        else
            echo "failed after $((SECONDS - t0)) s" >"$out/$name.time"
            exit 1
        fi
    ) &
    pids+=($!)
done

failed=0
for i in "${!examples[@]}"; do
    name=${examples[$i]%% *}
    if ! wait "${pids[$i]}"; then
        echo "--- $name --backend boinc: $(cat "$out/$name.time")"
        tail -20 "$out/$name.stderr"
        failed=1
        continue
    fi
    if diff <(normalize <"$out/$name.local") <(normalize <"$out/$name.boinc") >"$out/$name.diff"; then
        echo "--- $name --backend boinc: $(cat "$out/$name.time") s, same answer as local: $(tail -1 "$out/$name.boinc")"
    else
        echo "--- $name --backend boinc: $(cat "$out/$name.time") s, a different answer than local:"
        cat "$out/$name.diff"
        failed=1
    fi
done
if [ "$failed" = 0 ]; then
    rm -rf "$out"
else
    echo "outputs are in $out"
fi
exit "$failed"
