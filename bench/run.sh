#!/usr/bin/env bash
# Load benchmark of Junction against the natural ceiling of each measured route.
#
#   bash bench/run.sh
#
# Builds the release binary, starts Junction (SQLite) and one nginx on loopback ports in a
# temporary directory, drives each route with wrk from a separate process, prints a
# results table and writes it to bench/results/latest.md. Every process it starts is
# stopped on exit. See bench/README.md for what is measured and how to read the table.
#
# Environment:
#   BENCH_DURATION     seconds per measured wrk run (default 10)
#   BENCH_CONNECTIONS  wrk connections (default 16); wrk always runs one thread
#   BENCH_WARMUP       seconds of unrecorded warm-up before each run (default 2, 0 = none)
#   BENCH_NGINX_WORKERS  nginx worker processes (default 1)
#   BENCH_NO_BUILD     1 = use the existing target/release/junction without cargo
#   BENCH_RESULTS      where to write the results (default bench/results/latest.md)
#   BENCH_KEEP_TMP     1 = keep the temporary directory (logs, database, configs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-16}
WARMUP=${BENCH_WARMUP:-2}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
NO_BUILD=${BENCH_NO_BUILD:-0}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/latest.md}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
BIN=$RELEASE/junction

for n in "$DURATION" "$CONNS" "$WARMUP" "$NGINX_WORKERS"; do
    if ! [[ $n =~ ^[0-9]+$ ]]; then
        echo "run.sh: BENCH_DURATION, BENCH_CONNECTIONS, BENCH_WARMUP and BENCH_NGINX_WORKERS must be whole numbers" >&2
        exit 2
    fi
done
if ((DURATION < 1 || CONNS < 1 || NGINX_WORKERS < 1)); then
    echo "run.sh: BENCH_DURATION, BENCH_CONNECTIONS and BENCH_NGINX_WORKERS must be at least 1" >&2
    exit 2
fi

BENCH_TAG=bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

install_tools
NGINX_BIN=$(find_nginx)
[[ -n $NGINX_BIN ]] || die "nginx not found after installing it"

if [[ $NO_BUILD == 1 ]]; then
    [[ -x $BIN ]] || die "BENCH_NO_BUILD=1 but $BIN does not exist"
    log "using the existing $BIN (BENCH_NO_BUILD=1)"
else
    command -v cargo >/dev/null || die "cargo not found: install Rust (rust-toolchain.toml pins the version)"
    log "cargo build --release -p junction (a no-op when the binary is fresh)"
    (cd "$ROOT" && cargo build --release -p junction)
fi

# --- temporary directory and cleanup ------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench.XXXXXX")
STARTED=() # pids of every long-running process this script starts
FAILED=0

