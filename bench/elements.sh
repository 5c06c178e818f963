#!/usr/bin/env bash
# The catalog with custom elements: GET /elements and GET /elements/{key} for an
# organization holding BENCH_ELEMENTS custom elements (default 1000) besides the
# built-ins, each against nginx serving the same bytes as a static file in the same run.
#
#   bash bench/elements.sh
#
# Release build, Junction on SQLite, wrk from a separate process on loopback. Results go
# to bench/results/elements.md (raw wrk output beside it). See bench/README.md.
#
# Environment:
#   BENCH_ELEMENTS     custom elements to create through POST /elements (default 1000)
#   BENCH_DURATION     seconds per measured wrk run (default 10)
#   BENCH_CONNECTIONS  wrk connections (default 16); wrk always runs one thread
#   BENCH_WARMUP       seconds of unrecorded warm-up before each run (default 2)
#   BENCH_NO_BUILD     1 = use the existing target/release/junction without cargo
#   BENCH_RESULTS      where to write the results (default bench/results/elements.md)
#   BENCH_BIN          the junction binary to measure (default: the release build; implies
#                      BENCH_NO_BUILD=1)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench/elements
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
BIN=${BENCH_BIN:-$RELEASE/junction}
COUNT=${BENCH_ELEMENTS:-1000}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-16}
WARMUP=${BENCH_WARMUP:-2}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/elements.md}
GOAL=0.8
for n in "$COUNT" "$DURATION" "$CONNS" "$WARMUP"; do
    [[ $n =~ ^[0-9]+$ ]] || die "BENCH_ELEMENTS, BENCH_DURATION, BENCH_CONNECTIONS and BENCH_WARMUP must be whole numbers"
done

install_tools
NGINX_BIN=$(find_nginx)
[[ -n $NGINX_BIN ]] || die "nginx not found after installing it"
if [[ ${BENCH_NO_BUILD:-0} == 1 || -n ${BENCH_BIN:-} ]]; then
    [[ -x $BIN ]] || die "BENCH_NO_BUILD=1 but $BIN does not exist"
else
    log "cargo build --release -p junction (a no-op when the binary is fresh)"
    (cd "$ROOT" && cargo build --release -p junction)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-elements.XXXXXX")
STARTED=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    wait 2>/dev/null || true
    if ((rc != 0)); then
        [[ -s $TMP/junction.log ]] && tail -n 20 "$TMP/junction.log" >&2
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USER_SECRET=bench-user-$(random_hex 16)
ORG_SECRET=bench-org-$(random_hex 16)
AUTH="User $USER_SECRET, Organization $ORG_SECRET"
JPORT=$(pick_port)
# One caller makes every call: let it have as many in progress as wrk has connections.
start_junction "$JPORT" "$TMP/bench.db" "$TMP/junction.log" \
    JUNCTION_CALLER_CONCURRENCY="$CONNS" \
    JUNCTION_ENCRYPTION_KEY="$("$BIN" config generate-key)" \
    JUNCTION_BOOTSTRAP_USER_SECRET="$USER_SECRET" \
    JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET="$ORG_SECRET"
API=http://127.0.0.1:$JPORT/elements/api-v2

# Custom elements shaped like a small real one: the shared OAuth entries, a few of its
# own, two resources.
log "creating $COUNT custom elements through POST /elements"
started=$(date +%s)
for ((i = 1; i <= COUNT; i++)); do
    printf '{"name":"Bench element %d","description":"A custom element for the catalog benchmark","hub":"crm","authentication":{"type":"oauth2"},"typeOauth":true,"uses":["oauth2"],"configuration":[{"key":"oauth.authorization.url","name":"Authorization URL","default":"https://auth.bench.example/authorize"},{"key":"oauth.token.url","name":"Token URL","default":"https://auth.bench.example/token"},{"key":"base.url","name":"Base URL","default":"https://api.bench.example/v1"}],"oauth":{},"resources":[{"path":"/hubs/crm/contacts","method":"GET","vendorPath":"/contacts"},{"path":"/hubs/crm/contacts/{id}","method":"GET","vendorPath":"/contacts/{id}"}]}\n' "$i"
