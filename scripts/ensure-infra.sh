#!/usr/bin/env bash
# Makes sure the infrastructure waihu needs is up:
#   * a NATS server with JetStream at NATS_URL       (default nats://127.0.0.1:4222)
#   * a PostgreSQL server at DATABASE_URL            (default postgres://postgres@127.0.0.1:5432/waihu)
#     and the database named in DATABASE_URL.
#
# Idempotent. Prints a single summary line when everything is already fine.
# If a server is missing and its URL points at this machine (localhost/127.0.0.1/::1),
# it installs the Debian package if needed (apt-get, needs root or password-less sudo)
# and starts the server. For remote URLs it only checks and reports.
#
# Environment:
#   NATS_URL, DATABASE_URL           as above
#   WAIHU_INFRA_TIMEOUT              seconds to wait for a server to come up (default 20)
#   WAIHU_INFRA_LOG                  where apt/pg output goes (default /tmp/waihu-ensure-infra.log)
set -euo pipefail

NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/waihu}"
TIMEOUT="${WAIHU_INFRA_TIMEOUT:-20}"
LOG="${WAIHU_INFRA_LOG:-${TMPDIR:-/tmp}/waihu-ensure-infra.log}"

APT_UPDATED=0
NATS_NOTE=""
PG_NOTE=""
DB_NOTE=""

say() { echo "ensure-infra: $*" >&2; }
die() {
    echo "ensure-infra: ERROR: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# helpers

as_root() {
    if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root to run '$*' (run as root, configure password-less sudo, or start the service yourself)"
    fi
}

show_log_tail() {
    if [[ -s $LOG ]]; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 25 "$LOG" >&2 || true
        echo "----" >&2
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update (output in $LOG)"
        if ! as_root apt-get update -qq >>"$LOG" 2>&1; then
            show_log_tail
            die "apt-get update failed"
        fi
        APT_UPDATED=1
    fi
    say "installing $* (output in $LOG)"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        </dev/null >>"$LOG" 2>&1; then
        show_log_tail
        die "apt-get install $* failed"
    fi
}

is_local_host() {
    case "$1" in
        "" | localhost | localhost.localdomain | 127.* | ::1 | "[::1]") return 0 ;;
        *) return 1 ;;
    esac
}

