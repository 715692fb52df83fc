#!/usr/bin/env bash
# The project's single test command. It sets up everything it needs on a
# fresh Debian machine and runs, in order:
#
#   1. a throwaway PostgreSQL cluster on loopback (PORTCULLIS_TEST_POSTGRES_URL),
#   2. a Python venv (.venv) and a real SMTP server (aiosmtpd) on loopback whose
#      maildir the account-security tests read,
#   3. cargo build + cargo test for the whole workspace (SQLite and PostgreSQL),
#   4. the interoperability tests (tests/interop) against the built binary,
#      driving the Flask quickstart in examples/flask-quickstart,
#   5. the browser tests (tests/e2e): Debian's chromium, driven by playwright-core,
#      through the Finance Coach in examples/finance-coach (apt installs chromium,
#      nodejs and npm when missing; screenshots go to test-artifacts/e2e),
#   6. a one-second smoke of the benchmark command (scripts/bench.sh --smoke).
#
# Environment:
#   CARGO_TARGET_DIR              honoured; the binary is $CARGO_TARGET_DIR/debug/portcullis
#   PORTCULLIS_TEST_POSTGRES_URL  if already set, that server is used and no cluster
#                                 is started (its user needs CREATEDB)
#   PORTCULLIS_TEST_PG_PORT       port for the throwaway cluster (default: a free one)
#   PORTCULLIS_TEST_ONLY_PG=1     start PostgreSQL, check it answers, stop and exit
#   PORTCULLIS_TEST_KEEP_PG=1     keep the cluster's directory on exit (for debugging)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

PG_BIN=""
PG_TMP=""
PG_RUN=()          # prefix that runs a command as the cluster's owner

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

    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 start >/dev/null; then
        cat "$PG_TMP/server.log" >&2 || true
        die "PostgreSQL did not start"
    fi

    # Superuser over the unix socket (trust) creates the test role; the tests
    # connect over TCP with the password, and create one database per test.
    "$PG_BIN/psql" -h "$PG_TMP/sock" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE ROLE portcullis LOGIN SUPERUSER PASSWORD 'portcullis';
CREATE DATABASE portcullis OWNER portcullis;
SQL

    export PORTCULLIS_TEST_POSTGRES_URL="postgres://portcullis:portcullis@127.0.0.1:$port/portcullis"
}

check_pg() {
    local psql="${PG_BIN:-$(find_pg_bin)}/psql"
    [[ -x "$psql" ]] || psql="psql"
    "$psql" "$PORTCULLIS_TEST_POSTGRES_URL" -X -q -t -A -v ON_ERROR_STOP=1 -c 'select 1' >/dev/null \
        || die "cannot connect to $PORTCULLIS_TEST_POSTGRES_URL"
    log "PostgreSQL ready: ${PORTCULLIS_TEST_POSTGRES_URL/:portcullis@/:***@}"
}

if [[ -n "${PORTCULLIS_TEST_POSTGRES_URL:-}" ]]; then
    log "using the PostgreSQL server given in PORTCULLIS_TEST_POSTGRES_URL"
else
    start_pg
fi
check_pg
# The Rust tests run every storage test on PostgreSQL too, and fail if it is missing.
export PORTCULLIS_TEST_REQUIRE_POSTGRES=1

if [[ "${PORTCULLIS_TEST_ONLY_PG:-}" == 1 ]]; then
    log "PORTCULLIS_TEST_ONLY_PG=1: stopping here"
    exit 0
fi

# --------------------------------------------------------------------------
# Rust workspace
# --------------------------------------------------------------------------

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo build --workspace --locked"
cargo build --workspace --locked

VENV="$REPO_ROOT/.venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating Python virtualenv in .venv"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's system Python ships venv separately.
        [[ "$(id -u)" -eq 0 ]] || die "python3 -m venv failed: install python3-venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
fi
log "installing tests/interop/requirements.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

# A real SMTP server on loopback (aiosmtpd, from the venv) receives the account emails
# the Rust tests send; they read them from its maildir and follow their links.
SMTP_TMP="$(mktemp -d)"
mkdir -p "$SMTP_TMP/mail/cur" "$SMTP_TMP/mail/new" "$SMTP_TMP/mail/tmp"
SMTP_PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$SMTP_TMP/mail" \
    >"$SMTP_TMP/smtpd.log" 2>&1 &
SMTP_PID=$!
stop_smtp() {
    kill "$SMTP_PID" 2>/dev/null || true
    rm -rf "$SMTP_TMP"
}
trap 'stop_smtp; if [[ -n "${PG_TMP:-}" ]]; then stop_pg; fi' EXIT
for _ in $(seq 1 50); do
    "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $SMTP_PORT), 1)" 2>/dev/null && break
    sleep 0.2
done
export PORTCULLIS_TEST_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export PORTCULLIS_TEST_MAILDIR="$SMTP_TMP/mail"
export PORTCULLIS_TEST_REQUIRE_SMTP=1
log "SMTP test server (aiosmtpd) on 127.0.0.1:$SMTP_PORT"

log "cargo test --workspace --locked"
cargo test --workspace --locked

# --------------------------------------------------------------------------
# Interoperability tests (Python)
# --------------------------------------------------------------------------

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO_ROOT/$TARGET_DIR"
PORTCULLIS_BIN="$TARGET_DIR/debug/portcullis"
[[ -x "$PORTCULLIS_BIN" ]] || die "binary not found: $PORTCULLIS_BIN"

log "interop tests against $PORTCULLIS_BIN"
"$VENV/bin/python" tests/interop/run_interop.py --portcullis "$PORTCULLIS_BIN"

# --------------------------------------------------------------------------
# End-to-end tests in a real browser: Debian's Chromium, driven by playwright-core
# --------------------------------------------------------------------------

apt_install() {
    [[ "$(id -u)" -eq 0 ]] || die "$* missing: install it (apt-get install $*)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
}
if [[ ! -x /usr/bin/chromium ]]; then
    log "installing Debian's chromium"
    apt_install chromium
fi
# playwright-core 1.61 needs Node.js 18 or newer, which Debian 12's nodejs package is.
if ! command -v node >/dev/null 2>&1; then
    log "installing nodejs"
    apt_install nodejs
fi
if ! command -v npm >/dev/null 2>&1; then
    log "installing npm"
    apt_install npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 18 ]] || die "Node.js $node_major is too old for the browser tests (18 or newer is needed)"

log "installing tests/e2e (playwright-core, no browser download)"
(cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
ARTIFACTS="$REPO_ROOT/test-artifacts/e2e"
log "browser end-to-end tests (screenshots in $ARTIFACTS)"
node tests/e2e/coach.e2e.mjs --portcullis "$PORTCULLIS_BIN" \
    --coach "$TARGET_DIR/debug/finance-coach" --artifacts "$ARTIFACTS"

# --------------------------------------------------------------------------
# The benchmark command, as a short smoke so it cannot rot (no timing is asserted)
# --------------------------------------------------------------------------

log "benchmark smoke (scripts/bench.sh --smoke)"
PORTCULLIS_BENCH_POSTGRES_URL="$PORTCULLIS_TEST_POSTGRES_URL" bash scripts/bench.sh --smoke
