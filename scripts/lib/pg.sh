# PostgreSQL helpers shared by scripts/test.sh and scripts/bench.sh (sourced, not run):
# a throwaway cluster on loopback, owned by an unprivileged user, durability off.
# The caller defines log and die. start_pg sets PG_URL and stops the cluster on exit.
# PORTCULLIS_TEST_PG_PORT picks its port; PORTCULLIS_TEST_KEEP_PG=1 keeps its directory.

PG_BIN=""
PG_TMP=""
PG_RUN=()          # prefix that runs a command as the cluster's owner
PG_PIN=()          # prefix for the server process (the benchmark pins it to a core)
PG_URL=""          # set by start_pg

# Newest installed server's bin dir, or nothing.
find_pg_bin() {
    local initdb newest=""
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$initdb" ]] || continue
        newest="$(printf '%s\n%s\n' "$newest" "$initdb" | sort -V | tail -n 1)"
    done
    [[ -n "$newest" ]] && dirname "$newest"
    return 0
}

ensure_pg_installed() {
    PG_BIN="$(find_pg_bin)"
    if [[ -z "$PG_BIN" ]]; then
        log "PostgreSQL server not found; installing it with apt-get"
        [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is not installed and this is not root: apt-get install postgresql"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        PG_BIN="$(find_pg_bin)"
        [[ -n "$PG_BIN" ]] || die "apt-get installed postgresql but no initdb was found under /usr/lib/postgresql"
    fi
}

# initdb and postgres refuse to run as root, so as root the cluster belongs to
# the unprivileged `postgres` system user; otherwise to the current user.
setup_pg_user() {
    if [[ "$(id -u)" -eq 0 ]]; then
        if ! id -u postgres >/dev/null 2>&1; then
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        PG_RUN=(runuser -u postgres --)
    else
        PG_RUN=()
    fi
}

# Run a PostgreSQL server command as the cluster's owner, from a directory it can read.
as_pg() {
    (cd "$PG_TMP" && "${PG_RUN[@]}" "$@")
}

free_port() {
    local port
    for port in $(seq 55432 55532); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port in 55432-55532"
}

stop_pg() {
    if [[ -n "$PG_TMP" && -d "$PG_TMP" ]]; then
        if [[ -f "$PG_TMP/data/postmaster.pid" ]]; then
            as_pg "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
                || as_pg "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 \
                || true
        fi
        if [[ "${PORTCULLIS_TEST_KEEP_PG:-}" == 1 ]]; then
            log "kept PostgreSQL directory $PG_TMP"
        else
            rm -rf "$PG_TMP"
        fi
    fi
}

start_pg() {
    ensure_pg_installed
    setup_pg_user

    # Unix socket paths are limited to ~107 bytes, so stay directly under /tmp.
    PG_TMP="$(mktemp -d /tmp/portcullis-pg.XXXXXX)"
    trap stop_pg EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$PG_TMP/sock"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown -R postgres: "$PG_TMP"
    fi

    local port="${PORTCULLIS_TEST_PG_PORT:-$(free_port)}"
    log "starting PostgreSQL ($("$PG_BIN/postgres" --version)) on 127.0.0.1:$port in $PG_TMP"

    as_pg "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_TMP/initdb.log" 2>&1 \
        || { cat "$PG_TMP/initdb.log" >&2; die "initdb failed"; }

    # A throwaway cluster: durability off, enough connections for parallel tests.
    cat >>"$PG_TMP/data/postgresql.conf" <<EOF

# --- portcullis test cluster ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_TMP/sock'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

    if ! as_pg "${PG_PIN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 start >/dev/null; then
        cat "$PG_TMP/server.log" >&2 || true
        die "PostgreSQL did not start"
    fi

    # Superuser over the unix socket (trust) creates the test role; the tests
    # connect over TCP with the password, and create one database per test.
    "$PG_BIN/psql" -h "$PG_TMP/sock" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE ROLE portcullis LOGIN SUPERUSER PASSWORD 'portcullis';
CREATE DATABASE portcullis OWNER portcullis;
SQL

    PG_URL="postgres://portcullis:portcullis@127.0.0.1:$port/portcullis"
}