done | while IFS= read -r body; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$API/elements" \
        -H "Authorization: $AUTH" -H 'Content-Type: application/json' --data "$body")
    [[ $code == 200 ]] || die "POST /elements answered $code"
done
log "created in $(($(date +%s) - started)) s"

KEY=benchelement$((COUNT / 2))
mkdir -p "$TMP/www"
curl -sf "$API/elements" -H "Authorization: $AUTH" -o "$TMP/www/list.json"
curl -sf "$API/elements/$KEY" -H "Authorization: $AUTH" -o "$TMP/www/one.json"
LISTED=$(grep -o '"key":"' "$TMP/www/list.json" | wc -l)
((LISTED > COUNT)) || die "GET /elements lists $LISTED elements, expected the built-ins and $COUNT custom ones"
BUILT_IN=$((LISTED - COUNT))

NPORT=$(pick_port)
nginx_conf_head "$TMP/nginx"
cat >>"$TMP/nginx/nginx.conf" <<EOF
    server {
        listen 127.0.0.1:$NPORT;
        default_type application/json;
        location = /list { alias $TMP/www/list.json; }
        location = /one { alias $TMP/www/one.json; }
    }
}
EOF
nginx_args "$TMP/nginx"
"$NGINX_BIN" "${NGINX_ARGS[@]}" &
STARTED+=("$!")
wait_ok "http://127.0.0.1:$NPORT/list" 10 || die "nginx did not start"
cmp -s <(curl -s "http://127.0.0.1:$NPORT/list") "$TMP/www/list.json" || die "nginx serves other bytes"

RAW=${RESULTS%.md}-wrk.txt
: >"$RAW"
# Requests per second of one wrk run against $1 (extra arguments go to wrk).
rate() {
    local url=$1 out
    shift
    if ((WARMUP > 0)); then wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >/dev/null; fi
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url")
    printf '### %s\n%s\n\n' "$url" "$out" >>"$RAW"
    if grep -q 'Non-2xx' <<<"$out"; then die "non-2xx answers from $url"; fi
    awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out"
}

row() { # label, bytes, junction url, nginx url
    local label=$1 bytes=$2 ceiling junction ratio verdict
    ceiling=$(rate "$4")
    junction=$(rate "$3" -H "Authorization: $AUTH")
    ratio=$(awk -v j="$junction" -v c="$ceiling" 'BEGIN { printf "%.2f", j / c }')
    verdict=$(awk -v r="$ratio" -v g="$GOAL" 'BEGIN { print (r >= g ? "PASS" : "MISS") }')
    printf '| %s (%s bytes) | %s req/s | %s req/s | %s | ≥ %s | %s |\n' \
        "$label" "$bytes" "$junction" "$ceiling" "$ratio" "$GOAL" "$verdict"
}

log "measuring"
{
    echo "**Catalog with custom elements, $(date -u '+%Y-%m-%d %H:%M UTC')**"
    echo
    echo "Command: \`BENCH_ELEMENTS=$COUNT BENCH_DURATION=$DURATION BENCH_CONNECTIONS=$CONNS bash bench/elements.sh\` (wrk: 1 thread, $CONNS connections, ${DURATION} s per run after a ${WARMUP} s warm-up; nginx worker_processes ${BENCH_NGINX_WORKERS:-1}; SQLite; loopback only); commit $(git -C "$ROOT" rev-parse --short=12 HEAD); $BUILT_IN built-in and $COUNT custom elements in the organization."
    echo
    echo "| Measurement | Junction | nginx, same bytes, same run | Ratio | Goal | Result |"
    echo "| --- | ---: | ---: | ---: | --- | --- |"
    row "\`GET /elements\`" "$(stat -c %s "$TMP/www/list.json")" "$API/elements" "http://127.0.0.1:$NPORT/list"
    row "\`GET /elements/$KEY\`" "$(stat -c %s "$TMP/www/one.json")" "$API/elements/$KEY" "http://127.0.0.1:$NPORT/one"
} >"$RESULTS"
cat "$RESULTS"
