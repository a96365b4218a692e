#!/usr/bin/env bash
# A run killed and resumed, as a user would do it: monte_pi with a run name is
# SIGKILLed twice at random points and started again with the same name; it
# must finish with the same estimate as an uninterrupted run, and the run
# store must show every task done once, none failed, over three sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="$(mktemp -d)"
trap 'rm -rf "$runs"' EXIT
args=(--tasks 300 --samples 2000000 --no-progress)
cargo build -q -p pymw-examples --bin monte_pi -p pymw-cli
bin="${CARGO_TARGET_DIR:-target}/debug/monte_pi"
pymw="${CARGO_TARGET_DIR:-target}/debug/pymw"

expected="$("$bin" "${args[@]}" | sed 's/ from .*//')"
done_now() {
    "$pymw" --root "$runs" --json status crash 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"]["done"])' 2>/dev/null \
        || echo 0
}
# Each life is killed once the store shows a random number of further tasks
# done (20 to 80 of the 300): at a random point, and always mid-run however
# fast the machine is.
for kill in 1 2; do
    before="$(done_now)"
    target=$((before + 20 + RANDOM % 61))
    "$bin" "${args[@]}" --run crash --runs-dir "$runs" >/dev/null 2>&1 &
    master=$!
    for _ in $(seq 600); do
        [ "$(done_now)" -ge "$target" ] && break
        kill -0 "$master" 2>/dev/null || { echo "the master ended before it could be killed"; exit 1; }
        sleep 0.1
    done
    kill -9 "$master"
    wait "$master" 2>/dev/null || true
    echo "killed life $kill at $(done_now) done (target $target)"
    "$pymw" --root "$runs" status crash | sed -n '1,4p'
done
got="$("$bin" "${args[@]}" --run crash --runs-dir "$runs" 2>/dev/null | sed 's/ from .*//')"
[ "$got" = "$expected" ] || { echo "resumed run gave '$got', uninterrupted '$expected'"; exit 1; }
status="$("$pymw" --root "$runs" --json status crash)"
python3 - "$status" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
c, info = s["counts"], s["info"]
assert info["state"] == "finished", info["state"]
assert c["done"] == 300 and c["failed"] == 0 and c["queued"] == 0 and c["running"] == 0, c
assert info["sessions"] == 3, info["sessions"]
print(f"resume check passed: {c['done']} done over {info['sessions']} sessions, estimate {sys.argv[1] and 'as uninterrupted'}")
PY
