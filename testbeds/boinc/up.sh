#!/usr/bin/env bash
# Bring up a real BOINC 7.20.5 project (server built from ../shared/boinc-src,
# MariaDB and Apache from Debian) with Debian's boinc-client attached to it,
# cached outside the checkout. Idempotent: with everything already up it checks
# it and returns in seconds. See README.md.
#
#   testbeds/boinc/up.sh              build (if needed) and start everything
#   testbeds/boinc/up.sh --print-env  print the export lines for a master
#
# Environment: PYMW_TESTBED_DIR (cache base, default /var/cache/pymw-testbed),
# PYMW_BOINC_TARBALL (the server sources; default ../shared/boinc-src/...).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set_paths

NUM_CPUS=8
SMOKE_TIMEOUT=${PYMW_BOINC_SMOKE_TIMEOUT:-180}
PACKAGES=(build-essential autoconf automake libtool pkg-config m4
    default-libmysqlclient-dev libssl-dev libcurl4-openssl-dev zlib1g-dev
    python3 python3-mysqldb python-is-python3 apache2 libapache2-mod-php
    php-cli php-mysql php-xml php-gd php-mbstring mariadb-server
    mariadb-client boinc-client)

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

print_env() {
    printf 'export PYMW_BOINC_PROJECT=%q\n' "$PROJECT"
    printf 'export PYMW_BOINC_PROJECT_USER=%q\n' "$PROJECT_USER"
    printf 'export PYMW_BOINC_URL=%q\n' "$PROJECT_URL"
    printf 'export PYMW_BOINC_CLIENT=%q\n' "$CLIENT_HOST"
    printf 'export PYMW_BOINC_CLIENT_PASSWD=%q\n' "$GUI_RPC_PASSWD"
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt rather than fail on its lock.
    local apt=(apt-get -o DPkg::Lock::Timeout=900 -q)
    "${apt[@]}" update >&2
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2
}

build_server() {
    local want
    [[ -r $TARBALL ]] || die "the BOINC server sources are missing: $TARBALL (see ../shared/boinc-src/README.md)"
    want=$(sha256sum "$TARBALL" | cut -d' ' -f1)
    [[ $(cat "$SERVER/$MARKER" 2>/dev/null) == "$want" ]] && return 0
    local t0=$SECONDS
    log "building the BOINC server from $TARBALL (log: $SERVER/build.log)"
    rm -rf "$SERVER"
    mkdir -p "$SERVER"
    tar -xJf "$TARBALL" -C "$SERVER"
    [[ -d $SERVER_SRC ]] || die "the tarball did not unpack into $SERVER_SRC"
    # GCC 12 needs <ctime> in sched/ (fixed upstream after 7.20.5); the
    # libraries come first, one directory at a time, because a parallel make
    # races on libboinc.la (../shared/boinc-src/README.md).
    if ! (
        cd "$SERVER_SRC"
        ./_autosetup
        ./configure -C --disable-client --disable-manager CXXFLAGS="-g -O2 -include ctime"
        make -C lib -j2 libboinc.la libboinc_crypt.la
        make -C api -j2 libboinc_api.la
        make -C sched -j2 libsched.la
        make -j2
    ) >"$SERVER/build.log" 2>&1; then
        tail -n 40 "$SERVER/build.log" >&2
        die "the BOINC server build failed; full log in $SERVER/build.log"
    fi
    printf '%s\n' "$want" >"$SERVER/$MARKER"
    log "server built in $((SECONDS - t0)) s"
}

ensure_users() {
    if ! id "$PROJECT_USER" >/dev/null 2>&1; then
        useradd --user-group --create-home --shell /bin/bash "$PROJECT_USER"
    fi
    # The web server's CGIs write the scheduler log and staged inputs.
    id -nG www-data | tr ' ' '\n' | grep -qx "$PROJECT_USER" || usermod -aG "$PROJECT_USER" www-data
    id -nG "$PROJECT_USER" | tr ' ' '\n' | grep -qx boinc || usermod -aG boinc "$PROJECT_USER"
    chmod 755 "$CACHE"
}

