# shellcheck shell=bash
# Shared by the benchmark scripts: `source "$ROOT/bench/lib.sh"` after setting
# BENCH_TAG (the log prefix, e.g. "bench/proxy").

# port_in_use, pick_port, cargo_target_dir
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

log() { printf '[%s] %s\n' "${BENCH_TAG:-bench}" "$*" >&2; }
die() {
    printf '[%s] error: %s\n' "${BENCH_TAG:-bench}" "$*" >&2
    exit 1
}

find_nginx() { command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

# Installs wrk, nginx and curl with apt-get when one is missing (as root, or through sudo).
install_tools() {
    local missing=() sudo=()
    command -v wrk >/dev/null || missing+=(wrk)
    [[ -n $(find_nginx) ]] || missing+=(nginx)
    command -v curl >/dev/null || missing+=(curl)
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    if (($(id -u) != 0)); then
        command -v sudo >/dev/null || die "missing ${missing[*]}: install them or run as root"
        sudo=(sudo)
    fi
    log "installing ${missing[*]} with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Stops a process: TERM, then KILL if it is still there after 5 s.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# A field of /proc/<pid>/status in kB.
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Waits up to $2 seconds for $1 to answer 200.
wait_ok() {
    local url=$1 limit=$2 i
    for ((i = 0; i < limit * 10; i++)); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Starts `$BIN serve` on 127.0.0.1:$1 with database $2, its output in file $3, loopback
# providers allowed and warnings logged; further NAME=VALUE arguments add or override
# settings. Records the pid in JUNCTION_PID and STARTED, and waits for GET /health.
start_junction() {
    local port=$1 db=$2 output=$3
    shift 3
    env JUNCTION_DATABASE_URL="$db" JUNCTION_LISTEN="127.0.0.1:$port" \
        JUNCTION_OUTBOUND_ALLOW_PRIVATE=true JUNCTION_LOG=warn "$@" \
        "$BIN" serve >"$output" 2>&1 &
    JUNCTION_PID=$!
    STARTED+=("$JUNCTION_PID")
    wait_ok "http://127.0.0.1:$port/health" 60 || die "Junction did not answer GET /health within 60 s"
}

# Writes $1/nginx.conf up to the inside of its `http` block, keeping everything inside
# directory $1 (daemon off, pid, logs and temporary files there; nothing under /etc/nginx
# is used). The caller appends its servers and closes the block.
nginx_conf_head() {
    local dir=$1 user=""
    # As root, workers would otherwise drop to nobody and could not read a private
    # temporary directory.
    (($(id -u) == 0)) && user="user root;"
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes ${BENCH_NGINX_WORKERS:-1};
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 100000000;
EOF
}

# nginx's arguments for the configuration in directory $1.
nginx_args() {
    local dir=$1
    NGINX_ARGS=(-p "$dir/" -c "$dir/nginx.conf")
    if "$NGINX_BIN" -h 2>&1 | grep -q -- '-e filename'; then
        NGINX_ARGS+=(-e "$dir/error.log")
    fi
}

# Starts nginx in directory $1 as the cheapest token endpoint possible: every POST to
# 127.0.0.1:$2/token answers a new access token and a rotated refresh token. Adds the pid
# to STARTED and waits until it answers.
start_token_endpoint() {
    local dir=$1 port=$2 i
    nginx_conf_head "$dir"
    cat >>"$dir/nginx.conf" <<EOF
    server {
        listen 127.0.0.1:$port;
        location = /token {
            default_type application/json;
            return 200 '{"access_token":"at-\$request_id","refresh_token":"rt-\$request_id","token_type":"Bearer","expires_in":3600}';
        }
    }
}
EOF
    nginx_args "$dir"
    "$NGINX_BIN" "${NGINX_ARGS[@]}" &
    STARTED+=("$!")
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST --max-time 1 "http://127.0.0.1:$port/token" || true) == 200 ]] && return
        sleep 0.1
    done
}

# Builds junction and junction-bench into $1 with line tables and without LTO, so that
# callgrind names Junction's own functions; further arguments go to `cargo build`.
build_profiling_binaries() {
    local target=$1
    shift
    CARGO_TARGET_DIR=$target CARGO_PROFILE_RELEASE_STRIP=false \
        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo build --release -p junction -p junction-bench "$@"
}

# Starts the command after $3 under callgrind in the background, its profile in $1
# (callgrind's %p allowed), its output in $2 and its errors in $3 (the same file as $2
# for both in one). Records the pid in CG_PID.
start_callgrind() {
    local out=$1 stdout=$2 stderr=$3
    shift 3
    if [[ $stderr == "$stdout" ]]; then
        valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$stdout" 2>&1 &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$stdout" 2>"$stderr" &
    fi
    CG_PID=$!
}

# Zeroes the counters of callgrind process $1, so that only the load after it counts.
callgrind_zero() { callgrind_control -z "$1" >/dev/null; }

# Makes callgrind process $1 write its counters so far to a new numbered dump.
callgrind_dump() { callgrind_control -d "$1" >/dev/null; }

# Waits up to 10 s for callgrind's dump $1 to be complete, then records the count on its
# "$2:" line in CG_COUNT: "summary" (callgrind_annotate's PROGRAM TOTALS) or "totals".
callgrind_count() {
    local file=$1 line=$2 i
    for ((i = 0; i < 100; i++)); do
        [[ -s $file ]] && grep -q '^totals:' "$file" && break
        sleep 0.1
    done
    CG_COUNT=$(awk -v k="$line:" '$1 == k { print $2; exit }' "$file")
    [[ -n $CG_COUNT ]] || die "no $line in $file"
}

# Stops the processes given and the children each had, then reaps them.
stop_started() {
    local pid kids kid
    for pid in "$@"; do
        kids=""
        [[ -r /proc/$pid/task/$pid/children ]] && kids=$(cat "/proc/$pid/task/$pid/children")
        stop_pid "$pid"
        for kid in $kids; do stop_pid "$kid"; done
    done
    wait 2>/dev/null || true
}
