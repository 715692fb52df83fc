#!/usr/bin/env bash
# The benchmark command: builds release binaries and measures Portcullis on this machine
# against its limits, writing docs/benchmarks.md (see crates/portcullis-bench).
#
#   bash scripts/bench.sh            full run (10 s per phase), rewrites docs/benchmarks.md
#   bash scripts/bench.sh --smoke    1 s per phase, report in target/, for CI: proves the
#                                    command works; asserts no timing
#
#   PORTCULLIS_BENCH_POSTGRES_URL    a PostgreSQL server for the scale phases (the command
#                                    creates and drops its own database there); without it
#                                    a throwaway cluster is started, pinned to core 0 beside
#                                    the server (apt installs PostgreSQL when missing)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

seconds=10
large_users=1000000
out="docs/benchmarks.md"
if [[ "${1:-}" == "--smoke" ]]; then
    seconds=1
    large_users=20000
    out="target/benchmarks-smoke.md"
fi

if ! command -v wrk >/dev/null 2>&1; then
    [[ "$(id -u)" -eq 0 ]] || die "wrk is missing: apt-get install wrk"
    log "installing wrk"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq wrk >/dev/null
fi
command -v taskset >/dev/null 2>&1 || die "taskset is missing (util-linux)"
[[ "$(nproc)" -ge 2 ]] || die "the benchmark pins the server and the load generator to different cores: 2 are needed"

if [[ -z "${PORTCULLIS_BENCH_POSTGRES_URL:-}" ]]; then
    # shellcheck source=lib/pg.sh
    source "$REPO_ROOT/scripts/lib/pg.sh"
    PG_PIN=(taskset -c 0)
    start_pg
    export PORTCULLIS_BENCH_POSTGRES_URL="$PG_URL" PORTCULLIS_BENCH_POSTGRES_PINNED=true
fi

log "cargo build --release (portcullis, portcullis-bench)"
cargo build --release --locked -p portcullis-server -p portcullis-bench

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO_ROOT/$TARGET_DIR"
log "measuring ($seconds s per phase); report: $out"
"$TARGET_DIR/release/portcullis-bench" run \
    --portcullis "$TARGET_DIR/release/portcullis" --out "$out" --seconds "$seconds" \
    --large-users "$large_users"
