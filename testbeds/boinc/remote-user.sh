#!/usr/bin/env bash
# Sets the BOINC testbed up for pymw's remote-submission tests, idempotently
# (as root, after up.sh):
#
#   testbeds/boinc/remote-user.sh BIN [APP]
#
# - a submitting user `remote@pymw.invalid` (made once through the project's
#   RPC) with a `user_submit` row `submit_all=1`;
# - the app APP (default `pymw_remote`) in project.xml, added with bin/xadd;
# - BIN installed as the app (`BIN __pymw boinc-install`, as the project's
#   user: a new app version when BIN changed), its default templates, and the
#   validator and assimilator entries it prints added to config.xml;
# - when config.xml changed: bin/stop, bin/start, and the client told to
#   update (a client that polled meanwhile would wait an hour).
#
# Prints, for `eval`: PYMW_BOINC_AUTHENTICATOR (the submitter's account key),
# PYMW_BOINC_APP, PYMW_BOINC_SUBMITTER_ID (its user id).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root
set_paths
[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 BIN [APP]"
BIN=$(realpath "$1")
APP=${2:-pymw_remote}
[[ -x $BIN ]] || die "$BIN is not an executable"
[[ $APP =~ ^[a-z0-9_]+$ ]] || die "app names here are lowercase letters, digits and _: $APP"
[[ -f $PROJECT/config.xml ]] || die "no project at $PROJECT: run testbeds/boinc/up.sh first"
take_lock

# The submitter: an account of its own, made through the project's RPC once.
key=$(cat "$PROJECT/.pymw-remote-account" 2>/dev/null || true)
if [[ -z $key ]]; then
    key=$(client_cmd --create_account "$PROJECT_URL" remote@pymw.invalid pymw-remote remote 2>&1 |
        sed -n 's/^account key: *//p')
    [[ -n $key ]] || key=$(client_cmd --lookup_account "$PROJECT_URL" remote@pymw.invalid pymw-remote 2>&1 |
        sed -n 's/^account key: *//p')
    [[ -n $key ]] || die "could not create the submitting account on $PROJECT_URL"
    printf '%s\n' "$key" >"$PROJECT/.pymw-remote-account"
fi
[[ $key =~ ^[0-9a-f]+$ ]] || die "unexpected account key in $PROJECT/.pymw-remote-account"
user_id=$(mysql -N pymw -e "SELECT id FROM user WHERE authenticator = '$key'")
[[ -n $user_id ]] || die "no user with the key in $PROJECT/.pymw-remote-account"
mysql pymw -e "INSERT IGNORE INTO user_submit (user_id, quota, logical_start_time, submit_all, manage_all, max_jobs_in_progress) VALUES ($user_id, 0, 0, 1, 0, 0); UPDATE user_submit SET submit_all = 1 WHERE user_id = $user_id"

# The app.
if ! grep -q "<name>$APP</name>" "$PROJECT/project.xml"; then
    log "adding app $APP"
    as_project_user python3 - "$PROJECT/project.xml" "$APP" <<'EOF'
import sys
import xml.etree.ElementTree as ET
path, name = sys.argv[1:3]
tree = ET.parse(path)
app = ET.SubElement(tree.getroot(), "app")
ET.SubElement(app, "name").text = name
ET.SubElement(app, "user_friendly_name").text = "pymw " + name
ET.indent(tree, space="    ")
tree.write(path, encoding="unicode")
EOF
    as_project_user bin/xadd >"$CACHE/xadd-$APP.log" 2>&1 || {
        cat "$CACHE/xadd-$APP.log" >&2
        die "bin/xadd failed"
    }
fi

# The binary as the app (a no-op when this build is installed already), with
# default templates written afresh: a job fails after 2 errors instead of 4
# (each error makes the client wait minutes before its next request).
rm -f "$PROJECT/templates/${APP}_in" "$PROJECT/templates/${APP}_out"
# (The --boinc-url of a remote master in the environment would conflict.)
report=$(as_project_user env -u PYMW_BOINC_URL -u PYMW_BOINC_AUTHENTICATOR "$BIN" __pymw boinc-install --boinc-project "$PROJECT" --boinc-app "$APP" --boinc-max-error-results 1) ||
    die "$BIN __pymw boinc-install failed: $report"
printf '%s\n' "$report" >"$CACHE/install-$APP.log"

# Its validator and assimilator in config.xml, from what boinc-install prints
# when they are missing.
CONFIG_CHANGED=0
if grep -q '<daemon>' <<<"$report"; then
    log "adding the daemons of $APP to config.xml"
    sed -n '/<daemon>/,/<\/daemon>/p' <<<"$report" >"$CACHE/daemons-$APP.xml"
    as_project_user python3 - "$PROJECT/config.xml" "$CACHE/daemons-$APP.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
path, entries = sys.argv[1:3]
tree = ET.parse(path)
daemons = tree.getroot().find("daemons")
new = ET.fromstring("<d>" + open(entries).read() + "</d>")
have = {d.findtext("cmd") for d in daemons.findall("daemon")}
for d in new.findall("daemon"):
    if d.findtext("cmd") not in have:
        daemons.append(d)
ET.indent(tree, space="    ")
tree.write(path, encoding="unicode")
EOF
    CONFIG_CHANGED=1
fi
if [[ $CONFIG_CHANGED == 1 ]]; then
    log "restarting the project's daemons"
    as_project_user bin/stop >/dev/null 2>&1 || true
    as_project_user bin/start >"$CACHE/start.log" 2>&1 9>&- || {
        cat "$CACHE/start.log" >&2
        die "bin/start failed"
    }
    # A client that polled during the restart was told to wait an hour.
    client_cmd --project "$PROJECT_URL" update >/dev/null 2>&1 || true
fi

printf 'export PYMW_BOINC_AUTHENTICATOR=%s\n' "$key"
printf 'export PYMW_BOINC_APP=%s\n' "$APP"
printf 'export PYMW_BOINC_SUBMITTER_ID=%s\n' "$user_id"