start_mariadb() {
    if ! mariadb_up; then
        log "starting MariaDB"
        service mariadb start >&2 9>&- || die "MariaDB did not start"
    fi
    local deadline=$((SECONDS + 60))
    until mariadb_up; do
        ((SECONDS < deadline)) || die "MariaDB does not answer"
        sleep 0.5
    done
    mysql -u root <<EOF
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWD';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
EOF
}

project_db_exists() {
    mysql -u root -N -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='$PROJECT_NAME' AND table_name='workunit'" 2>/dev/null | grep -qx 1
}

make_the_project() {
    if [[ -f $PROJECT/$MARKER ]] && project_db_exists; then
        return 0
    fi
    local t0=$SECONDS
    log "creating the project $PROJECT_NAME with make_project"
    mkdir -p "$PROJECTS"
    chown "$PROJECT_USER:$PROJECT_USER" "$PROJECTS"
    chmod 2775 "$PROJECTS"
    if ! (as_project_user "$SERVER_SRC/tools/make_project" --srcdir "$SERVER_SRC" \
        --project_root "$PROJECT" --url_base "$URL_BASE" --project_host "$HOST_SHORT" \
        --db_user "$DB_USER" --db_passwd "$DB_PASSWD" --db_host localhost \
        --delete_prev_inst --drop_db_first --no_query \
        "$PROJECT_NAME" "pymw testbed") >"$CACHE/make_project.log" 2>&1; then
        tail -n 30 "$CACHE/make_project.log" >&2
        die "make_project failed; full log in $CACHE/make_project.log"
    fi
    configure_project
    add_probe_app
    printf 'made %s\n' "$(date -u +%FT%TZ)" >"$PROJECT/$MARKER"
    log "project made in $((SECONDS - t0)) s"
}

