# shellcheck shell=bash disable=SC2034
# Shared by up.sh, down.sh and check.sh. Sourced, never run.
#
# Layout of the cache (outside the checkout):
#   ${PYMW_TESTBED_DIR:-/var/cache/pymw-testbed}/condor/
#     root/      the trixie chroot with HTCondor (complete when root/.pymw-testbed-built exists)
#     root.tmp/  a chroot being built (renamed to root/ when complete)
#     shared/    mode 1777, bind-mounted at the same path inside the chroot
#     bin/       host-side condor_* wrappers
#     env.sh     exports PATH and PYMW_CONDOR_SHARED_DIR
#     .lock      serialises up.sh and down.sh

TESTBED_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TESTBED_NAME=condor
# shellcheck source=../common.sh
. "$TESTBED_SRC/../common.sh"

set_paths() {
    CACHE=$(testbed_cache_dir)
    ROOT=$CACHE/root
    ROOT_TMP=$CACHE/root.tmp
    SHARED=$CACHE/shared
    BIN=$CACHE/bin
    MARKER=.pymw-testbed-built
    JOB_USER=pymw
    JOB_UID=1000
    CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    CONDOR_TOOLS=(condor_submit condor_q condor_rm condor_history condor_wait
        condor_hold condor_release condor_qedit condor_status condor_version
        condor_userlog)
}

# Mount points at or under $1, deepest first (from /proc/self/mountinfo).
mounts_under() {
    local dir=$1
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        awk '{ print gsub("/", "/"), $0 }' | sort -rn -k1,1 | cut -d' ' -f2-
}

is_mounted() {
    awk -v d="$1" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# PIDs whose root directory is exactly $1.
pids_rooted_at() {
    local dir=$1 p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        [[ $r == "$dir" ]] && printf '%s\n' "${p#/proc/}"
    done
    return 0
}

# Stop every process rooted at $1 (TERM, then KILL) and unmount everything
# under it, deepest first. Leaves the directory itself alone.
release_tree() {
    local dir=$1 pids m i
    pids=$(pids_rooted_at "$dir")
    if [[ -n $pids ]]; then
        log "sending TERM to processes rooted at $dir: $(echo "$pids" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        for i in $(seq 1 50); do
            pids=$(pids_rooted_at "$dir")
            [[ -z $pids ]] && break
            sleep 0.2
        done
        if [[ -n $pids ]]; then
            log "sending KILL to: $(echo "$pids" | tr '\n' ' ')"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            for i in $(seq 1 50); do
                [[ -z $(pids_rooted_at "$dir") ]] && break
                sleep 0.2
            done
        fi
    fi
    # Deepest first; repeat because a path can carry stacked mounts.
    for _ in 1 2 3 4 5; do
        [[ -z $(mounts_under "$dir") ]] && break
        while read -r m; do
            [[ -n $m ]] || continue
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done < <(mounts_under "$dir")
    done
    [[ -z $(mounts_under "$dir") ]] || die "mounts remain under $dir: $(mounts_under "$dir" | tr '\n' ' ')"
}

# Delete a chroot tree, refusing if anything is still mounted in it (a bind
# mount of /dev or of the shared dir must never be recursed into).
remove_tree() {
    local dir=$1
    [[ -e $dir ]] || return 0
    release_tree "$dir"
    [[ -z $(mounts_under "$dir") ]] || die "refusing to delete $dir: still has mounts"
    rm -rf --one-file-system "$dir"
}

# Run a command inside the chroot as root with a clean environment
# (killed after CMD_TIMEOUT seconds if that is set).
in_root() {
    timeout "${CMD_TIMEOUT:-0}" chroot "$ROOT" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 "$@"
}

# Run a command inside the chroot as the job user, from directory $1
# (killed after CMD_TIMEOUT seconds if that is set).
as_job_user() {
    local dir=$1
    shift
    # shellcheck disable=SC2016
    timeout "${CMD_TIMEOUT:-0}" chroot --userspec="$JOB_USER:$JOB_USER" "$ROOT" /usr/bin/env -i PATH="$CHROOT_PATH" \
        HOME="/home/$JOB_USER" LANG=C.UTF-8 /bin/sh -c 'cd "$1" || exit 1; shift; exec "$@"' sh "$dir" "$@"
}

master_pid() {
    local pidfile=$ROOT/run/condor/master.pid pid
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] || return 1
    [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$ROOT" ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == condor_master ]] || return 1
    printf '%s\n' "$pid"
}

print_daemon_logs() {
    local f
    for f in "$ROOT"/var/log/condor/*Log "$CACHE"/master-start.log; do
        [[ -f $f ]] || continue
        printf '\n===== tail -n 30 %s =====\n' "$f" >&2
        tail -n 30 "$f" >&2
    done
}
