#!/usr/bin/env bash
# Benchmark of Junction's passthrough proxy (`GET /elements/api-v2/proxy/<path>`).
#
#   bash bench/proxy/run.sh
#
# One nginx on loopback serves a static JSON answer (the "provider") and, on a second
# port, proxies to it adding a fixed Authorization header (the reference proxy). Junction
# (release build, SQLite in a temporary directory) gets one `sfdcdocuments` instance whose
# `base.url` is that provider. wrk then measures, in the same run and on the same path:
#   direct   the provider itself
#   nginx    nginx proxy_pass + Authorization header
#   junction Junction's proxy with `Authorization: Element <token>`
#   stack    `junction-bench bare-proxy`: axum in, reqwest out, bodies streamed, as
#            Junction's proxy does, with none of Junction's work (no authentication, no
#            instance, no header filtering): what the HTTP stack alone costs
# twice: throughput with BENCH_CONNECTIONS connections, then unloaded latency with one
# connection. Last, a BENCH_DOWNLOAD_MB download streams through Junction while its
# resident memory is sampled. Every process started here is stopped on exit; nothing
# listens beyond 127.0.0.1. See bench/proxy/README.md for the goals and the last results.
#
# Environment:
#   BENCH_DURATION      seconds per measured wrk run (default 10)
#   BENCH_CONNECTIONS   wrk connections for the throughput runs (default 16)
#   BENCH_WARMUP        seconds of unrecorded warm-up before each run (default 2)
#   BENCH_DOWNLOAD_MB   size of the streamed download, MiB (default 1024, 0 = skip)
#   BENCH_STACK_ARGS    extra arguments for `junction-bench bare-proxy` (e.g. --read-timeout 30)
#   BENCH_NO_BUILD      1 = use the existing target/release/junction without cargo
#   BENCH_KEEP_TMP      1 = keep the temporary directory (logs, database, configs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-16}
WARMUP=${BENCH_WARMUP:-2}
DOWNLOAD_MB=${BENCH_DOWNLOAD_MB:-1024}
NO_BUILD=${BENCH_NO_BUILD:-0}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
BIN=$RELEASE/junction
BENCH_BIN=$RELEASE/junction-bench

for n in "$DURATION" "$CONNS" "$WARMUP" "$DOWNLOAD_MB"; do
    [[ $n =~ ^[0-9]+$ ]] || {
        echo "run.sh: BENCH_DURATION, BENCH_CONNECTIONS, BENCH_WARMUP and BENCH_DOWNLOAD_MB must be whole numbers" >&2
        exit 2
    }
done
((DURATION >= 1 && CONNS >= 1)) || {
    echo "run.sh: BENCH_DURATION and BENCH_CONNECTIONS must be at least 1" >&2
    exit 2
}

BENCH_TAG=bench/proxy
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- tools ------------------------------------------------------------------------------

install_tools
NGINX_BIN=$(find_nginx)
[[ -n $NGINX_BIN ]] || die "nginx not found after installing it"

if [[ $NO_BUILD == 1 ]]; then
    [[ -x $BIN && -x $BENCH_BIN ]] || die "BENCH_NO_BUILD=1 but $BIN or $BENCH_BIN does not exist"
else
    log "cargo build --release -p junction -p junction-bench (a no-op when the binaries are fresh)"
    (cd "$ROOT" && cargo build --release -p junction -p junction-bench)
fi

# --- temporary directory and cleanup ----------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-proxy.XXXXXX")
STARTED=()

