#!/usr/bin/env bash
# Bring up a real HTCondor personal pool (Debian trixie's htcondor package) in a
# debootstrapped chroot, cached outside the checkout. Idempotent: with the pool
# already up it checks it and returns in seconds. See README.md.
#
#   testbeds/condor/up.sh              build (if needed) and start the pool
#   testbeds/condor/up.sh --print-env  print the export lines for the wrappers
#
# Environment: PYMW_TESTBED_DIR (cache base, default /var/cache/pymw-testbed),
# PYMW_CONDOR_MIRROR (Debian mirror URL; default: the one the host's apt uses).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set_paths

NUM_CPUS=8
READY_TIMEOUT=${PYMW_CONDOR_READY_TIMEOUT:-90}
FIRST_JOB_TIMEOUT=${PYMW_CONDOR_FIRST_JOB_TIMEOUT:-120}

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0"
}

print_env() {
    # $PATH is left for the caller's shell to expand.
    # shellcheck disable=SC2016
    printf 'export PATH=%q:"$PATH"\n' "$BIN"
    printf 'export PYMW_CONDOR_SHARED_DIR=%q\n' "$SHARED"
}

# The Debian mirror the host's own apt uses: the first deb entry whose suite is
# the host's release code name, from one-line .list files or deb822 .sources.
host_mirror() {
    if [[ -n ${PYMW_CONDOR_MIRROR:-} ]]; then
        printf '%s\n' "$PYMW_CONDOR_MIRROR"
        return
    fi
    local codename files=() f uri
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || die "cannot read the host's release code name from /etc/os-release; set PYMW_CONDOR_MIRROR"
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    for f in "${files[@]}"; do
        case $f in
            *.sources)
                uri=$(awk -v cn="$codename" '
                    function flush() {
                        if (!done && types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " cn " ") && uris != "") {
                            split(uris, u, " "); print u[1]; done = 1; exit
                        }
                        types = ""; uris = ""; suites = ""; enabled = ""
                    }
                    /^[ \t]*#/ { next }
                    /^[ \t]*$/ { flush(); next }
                    tolower($1) == "types:"   { $1 = ""; types = $0 }
                    tolower($1) == "uris:"    { $1 = ""; uris = $0 }
                    tolower($1) == "suites:"  { $1 = ""; suites = $0 }
                    tolower($1) == "enabled:" { enabled = tolower($2) }
                    END { flush() }' "$f")
                ;;
            *)
                uri=$(awk -v cn="$codename" '
                    $1 != "deb" { next }
                    {
                        i = 2
                        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                        if ($(i + 1) == cn) { print $i; exit }
                    }' "$f")
                ;;
        esac
        uri=${uri# }
        case $uri in
            http://* | https://*)
                printf '%s\n' "${uri%/}"
                return
                ;;
        esac
    done
    die "no http(s) apt source for suite '$codename' in the host's apt sources; set PYMW_CONDOR_MIRROR"
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null && return 0
    log "installing debootstrap on the host"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show debootstrap >/dev/null 2>&1; then
        apt-get update -q >&2
    fi
    apt-get install -y -q debootstrap >&2
}

build_chroot() {
    [[ -f $ROOT/$MARKER ]] && return 0
    if [[ -e $ROOT ]]; then
        log "$ROOT has no $MARKER: removing the incomplete chroot"
        remove_tree "$ROOT"
    fi
    if [[ -e $ROOT_TMP ]]; then
        log "removing a chroot left by an interrupted build: $ROOT_TMP"
        remove_tree "$ROOT_TMP"
    fi
    ensure_debootstrap
    local mirror t0=$SECONDS
    mirror=$(host_mirror)
    log "debootstrap --variant=minbase trixie $ROOT_TMP $mirror (log: $CACHE/build.log)"
    : >"$CACHE/build.log"
    if ! debootstrap --variant=minbase trixie "$ROOT_TMP" "$mirror" >>"$CACHE/build.log" 2>&1; then
        tail -n 30 "$CACHE/build.log" >&2
        die "debootstrap failed; full log in $CACHE/build.log"
    fi
    log "debootstrap done in $((SECONDS - t0)) s; installing htcondor in the chroot"
    mount -t proc proc "$ROOT_TMP/proc"
    mount --bind /dev "$ROOT_TMP/dev"
    mount --bind /dev/pts "$ROOT_TMP/dev/pts"
    # Never start services from package scripts inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$ROOT_TMP/usr/sbin/policy-rc.d"
    chmod 755 "$ROOT_TMP/usr/sbin/policy-rc.d"
    # shellcheck disable=SC2016
    if ! chroot "$ROOT_TMP" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive /bin/sh -ec '
            apt-get update -q
            apt-get install -y -q --no-install-recommends htcondor
            apt-get clean
            useradd --uid "$1" --user-group --create-home --shell /bin/sh "$2"
        ' sh "$JOB_UID" "$JOB_USER" >>"$CACHE/build.log" 2>&1; then
        tail -n 30 "$CACHE/build.log" >&2
        release_tree "$ROOT_TMP"
        die "installing htcondor in the chroot failed; full log in $CACHE/build.log"
    fi
    release_tree "$ROOT_TMP"
    printf 'built %s from %s\n' "$(date -u +%FT%TZ)" "$mirror" >"$ROOT_TMP/$MARKER"
    mv "$ROOT_TMP" "$ROOT"
    log "chroot built in $((SECONDS - t0)) s ($(du -sh --one-file-system "$ROOT" | cut -f1))"
}

write_config() {
    write_if_changed "$ROOT/etc/condor/config.d/90-pymw-testbed.conf" 644 <<EOF
# Written by pymw testbeds/condor/up.sh: a personal pool on IPv4 loopback,
# tuned for fast tests. See /work/shared/notes/htcondor.md for why.
use ROLE: Personal
NETWORK_INTERFACE = 127.0.0.1
ENABLE_IPV6 = False
# Otherwise condor_master rewrites host sysctls through the shared /proc.
ENABLE_KERNEL_TUNING = False
# Otherwise every job is held: the chroot's / is not a mount point.
MOUNT_UNDER_SCRATCH =
NUM_CPUS = $NUM_CPUS
NEGOTIATOR_CYCLE_DELAY = 0
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
SCHEDD_INTERVAL = 2
SCHEDD_MIN_INTERVAL = 1
UPDATE_INTERVAL = 2
STARTER_UPDATE_INTERVAL = 2
SHADOW_QUEUE_UPDATE_INTERVAL = 2
PERIODIC_EXPR_INTERVAL = 2
# A slot whose output transfer failed stays busy until the job lease expires
# (default 2400 s); keep it short so such tests free their slot quickly.
JOB_DEFAULT_LEASE_DURATION = 60
EOF
}

write_hosts() {
    write_if_changed "$ROOT/etc/hosts" 644 <<EOF
127.0.0.1 localhost $(hostname)
EOF
}

write_wrappers() {
    local template tool text
    template=$(<"$TESTBED_SRC/wrapper.sh")
    mkdir -p "$BIN"
    for tool in "${CONDOR_TOOLS[@]}"; do
        text=$template
        text=${text//@TOOL@/"$(printf '%q' "$tool")"}
        text=${text//@ROOT@/"$(printf '%q' "$ROOT")"}
        text=${text//@SHARED@/"$(printf '%q' "$SHARED")"}
        text=${text//@USER@/"$(printf '%q' "$JOB_USER")"}
        text=${text//@CHROOT_PATH@/"$(printf '%q' "$CHROOT_PATH")"}
        text=${text//@NOTE@/"Generated by testbeds/condor/up.sh from testbeds/condor/wrapper.sh; do not edit."}
        printf '%s\n' "$text" | write_if_changed "$BIN/$tool" 755
    done
    print_env | write_if_changed "$CACHE/env.sh" 644
}

ensure_dirs_and_mounts() {
    mkdir -p "$SHARED"
    [[ $(stat -c %a "$SHARED") == 1777 ]] || chmod 1777 "$SHARED"
    # What the package's tmpfiles.d would do; owned by root, condor_procd
    # cannot make its fifo and the master respawns it forever.
    in_root install -d -m 0775 -o condor -g condor /run/condor /var/lock/condor
    is_mounted "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    is_mounted "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
    is_mounted "$ROOT/dev/pts" || mount --bind /dev/pts "$ROOT/dev/pts"
    # Deliberately no /sys: HTCondor then runs jobs without cgroups.
    in_root mkdir -p "$SHARED"
    [[ $(realpath "$ROOT$SHARED") == "$ROOT$SHARED" ]] ||
        die "$SHARED inside the chroot goes through a symlink; choose another PYMW_TESTBED_DIR"
    is_mounted "$ROOT$SHARED" || mount --bind "$SHARED" "$ROOT$SHARED"
}

# One probe of the pool: slots advertised, schedd up, queue readable.
pool_ready() {
    local cpus schedd
    cpus=$(CMD_TIMEOUT=10 as_job_user / condor_status -af TotalSlotCpus 2>/dev/null) || return 1
    [[ $cpus == "$NUM_CPUS" ]] || return 1
    schedd=$(CMD_TIMEOUT=10 as_job_user / condor_status -schedd -af Name 2>/dev/null) || return 1
    [[ -n $schedd ]] || return 1
    CMD_TIMEOUT=10 as_job_user / condor_q -totals >/dev/null 2>&1
}

wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    until pool_ready; do
        if ((SECONDS >= deadline)); then
            print_daemon_logs
            die "the pool was not ready within $READY_TIMEOUT s (daemon log tails above)"
        fi
        sleep 0.5
    done
}

# Submit a /bin/true job as the job user and wait for its termination event.
run_first_job() {
    local dir=$SHARED/.testbed-probe deadline=$((SECONDS + FIRST_JOB_TIMEOUT))
    rm -rf "$dir"
    mkdir -m 0777 "$dir"
    cat >"$dir/probe.sub" <<'EOF'
universe = vanilla
executable = /bin/true
transfer_executable = false
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
output = probe.out
error = probe.err
log = probe.log
queue
EOF
    as_job_user "$dir" condor_submit -terse probe.sub >"$dir/submit.out" 2>&1 || {
        cat "$dir/submit.out" >&2
        print_daemon_logs
        die "condor_submit of the first job failed"
    }
    until grep -q '^005 ' "$dir/probe.log" 2>/dev/null; do
        if grep -q '^012 ' "$dir/probe.log" 2>/dev/null || ((SECONDS >= deadline)); then
            cat "$dir/probe.log" >&2 2>/dev/null || true
            print_daemon_logs
            die "the first job did not finish within $FIRST_JOB_TIMEOUT s (held or stuck; event log and daemon log tails above)"
        fi
        sleep 0.3
    done
    grep -q 'Normal termination (return value 0)' "$dir/probe.log" || {
        cat "$dir/probe.log" >&2
        die "the first job did not exit 0"
    }
}

start_master() {
    local stale
    stale=$(pids_rooted_at "$ROOT")
    if [[ -n $stale ]]; then
        log "the master is not running; stopping stale processes in the chroot"
        release_tree_procs_only
    fi
    rm -f "$CACHE/pool-ready"
    # Inside the chroot: its /var/lock is an absolute symlink to /run/lock.
    in_root find /run/condor /var/lock/condor -mindepth 1 -delete
    log "starting condor_master"
    # fd 9 is the lock: the daemons must not inherit it.
    setsid chroot "$ROOT" /usr/bin/env -i PATH="$CHROOT_PATH" LANG=C.UTF-8 \
        condor_master -pidfile /run/condor/master.pid </dev/null >>"$CACHE/master-start.log" 2>&1 9>&-
}

# Kill the processes rooted at ROOT but keep the mounts.
release_tree_procs_only() {
    local pids
    pids=$(pids_rooted_at "$ROOT")
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 50); do
        pids=$(pids_rooted_at "$ROOT")
        [[ -z $pids ]] && return 0
        sleep 0.2
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
}

stop_master() {
    local pid
    pid=$(master_pid) || return 0
    CMD_TIMEOUT=20 in_root condor_off -master >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
        [[ -d /proc/$pid ]] || break
        sleep 0.2
    done
    release_tree_procs_only
}

main() {
    case ${1:-} in
        --print-env)
            print_env
            return 0
            ;;
        -h | --help)
            usage
            return 0
            ;;
        "") ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    need_root "it uses chroot and mount"
    local t0=$SECONDS pid
    take_lock
    set_paths # the cache dir exists now: resolve symlinks in its path
    build_chroot
    CHANGED=0
    write_config
    local config_changed=$CHANGED
    write_hosts
    ensure_dirs_and_mounts
    write_wrappers
    if pid=$(master_pid); then
        if [[ $config_changed == 1 ]]; then
            log "configuration changed: restarting the pool"
            stop_master
        elif [[ $(cat "$CACHE/pool-ready" 2>/dev/null) == "$pid" ]]; then
            wait_ready
            log "pool already up (master pid $pid), checked in $((SECONDS - t0)) s"
            return 0
        fi
    fi
    if ! pid=$(master_pid); then
        start_master
    fi
    wait_ready
    pid=$(master_pid) || {
        print_daemon_logs
        die "condor_master is not running"
    }
    log "pool daemons up; running a first job"
    run_first_job
    printf '%s\n' "$pid" >"$CACHE/pool-ready"
    log "pool up (master pid $pid) in $((SECONDS - t0)) s; wrappers in $BIN"
    log "use it with: eval \"\$($0 --print-env)\""
}

main "$@"