# URL pieces. Sets URL_SCHEME URL_USERINFO URL_HOST URL_PORT URL_PATH URL_QUERY.
parse_url() {
    local url="$1" default_port="$2" rest authority hostport
    if [[ $url == *://* ]]; then
        URL_SCHEME="${url%%://*}"
        rest="${url#*://}"
    else
        URL_SCHEME=""
        rest="$url"
    fi
    URL_QUERY=""
    if [[ $rest == *\?* ]]; then
        URL_QUERY="?${rest#*\?}"
        rest="${rest%%\?*}"
    fi
    authority="${rest%%/*}"
    if [[ $rest == */* ]]; then URL_PATH="${rest#*/}"; else URL_PATH=""; fi
    if [[ $authority == *@* ]]; then
        URL_USERINFO="${authority%@*}"
        hostport="${authority##*@}"
    else
        URL_USERINFO=""
        hostport="$authority"
    fi
    if [[ $hostport == \[* ]]; then # [ipv6]:port
        URL_HOST="${hostport#\[}"
        URL_HOST="${URL_HOST%%\]*}"
        rest="${hostport#*\]}"
        URL_PORT="${rest#:}"
    elif [[ $hostport == *:* ]]; then
        URL_HOST="${hostport%:*}"
        URL_PORT="${hostport##*:}"
    else
        URL_HOST="$hostport"
        URL_PORT=""
    fi
    [[ -n $URL_HOST ]] || URL_HOST="127.0.0.1"
    [[ -n $URL_PORT ]] || URL_PORT="$default_port"
    [[ $URL_PORT =~ ^[0-9]+$ ]] || die "cannot parse the port of '$url'"
}

url_decode() {
    local s="${1//+/ }"
    printf '%b' "${s//%/\\x}"
}

# ---------------------------------------------------------------------------------------------
# NATS

# Prints the first line the server sends (its INFO) or nothing; never fails.
nats_info() {
    local host="$1" port="$2"
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        IFS= read -r -t 3 line <&3 || true
        exec 3<&- 3>&-
        printf "%s\n" "$line"
    ' "$host" "$port" 2>/dev/null || true
}

# 0 = NATS with JetStream, 1 = nothing listening, 2 = something else / NATS without JetStream.
nats_probe() {
    local info
    info="$(nats_info "$1" "$2")"
    NATS_INFO="$info"
    if [[ -z $info ]]; then
        # Maybe something accepts connections but says nothing: distinguish from "closed".
        # shellcheck disable=SC2016 # expanded by the inner bash
        if timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; then return 2; fi
        return 1
    fi
    [[ $info == INFO* ]] || return 2
    [[ $info == *'"jetstream":true'* ]] || return 2
    return 0
}

nats_version() { sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$1"; }

nats_start_local() {
    local host="$1" port="$2" bin bind sd logf pidf rc deadline
    bin=/usr/sbin/nats-server
    if [[ ! -x $bin ]]; then
        if command -v nats-server >/dev/null 2>&1; then
            bin="$(command -v nats-server)"
        else
            apt_install nats-server
            [[ -x $bin ]] || die "nats-server was installed but $bin is missing"
            # On systemd hosts the package starts its own service on 4222 without JetStream.
            if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1 &&
                systemctl is-active --quiet nats-server.service 2>/dev/null; then
                say "stopping the packaged nats-server.service (it runs without JetStream)"
                as_root systemctl disable --now nats-server.service >>"$LOG" 2>&1 || true
            fi
            NATS_NOTE="installed nats-server, "
        fi
    fi

    case "$host" in
        localhost | localhost.localdomain | "") bind=127.0.0.1 ;;
        *) bind="$host" ;;
    esac
    if [[ $port == 4222 ]]; then
        sd=/var/lib/nats-server logf=/var/log/nats-server.log pidf=/run/nats-server.pid
    else
        sd=/var/lib/nats-server-$port logf=/var/log/nats-server-$port.log pidf=/run/nats-server-$port.pid
    fi
    say "starting nats-server with JetStream on $bind:$port (store $sd, log $logf)"
    as_root mkdir -p "$sd"
    # --pidfile keeps start-stop-daemon from mistaking a nats-server on another port for ours.
    if ! as_root start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$pidf" \
        --exec "$bin" -- -a "$bind" -p "$port" -js -sd "$sd" -l "$logf" >>"$LOG" 2>&1; then
        show_log_tail
        die "could not start nats-server on $bind:$port"
    fi

    deadline=$((SECONDS + TIMEOUT))
    while :; do
        rc=0
        nats_probe "$host" "$port" || rc=$?
        [[ $rc -eq 0 ]] && break
        if ((SECONDS >= deadline)); then
            [[ -r $logf ]] && { echo "---- last lines of $logf ----" >&2; tail -n 20 "$logf" >&2; }
            die "nats-server on $host:$port did not come up with JetStream within ${TIMEOUT}s"
        fi
        sleep 0.5
    done
    NATS_NOTE="${NATS_NOTE}started nats-server (pid $(cat "$pidf" 2>/dev/null || echo '?'), store $sd)"
}

ensure_nats() {
    local first="${NATS_URL%%,*}" rc=0 host port
    first="${first// /}"
    parse_url "$first" 4222
    host="$URL_HOST" port="$URL_PORT"
    NATS_ADDR="$host:$port"
    nats_probe "$host" "$port" || rc=$?
    case $rc in
        0)
            NATS_NOTE="running $(nats_version "$NATS_INFO"), JetStream on"
            return 0
            ;;
        2)
            if [[ $NATS_INFO == INFO* ]]; then
                die "NATS at $host:$port is running WITHOUT JetStream; restart it with -js (e.g. nats-server -a $host -p $port -js -sd /var/lib/nats-server)"
            fi
            [[ -n $NATS_INFO ]] ||
                die "$host:$port (from NATS_URL) accepts connections but sent no NATS INFO line; is it a NATS server?"
            die "$host:$port (from NATS_URL) is not a NATS server (it sent: '${NATS_INFO:0:80}')"
            ;;
    esac
    is_local_host "$host" ||
        die "NATS at $host:$port (from NATS_URL) is not reachable, and it is not local so it will not be started here"
    nats_start_local "$host" "$port"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_ready() { pg_isready -q -h "$1" -p "$2" -t 3 >/dev/null 2>&1; }

ensure_pg_client() {
    if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
        apt_install postgresql-client
        command -v psql >/dev/null 2>&1 || die "postgresql-client installed but psql is still missing"
    fi
}

PG_HBA_MARK="# added by waihu scripts/ensure-infra.sh: local TCP without password"

pg_add_trust() {
    local hba="$1"
    [[ -f $hba ]] || die "cannot find $hba"
    if grep -qF "$PG_HBA_MARK" "$hba"; then return 1; fi
    say "allowing password-less TCP connections from 127.0.0.1 and ::1 in $hba"
    as_root sed -i "1i $PG_HBA_MARK\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust" "$hba"
    return 0
}

pg_start_local() {
    local host="$1" port="$2" installed=0 created=0 ver name status line deadline

    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
        apt_install postgresql postgresql-client
        installed=1
    fi
    command -v pg_lsclusters >/dev/null 2>&1 || die "pg_lsclusters missing after installing postgresql"

    # Socket directory lives on /run, which may be empty after a reboot/container restart.
    if [[ ! -d /var/run/postgresql ]]; then
        as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    fi

    line="$(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print $1, $2, $4; exit }')"
    if [[ -z $line ]]; then
        ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
        [[ -n $ver ]] || die "no PostgreSQL server version found under /usr/lib/postgresql"
        name=main
        [[ -e /etc/postgresql/$ver/main ]] && name="waihu-$port"
        say "creating PostgreSQL cluster $ver/$name on port $port"
        if ! as_root pg_createcluster -p "$port" "$ver" "$name" >>"$LOG" 2>&1; then
            show_log_tail
            die "pg_createcluster $ver $name failed"
        fi
        created=1
        status=down
    else
        read -r ver name status <<<"$line"
    fi

    local hba_changed=0
    if [[ $installed -eq 1 || $created -eq 1 ]]; then
        if pg_add_trust "/etc/postgresql/$ver/$name/pg_hba.conf"; then hba_changed=1; fi
    fi

    if [[ $status != online* ]]; then
        say "starting PostgreSQL cluster $ver/$name (port $port)"
        if ! as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >>"$LOG" 2>&1; then
            show_log_tail
            [[ -r /var/log/postgresql/postgresql-$ver-$name.log ]] &&
                tail -n 20 "/var/log/postgresql/postgresql-$ver-$name.log" >&2
            die "could not start PostgreSQL cluster $ver/$name"
        fi
    elif [[ $hba_changed -eq 1 ]]; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >>"$LOG" 2>&1 || true
    fi

    deadline=$((SECONDS + TIMEOUT))
    until pg_ready "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            [[ -r /var/log/postgresql/postgresql-$ver-$name.log ]] &&
                tail -n 20 "/var/log/postgresql/postgresql-$ver-$name.log" >&2
            die "PostgreSQL cluster $ver/$name is not accepting connections on $host:$port after ${TIMEOUT}s"
        fi
        sleep 0.5
    done
    PG_NOTE=""
    [[ $installed -eq 1 ]] && PG_NOTE="installed postgresql, "
    [[ $created -eq 1 ]] && PG_NOTE="${PG_NOTE}created cluster, "
    PG_NOTE="${PG_NOTE}started cluster $ver/$name"
}

ensure_postgres() {
    local scheme userinfo host port path query user dbname admin_url exists
    case "$DATABASE_URL" in
        postgres://* | postgresql://*) ;;
        *) die "DATABASE_URL must start with postgres:// or postgresql:// (got '${DATABASE_URL%%://*}://...')" ;;
    esac
    parse_url "$DATABASE_URL" 5432
    scheme="$URL_SCHEME" userinfo="$URL_USERINFO" host="$URL_HOST" port="$URL_PORT"
    path="$URL_PATH" query="$URL_QUERY"
    PG_ADDR="$host:$port"

    ensure_pg_client

    if pg_ready "$host" "$port"; then
        PG_NOTE="running"
    else
        is_local_host "$host" ||
            die "PostgreSQL at $host:$port (from DATABASE_URL) is not accepting connections, and it is not local so it will not be started here"
        pg_start_local "$host" "$port"
    fi

    # The database named in the URL (libpq default: the user name).
    user="$(url_decode "${userinfo%%:*}")"
    [[ -n $user ]] || user="${PGUSER:-$(id -un)}"
    dbname="$(url_decode "$path")"
    [[ -n $dbname ]] || dbname="$user"
    DB_NAME="$dbname"

    local hostpart="$host"
    [[ $host == *:* ]] && hostpart="[$host]"
    admin_url="$scheme://${userinfo:+$userinfo@}$hostpart:$port/postgres$query"

    local lit="${dbname//\'/\'\'}" ident="${dbname//\"/\"\"}" err
    if ! exists="$(PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 -d "$admin_url" \
        -c "SELECT 1 FROM pg_database WHERE datname = '$lit'" 2>&1 </dev/null)"; then
        err="$exists"
        if [[ $err == *password* || $err == *authentication* ]]; then
            die "cannot log in to PostgreSQL at $host:$port as '$user': ${err}
  hint: put the password in DATABASE_URL, or allow trust for local TCP, e.g. add
        'host all all 127.0.0.1/32 trust' at the top of pg_hba.conf and reload"
        fi
        die "cannot query PostgreSQL at $host:$port as '$user': $err"
    fi
    if [[ $exists == 1 ]]; then
        DB_NOTE="exists"
        return 0
    fi
    if ! err="$(PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 -d "$admin_url" \
        -c "CREATE DATABASE \"$ident\"" 2>&1 </dev/null)"; then
        # Somebody else may have created it in the meantime.
        [[ $err == *"already exists"* ]] || die "CREATE DATABASE \"$dbname\" failed: $err"
    fi
    DB_NOTE="created"
}

# ---------------------------------------------------------------------------------------------

main() {
    command -v timeout >/dev/null 2>&1 || die "'timeout' (coreutils) is required"
    ensure_nats
    ensure_postgres
    echo "infra: NATS $NATS_ADDR ($NATS_NOTE); PostgreSQL $PG_ADDR ($PG_NOTE); database '$DB_NAME' ($DB_NOTE)"
}

main "$@"
