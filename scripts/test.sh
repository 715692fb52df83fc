#!/usr/bin/env bash
# The project's single test command. It sets up everything it needs on a
# fresh Debian machine and runs, in order:
#
#   1. a throwaway PostgreSQL cluster on loopback (PORTCULLIS_TEST_POSTGRES_URL),
#   2. a Python venv (.venv) and a real SMTP server (aiosmtpd) on loopback whose
#      maildir the account-security tests read,
#   3. cargo build, cargo clippy (-D warnings) and cargo test for the whole workspace
#      (SQLite and PostgreSQL; PostgreSQL test databases are dropped as each test ends),
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

# shellcheck source=lib/pg.sh
source "$REPO_ROOT/scripts/lib/pg.sh"

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
    export PORTCULLIS_TEST_POSTGRES_URL="$PG_URL"
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

log "cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

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
smtp_ready=0
for _ in $(seq 1 50); do
    if "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $SMTP_PORT), 1)" 2>/dev/null; then
        smtp_ready=1
        break
    fi
    kill -0 "$SMTP_PID" 2>/dev/null || break
    sleep 0.2
done
if [[ "$smtp_ready" != 1 ]]; then
    cat "$SMTP_TMP/smtpd.log" >&2 || true
    die "the SMTP test server (aiosmtpd) did not accept connections on 127.0.0.1:$SMTP_PORT"
fi
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
"$VENV/bin/python" -m pytest tests/interop -p no:cacheprovider --portcullis "$PORTCULLIS_BIN"

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
