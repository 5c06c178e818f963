#!/usr/bin/env bash
# Instructions per proxied request, Junction against the bare axum + reqwest proxy, under
# callgrind: deterministic where wall-clock numbers on a shared machine are not.
#
#   bash bench/proxy/profile.sh
#
# Same setup as run.sh (one nginx provider, Junction with one `sfdc` instance on SQLite,
# `junction-bench bare-proxy`), but Junction and the bare proxy each run under
# `valgrind --tool=callgrind`. Each gets PROFILE_WARMUP requests, its counters zeroed,
# PROFILE_REQUESTS identical requests on one kept-alive connection (curl walking a URL
# list), then a dump; the dump's total instructions divided by the request count is the
# figure. The dumps stay in the printed directory for
# `callgrind_annotate --inclusive=yes --tree=calling <file>`.
#
# Environment:
#   PROFILE_REQUESTS    measured requests per target (default 2000)
#   PROFILE_WARMUP      requests before zeroing (default 200)
#   PROFILE_TARGET_DIR  where the binaries are built (default target/prof); they are
#                       built there with line tables and without LTO unless
#                       PROFILE_NO_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REQUESTS=${PROFILE_REQUESTS:-2000}
WARMUP_N=${PROFILE_WARMUP:-200}
TARGET=${PROFILE_TARGET_DIR:-$ROOT/target/prof}
BIN=$TARGET/release/junction
BENCH_BIN=$TARGET/release/junction-bench

BENCH_TAG=bench/proxy/profile
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for n in "$REQUESTS" "$WARMUP_N"; do
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1)) || die "PROFILE_REQUESTS and PROFILE_WARMUP must be whole numbers ≥ 1"
done
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    die "valgrind (with callgrind_control) is needed"
install_tools
NGINX_BIN=$(find_nginx)

if [[ ${PROFILE_NO_BUILD:-0} != 1 ]]; then
    log "building the profiling binaries in $TARGET"
    (cd "$ROOT" && build_profiling_binaries "$TARGET")
fi
[[ -x $BIN && -x $BENCH_BIN ]] || die "$BIN or $BENCH_BIN is missing"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-profile-proxy.XXXXXX")
STARTED=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_started "${STARTED[@]}"
    # The dumps are the point: the directory stays.
    log "kept $TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

UPORT=$(pick_port)
JPORT=$(pick_port "$UPORT")
SPORT=$(pick_port "$UPORT" "$JPORT")
NPORT=$(pick_port "$UPORT" "$JPORT" "$SPORT")
UPSTREAM=http://127.0.0.1:$UPORT
BASE_PATH=/services/data/v59.0
VENDOR_PATH=/sobjects/Account/001
PROVIDER_TOKEN=profile-access-$(random_hex 16)
BODY='{"attributes":{"type":"Account"},"Id":"001","Name":"Acme","Industry":"Software","NumberOfEmployees":42}'

nginx_conf_head "$TMP/nginx"
cat >>"$TMP/nginx/nginx.conf" <<EOF
    server {
        listen 127.0.0.1:$UPORT;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
}
EOF
nginx_args "$TMP/nginx"
"$NGINX_BIN" "${NGINX_ARGS[@]}" &
STARTED+=("$!")
wait_ok "$UPSTREAM$BASE_PATH$VENDOR_PATH" 20 || die "nginx did not answer"

# The reference proxy, as in run.sh, in a configuration of its own: one process (no
# master) so that callgrind sees every instruction it spends.
nginx_conf_head "$TMP/nginx-proxy"
sed -i 's/^daemon off;/daemon off;\nmaster_process off;/' "$TMP/nginx-proxy/nginx.conf"
cat >>"$TMP/nginx-proxy/nginx.conf" <<EOF
    upstream provider {
        server 127.0.0.1:$UPORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            proxy_pass http://provider;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $PROVIDER_TOKEN";
        }
    }
}
EOF

# callgrind NAME COMMAND…: starts COMMAND under callgrind, its pid in CG_PID.
callgrind() {
    local name=$1
    shift
    start_callgrind "$TMP/$name.callgrind.%p" "$TMP/$name.log" "$TMP/$name.log" "$@"
    STARTED+=("$CG_PID")
}

# requests URL COUNT [HEADER]: COUNT sequential GETs on one connection; fails unless each
# answered 200.
requests() {
    local url=$1 count=$2 header=${3:-X-Profile: 1} i
    : >"$TMP/urls"
    for ((i = 0; i < count; i++)); do
        printf 'url = "%s"\noutput = "/dev/null"\n' "$url" >>"$TMP/urls"
    done
    curl -sS --max-time 3600 -H "$header" -w '%{http_code}\n' -K "$TMP/urls" >"$TMP/codes"
    local ok
    ok=$(grep -c '^200$' "$TMP/codes" || true)
    ((ok == count)) || die "$url: $ok of $count requests answered 200"
}