cleanup() {
    local rc=$? pid kid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do
        # nginx workers are the master's children: note them before the master goes.
        local kids=""
        [[ -r /proc/$pid/task/$pid/children ]] && kids=$(cat "/proc/$pid/task/$pid/children")
        stop_pid "$pid"
        for kid in $kids; do stop_pid "$kid"; done
    done
    wait 2>/dev/null || true
    if ((rc != 0)) && [[ -s $TMP/junction.log ]]; then
        log "last lines of the Junction log:"
        tail -n 20 "$TMP/junction.log" >&2
    fi
    if ((rc != 0)) || [[ $KEEP_TMP == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the provider and the reference proxy (nginx) ---------------------------------------

UPORT=$(pick_port)
PPORT=$(pick_port "$UPORT")
JPORT=$(pick_port "$UPORT" "$PPORT")
SPORT=$(pick_port "$UPORT" "$PPORT" "$JPORT")
UPSTREAM=http://127.0.0.1:$UPORT
NGINX_PROXY=http://127.0.0.1:$PPORT
J=http://127.0.0.1:$JPORT
STACK=http://127.0.0.1:$SPORT
BASE_PATH=/services/data/v59.0
VENDOR_PATH=/sobjects/Account/001
PROVIDER_TOKEN=bench-access-$(random_hex 16)
BODY='{"attributes":{"type":"Account"},"Id":"001","Name":"Acme","Industry":"Software","NumberOfEmployees":42}'

# Sparse: the download test reads a large body without using that much disk.
if ((DOWNLOAD_MB > 0)); then
    truncate -s "${DOWNLOAD_MB}M" "$TMP/big.bin"
fi
nginx_conf_head "$TMP/nginx"
cat >>"$TMP/nginx/nginx.conf" <<EOF
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    upstream provider {
        server 127.0.0.1:$UPORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$UPORT;
        location = $BASE_PATH/big { alias $TMP/big.bin; default_type application/octet-stream; }
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
    server {
        listen 127.0.0.1:$PPORT;
        location / {
            proxy_pass http://provider;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $PROVIDER_TOKEN";
        }
    }
}
EOF
nginx_args "$TMP/nginx"
"$NGINX_BIN" -t -q "${NGINX_ARGS[@]}" || die "nginx rejected the generated configuration"
log "starting nginx: provider on $UPORT, reference proxy on $PPORT"
"$NGINX_BIN" "${NGINX_ARGS[@]}" &
STARTED+=("$!")
wait_ok "$UPSTREAM$BASE_PATH$VENDOR_PATH" 20 || die "nginx did not answer within 20 s"

# --- the bare stack ---------------------------------------------------------------------

log "starting the bare axum + reqwest proxy on $SPORT"
# shellcheck disable=SC2086 # the extra arguments are words on purpose
"$BENCH_BIN" bare-proxy --listen "127.0.0.1:$SPORT" --upstream "$UPSTREAM" ${BENCH_STACK_ARGS:-} >"$TMP/stack.log" 2>&1 &
STARTED+=("$!")
wait_ok "$STACK$BASE_PATH$VENDOR_PATH" 20 || die "the bare proxy did not answer within 20 s"

# --- Junction ---------------------------------------------------------------------------

USER_SECRET=bench-user-$(random_hex 16)
ORG_SECRET=bench-org-$(random_hex 16)
log "starting Junction on $JPORT"
start_junction "$JPORT" "$TMP/bench.db" "$TMP/junction.log" \
    JUNCTION_BOOTSTRAP_USER_SECRET="$USER_SECRET" JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET="$ORG_SECRET"

INSTANCE_JSON='{"element":{"key":"sfdcdocuments"},"externalAuthentication":"initial","name":"bench","configuration":{"oauth.api.key":"k","oauth.api.secret":"s","oauth.callback.url":"https://app.example.com/cb","oauth.user.token":"'$PROVIDER_TOKEN'","base.url":"'$UPSTREAM$BASE_PATH'"}}'
curl -sS --max-time 10 -o "$TMP/instance.json" -X POST "$J/elements/api-v2/instances" \
    -H "Authorization: User $USER_SECRET, Organization $ORG_SECRET" \
    -H 'Content-Type: application/json' -d "$INSTANCE_JSON"
ELEMENT_TOKEN=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$TMP/instance.json")
[[ -n $ELEMENT_TOKEN ]] || die "provisioning the benchmark instance failed: $(cat "$TMP/instance.json")"

JUNCTION_URL=$J/elements/api-v2/proxy$VENDOR_PATH
got=$(curl -sS --max-time 10 -H "Authorization: Element $ELEMENT_TOKEN" "$JUNCTION_URL")
[[ $got == "$BODY" ]] || die "the proxy did not return the provider's body: $got"
[[ $(curl -sS --max-time 10 "$NGINX_PROXY$BASE_PATH$VENDOR_PATH") == "$BODY" ]] ||
    die "the nginx proxy did not return the provider's body"

# --- wrk --------------------------------------------------------------------------------

cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.1f %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status, summary.requests))
end
EOF

# run NAME CONNECTIONS URL [HEADER]: prints "rps p50_us p99_us errors requests".
run() {
    local name=$1 conns=$2 url=$3 header=${4:-X-Bench: 1} out
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 30)) wrk -t1 -c"$conns" -d"${WARMUP}s" -H "$header" "$url" >/dev/null 2>&1 || true
    fi
    log "$name: wrk -t1 -c$conns -d${DURATION}s"
    out=$(timeout $((DURATION + 30)) wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 10s \
        -H "$header" -s "$TMP/report.lua" "$url") || die "wrk failed for $name"
    printf '%s\n' "$out" | awk '$1 == "RESULT" { print $2, $3, $4, $5, $6 }'
}