cleanup() {
    local rc=$? pid kids
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do
        # nginx workers are the master's children: note them before the master goes.
        kids=$(child_pids "$pid")
        stop_pid "$pid"
        for k in $kids; do stop_pid "$k"; done
    done
    wait 2>/dev/null || true
    if ((rc != 0)) || [[ $KEEP_TMP == 1 ]]; then
        if ((rc != 0)); then
            for f in "$TMP/junction.log" "$TMP/nginx/error.log"; do
                if [[ -s $f ]]; then
                    log "last lines of $f:"
                    tail -n 20 "$f" >&2
                fi
            done
        fi
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

child_pids() {
    local pid=$1 f
    f=/proc/$pid/task/$pid/children
    if [[ -r $f ]]; then
        cat "$f"
        return 0
    fi
    for f in /proc/[0-9]*/stat; do
        local stat rest fields
        stat=$(cat "$f" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a fields <<<"$rest"
        [[ ${fields[1]} == "$pid" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

# --- helpers ----------------------------------------------------------------------------


CLK_TCK=$(getconf CLK_TCK)

# utime + stime of the given pids, in clock ticks.
cpu_ticks() {
    local total=0 pid stat rest fields
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        read -r -a fields <<<"$rest"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# Ticks all processes of the machine spent running (user, nice, system; not interrupts).
system_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 }' /proc/stat; }


mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }'; }


# --- Junction ---------------------------------------------------------------------------

JPORT=$(pick_port)
NPORT=$(pick_port "$JPORT")
J=http://127.0.0.1:$JPORT
N=http://127.0.0.1:$NPORT
API=$J/elements/api-v2
USER_SECRET=bench-user-$(random_hex 16)
ORG_SECRET=bench-org-$(random_hex 16)
AUTH="User $USER_SECRET, Organization $ORG_SECRET"

log "starting Junction on 127.0.0.1:$JPORT"
start_junction "$JPORT" "$TMP/bench.db" "$TMP/junction.log" \
    JUNCTION_BOOTSTRAP_USER_SECRET="$USER_SECRET" JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET="$ORG_SECRET"
sleep 2
IDLE_RSS_KB=$(status_kb "$JUNCTION_PID" VmRSS)
IDLE_HWM_KB=$(status_kb "$JUNCTION_PID" VmHWM)
log "Junction idle: VmRSS $(mb "$IDLE_RSS_KB") MB"

# --- static files and nginx -------------------------------------------------------------

mkdir -p "$TMP/static" "$TMP/nginx/tmp" "$TMP/lua"
CATALOG_PATH=/elements/api-v2/elements
OAUTH_PATH="/elements/api-v2/elements/sfdc/oauth/url?apiKey=k&apiSecret=s&callbackUrl=https://app.example.com/cb"

[[ $(curl -sS --max-time 10 -o "$TMP/static/elements.json" -w '%{http_code}' "$J$CATALOG_PATH") == 200 ]] ||
    die "GET $CATALOG_PATH did not answer 200"
[[ $(head -c1 "$TMP/static/elements.json") == "[" ]] || die "GET $CATALOG_PATH did not answer a JSON list"
[[ $(curl -sS --max-time 10 -o "$TMP/static/oauth-url.json" -w '%{http_code}' "$J$OAUTH_PATH") == 200 ]] ||
    die "GET /elements/sfdc/oauth/url did not answer 200"
grep -q '"oauthUrl"' "$TMP/static/oauth-url.json" || die "the OAuth URL response has no oauthUrl"
CATALOG_BYTES=$(wc -c <"$TMP/static/elements.json")
OAUTH_BYTES=$(wc -c <"$TMP/static/oauth-url.json")

ACCESS_TOKEN=bench-access-$(random_hex 16)
REFRESH_TOKEN=bench-refresh-$(random_hex 16)
TOKEN_JSON='{"access_token":"'$ACCESS_TOKEN'","token_type":"Bearer","expires_in":3600,"refresh_token":"'$REFRESH_TOKEN'","instance_url":"'$N'/api"}'

BENCH_NGINX_WORKERS=$NGINX_WORKERS nginx_conf_head "$TMP/nginx"
cat >>"$TMP/nginx/nginx.conf" <<EOF
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$NPORT;
        root $TMP/static;
        location = /elements.json { default_type application/json; }
        location = /oauth-url.json { default_type application/json; }
        location = /token {
            default_type application/json;
            return 200 '$TOKEN_JSON';
        }
    }
}
EOF
nginx_args "$TMP/nginx"
"$NGINX_BIN" -t -q "${NGINX_ARGS[@]}" || die "nginx rejected the generated configuration"
log "starting nginx on 127.0.0.1:$NPORT"
"$NGINX_BIN" "${NGINX_ARGS[@]}" &
NGINX_PID=$!
STARTED+=("$NGINX_PID")
wait_ok "$N/elements.json" 20 || die "nginx did not serve the static file within 20 s"
cmp -s <(curl -sS --max-time 10 "$N/elements.json") "$TMP/static/elements.json" ||
    die "nginx does not serve the catalog bytes unchanged"

# --- wrk scripts ------------------------------------------------------------------------

REDIRECT=https://app.example.com/cb
FORM="grant_type=authorization_code&code=x&redirect_uri=$REDIRECT&client_id=k&client_secret=s"
PROVISION_JSON='{"element":{"key":"sfdc"},"providerData":{"code":"bench"},"configuration":{"oauth.api.key":"k","oauth.api.secret":"s","oauth.callback.url":"'$REDIRECT'","oauth.token.url":"'$N'/token"},"name":"bench"}'

# One machine-readable line per run, straight from wrk's own counters.
cat >"$TMP/lua/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
EOF
cp "$TMP/lua/report.lua" "$TMP/lua/get.lua"
{
    echo 'wrk.method = "POST"'
    echo "wrk.body = \"$FORM\""
    echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
    echo 'wrk.headers["Accept"] = "application/json"'
    cat "$TMP/lua/report.lua"
} >"$TMP/lua/token.lua"
{
    echo 'wrk.method = "POST"'
    echo "wrk.body = [[$PROVISION_JSON]]"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    echo "wrk.headers[\"Authorization\"] = \"$AUTH\""
    cat "$TMP/lua/report.lua"
} >"$TMP/lua/provision.lua"

# --- pre-checks: one request of each kind must succeed ----------------------------------

code=$(curl -sS --max-time 10 -o "$TMP/token-check.json" -w '%{http_code}' \
    -H 'Content-Type: application/x-www-form-urlencoded' --data "$FORM" "$N/token")
if [[ $code != 200 ]] || ! grep -q '"access_token"' "$TMP/token-check.json"; then
    die "the token endpoint answered $code to a POST"
fi
code=$(curl -sS --max-time 30 -o "$TMP/provision-check.json" -w '%{http_code}' \
    -H "Authorization: $AUTH" -H 'Content-Type: application/json' \
    --data "$PROVISION_JSON" "$API/instances")
if [[ $code != 200 ]] || ! grep -q '"id":' "$TMP/provision-check.json" ||
    ! grep -q '"token":' "$TMP/provision-check.json"; then
    cat "$TMP/provision-check.json" >&2 || true
    die "POST /instances answered $code, not 200 with an instance"
fi
log "pre-checks passed: token endpoint and one provisioning answer 200"

# --- measurements -----------------------------------------------------------------------

declare -A RPS P50 P99 REQS NON2XX SOCKERR CPU_WRK CPU_NGINX CPU_J CPU_OTHER
BUSY_WARNING=0
RAW="$TMP/wrk-raw.txt"
: >"$RAW"

# measure NAME URL LUA: one wrk run (after an unrecorded warm-up); fills the arrays.
measure() {
    local name=$1 url=$2 script=$3 rc=0
    local out="$TMP/wrk-$name.txt" tf="$TMP/time-$name"
    local nginx_pids j0 n0 s0 j1 n1 s1 t0 t1 line
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 30)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$script" "$url" >/dev/null 2>&1 || true
    fi
    log "$name: wrk -t1 -c$CONNS -d${DURATION}s $url"
    read -r -a nginx_pids <<<"$NGINX_PID $(child_pids "$NGINX_PID")"
    j0=$(cpu_ticks "$JUNCTION_PID")
    n0=$(cpu_ticks "${nginx_pids[@]}")
    s0=$(system_busy_ticks)
    t0=$(date +%s%N)
    local TIMEFORMAT='%U %S'
    { time timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency \
        -s "$script" "$url" >"$out" 2>&1; } 2>"$tf" || rc=$?
    t1=$(date +%s%N)
    j1=$(cpu_ticks "$JUNCTION_PID")
    n1=$(cpu_ticks "${nginx_pids[@]}")
    s1=$(system_busy_ticks)
    {
        echo "== $name: wrk -t1 -c$CONNS -d${DURATION}s --timeout 10s --latency $url"
        cat "$out"
        echo
    } >>"$RAW"
    if ! kill -0 "$JUNCTION_PID" 2>/dev/null; then
        local status=0
        wait "$JUNCTION_PID" || status=$?
        cat "$out" >&2
        die "$name: Junction exited during the run (exit status $status)"
    fi
    line=$(grep '^BENCH ' "$out" || true)
    if ((rc != 0)) || [[ -z $line ]]; then
        cat "$out" >&2
        die "$name: wrk failed (exit $rc)"
    fi
    local -A w
    local kv
    for kv in ${line#BENCH }; do
        w[${kv%%=*}]=${kv#*=}
    done
    REQS[$name]=${w[requests]}
    NON2XX[$name]=${w[non2xx]}
    SOCKERR[$name]=$((w[connect] + w[read] + w[write] + w[timeout]))
    RPS[$name]=$(awk -v r="${w[requests]}" -v d="${w[duration_us]}" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    P50[$name]=$(awk -v u="${w[p50_us]}" 'BEGIN { printf "%.2f", u / 1000 }')
    P99[$name]=$(awk -v u="${w[p99_us]}" 'BEGIN { printf "%.2f", u / 1000 }')
    local elapsed wrk_cpu
    elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')
    wrk_cpu=$(awk '{ print $1 + $2 }' "$tf")
    CPU_WRK[$name]=$(awk -v c="$wrk_cpu" -v e="$elapsed" 'BEGIN { printf "%.2f", c / e }')
    CPU_NGINX[$name]=$(awk -v c=$((n1 - n0)) -v t="$CLK_TCK" -v e="$elapsed" 'BEGIN { printf "%.2f", c / t / e }')
    CPU_J[$name]=$(awk -v c=$((j1 - j0)) -v t="$CLK_TCK" -v e="$elapsed" 'BEGIN { printf "%.2f", c / t / e }')
    # Whatever else ran on the machine meanwhile (a compiler, another benchmark...).
    CPU_OTHER[$name]=$(awk -v s=$((s1 - s0)) -v t="$CLK_TCK" -v e="$elapsed" -v w="${CPU_WRK[$name]}" \
        -v n="${CPU_NGINX[$name]}" -v j="${CPU_J[$name]}" 'BEGIN { o = s / t / e - w - n - j; printf "%.2f", (o < 0 ? 0 : o) }')
    if awk -v o="${CPU_OTHER[$name]}" 'BEGIN { exit !(o > 0.25) }'; then
        log "$name: warning: other processes used ${CPU_OTHER[$name]} cores during the run"
        BUSY_WARNING=1
    fi
    if ((NON2XX[$name] > 0 || SOCKERR[$name] > 0)); then
        log "$name: FAILED: ${NON2XX[$name]} non-2xx responses, ${SOCKERR[$name]} socket errors"
        FAILED=1
    fi
    log "$name: ${RPS[$name]} req/s, p50 ${P50[$name]} ms, p99 ${P99[$name]} ms"
}

measure catalog-nginx "$N/elements.json" "$TMP/lua/get.lua"
measure catalog-junction "$J$CATALOG_PATH" "$TMP/lua/get.lua"
measure oauth-nginx "$N/oauth-url.json" "$TMP/lua/get.lua"
measure oauth-junction "$J$OAUTH_PATH" "$TMP/lua/get.lua"
measure token-nginx "$N/token" "$TMP/lua/token.lua"
measure provision-junction "$API/instances" "$TMP/lua/provision.lua"

sleep 2
LOADED_RSS_KB=$(status_kb "$JUNCTION_PID" VmRSS)
PEAK_HWM_KB=$(status_kb "$JUNCTION_PID" VmHWM)

# --- results ----------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
thousands() { awk -v n="$1" 'BEGIN { s = sprintf("%d", n); r = ""; while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } print s r }'; }

CAT_RATIO=$(ratio "${RPS[catalog-junction]}" "${RPS[catalog-nginx]}")
OAUTH_RATIO=$(ratio "${RPS[oauth-junction]}" "${RPS[oauth-nginx]}")
PROV_RATIO=$(ratio "${RPS[provision-junction]}" "${RPS[token-nginx]}")
PROV_RESULT=$(awk -v r="$PROV_RATIO" 'BEGIN { print (r >= 0.8 ? "PASS" : "MISS") }')
IDLE_MB=$(mb "$IDLE_RSS_KB")
RSS_RESULT=$(awk -v m="$IDLE_MB" 'BEGIN { print (m < 30 ? "PASS" : "MISS") }')
if ((FAILED)); then
    PROV_RESULT="FAILED RUN"
fi

COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown ]] &&
    [[ -n $(git -C "$ROOT" status --porcelain -- crates elements Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    COMMIT="$COMMIT (with uncommitted changes under crates/ or elements/)"
fi
OS_NAME=$(awk -F= '$1 == "PRETTY_NAME" { gsub(/"/, "", $2); print $2 }' /etc/os-release 2>/dev/null || true)
[[ -n $OS_NAME ]] || OS_NAME=$(uname -s)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(uname -m)
WRK_VERSION=$(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }' || true)
NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')
RUSTC_VERSION=$(cd "$ROOT" && rustc --version 2>/dev/null || echo unknown)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMAND="BENCH_DURATION=$DURATION BENCH_CONNECTIONS=$CONNS bash bench/run.sh"
if ((NGINX_WORKERS != 1)); then
    COMMAND="BENCH_NGINX_WORKERS=$NGINX_WORKERS $COMMAND"
fi

row() {
    local name=$1 what=$2
    printf '| %s | %s | %s | %s | %s | %s | %s | %s / %s / %s / %s |\n' "$what" "$(thousands "${RPS[$name]}")" \
        "${P50[$name]}" "${P99[$name]}" "$(thousands "${REQS[$name]}")" "${NON2XX[$name]}" "${SOCKERR[$name]}" \
        "${CPU_WRK[$name]}" "${CPU_NGINX[$name]}" "${CPU_J[$name]}" "${CPU_OTHER[$name]}"
}

report() {
    cat <<EOF
## Junction load benchmark, $DATE

Command: \`$COMMAND\` (wrk: 1 thread, $CONNS connections, ${DURATION} s per run after a ${WARMUP} s warm-up; nginx worker_processes $NGINX_WORKERS; loopback only)

| Measurement | Junction | Natural ceiling, same run | Ceiling | Ratio | Goal | Result |
| --- | ---: | --- | ---: | ---: | --- | --- |
| \`GET /elements\` (catalog, $CATALOG_BYTES bytes) | $(thousands "${RPS[catalog-junction]}") req/s | nginx serving the same bytes as a static file | $(thousands "${RPS[catalog-nginx]}") req/s | $CAT_RATIO | — | — |
| \`GET /elements/sfdc/oauth/url\` ($OAUTH_BYTES bytes) | $(thousands "${RPS[oauth-junction]}") req/s | nginx static file (same ceiling kind: the response's bytes served statically) | $(thousands "${RPS[oauth-nginx]}") req/s | $OAUTH_RATIO | — | — |
| \`POST /instances\` (provisioning, sfdc) | $(thousands "${RPS[provision-junction]}") provisions/s | wrk POSTing the code exchange straight to the bare token endpoint (nginx \`return 200\`) | $(thousands "${RPS[token-nginx]}") req/s | $PROV_RATIO | ≥ 0.80 | $PROV_RESULT |
| Idle RSS (after start + 2 s, before load) | $IDLE_MB MB | — | — | — | < 30 MB | $RSS_RESULT |

Every wrk run (p50/p99 latency from wrk \`--latency\`; CPU in cores used during the run, out of $(nproc); "other" is every other process of the machine):

| Run | req/s | p50 ms | p99 ms | requests | non-2xx | socket errors | CPU wrk / nginx / junction / other |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
$(row catalog-nginx "nginx static \`/elements.json\`")
$(row catalog-junction "Junction \`GET /elements\`")
$(row oauth-nginx "nginx static \`/oauth-url.json\`")
$(row oauth-junction "Junction \`GET /elements/sfdc/oauth/url\`")
$(row token-nginx "nginx \`POST /token\` (bare token endpoint)")
$(row provision-junction "Junction \`POST /instances\` (each makes one \`POST /token\`)")

Junction memory (1 MB = 10^6 bytes): idle VmRSS $IDLE_MB MB (VmHWM $(mb "$IDLE_HWM_KB") MB); after all load VmRSS $(mb "$LOADED_RSS_KB") MB, peak VmHWM $(mb "$PEAK_HWM_KB") MB.

Machine: $(nproc) CPUs ($CPU_MODEL), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, $OS_NAME, Linux $(uname -r); $WRK_VERSION, nginx $NGINX_VERSION, $RUSTC_VERSION; Junction commit $COMMIT.
EOF
    if ((BUSY_WARNING)); then
        echo
        echo "**Warning**: other processes used more than 0.25 cores during at least one run (column \"other\"); the machine was not quiet, so the numbers are noisy."
    fi
    if ((FAILED)); then
        echo
        echo "**FAILED RUN**: at least one wrk run saw non-2xx responses or socket errors; the numbers above are not valid."
    fi
}

mkdir -p "$(dirname "$RESULTS")"
report >"$RESULTS"
cp "$RAW" "${RESULTS%.md}-wrk.txt"
echo
cat "$RESULTS"
echo
log "wrote $RESULTS and ${RESULTS%.md}-wrk.txt"
if ((FAILED)); then
    exit 1
fi