# The fast knobs of ../shared/fixtures/boinc/timings.md, the scheduler link
# fix, and the daemons of the smoke app. Rewritten on every up so that a
# cached project on a machine with another name still starts.
configure_project() {
    as_project_user python3 - "$PROJECT/config.xml" "$HOST_SHORT" "$PROBE_APP" <<'EOF'
import sys
import xml.etree.ElementTree as ET

path, host, probe = sys.argv[1:4]
tree = ET.parse(path)
root = tree.getroot()
config = root.find("config")
knobs = {
    "host": host,
    "next_rpc_delay": "3",
    "min_sendwork_interval": "0",
    "max_wus_to_send": "50",
    "daily_result_quota": "10000",
    "one_result_per_user_per_wu": "0",
    "send_result_abort": "1",
    "dont_generate_upload_certificates": "1",
    "ignore_upload_certificates": "1",
    "disable_account_creation": "0",
    "disable_account_creation_rpc": "0",
    "account_creation_rpc_require_consent": "0",
    "enable_login_mustagree_termsofuse": "0",
    "log_dir": config.findtext("log_dir").rsplit("/log_", 1)[0] + "/log_" + host,
}
for name, value in knobs.items():
    element = config.find(name)
    if element is None:
        element = ET.SubElement(config, name)
    element.text = value
daemons = root.find("daemons")
wanted = [
    ("feeder -d 3 --sleep_interval 1", "feeder"),
    ("transitioner -d 3 --sleep_interval 1", "transitioner"),
    ("file_deleter -d 3 --sleep_interval 1", "file_deleter"),
    (f"sample_trivial_validator -d 3 --app {probe} --sleep_interval 1", f"sample_trivial_validator_{probe}"),
    (f"sample_assimilator -d 3 --app {probe} --sleep_interval 1", f"sample_assimilator_{probe}"),
]
# Keep daemons others added (pymw's validators and assimilators), replace ours.
# make_project's own feeder, transitioner and file_deleter have no pid_file.
ours = {name for _, name in wanted}
for daemon in list(daemons):
    program = (daemon.findtext("cmd") or "").split(" ")[0]
    if program in ("feeder", "transitioner", "file_deleter") or daemon.findtext("pid_file", "").removesuffix(".pid") in ours:
        daemons.remove(daemon)
for index, (cmd, name) in enumerate(wanted):
    daemon = ET.Element("daemon")
    ET.SubElement(daemon, "cmd").text = cmd
    ET.SubElement(daemon, "output").text = name + ".log"
    ET.SubElement(daemon, "pid_file").text = name + ".pid"
    daemons.insert(index, daemon)
ET.indent(tree, space="    ")
tree.write(path + ".new", encoding="unicode", xml_declaration=True)
EOF
    if ! cmp -s "$PROJECT/config.xml" "$PROJECT/config.xml.new"; then
        mv -f "$PROJECT/config.xml.new" "$PROJECT/config.xml"
        CONFIG_CHANGED=1
    else
        rm -f "$PROJECT/config.xml.new"
    fi
    # make_project's schedulers.txt has a second, broken link.
    printf '<!-- <scheduler>%s%s_cgi/cgi</scheduler> -->\n<link rel="boinc_scheduler" href="%s%s_cgi/cgi">\n' \
        "$URL_BASE" "$PROJECT_NAME" "$URL_BASE" "$PROJECT_NAME" |
        write_if_changed "$PROJECT/html/user/schedulers.txt" 664
    chown "$PROJECT_USER:$PROJECT_USER" "$PROJECT/html/user/schedulers.txt"
    # The scheduler CGI (www-data) writes its log there; bin/start makes them 0755.
    local d
    for d in log pid tmp; do
        install -d -m 2775 -o "$PROJECT_USER" -g "$PROJECT_USER" "$PROJECT/${d}_$HOST_SHORT"
    done
    # Remote submission (www-data) writes staged inputs into download/.
    find "$PROJECT/download" "$PROJECT/upload" -type d ! -perm -2070 -exec chmod g+ws {} + 2>/dev/null || true
}

# A tiny app for the smoke job: a shell script that copies its input to its
# output and says it finished (an app without the BOINC API must write
# boinc_finish_called: ../shared/notes/boinc.md).
add_probe_app() {
    grep -q "<name>$PROBE_APP</name>" "$PROJECT/project.xml" || {
        as_project_user python3 - "$PROJECT/project.xml" "$PROBE_APP" <<'EOF'
import sys
import xml.etree.ElementTree as ET
path, name = sys.argv[1:3]
tree = ET.parse(path)
app = ET.SubElement(tree.getroot(), "app")
ET.SubElement(app, "name").text = name
ET.SubElement(app, "user_friendly_name").text = "pymw testbed probe"
ET.indent(tree, space="    ")
tree.write(path, encoding="unicode")
EOF
    }
    as_project_user bin/xadd >"$CACHE/xadd.log" 2>&1 || {
        cat "$CACHE/xadd.log" >&2
        die "bin/xadd failed"
    }
    local dir=$PROJECT/apps/$PROBE_APP/1.0/x86_64-pc-linux-gnu
    as_project_user mkdir -p "$dir"
    as_project_user sh -c "cat >'$dir/${PROBE_APP}_1.0_x86_64-pc-linux-gnu'" <<'EOF'
#!/bin/sh
# pymw testbed probe: output = input, then tell the client we finished.
cp in out && printf '0\n' >boinc_finish_called
EOF
    chmod 755 "$dir/${PROBE_APP}_1.0_x86_64-pc-linux-gnu"
    printf 'y\ny\ny\n' | as_project_user bin/update_versions >"$CACHE/update_versions.log" 2>&1 || {
        cat "$CACHE/update_versions.log" >&2
        die "bin/update_versions failed"
    }
    as_project_user sh -c "cat >templates/${PROBE_APP}_in" <<'EOF'
<input_template>
    <file_info>
        <number>0</number>
    </file_info>
    <workunit>
        <file_ref>
            <file_number>0</file_number>
            <open_name>in</open_name>
            <copy_file/>
        </file_ref>
        <min_quorum>1</min_quorum>
        <target_nresults>1</target_nresults>
        <max_error_results>2</max_error_results>
        <max_total_results>4</max_total_results>
        <max_success_results>2</max_success_results>
        <rsc_fpops_est>1e9</rsc_fpops_est>
        <rsc_fpops_bound>1e12</rsc_fpops_bound>
        <delay_bound>600</delay_bound>
    </workunit>
</input_template>
EOF
    as_project_user sh -c "cat >templates/${PROBE_APP}_out" <<'EOF'
<output_template>
    <file_info>
        <name><OUTFILE_0/></name>
        <generated_locally/>
        <upload_when_present/>
        <max_nbytes>1000000</max_nbytes>
        <url><UPLOAD_URL/></url>
    </file_info>
    <result>
        <file_ref>
            <file_name><OUTFILE_0/></file_name>
            <open_name>out</open_name>
            <copy_file/>
        </file_ref>
    </result>
</output_template>
EOF
}