read -r D_RPS D_P50 D_P99 D_ERR _ < <(run "direct, throughput" "$CONNS" "$UPSTREAM$BASE_PATH$VENDOR_PATH")
read -r N_RPS N_P50 N_P99 N_ERR _ < <(run "nginx, throughput" "$CONNS" "$NGINX_PROXY$BASE_PATH$VENDOR_PATH")
read -r S_RPS S_P50 S_P99 S_ERR _ < <(run "bare stack, throughput" "$CONNS" "$STACK$BASE_PATH$VENDOR_PATH")
read -r J_RPS J_P50 J_P99 J_ERR _ < <(run "junction, throughput" "$CONNS" "$JUNCTION_URL" "Authorization: Element $ELEMENT_TOKEN")
read -r _ D1_P50 D1_P99 D1_ERR _ < <(run "direct, one connection" 1 "$UPSTREAM$BASE_PATH$VENDOR_PATH")
read -r _ N1_P50 N1_P99 N1_ERR _ < <(run "nginx, one connection" 1 "$NGINX_PROXY$BASE_PATH$VENDOR_PATH")
read -r _ S1_P50 S1_P99 S1_ERR _ < <(run "bare stack, one connection" 1 "$STACK$BASE_PATH$VENDOR_PATH")
read -r _ J1_P50 J1_P99 J1_ERR _ < <(run "junction, one connection" 1 "$JUNCTION_URL" "Authorization: Element $ELEMENT_TOKEN")

for v in D_RPS N_RPS S_RPS J_RPS D1_P50 N1_P50 S1_P50 J1_P50; do
    [[ -n ${!v:-} ]] || die "a wrk run reported nothing ($v)"
done
ERRORS=$((D_ERR + N_ERR + S_ERR + J_ERR + D1_ERR + N1_ERR + S1_ERR + J1_ERR))

# --- a large download, with Junction's memory sampled -----------------------------------

