#!/usr/bin/env bash
# A replicated deployment under load and crashes: three `junction serve` replicas on one
# PostgreSQL behind nginx, driven with mixed load for 5 minutes while one replica is
# SIGKILLed and restarted every 30 seconds and PostgreSQL is restarted once.
#
#   bash bench/replicas.sh
#
# `junction-bench replicas` runs the replicas, nginx in front of them (retrying on another
# replica only what is safe to send again), two real OAuth servers (oidc-provider from
# tests/peers, rotating refresh tokens; the instances called throughout get 2-second
# access tokens) and the app's event receiver. The load: provider calls through instances
# (GET /proxy/me, POST /proxy/echo), provisioning (an authorization and POST /instances
# with its code), webhooks in and notifications out. Afterwards it checks that every
# instance an accepted provisioning created still exists and that a call through it
# succeeds, that every accepted webhook was delivered, and counts the OAuth servers'
# refresh grants and refusals. PostgreSQL is this script's own (scripts/pg-test.sh on
# JUNCTION_PG_PORT, default 55440), restarted with `pg-test.sh stop` and `start`. The
# tables go to bench/results/replicas.md (the report as JSON beside it).
#
# Environment:
#   BENCH_DURATION          seconds of load (default 300)
#   BENCH_KILL_EVERY        seconds between kills (default 30)
#   BENCH_REPLICAS          replicas (default 3)
#   BENCH_PG_RESTART_AT     seconds into the load when PostgreSQL restarts (default 45%
#                           of the duration, between two kills; 0 = no restart)
#   BENCH_PG_DOWN           seconds PostgreSQL stays stopped (default 3)
#   BENCH_HOT_INSTANCES     instances with 2-second tokens called throughout (default 20)
#   BENCH_CALLERS           concurrent provider callers (default 8)
#   BENCH_PROVISION_EVERY_MS  milliseconds between provisionings (default 1000)
#   BENCH_EVENT_RATE        webhooks a second (default 20)
#   BENCH_RESULTS           where the tables go (default bench/results/replicas.md)
#   BENCH_NO_BUILD          1 = use the existing release binaries without cargo
#   BENCH_KEEP_TMP          1 = keep the temporary directory (replica logs, nginx's files)
#   JUNCTION_PG_PORT, JUNCTION_PG_DIR   the PostgreSQL this script starts
#   JUNCTION_TEST_PEERS_DIR  the OAuth servers (default tests/peers, after
#                           `bash scripts/setup-test-deps.sh`)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
DURATION=${BENCH_DURATION:-300}
KILL_EVERY=${BENCH_KILL_EVERY:-30}
REPLICAS=${BENCH_REPLICAS:-3}
RESTART_AT=${BENCH_PG_RESTART_AT:-$((DURATION * 45 / 100))}
PG_DOWN=${BENCH_PG_DOWN:-3}
HOT=${BENCH_HOT_INSTANCES:-20}
CALLERS=${BENCH_CALLERS:-8}
PROVISION_EVERY_MS=${BENCH_PROVISION_EVERY_MS:-1000}
EVENT_RATE=${BENCH_EVENT_RATE:-20}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/replicas.md}
NO_BUILD=${BENCH_NO_BUILD:-0}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
BIN=$RELEASE/junction
BENCH_BIN=$RELEASE/junction-bench
export JUNCTION_PG_PORT=${JUNCTION_PG_PORT:-55440}
export JUNCTION_PG_DIR=${JUNCTION_PG_DIR:-/tmp/junction-bench-replicas-pg-$JUNCTION_PG_PORT}
export JUNCTION_TEST_PEERS_DIR=${JUNCTION_TEST_PEERS_DIR:-$ROOT/tests/peers}

