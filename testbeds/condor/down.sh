#!/usr/bin/env bash
# Stop the HTCondor testbed pool and unmount its chroot. Idempotent.
#
#   testbeds/condor/down.sh          stop; keep the cache (next up.sh takes seconds)
#   testbeds/condor/down.sh --purge  stop and delete the whole cache directory
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set_paths

purge=0
case ${1:-} in
    --purge) purge=1 ;;
    -h | --help)
        sed -n '2,5s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    "") ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac
need_root "it uses chroot and mount"

if [[ ! -d $CACHE ]]; then
    log "nothing to do: $CACHE does not exist"
    exit 0
fi
take_lock

if pid=$(master_pid); then
    log "condor_off -master (master pid $pid)"
    CMD_TIMEOUT=20 in_root condor_off -master >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
        [[ -d /proc/$pid ]] || break
        sleep 0.2
    done
fi
rm -f "$CACHE/pool-ready"
# Whatever still runs in the chroot is killed, then every mount is undone.
for dir in "$ROOT" "$ROOT_TMP"; do
    [[ -d $dir ]] && release_tree "$dir"
done
log "pool stopped, nothing mounted under $CACHE"

if [[ $purge == 1 ]]; then
    remove_tree "$ROOT"
    remove_tree "$ROOT_TMP"
    [[ -z $(mounts_under "$CACHE") ]] || die "refusing to delete $CACHE: still has mounts"
    rm -rf --one-file-system "$CACHE"
    log "deleted $CACHE"
fi