# measure NAME PID URL [HEADER]: prints the instructions per request.
measure() {
    local name=$1 pid=$2 url=$3 header=${4:-X-Profile: 1} file total
    requests "$url" "$WARMUP_N" "$header"
    callgrind_zero "$pid" 2>/dev/null
    requests "$url" "$REQUESTS" "$header"
    callgrind_dump "$pid" 2>/dev/null
    file=$TMP/$name.callgrind.$pid.1
    callgrind_count "$file" totals
    total=$CG_COUNT
    log "$name: $total instructions for $REQUESTS requests ($file)"
    echo $((total / REQUESTS))
}

log "bare proxy under callgrind"
callgrind bare "$BENCH_BIN" bare-proxy --listen "127.0.0.1:$SPORT" --upstream "$UPSTREAM"
BARE_PID=$CG_PID
wait_ok "http://127.0.0.1:$SPORT$BASE_PATH$VENDOR_PATH" 120 || die "the bare proxy did not answer"

log "nginx proxy_pass under callgrind"
nginx_args "$TMP/nginx-proxy"
callgrind nginx "$NGINX_BIN" "${NGINX_ARGS[@]}"
NGINX_PID=$CG_PID
wait_ok "http://127.0.0.1:$NPORT$BASE_PATH$VENDOR_PATH" 120 || die "the nginx proxy did not answer"

log "Junction under callgrind"
USER_SECRET=profile-user-$(random_hex 16)
ORG_SECRET=profile-org-$(random_hex 16)
JUNCTION_DATABASE_URL="$TMP/profile.db" JUNCTION_LISTEN="127.0.0.1:$JPORT" \
    JUNCTION_OUTBOUND_ALLOW_PRIVATE=true JUNCTION_LOG=warn \
    JUNCTION_BOOTSTRAP_USER_SECRET="$USER_SECRET" JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET="$ORG_SECRET" \
    callgrind junction "$BIN" serve
JUNCTION_PID=$CG_PID
wait_ok "http://127.0.0.1:$JPORT/health" 300 || die "Junction did not answer GET /health"

J=http://127.0.0.1:$JPORT
INSTANCE_JSON='{"element":{"key":"sfdc"},"externalAuthentication":"initial","name":"profile","configuration":{"oauth.api.key":"k","oauth.api.secret":"s","oauth.callback.url":"https://app.example.com/cb","oauth.user.token":"'$PROVIDER_TOKEN'","base.url":"'$UPSTREAM$BASE_PATH'"}}'
curl -sS --max-time 120 -o "$TMP/instance.json" -X POST "$J/elements/api-v2/instances" \
    -H "Authorization: User $USER_SECRET, Organization $ORG_SECRET" \
    -H 'Content-Type: application/json' -d "$INSTANCE_JSON"
ELEMENT_TOKEN=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' "$TMP/instance.json")
[[ -n $ELEMENT_TOKEN ]] || die "provisioning the instance failed: $(cat "$TMP/instance.json")"

NGINX_IR=$(measure nginx "$NGINX_PID" "http://127.0.0.1:$NPORT$BASE_PATH$VENDOR_PATH")
BARE_IR=$(measure bare "$BARE_PID" "http://127.0.0.1:$SPORT$BASE_PATH$VENDOR_PATH")
JUNCTION_IR=$(measure junction "$JUNCTION_PID" "$J/elements/api-v2/proxy$VENDOR_PATH" \
    "Authorization: Element $ELEMENT_TOKEN")

cat <<EOF

## Proxy profile, $(date -u +%Y-%m-%dT%H:%M:%SZ)

\`bash bench/proxy/profile.sh\` ($REQUESTS requests on one connection after $WARMUP_N of warm-up, callgrind)

| target | instructions per request |
|---|---:|
| nginx proxy_pass + Authorization | $NGINX_IR |
| bare axum + reqwest proxy | $BARE_IR |
| Junction /proxy | $JUNCTION_IR |

- the bare stack / nginx = $(awk -v s="$BARE_IR" -v n="$NGINX_IR" 'BEGIN { printf "%.2f", s / n }')
- Junction / the bare stack = $(awk -v j="$JUNCTION_IR" -v s="$BARE_IR" 'BEGIN { printf "%.2f", j / s }')
- Dumps: $TMP
EOF
