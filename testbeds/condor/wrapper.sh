#!/usr/bin/env bash
# @NOTE@
# Host-side HTCondor wrapper. wrapper.sh is the template; up.sh fills in its
# @-delimited fields and writes one copy per tool into ${CACHE}/bin/.
#
# It runs the real tool inside the testbed chroot as the job
# user, in the caller's current directory (which must be under the shared
# directory, bind-mounted at the same path inside the chroot). Arguments, stdin
# and the exit status pass through unchanged.
set -euo pipefail

tool=@TOOL@
root=@ROOT@
shared=@SHARED@
user=@USER@
path=@CHROOT_PATH@

if [[ $(id -u) -ne 0 ]]; then
    printf '%s: the HTCondor testbed wrappers must run as root (they use chroot)\n' "$tool" >&2
    exit 2
fi
if [[ ! -x $root/usr/bin/$tool ]]; then
    printf '%s: no HTCondor testbed at %s; run testbeds/condor/up.sh first\n' "$tool" "$root" >&2
    exit 2
fi
cwd=$(pwd -P)
case $cwd/ in
    "$shared"/*) ;;
    *)
        printf '%s: current directory %s is not under the HTCondor testbed shared dir %s; run it from a directory under that\n' \
            "$tool" "$cwd" "$shared" >&2
        exit 2
        ;;
esac

# sh's $0 is the tool name (for its error messages), $1 the directory, the
# rest the tool's own arguments, each passed as one word.
# shellcheck disable=SC2016
exec chroot --userspec="$user:$user" "$root" /usr/bin/env -i PATH="$path" HOME="/home/$user" \
    USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
    /bin/sh -c 'cd "$1" || exit 1; shift; exec "$0" "$@"' "$tool" "$cwd" "$@"
