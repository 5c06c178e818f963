#!/usr/bin/env bash
# Instruction counts of Junction's own work, with valgrind's callgrind: deterministic,
# so they can be compared on a busy machine where timings cannot. A release build with
# line tables (no LTO, so functions keep their names) runs under callgrind; the load runs
# once to warm up, the counters are zeroed, the load runs again, and the counters are
# dumped. Prints the total and the heaviest functions (inclusive).
#   bash bench/profile.sh hub      # 100 pages of 200 Salesforce Accounts through sfdc
#   bash bench/profile.sh events   # 3,000 webhooks in, signed notifications out
#   bash bench/profile.sh provision  # 300 POST /instances with codes of the real OAuth
#                                    # server (tests/peers/oidc), issued beforehand
# Settings: PROFILE_OUT (the callgrind file, default target/profile/callgrind.<what>),
# PROFILE_NO_BUILD=1 to reuse the binaries, PROFILE_TOP (40 lines). For `provision`:
# PROFILE_COUNT (300) and PROFILE_WARMUP (50) provisionings, PROFILE_CONNECTIONS (4),
# JUNCTION_TEST_PEERS_DIR (tests/peers of this checkout), and PROFILE_DATABASE_URL: a
# PostgreSQL server whose user may create databases, to profile on a database created
# there (and dropped after) instead of SQLite; Junction then reaches it through
# bench/pg-count.py, which counts the statements and round trips per provisioning.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench/profile
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
WHAT=${1:-}
[[ $WHAT == hub || $WHAT == events || $WHAT == provision ]] ||
    { echo "usage: bash bench/profile.sh hub|events|provision" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
TARGET=$ROOT/target/prof
BIN=$TARGET/release
OUT=${PROFILE_OUT:-$ROOT/target/profile/callgrind.$WHAT}
mkdir -p "$(dirname "$OUT")"
if [[ ${PROFILE_NO_BUILD:-0} != 1 ]]; then
    echo "== building a release binary with line tables in $TARGET" >&2
    build_profiling_binaries "$TARGET" -q --manifest-path "$ROOT/Cargo.toml"
fi

WORK=$(mktemp -d)
PIDS=()
PG_ADMIN=${PROFILE_DATABASE_URL:-}
PG_NAME=""
cleanup() {
    stop_started "${PIDS[@]}"
    if [[ -n $PG_NAME ]]; then
        sleep 1
        psql -q "$PG_ADMIN" -c "drop database if exists $PG_NAME" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
DATABASE_URL="sqlite://$WORK/j.db?mode=rwc"
# No refresh sweeps among the provisionings (as bench/provision.sh).
REFRESH_INTERVAL=60
[[ $WHAT == provision ]] && REFRESH_INTERVAL=0
if [[ $WHAT == provision && -n $PG_ADMIN ]]; then
    PG_NAME=junction_profile_$$
    psql -q "$PG_ADMIN" -c "create database $PG_NAME" >/dev/null
    # Every statement Junction sends goes through the relay, which counts them.
    RELAY_PORT=$(free_port)
    hostport=${PG_ADMIN#*@}
    hostport=${hostport%%/*}
    python3 "$ROOT/bench/pg-count.py" "$RELAY_PORT" "${hostport%:*}" "${hostport##*:}" "$WORK/counts.json" &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null && break; sleep 0.1; done
    DATABASE_URL="${PG_ADMIN%@*}@127.0.0.1:$RELAY_PORT/$PG_NAME?sslmode=disable"
fi
API=http://127.0.0.1:$PORT/elements/api-v2
USER_SECRET=profile-user-0123456789abcdef
ORG_SECRET=profile-org-0123456789abcdef
AUTH="User $USER_SECRET, Organization $ORG_SECRET"

JUNCTION_DATABASE_URL="$DATABASE_URL" JUNCTION_LISTEN=127.0.0.1:$PORT \
JUNCTION_ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \
JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET \
JUNCTION_OUTBOUND_ALLOW_PRIVATE=true JUNCTION_CALLER_CONCURRENCY=64 JUNCTION_LOG=warn \
JUNCTION_REFRESH_INTERVAL=$REFRESH_INTERVAL \
    start_callgrind "$OUT" "$WORK/serve.out" "$WORK/serve.log" "$BIN/junction" serve
JPID=$CG_PID
PIDS+=("$JPID")
wait_ok "http://127.0.0.1:$PORT/health" 240 || { cat "$WORK/serve.log" >&2; exit 1; }

case $WHAT in
hub)
    "$BIN/junction-bench" salesforce --accounts 20000 --contacts 100 >"$WORK/sf.json" 2>"$WORK/sf.log" &
    PIDS+=("$!")
    for _ in $(seq 300); do [[ -s $WORK/sf.json ]] && break; sleep 0.1; done
    field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/sf.json" "$1"; }
    instance=$(curl -sf -X POST "$API/instances" -H "Authorization: $AUTH" -H 'Content-Type: application/json' \
        -d "{\"element\":{\"key\":\"sfdc\"},\"name\":\"profile\",\"providerData\":{\"code\":\"profile-code\"},
             \"configuration\":{\"oauth.api.key\":\"c\",\"oauth.api.secret\":\"s\",
             \"oauth.callback.url\":\"https://app.example/cb\",\"oauth.token.url\":\"$(field tokenUrl)\"}}")
    token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$instance")
    load() {
        "$BIN/junction-bench" hub-walk --via junction --url "$API" --authorization "Element $token" \
            --target /hubs/crm/accounts --page-size 200 --repeat 1 >/dev/null
    }
    UNIT="page of 200 records (100 pages)"
    PER=100
    ;;
events)
    load() {
        "$BIN/junction-bench" events --api "$API" --authorization "$AUTH" --count 3000 \
            --concurrency 16 --phase-seconds 1 --light-rate 20 --outage-seconds 1 --outage-rate 20 \
            >/dev/null 2>"$WORK/bench.err"
    }
    UNIT="webhook (about 3,000 in the throughput run, plus the short phases)"
    PER=3000
    ;;
esac

counts() { kill -USR1 "$RELAY_PID"; sleep 0.5; cat "$WORK/counts.json"; }
if [[ $WHAT == provision ]]; then
    export JUNCTION_TEST_PEERS_DIR=${JUNCTION_TEST_PEERS_DIR:-$ROOT/tests/peers}
    PER=${PROFILE_COUNT:-300}
    UNIT="provisioning ($PER, ${PROFILE_CONNECTIONS:-4} at a time)"
    # The driver starts the OAuth server, issues every code, provisions the warm-up
    # ones, says "warm", waits for a line, then provisions the measured ones.
    coproc DRIVER { "$BIN/junction-bench" provision-steps --api "$API" --authorization "$AUTH" \
        --count "$PER" --warmup "${PROFILE_WARMUP:-50}" --connections "${PROFILE_CONNECTIONS:-4}" 2>"$WORK/bench.err"; }
    PIDS+=("$DRIVER_PID")
    echo "== issuing codes and warming up" >&2
    read -r said <&"${DRIVER[0]}" || { cat "$WORK/bench.err" >&2; exit 1; }
    [[ $said == warm ]] || { cat "$WORK/bench.err" >&2; exit 1; }
    [[ -n $PG_NAME ]] && before=$(counts)
    callgrind_zero "$JPID"
    echo "== measuring" >&2
    echo go >&"${DRIVER[1]}"
    read -r said <&"${DRIVER[0]}" || { cat "$WORK/bench.err" >&2; exit 1; }
    [[ $said == "done $PER" ]] || { cat "$WORK/bench.err" >&2; exit 1; }
    callgrind_dump "$JPID"
    if [[ -n $PG_NAME ]]; then
        after=$(counts)
        python3 - "$before" "$after" "$PER" <<'PY'
import json, sys
before, after, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
d = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
per = lambda k: d.get(k, 0) / n
print(f"PostgreSQL per provisioning: {per('Q') + per('E'):.2f} statements "
      f"({per('Q'):.2f} simple queries, {per('E'):.2f} prepared executions), "
      f"{per('round trips'):.2f} round trips, {per('P'):.2f} parses; messages: "
      + ", ".join(f"{k} {d[k] / n:.2f}" for k in sorted(d) if d[k] and len(k) == 1))
PY
    fi
else
    echo "== warming up" >&2
    load
    callgrind_zero "$JPID"
    echo "== measuring" >&2
    load
    callgrind_dump "$JPID"
fi
kill -TERM "$JPID"
wait "$JPID" 2>/dev/null || true
DUMP=$(ls -t "$OUT".* | head -1)
callgrind_count "$DUMP" summary
total=$CG_COUNT
echo "instructions: $total in all, $((total / PER)) per $UNIT"
echo "file: $DUMP (callgrind_annotate --inclusive=yes $DUMP)"
# `sed` reads its input to the end: `head` would close the pipe early, and pipefail would
# make the script's status that of the killed writer.
callgrind_annotate --inclusive=yes "$DUMP" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | grep -v -E 'tokio|hyper|axum|tower|futures|clone.S|pthread|std::|core::' |
    sed -n "1,${PROFILE_TOP:-40}p" | cut -c1-200
