# shellcheck shell=bash
# What every testbed's scripts share (condor/lib.sh and boinc/lib.sh source
# it). Sourced, never run. The sourcing lib.sh sets TESTBED_NAME first.

# The testbed's cache directory, ${PYMW_TESTBED_DIR:-/var/cache/pymw-testbed}/NAME,
# made absolute; symlinks in it are resolved once it exists.
testbed_cache_dir() {
    local base=${PYMW_TESTBED_DIR:-/var/cache/pymw-testbed}
    case $base in
        /*) ;;
        *) base=$PWD/$base ;;
    esac
    if [[ -d $base ]]; then
        base=$(cd "$base" && pwd -P)
    fi
    case $base in
        *[[:space:]]*) die "PYMW_TESTBED_DIR must not contain whitespace: '$base'" ;;
    esac
    printf '%s/%s\n' "${base%/}" "$TESTBED_NAME"
}

log() { printf '[%s-testbed] %s\n' "$TESTBED_NAME" "$*" >&2; }

die() {
    printf '[%s-testbed] ERROR: %s\n' "$TESTBED_NAME" "$*" >&2
    exit 1
}

# need_root WHY: refuse to go on unless run as root.
need_root() {
    [[ $(id -u) -eq 0 ]] || die "$(basename "$0") must run as root (${1:-it changes the system})"
}

# Serialise a testbed's up.sh and down.sh on one lock file (fd 9). Anything
# they start in the background must close fd 9 (`9>&-`), or it holds the lock.
take_lock() {
    mkdir -p "$CACHE"
    exec 9>>"$CACHE/.lock"
    flock -w "${1:-600}" 9 || die "could not take $CACHE/.lock within ${1:-600} s"
}

# write_if_changed FILE MODE: stdin becomes FILE unless FILE already has exactly
# that content and mode. Sets CHANGED=1 when it wrote.
write_if_changed() {
    local dest=$1 mode=$2 content tmp
    content=$(
        cat
        printf x
    )
    content=${content%x}
    if [[ -f $dest ]] && [[ $(stat -c %a "$dest") == "$mode" ]] &&
        cmp -s "$dest" <(printf '%s' "$content"); then
        return 0
    fi
    tmp=$(mktemp "$dest.XXXXXX")
    printf '%s' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
    CHANGED=1
}
