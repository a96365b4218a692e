# shellcheck shell=bash disable=SC2034
# Shared by up.sh, down.sh and check.sh. Sourced, never run.
#
# Layout of the cache (outside the checkout):
#   ${PYMW_TESTBED_DIR:-/var/cache/pymw-testbed}/boinc/
#     server/    the BOINC 7.20.5 server built from ../shared/boinc-src
#                (complete when server/.pymw-testbed-built names the tarball's hash)
#     projects/pymw/   the project made by make_project, owned by $PROJECT_USER
#     client/    the data directory of Debian's boinc-client, owned by boinc
#     env.sh     exports what a master on this host needs
#     .lock      serialises up.sh and down.sh
#
# Services (no systemd here): MariaDB and Apache are started with their init
# scripts, the project's daemons with bin/start, the client as a plain
# background process; down.sh stops them all.

TESTBED_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$TESTBED_SRC/../.." && pwd -P)
TESTBED_NAME=boinc
# shellcheck source=../common.sh
. "$TESTBED_SRC/../common.sh"

set_paths() {
    CACHE=$(testbed_cache_dir)
    SERVER=$CACHE/server
    SERVER_SRC=$SERVER/boinc-7.20.5-server
    PROJECT_NAME=pymw
    PROJECTS=$CACHE/projects
    PROJECT=$PROJECTS/$PROJECT_NAME
    CLIENT=$CACHE/client
    PROJECT_USER=boincadm
    DB_USER=boincadm
    DB_PASSWD=pymw-testbed
    URL_BASE=http://127.0.0.1/
    PROJECT_URL=${URL_BASE}${PROJECT_NAME}/
    GUI_RPC_PORT=31418
    GUI_RPC_PASSWD=pymw-testbed
    CLIENT_HOST=127.0.0.1:$GUI_RPC_PORT
    # What the smoke job uses (an app of its own, not pymw's).
    PROBE_APP=testbed_probe
    TARBALL=${PYMW_BOINC_TARBALL:-$REPO_ROOT/../shared/boinc-src/boinc-7.20.5-server.tar.xz}
    MARKER=.pymw-testbed-built
    HOST_SHORT=$(hostname -s)
}

# Run a command as the project's user, from the project directory when it
# exists, with a umask that keeps what it makes writable by the web server
# (group www-data shares the project user's group).
as_project_user() {
    local dir=$PROJECT
    [[ -d $dir ]] || dir=/
    (cd "$dir" && umask 002 && runuser -u "$PROJECT_USER" -- env HOME="/home/$PROJECT_USER" PATH="$PROJECT/bin:/usr/local/bin:/usr/bin:/bin" "$@")
}

# boinccmd against the testbed's client.
client_cmd() {
    boinccmd --host "$CLIENT_HOST" --passwd "$GUI_RPC_PASSWD" "$@"
}

client_pid() {
    local pid
    pid=$(cat "$CACHE/client.pid" 2>/dev/null) || return 1
    [[ -n $pid && -d /proc/$pid ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == boinc ]] || return 1
    printf '%s\n' "$pid"
}

mariadb_up() {
    mysqladmin --connect-timeout=2 ping >/dev/null 2>&1
}

apache_up() {
    [[ -r /run/apache2/apache2.pid ]] && [[ -d /proc/$(cat /run/apache2/apache2.pid) ]]
}

print_logs() {
    local f
    for f in "$PROJECT"/log_"$HOST_SHORT"/*.log "$CACHE"/client.log /var/log/apache2/error.log; do
        [[ -f $f ]] || continue
        printf '\n===== tail -n 20 %s =====\n' "$f" >&2
        tail -n 20 "$f" >&2
    done
}
