#!/bin/bash
# Registers a pymw binary as a BOINC app of the testbed's project, in
# project-host mode, as README.md "Running on BOINC" steps 1-3 say, and
# idempotently:
#
#   1. adds <app><name>APP</name></app> to project.xml and runs bin/xadd,
#      unless the app is there;
#   2. runs `BIN __pymw boinc-install --boinc-project DIR --boinc-app APP`
#      (installs the binary as an app version, writes the shim scripts);
#   3. adds the <daemon> entries it prints to config.xml, unless they are
#      there; only then restarts the daemons (bin/stop; bin/start) and tells
#      the client to update (after bin/stop it may have been told to wait an
#      hour).
#
# Usage (as root or as the project user): register-app.sh BIN APP
# Needs the testbed's environment: eval "$(testbeds/boinc/up.sh --print-env)".
# Prints one line per step; exits non-zero with the reason when a step fails.
set -euo pipefail

BIN=${1:?usage: register-app.sh BIN APP}
APP=${2:?usage: register-app.sh BIN APP}
: "${PYMW_BOINC_PROJECT:?run eval \"\$(testbeds/boinc/up.sh --print-env)\" first}"
: "${PYMW_BOINC_PROJECT_USER:?run eval \"\$(testbeds/boinc/up.sh --print-env)\" first}"
P=$PYMW_BOINC_PROJECT
U=$PYMW_BOINC_PROJECT_USER
BIN=$(readlink -f "$BIN")

as_user() {
    if [ "$(id -un)" = "$U" ]; then
        "$@"
    else
        runuser -u "$U" -- "$@"
    fi
}

case "$APP" in
*[!A-Za-z0-9_]* | "") echo "register-app.sh: app name $APP: letters, digits and _ only" >&2; exit 2 ;;
esac

# One registration at a time (config.xml is rewritten whole).
exec 9>>"/tmp/pymw-boinc-register.lock"
chmod 666 /tmp/pymw-boinc-register.lock 2>/dev/null || true
flock 9

cd "$P"
if ! grep -q "<name>$APP</name>" project.xml; then
    as_user python3 - "$APP" <<'EOF'
import sys
app = sys.argv[1]
path = "project.xml"
text = open(path).read()
entry = ("    <app>\n        <name>%s</name>\n        <user_friendly_name>pymw %s</user_friendly_name>\n"
         "    </app>\n" % (app, app))
text = text.replace("</boinc>", entry + "</boinc>", 1)
open(path + ".pymw-partial", "w").write(text)
import os
os.rename(path + ".pymw-partial", path)
EOF
    as_user bin/xadd >/dev/null
    echo "register-app: app $APP added to project.xml (bin/xadd)"
else
    echo "register-app: app $APP already in project.xml"
fi

# PYMW_BOINC_URL (the testbed's environment) is read by --boinc-url, which
# conflicts with --boinc-project.
report=$(as_user env -u PYMW_BOINC_URL "$BIN" __pymw boinc-install --boinc-project "$P" --boinc-app "$APP")
echo "register-app: $(printf '%s\n' "$report" | head -1)"

if grep -q "pymw_${APP}_assimilate" config.xml && grep -q "pymw_${APP}_validate_init" config.xml; then
    echo "register-app: config.xml already runs the app's validator and assimilator"
    exit 0
fi
printf '%s\n' "$report" | as_user python3 -c '
import re, sys, os
entries = re.findall(r"<daemon>.*?</daemon>", sys.stdin.read(), re.S)
if len(entries) != 2:
    sys.exit("register-app: boinc-install printed %d <daemon> entries, expected 2" % len(entries))
path = "config.xml"
text = open(path).read()
block = "".join("        " + e.strip().replace("\n", "\n        ") + "\n" for e in entries)
if "</daemons>" not in text:
    sys.exit("register-app: config.xml has no </daemons>")
text = text.replace("    </daemons>", block + "    </daemons>", 1) if "    </daemons>" in text \
    else text.replace("</daemons>", block + "</daemons>", 1)
open(path + ".pymw-partial", "w").write(text)
os.rename(path + ".pymw-partial", path)
'
echo "register-app: daemon entries of $APP added to config.xml; restarting the daemons"
# Without the lock's descriptor: the daemons would hold the lock forever.
as_user bin/stop >/dev/null 2>&1 9>&- || true
as_user bin/start >/dev/null 9>&-
if [ -n "${PYMW_BOINC_CLIENT:-}" ]; then
    boinccmd --host "$PYMW_BOINC_CLIENT" --passwd "${PYMW_BOINC_CLIENT_PASSWD:-}" \
        --project "$PYMW_BOINC_URL" update >/dev/null 2>&1 || true
fi
echo "register-app: daemons restarted, client told to update"