DOWNLOAD_LINE="skipped (BENCH_DOWNLOAD_MB=0)"
MEMORY_VERDICT=""
if ((DOWNLOAD_MB > 0)); then
    BEFORE_KB=$(status_kb "$JUNCTION_PID" VmRSS)
    log "downloading ${DOWNLOAD_MB} MiB through the proxy"
    start=$(date +%s.%N)
    curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{size_download}\n' \
        -H "Authorization: Element $ELEMENT_TOKEN" \
        "$J/elements/api-v2/proxy/big" >"$TMP/download.txt" &
    CURL_PID=$!
    PEAK_KB=$BEFORE_KB
    while kill -0 "$CURL_PID" 2>/dev/null; do
        now_kb=$(status_kb "$JUNCTION_PID" VmRSS)
        ((now_kb > PEAK_KB)) && PEAK_KB=$now_kb
        sleep 0.05
    done
    wait "$CURL_PID" || die "the download failed"
    end=$(date +%s.%N)
    read -r code size <"$TMP/download.txt"
    [[ $code == 200 && $size == $((DOWNLOAD_MB * 1024 * 1024)) ]] ||
        die "the download answered $code with $size bytes"
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    GROWTH_MB=$(awk -v a="$BEFORE_KB" -v b="$PEAK_KB" 'BEGIN { printf "%.1f", (b - a) / 1024 }')
    DOWNLOAD_LINE="$DOWNLOAD_MB MiB in $secs s; Junction VmRSS $(awk -v k="$BEFORE_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB before, peak $(awk -v k="$PEAK_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB during (+$GROWTH_MB MiB)"
    if awk -v g="$GROWTH_MB" 'BEGIN { exit !(g <= 64) }'; then
        MEMORY_VERDICT="PASS"
    else
        MEMORY_VERDICT="MISS"
    fi
fi

# --- verdict ----------------------------------------------------------------------------

RATIO=$(awk -v j="$J_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", j / n }')
STACK_RATIO=$(awk -v s="$S_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", s / n }')
J_OF_STACK=$(awk -v j="$J_RPS" -v s="$S_RPS" 'BEGIN { printf "%.2f", j / s }')
STACK_ADDED_US=$((S1_P50 - D1_P50))
ADDED_US=$((J1_P50 - D1_P50))
NGINX_ADDED_US=$((N1_P50 - D1_P50))
THROUGHPUT_VERDICT=$(awk -v r="$RATIO" 'BEGIN { print (r >= 0.8 ? "PASS" : "MISS") }')
LATENCY_VERDICT=$( ((ADDED_US <= 100)) && echo PASS || echo MISS)

cat <<EOF

## Proxy benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores

\`bash bench/proxy/run.sh\` (BENCH_DURATION=$DURATION, BENCH_CONNECTIONS=$CONNS, wrk -t1)

| target | req/s ($CONNS conn) | p50 µs | p99 µs | p50 µs (1 conn) | p99 µs (1 conn) |
|---|---:|---:|---:|---:|---:|
| direct (provider) | $D_RPS | $D_P50 | $D_P99 | $D1_P50 | $D1_P99 |
| nginx proxy_pass + Authorization | $N_RPS | $N_P50 | $N_P99 | $N1_P50 | $N1_P99 |
| bare axum + reqwest proxy (the stack, no Junction work) | $S_RPS | $S_P50 | $S_P99 | $S1_P50 | $S1_P99 |
| Junction /proxy | $J_RPS | $J_P50 | $J_P99 | $J1_P50 | $J1_P99 |

- Throughput: Junction / nginx = $RATIO (goal ≥ 0.80): **$THROUGHPUT_VERDICT**
- Added median latency over direct, one connection: Junction $ADDED_US µs (goal ≤ 100 µs): **$LATENCY_VERDICT**; nginx $NGINX_ADDED_US µs; the bare stack $STACK_ADDED_US µs
- The bare stack / nginx = $STACK_RATIO; Junction / the bare stack = $J_OF_STACK (what Junction's own work costs)
- wrk errors (connect, read, write, timeout, non-2xx): $ERRORS
- Download: $DOWNLOAD_LINE${MEMORY_VERDICT:+ (goal ≤ 64 MiB growth): **$MEMORY_VERDICT**}
EOF
((ERRORS == 0)) || die "wrk counted $ERRORS errors"