BENCH_TAG=bench/replicas
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for v in DURATION KILL_EVERY REPLICAS RESTART_AT PG_DOWN HOT CALLERS PROVISION_EVERY_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number"
done
((REPLICAS >= 2)) || die "BENCH_REPLICAS must be at least 2"
[[ -d $JUNCTION_TEST_PEERS_DIR/oidc/node_modules ]] ||
    die "$JUNCTION_TEST_PEERS_DIR/oidc has no node_modules: run bash scripts/setup-test-deps.sh"

install_tools
NGINX_BIN=$(find_nginx)

if [[ $NO_BUILD == 1 ]]; then
    [[ -x $BIN && -x $BENCH_BIN ]] || die "BENCH_NO_BUILD=1 but the release binaries do not exist"
else
    log "cargo build --release -p junction -p junction-bench (a no-op when fresh)"
    (cd "$ROOT" && cargo build --release -p junction -p junction-bench)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-replicas.XXXXXX")
PG_STARTED=0
DB_NAME=""
PG_ADMIN=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $DB_NAME ]]; then
        psql -X -q "$PG_ADMIN" -c "drop database if exists $DB_NAME with (force)" >/dev/null 2>&1 || true
    fi
    if [[ $PG_STARTED == 1 ]]; then bash "$ROOT/scripts/pg-test.sh" stop 2>/dev/null || true; fi
    if ((rc != 0)) || [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL, this script's own -------------------------------------------------------

bash "$ROOT/scripts/pg-test.sh" status >/dev/null 2>&1 || PG_STARTED=1
PG_ADMIN=$(bash "$ROOT/scripts/pg-test.sh" start)
DB_NAME="bench_replicas_$$"
psql -X -q "$PG_ADMIN" -c "create database $DB_NAME" >/dev/null
DB_URL="${PG_ADMIN%/*}/$DB_NAME"
RESTART_CMD="bash '$ROOT/scripts/pg-test.sh' stop && sleep $PG_DOWN && bash '$ROOT/scripts/pg-test.sh' start"

# --- the run ------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "$REPLICAS replicas, ${DURATION} s of load, a kill every ${KILL_EVERY} s$( ((RESTART_AT > 0)) && echo ", PostgreSQL restarted at ${RESTART_AT} s")"
ARGS=(replicas --junction "$BIN" --nginx "$NGINX_BIN" --database-url "$DB_URL"
    --work-dir "$TMP/run" --replicas "$REPLICAS" --duration "$DURATION"
    --kill-every "$KILL_EVERY" --hot-instances "$HOT" --callers "$CALLERS"
    --provision-every-ms "$PROVISION_EVERY_MS" --event-rate "$EVENT_RATE"
    --markdown "$TMP/tables.md")
if ((RESTART_AT > 0)); then
    ARGS+=(--restart-database "$RESTART_CMD" --restart-database-at "$RESTART_AT")
fi
"$BENCH_BIN" "${ARGS[@]}" >"$TMP/report.json"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$(dirname "$RESULTS")"
cp "$TMP/report.json" "${RESULTS%.md}.json"
{
    echo "## Replicas under load and crashes, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`BENCH_DURATION=$DURATION BENCH_KILL_EVERY=$KILL_EVERY BENCH_REPLICAS=$REPLICAS bash bench/replicas.sh\`" \
        "($HOT instances with 2-second tokens called by $CALLERS callers, a provisioning every $PROVISION_EVERY_MS ms," \
        "$EVENT_RATE webhooks/s$( ((RESTART_AT > 0)) && echo ", PostgreSQL stopped for $PG_DOWN s at $RESTART_AT s"));" \
        "commit $(git -C "$ROOT" rev-parse --short=12 HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates || echo ' with local changes');" \
        "release build; $(nproc) cores; load average $LOAD_BEFORE before, $LOAD_AFTER after; nginx $("$NGINX_BIN" -v 2>&1 | sed 's|.*/||');" \
        "PostgreSQL $(psql -X -At "$PG_ADMIN" -c 'show server_version' | cut -d' ' -f1)."
    echo
    cat "$TMP/tables.md"
} >"$RESULTS"
cat "$RESULTS"
