#!/usr/bin/env bash
# Refresh throughput: N instances whose access tokens are all due at once, renewed by
# Junction's background sweep, against the token endpoint's own rate.
#
#   bash bench/refresh.sh
#
# The token endpoint is nginx answering every POST with a fresh-looking token response
# (a new access token, a rotated refresh token, expires_in 3600), so the endpoint costs
# as little as an endpoint can. For each count in BENCH_COUNTS, a fresh SQLite database
# is seeded (`junction-bench seed --due`: real instances through Junction's store, each
# with a refresh token and its token already expired), `junction serve` starts with
# JUNCTION_REFRESH_INTERVAL=1, and `junction-bench wait-refreshed` watches the database
# until no instance is due any more. The ceiling is wrk POSTing the same refresh_token
# grant straight to the endpoint. Everything started here is stopped on exit; the table
# is printed and written to bench/results/refresh.md.
#
# Environment:
#   BENCH_COUNTS        instance counts, space-separated (default "1000 10000")
#   BENCH_CONCURRENCY   JUNCTION_REFRESH_CONCURRENCY for the run (default: Junction's)
#   BENCH_RESULTS       where the table is written (default bench/results/refresh.md)
#   BENCH_NO_BUILD      1 = use the existing release binaries without cargo
#   BENCH_KEEP_TMP      1 = keep the temporary directory
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
COUNTS=${BENCH_COUNTS:-1000 10000}
CONCURRENCY=${BENCH_CONCURRENCY:-}
NO_BUILD=${BENCH_NO_BUILD:-0}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
BIN=$RELEASE/junction
BENCH_BIN=$RELEASE/junction-bench
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=

BENCH_TAG=bench/refresh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for n in $COUNTS; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n == 0)); then
        die "BENCH_COUNTS must be positive whole numbers"
    fi
done

install_tools
NGINX_BIN=$(find_nginx)

if [[ $NO_BUILD == 1 ]]; then
    [[ -x $BIN && -x $BENCH_BIN ]] || die "BENCH_NO_BUILD=1 but the release binaries do not exist"
else
    log "cargo build --release -p junction -p junction-bench (a no-op when fresh)"
    (cd "$ROOT" && cargo build --release -p junction -p junction-bench)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-refresh.XXXXXX")
STARTED=()
cleanup() {
    local rc=$? pid kids kid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do
        kids=""
        [[ -r /proc/$pid/task/$pid/children ]] && kids=$(cat "/proc/$pid/task/$pid/children")
        kill -TERM "$pid" 2>/dev/null || true
        for kid in $kids; do kill -TERM "$kid" 2>/dev/null || true; done
    done
    wait 2>/dev/null || true
    if ((rc != 0)) || [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the token endpoint -------------------------------------------------------------------

TPORT=$(pick_port)
TOKEN_URL=http://127.0.0.1:$TPORT/token
start_token_endpoint "$TMP/nginx" "$TPORT"

# --- the ceiling: the endpoint's own rate for the same grant --------------------------------

cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "grant_type=refresh_token&refresh_token=rt-seed&client_id=client&client_secret=client-secret"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f\n", summary.requests / (summary.duration / 1e6)))
end
EOF
log "ceiling: wrk -t1 -c16 -d5s POSTing refresh_token grants to the endpoint"
CEILING=$(wrk -t1 -c16 -d5s -s "$TMP/post.lua" "$TOKEN_URL" | awk '$1 == "RESULT" { print $2 }')
[[ -n $CEILING ]] || die "wrk reported nothing for the token endpoint"

# --- Junction, once per count ---------------------------------------------------------------

ROWS=""
for N in $COUNTS; do
    DB=$TMP/refresh-$N.db
    # A first start creates the organization and account the instances belong to.
    JPORT=$(pick_port "$TPORT")
    start_junction "$JPORT" "$DB" "$TMP/bootstrap-$N.log" JUNCTION_ENCRYPTION_KEY="$KEY" \
        JUNCTION_REFRESH_INTERVAL=0 \
        JUNCTION_BOOTSTRAP_USER_SECRET=bench-user-0123456789abcdef \
        JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=bench-org-0123456789abcdef
    kill -TERM "$JUNCTION_PID"
    wait "$JUNCTION_PID" 2>/dev/null || true
    log "seeding $N instances, all due"
    "$BENCH_BIN" seed --database-url "$DB" --encryption-key "$KEY" --count "$N" --token-url "$TOKEN_URL" --due
    JPORT=$(pick_port "$TPORT")
    log "starting Junction (sweep every 1 s${CONCURRENCY:+, concurrency $CONCURRENCY})"
    start_junction "$JPORT" "$DB" "$TMP/junction-$N.log" JUNCTION_ENCRYPTION_KEY="$KEY" \
        JUNCTION_REFRESH_INTERVAL=1 JUNCTION_LOG=info \
        ${CONCURRENCY:+JUNCTION_REFRESH_CONCURRENCY=$CONCURRENCY}
    JPID=$JUNCTION_PID
    # Seconds from the first renewal seen to none left due, and the instances renewed.
    read -r SECS RENEWED < <("$BENCH_BIN" wait-refreshed --database-url "$DB" --encryption-key "$KEY" --count "$N" --timeout 900)
    kill -TERM "$JPID"
    wait "$JPID" 2>/dev/null || true
    ((RENEWED == N)) || die "only $RENEWED of $N instances were renewed"
    FAILED=$(grep -c "background refresh failed" "$TMP/junction-$N.log" || true)
    RATE=$(awk -v n="$N" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }')
    RATIO=$(awk -v r="$RATE" -v c="$CEILING" 'BEGIN { printf "%.3f", r / c }')
    ROWS+="| $N | $SECS s | $RATE refreshes/s | $RATIO | $FAILED |"$'\n'
done

RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/refresh.md}
mkdir -p "$(dirname "$RESULTS")"
cat <<EOF | tee "$RESULTS"

## Refresh throughput, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, SQLite

\`bash bench/refresh.sh\` (BENCH_COUNTS="$COUNTS"${CONCURRENCY:+, BENCH_CONCURRENCY=$CONCURRENCY}); the token endpoint alone answers $CEILING refresh_token grants/s (wrk -t1 -c16).

| instances due at once | first renewal → none due | Junction's rate | ratio to the endpoint | failed |
|---:|---:|---:|---:|---:|
$ROWS
EOF