configure_apache() {
    CHANGED=0
    # Files the CGIs make must stay writable by the project's user.
    grep -q '^umask 002' /etc/apache2/envvars || {
        printf '\n# pymw BOINC testbed: CGIs share files with the project user\numask 002\n' >>/etc/apache2/envvars
        CHANGED=1
    }
    printf 'Include %s/%s.httpd.conf\n' "$PROJECT" "$PROJECT_NAME" |
        write_if_changed /etc/apache2/conf-available/pymw-boinc-testbed.conf 644
    [[ -e /etc/apache2/conf-enabled/pymw-boinc-testbed.conf ]] || {
        a2enconf -q pymw-boinc-testbed >&2
        CHANGED=1
    }
    [[ -e /etc/apache2/mods-enabled/cgi.load ]] || {
        a2enmod -q cgi >&2
        CHANGED=1
    }
    if apache_up; then
        ((CHANGED == 0)) || apachectl graceful >&2 9>&-
    else
        log "starting Apache"
        apachectl start >&2 9>&- || die "Apache did not start (see /var/log/apache2/error.log)"
    fi
    local deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "$PROJECT_URL"; do
        ((SECONDS < deadline)) || die "the project's page $PROJECT_URL does not answer"
        sleep 0.5
    done
}

# Every daemon of config.xml running (bin/status -v lists them).
daemons_running() {
    local status
    status=$(as_project_user bin/status -v 2>/dev/null) || return 1
    grep -q '^BOINC is ENABLED' <<<"$status" || return 1
    status=$(sed -n '/^DAEMON/,/^$/p' <<<"$status" | sed 1d)
    [[ -n $status ]] || return 1
    ! grep -qv ' running ' <<<"$(grep -v '^$' <<<"$status")"
}

