#!/usr/bin/env bash
# Stop the BOINC testbed: the client, the project's daemons, Apache and
# MariaDB. With --purge also delete the cached project, client data, server
# build and the project's database (the Debian packages stay installed).
#
#   testbeds/boinc/down.sh [--purge]
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set_paths

purge=0
case ${1:-} in
    --purge) purge=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,6s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac
need_root "it stops services"
[[ -d $CACHE ]] || {
    log "nothing to stop: $CACHE does not exist"
    exit 0
}
take_lock 900
rm -f "$CACHE/ready"

if pid=$(client_pid); then
    log "stopping the BOINC client (pid $pid)"
    client_cmd --quit >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [[ -d /proc/$pid ]] || break
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$CACHE/client.pid"
if [[ -x $PROJECT/bin/stop ]] && id "$PROJECT_USER" >/dev/null 2>&1; then
    log "stopping the project's daemons"
    as_project_user bin/stop >/dev/null 2>&1 || true
fi
if apache_up; then
    log "stopping Apache"
    apachectl stop >/dev/null 2>&1 9>&- || true
fi
if mariadb_up; then
    if ((purge)); then
        mysql -u root -e "DROP DATABASE IF EXISTS $PROJECT_NAME" 2>/dev/null || true
    fi
    log "stopping MariaDB"
    service mariadb stop >/dev/null 2>&1 9>&- || true
fi
if ((purge)); then
    rm -f /etc/apache2/conf-enabled/pymw-boinc-testbed.conf /etc/apache2/conf-available/pymw-boinc-testbed.conf
    log "deleting $PROJECTS, $CLIENT and $SERVER"
    rm -rf --one-file-system "$PROJECTS" "$CLIENT" "$SERVER" "$CACHE"/*.log "$CACHE/env.sh" "$CACHE/client.pid.runuser"
fi
log "stopped"