# Daemons that bin/stop did not stop (a config.xml edited under them lists
# other pid files) still hold their locks, and new ones exit at once: the
# scheduler then answers "feeder not running". Daemons run from tmp_HOST.
stop_stray_daemons() {
    local pids p signal
    for signal in TERM KILL; do
        pids=()
        for p in /proc/[0-9]*; do
            [[ $(stat -c %U "$p" 2>/dev/null) == "$PROJECT_USER" ]] || continue
            [[ $(readlink "$p/cwd" 2>/dev/null) == "$PROJECT/tmp_$HOST_SHORT" ]] && pids+=("${p#/proc/}")
        done
        ((${#pids[@]} == 0)) && return 0
        kill -"$signal" "${pids[@]}" 2>/dev/null || true
        sleep 2
    done
}

start_daemons() {
    if [[ ${CONFIG_CHANGED:-0} == 1 ]] || ! daemons_running; then
        log "starting the project's daemons"
        as_project_user bin/stop >/dev/null 2>&1 || true
        stop_stray_daemons
        as_project_user bin/start >"$CACHE/start.log" 2>&1 9>&- || {
            cat "$CACHE/start.log" >&2
            die "bin/start failed"
        }
        # bin/stop leaves the project in maintenance for clients that poll
        # meanwhile ("Project requested delay of 3600 seconds"): tell the
        # client to ask again now.
        KICK_CLIENT=1
    fi
}

start_client() {
    install -d -m 0775 -o boinc -g boinc "$CLIENT"
    printf '%s\n' "$GUI_RPC_PASSWD" | write_if_changed "$CLIENT/gui_rpc_auth.cfg" 640
    cat <<EOF | write_if_changed "$CLIENT/cc_config.xml" 644
<cc_config>
  <log_flags>
    <task>1</task>
    <file_xfer>1</file_xfer>
    <sched_ops>1</sched_ops>
    <task_debug>1</task_debug>
  </log_flags>
  <options>
    <skip_cpu_benchmarks>1</skip_cpu_benchmarks>
    <report_results_immediately>1</report_results_immediately>
    <no_gpus>1</no_gpus>
    <allow_multiple_clients>1</allow_multiple_clients>
    <ncpus>$NUM_CPUS</ncpus>
    <max_file_xfers>32</max_file_xfers>
    <max_file_xfers_per_project>32</max_file_xfers_per_project>
  </options>
</cc_config>
EOF
    cat <<'EOF' | write_if_changed "$CLIENT/global_prefs_override.xml" 644
<global_preferences>
   <run_on_batteries>1</run_on_batteries>
   <run_if_user_active>1</run_if_user_active>
   <suspend_if_no_recent_input>0</suspend_if_no_recent_input>
   <suspend_cpu_usage>0</suspend_cpu_usage>
   <idle_time_to_run>0</idle_time_to_run>
   <max_ncpus_pct>100</max_ncpus_pct>
   <cpu_usage_limit>100</cpu_usage_limit>
   <work_buf_min_days>0.01</work_buf_min_days>
   <work_buf_additional_days>0.01</work_buf_additional_days>
   <disk_max_used_gb>10</disk_max_used_gb>
   <disk_min_free_gb>0.1</disk_min_free_gb>
</global_preferences>
EOF
    chown boinc:boinc "$CLIENT"/gui_rpc_auth.cfg "$CLIENT"/cc_config.xml "$CLIENT"/global_prefs_override.xml
    if ! client_pid >/dev/null; then
        log "starting the BOINC client ($NUM_CPUS simulated CPUs, GUI RPC on $CLIENT_HOST)"
        # fd 9 is the lock: the client must not inherit it.
        setsid runuser -u boinc -- boinc --dir "$CLIENT" --gui_rpc_port "$GUI_RPC_PORT" \
            --allow_multiple_clients </dev/null >>"$CACHE/client.log" 2>&1 9>&- &
        printf '%s\n' "$!" >"$CACHE/client.pid.runuser"
        local deadline=$((SECONDS + 30)) pid
        until client_cmd --get_cc_status >/dev/null 2>&1; do
            ((SECONDS < deadline)) || {
                tail -n 20 "$CACHE/client.log" >&2
                die "the BOINC client does not answer on $CLIENT_HOST"
            }
            sleep 0.5
        done
        pid=$(pgrep -u boinc -f -- "--dir $CLIENT" | head -n 1)
        printf '%s\n' "$pid" >"$CACHE/client.pid"
    elif [[ ${CHANGED:-0} == 1 ]]; then
        client_cmd --read_cc_config >/dev/null 2>&1 || true
        client_cmd --read_global_prefs_override >/dev/null 2>&1 || true
    fi
}

# An account for the client (made once through the project's RPC) and the
# client attached to the project with it.
attach_client() {
    local key
    if client_cmd --get_project_status 2>/dev/null | grep -q "master URL: $PROJECT_URL"; then
        return 0
    fi
    key=$(cat "$PROJECT/.pymw-client-account" 2>/dev/null || true)
    if [[ -z $key ]]; then
        key=$(client_cmd --create_account "$PROJECT_URL" testbed@pymw.invalid pymw-testbed testbed 2>&1 |
            sed -n 's/^account key: *//p')
        [[ -n $key ]] || key=$(client_cmd --lookup_account "$PROJECT_URL" testbed@pymw.invalid pymw-testbed 2>&1 |
            sed -n 's/^account key: *//p')
        [[ -n $key ]] || die "could not create an account on $PROJECT_URL for the client"
        printf '%s\n' "$key" >"$PROJECT/.pymw-client-account"
    fi
    log "attaching the client to $PROJECT_URL"
    client_cmd --project_attach "$PROJECT_URL" "$key" >&2
    local deadline=$((SECONDS + 60))
    until client_cmd --get_project_status 2>/dev/null | grep -q "master URL: $PROJECT_URL"; do
        ((SECONDS < deadline)) || {
            tail -n 20 "$CACHE/client.log" >&2
            die "the client did not attach to $PROJECT_URL"
        }
        sleep 0.5
    done
}

# One job of the probe app, from create_work to the assimilated output.
run_smoke_job() {
    local name input t0=$SECONDS deadline=$((SECONDS + SMOKE_TIMEOUT)) result
    name=smoke_$(date +%s)_$$
    input=$name.in
    as_project_user sh -c "printf 'pymw testbed %s\n' '$name' >'/tmp/$input' && bin/stage_file --copy '/tmp/$input' >/dev/null && rm -f '/tmp/$input'" ||
        die "bin/stage_file failed"
    as_project_user bin/create_work --appname "$PROBE_APP" --wu_name "$name" "$input" >"$CACHE/smoke.log" 2>&1 || {
        cat "$CACHE/smoke.log" >&2
        die "bin/create_work failed"
    }
    client_cmd --project "$PROJECT_URL" update >/dev/null 2>&1 || true
    result=$PROJECT/sample_results/$name
    local next_kick=$((SECONDS + 15))
    until [[ -f $result ]]; do
        # A client that polled while the daemons restarted defers for an
        # hour; an update request overrides that.
        if ((SECONDS >= next_kick)); then
            client_cmd --project "$PROJECT_URL" update >/dev/null 2>&1 || true
            next_kick=$((SECONDS + 15))
        fi
        if ((SECONDS >= deadline)); then
            print_logs
            die "the smoke job $name was not assimilated within $SMOKE_TIMEOUT s (log tails above)"
        fi
        sleep 0.5
    done
    grep -q "pymw testbed $name" "$result" || die "the smoke job's output is wrong: $(head -c 200 "$result")"
    log "smoke job done in $((SECONDS - t0)) s"
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
    need_root "it installs packages and starts services"
    local t0=$SECONDS
    take_lock 900
    set_paths
    install_packages
    build_server
    ensure_users
    start_mariadb
    CONFIG_CHANGED=0
    make_the_project
    configure_project
    configure_apache
    start_daemons
    CHANGED=0
    start_client
    attach_client
    [[ ${KICK_CLIENT:-0} == 1 ]] && { client_cmd --project "$PROJECT_URL" update >/dev/null 2>&1 || true; }
    print_env | write_if_changed "$CACHE/env.sh" 644
    if [[ -f $CACHE/ready ]] && [[ ${KICK_CLIENT:-0} == 0 ]]; then
        log "project already up, checked in $((SECONDS - t0)) s"
        return 0
    fi
    run_smoke_job
    touch "$CACHE/ready"
    log "project up at $PROJECT_URL in $((SECONDS - t0)) s; project dir $PROJECT (user $PROJECT_USER)"
    log "use it with: eval \"\$($0 --print-env)\""
}

main "$@"
