#!/usr/bin/env bash
# One million instances: how Junction's instance paths hold up as the instance table
# grows, on SQLite and PostgreSQL.
#
#   bash bench/million.sh
#   BENCH_NO_BUILD=1 BENCH_COUNTS="0 100000" BENCH_BACKENDS=sqlite bash bench/million.sh
#
# Per backend one database grows through the counts in BENCH_COUNTS (ascending):
# `junction-bench seed` tops it up to the count (through the store, with real
# encryption, BENCH_SEED_BATCH instances per transaction; every instance has a refresh
# token for the local token endpoint), PostgreSQL gets `VACUUM (ANALYZE)`, and then, at
# that count:
#   1. refresh sweep: the seeded instances' token expiries are spread evenly over one hour
#      starting 5 minutes from now (`junction-bench spread-expiries`: Junction renews a
#      token 5 minutes before it expires, so renewals fall due evenly from the start, as
#      in a server that has been running all along); Junction runs for BENCH_SWEEP_SECONDS
#      with its default sweep interval, renewing tokens at nginx; then the renewals that
#      fell due in the window, those done, tokens expired unrenewed, and Junction's CPU
#      (utime + stime from /proc/PID/stat from exec to the window's end, in cores);
#   2. start to ready: BENCH_STARTS starts of `junction serve` on that database, each
#      timed from exec to the first 200 of GET /ready (`junction-bench ready-time`);
#   3. listing: BENCH_SAMPLE_PAGES pages of GET /instances?pageSize=100 spread over the
#      id range (the first page, then pages starting after every Nth id; a full walk of
#      1M takes too long to repeat) after 5 unmeasured pages, then BENCH_GETS timed
#      GET /instances/{id} over the ids seen (`junction-bench walk --sample-pages`);
#   4. memory: VmRSS and VmHWM of that server after the walk and the GETs, beside
#      JUNCTION_CACHE_CAPACITY (instances kept in memory);
#   5. provisioning: BENCH_PROVISIONS POST /instances, BENCH_PROVISION_CONCURRENCY at a
#      time after 50 unmeasured ones, each exchanging a code at the token endpoint
#      (`junction-bench provision`). They add to the table for the next count.
# The token endpoint is nginx answering every POST /token with a new access token, a
# rotated refresh token and expires_in 3600, as in bench/run.sh and bench/refresh.sh.
# Steps 2 to 5 run with the refresh sweep off, so renewals do not mix into them.
# Everything started here is stopped on exit; the tables are printed and written to
# bench/results/million.md.
#
# Environment:
#   BENCH_COUNTS                 instance counts, ascending (default "0 100000 1000000")
#   BENCH_BACKENDS               "sqlite postgres" (default)
#   BENCH_PROVISIONS             provisionings per count (2000)
#   BENCH_PROVISION_CONCURRENCY  at once (16)
#   BENCH_SAMPLE_PAGES           list pages timed per count (500)
#   BENCH_GETS                   GET /instances/{id} timed per count (2000)
#   BENCH_STARTS                 starts timed per count (5)
#   BENCH_SWEEP_SECONDS          the refresh sweep's window (120; 0 = no sweep)
#   BENCH_SEED_BATCH             instances per seeding transaction (500)
#   BENCH_RESULTS                where the tables go (bench/results/million.md)
#   BENCH_NO_BUILD               1 = use the existing release binaries without cargo
#   BENCH_KEEP_TMP               1 = keep the temporary directory
#   JUNCTION_TEST_DATABASE_URL   a PostgreSQL to use instead of scripts/pg-test.sh's
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
COUNTS=${BENCH_COUNTS:-0 100000 1000000}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
PROVISIONS=${BENCH_PROVISIONS:-2000}
PROVISION_CONCURRENCY=${BENCH_PROVISION_CONCURRENCY:-16}
SAMPLE_PAGES=${BENCH_SAMPLE_PAGES:-500}
GETS=${BENCH_GETS:-2000}
STARTS=${BENCH_STARTS:-5}
SWEEP_SECONDS=${BENCH_SWEEP_SECONDS:-120}
SEED_BATCH=${BENCH_SEED_BATCH:-500}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/million.md}
NO_BUILD=${BENCH_NO_BUILD:-0}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
BIN=$RELEASE/junction
BENCH_BIN=$RELEASE/junction-bench
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
USER_SECRET=bench-user-0123456789abcdef
ORG_SECRET=bench-org-0123456789abcdef
AUTH="User $USER_SECRET, Organization $ORG_SECRET"
# Junction's default (JUNCTION_CACHE_CAPACITY); set here so the table can name it.
CACHE_CAPACITY=10000
# Junction renews a one-hour token this long before it expires.
MARGIN_SECONDS=300

BENCH_TAG=bench/million
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

previous=-1
for n in $COUNTS; do
    [[ $n =~ ^[0-9]+$ ]] || die "BENCH_COUNTS must be whole numbers"
    ((n >= previous)) || die "BENCH_COUNTS must be in ascending order (one database grows through them)"
    previous=$n
done

install_tools
NGINX_BIN=$(find_nginx)

if [[ $NO_BUILD == 1 ]]; then
    [[ -x $BIN && -x $BENCH_BIN ]] || die "BENCH_NO_BUILD=1 but the release binaries do not exist"
else
    log "cargo build --release -p junction -p junction-bench (a no-op when fresh)"
    (cd "$ROOT" && cargo build --release -p junction -p junction-bench)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-million.XXXXXX")
STARTED=()
PG_ADMIN=""
PG_DB=""
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n $PG_DB ]]; then
        psql -X -q "$PG_ADMIN" -c "drop database if exists $PG_DB with (force)" >/dev/null 2>&1 || true
    fi
    if ((rc != 0)) || [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { date +%s%3N; }
# A free port below the kernel's ephemeral range: thousands of connections to nginx and
# Junction leave ports of that range in TIME_WAIT, where a listener cannot bind.
pick_listen_port() {
    local low p i
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
    for ((i = 0; i < 200; i++)); do
        p=$((10000 + RANDOM % (low - 10000)))
        [[ " $* " == *" $p "* ]] && continue
        port_in_use "$p" || {
            echo "$p"
            return 0
        }
    done
    die "no free loopback port found"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# utime + stime of a process in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

# --- the token endpoint -------------------------------------------------------------------

TPORT=$(pick_listen_port)
TOKEN_URL=http://127.0.0.1:$TPORT/token
start_token_endpoint "$TMP/nginx" "$TPORT"

# The settings every Junction here runs with; the caller may have all the provisioning
# connections in progress at once.
SETTINGS=(JUNCTION_ENCRYPTION_KEY="$KEY" JUNCTION_BOOTSTRAP_USER_SECRET="$USER_SECRET"
    JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET="$ORG_SECRET" JUNCTION_OUTBOUND_ALLOW_PRIVATE=true
    JUNCTION_CALLER_CONCURRENCY="$PROVISION_CONCURRENCY" JUNCTION_CACHE_CAPACITY="$CACHE_CAPACITY")

stop_junction() {
    kill -TERM "$JUNCTION_PID" 2>/dev/null || true
    wait "$JUNCTION_PID" 2>/dev/null || true
}

# After a bulk write (the seed, the spread of every expiry), PostgreSQL's tables hold
# pages whose rows no reader has checked yet and, after the spread, a dead version of
# every row. The first reads would pay for setting those pages' hint bits and autovacuum
# would run during the measurement: a server grown to this size over time had both done
# long ago. VACUUM does it now, as after any bulk load.
settle() {
    [[ $1 == postgres ]] || return 0
    log "postgres: VACUUM (ANALYZE) after the bulk write"
    psql -X -q "$DB" -c 'vacuum (analyze)' >/dev/null
}

LOAD_BEFORE=$(loadavg)
ROWS=""
for backend in $BACKENDS; do
    if [[ $backend == sqlite ]]; then
        DB="sqlite://$TMP/million.db?mode=rwc"
    elif [[ $backend == postgres ]]; then
        PG_ADMIN=${JUNCTION_TEST_DATABASE_URL:-$(bash "$ROOT/scripts/pg-test.sh" start)}
        PG_DB="bench_million_$$"
        psql -X -q "$PG_ADMIN" -c "create database $PG_DB" >/dev/null
        DB="${PG_ADMIN%/*}/$PG_DB"
    else
        die "unknown backend $backend (sqlite or postgres)"
    fi
    # A first start creates the organization and account the instances belong to.
    PORT=$(pick_listen_port "$TPORT")
    start_junction "$PORT" "$DB" "$TMP/bootstrap-$backend.log" "${SETTINGS[@]}" JUNCTION_REFRESH_INTERVAL=0
    stop_junction
    seeded=0
    for N in $COUNTS; do
        # --- seeding ---
        seed_rate="—"
        if ((N > seeded)); then
            log "$backend: seeding $((N - seeded)) instances (to $N)"
            t0=$(now_ms)
            "$BENCH_BIN" seed --database-url "$DB" --encryption-key "$KEY" --count "$((N - seeded))" \
                --token-url "$TOKEN_URL" --batch "$SEED_BATCH"
            seed_rate=$(awk -v n="$((N - seeded))" -v ms="$(($(now_ms) - t0))" 'BEGIN { printf "%.0f", n * 1000 / ms }')
            seeded=$N
            settle "$backend"
        fi

        # --- 1. refresh sweep ---
        sweep='{}'
        sweep_cpu=""
        if ((N > 0 && SWEEP_SECONDS > 0)); then
            spread=$("$BENCH_BIN" spread-expiries --database-url "$DB" --seconds 3600 --offset-seconds "$MARGIN_SECONDS")
            settle "$backend"
            start_ms=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["start_ms"])' "$spread")
            log "$backend $N: refresh sweep for $SWEEP_SECONDS s"
            PORT=$(pick_listen_port "$TPORT")
            window_start=$(now_ms)
            start_junction "$PORT" "$DB" "$TMP/sweep-$backend-$N.log" "${SETTINGS[@]}" JUNCTION_LOG=info
            window_end=$((window_start + SWEEP_SECONDS * 1000))
            sleep "$(awk -v ms="$((window_end - $(now_ms)))" 'BEGIN { printf "%.3f", (ms > 0 ? ms / 1000 : 0) }')"
            ticks=$(cpu_ticks "$JUNCTION_PID")
            sweep_cpu=$(awk -v t="$ticks" -v hz="$TICKS" -v s="$SWEEP_SECONDS" 'BEGIN { printf "%.3f", t / hz / s }')
            stop_junction
            sweep=$("$BENCH_BIN" sweep-count --database-url "$DB" --start-ms "$start_ms" --span-ms 3600000 \
                --window-end-ms "$window_end")
            failed=$(grep -c "background refresh failed" "$TMP/sweep-$backend-$N.log" || true)
            sweep=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["failed"]=int(sys.argv[2]); print(json.dumps(r))' "$sweep" "$failed")
            log "$backend $N: sweep $sweep, $sweep_cpu cores"
        fi

        # --- 2. start to ready ---
        PORT=$(pick_listen_port "$TPORT")
        log "$backend $N: $STARTS starts to ready"
        ready=$(env JUNCTION_DATABASE_URL="$DB" JUNCTION_LISTEN="127.0.0.1:$PORT" JUNCTION_LOG=warn \
            JUNCTION_REFRESH_INTERVAL=0 "${SETTINGS[@]}" \
            "$BENCH_BIN" ready-time --url "http://127.0.0.1:$PORT/ready" --runs "$STARTS" -- "$BIN" serve)

        # --- 3, 4, 5. listing, memory, provisioning ---
        PORT=$(pick_listen_port "$TPORT")
        start_junction "$PORT" "$DB" "$TMP/serve-$backend-$N.log" "${SETTINGS[@]}" JUNCTION_REFRESH_INTERVAL=0
        API=http://127.0.0.1:$PORT/elements/api-v2
        log "$backend $N: listing ($SAMPLE_PAGES pages, $GETS GETs)"
        walk=$("$BENCH_BIN" walk --api "$API" --authorization "$AUTH" --gets "$GETS" --sample-pages "$SAMPLE_PAGES")
        rss_kb=$(status_kb "$JUNCTION_PID" VmRSS)
        hwm_kb=$(status_kb "$JUNCTION_PID" VmHWM)
        log "$backend $N: $PROVISIONS provisionings, $PROVISION_CONCURRENCY at a time"
        provision=$("$BENCH_BIN" provision --api "$API" --authorization "$AUTH" --token-url "$TOKEN_URL" \
            --count "$PROVISIONS" --concurrency "$PROVISION_CONCURRENCY")
        stop_junction

        ROWS+=$(python3 - "$backend" "$N" "$seed_rate" "$walk" "$ready" "$provision" "$sweep" "$sweep_cpu" \
            "$rss_kb" "$hwm_kb" "$(loadavg)" <<'PY'
import json, sys
backend, n, seed_rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
walk, ready, prov, sweep = (json.loads(a) for a in sys.argv[4:8])
cpu, rss, hwm, load = sys.argv[8], int(sys.argv[9]), int(sys.argv[10]), sys.argv[11]
print(json.dumps({"backend": backend, "count": n, "rows": walk.get("total") or 0,
    "seed_rate": seed_rate, "walk": walk, "ready": ready, "provision": prov,
    "sweep": sweep, "sweep_cpu": float(cpu) if cpu else None,
    "rss_mb": rss * 1024 / 1e6, "hwm_mb": hwm * 1024 / 1e6, "load": load}))
PY
)
        log "$backend $N: done: ${ROWS##*$'\n'}"
        ROWS+=$'\n'
    done
    if [[ $backend == sqlite ]]; then
        rm -f "$TMP"/million.db*
    else
        psql -X -q "$PG_ADMIN" -c "drop database $PG_DB with (force)" >/dev/null
        PG_DB=""
    fi
done

printf '%s' "$ROWS" >"$TMP/rows.jsonl"
mkdir -p "$(dirname "$RESULTS")"
python3 - "$TMP/rows.jsonl" "$COUNTS" "$BACKENDS" "$LOAD_BEFORE" "$(loadavg)" \
    "$(git -C "$ROOT" rev-parse --short=12 HEAD)" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    "$PROVISIONS" "$PROVISION_CONCURRENCY" "$SAMPLE_PAGES" "$GETS" "$STARTS" "$SWEEP_SECONDS" \
    "$CACHE_CAPACITY" "$(nproc)" <<'PY' | tee "$RESULTS"
import json, sys
(path, counts, backends, load_before, load_after, commit, date, provisions, concurrency,
 pages, gets, starts, sweep_s, cache, cpus) = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]

def f(x, d=2):
    return f"{x:,.{d}f}"

print(f"## One million instances, {date}, {cpus} cores\n")
print(f"Command: `bash bench/million.sh` (BENCH_COUNTS=\"{counts}\", BENCH_BACKENDS=\"{backends}\"); "
      f"{provisions} provisionings {concurrency} at a time; {pages} list pages of 100 spread over the id range; "
      f"{gets} `GET /instances/{{id}}`; {starts} starts; a {sweep_s} s refresh sweep window; "
      f"JUNCTION_CACHE_CAPACITY={cache}; Junction commit {commit}. "
      f"Load average (1, 5, 15 min) before: {load_before}; after: {load_after}.\n")
print("| backend | instances | seeded/s | provisions/s (p50 / p99 ms) | page p50 / p99 ms | GET {id} p50 / p99 ms | start → ready median (all) ms | RSS / HWM MB | sweep: due / renewed / expired / failed | sweep CPU (cores) | load after |")
print("| --- | ---: | ---: | --- | --- | --- | --- | --- | --- | ---: | --- |")
for r in rows:
    w, p, rd, s = r["walk"], r["provision"], r["ready"], r["sweep"]
    runs = ", ".join(f"{x:.0f}" for x in rd["runs_ms"])
    if rd.get("failed"):
        runs += f"; {len(rd['failed'])} start(s) failed"
    sweep = (f"{s['due']:,} / {s['renewed']:,} / {s['expired']:,} / {s['failed']}" if s else "—")
    cpu = f"{r['sweep_cpu']:.2f}" if r["sweep_cpu"] is not None else "—"
    get = f"{f(w['get_p50_ms'])} / {f(w['get_p99_ms'])}" if w["get_count"] else "—"
    print(f"| {r['backend']} | {r['rows']:,} | {r['seed_rate']} | {f(p['rate'], 0)} ({f(p['p50_ms'], 1)} / {f(p['p99_ms'], 1)}) "
          f"| {f(w['page_p50_ms'])} / {f(w['page_p99_ms'])} ({w['pages']} pages) | {get} "
          f"| {f(rd['median_ms'], 1)} ({runs}) | {f(r['rss_mb'], 1)} / {f(r['hwm_mb'], 1)} | {sweep} | {cpu} | {r['load']} |")

print("\nGoals, per backend (at the largest count unless said):\n")
print("| backend | goal | measured | result |")
print("| --- | --- | --- | --- |")
for b in backends.split():
    rs = [r for r in rows if r["backend"] == b]
    if not rs:
        continue
    top = rs[-1]
    def res(ok):
        return "PASS" if ok else "MISS"
    rates = [r["provision"]["rate"] for r in rs]
    ratio = max(rates) / min(rates)
    label = " / ".join(f"{x:,.0f}" for x in rates)
    at = ", ".join(format(r["rows"], ",") for r in rs)
    print(f"| {b} | provisioning rate at {at} instances within 20 % (max ÷ min ≤ 1.20) | {label}/s: {ratio:.2f} | {res(ratio <= 1.2)} |")
    w = top["walk"]
    print(f"| {b} | list page p99 ≤ 10 ms at {top['rows']:,} | {w['page_p99_ms']:.2f} ms | {res(w['page_p99_ms'] <= 10)} |")
    if w["get_count"]:
        print(f"| {b} | `GET /instances/{{id}}` p99 ≤ 2 ms at {top['rows']:,} | {w['get_p99_ms']:.2f} ms | {res(w['get_p99_ms'] <= 2)} |")
    s = top["sweep"]
    if s:
        ok = s["renewed"] >= s["due"] and s["expired"] == 0 and s["failed"] == 0 and top["sweep_cpu"] < 1
        print(f"| {b} | refresh sweep over {top['rows']:,} spread over an hour keeps up (renewed ≥ due, none expired) under one core | {s['renewed']:,} renewed / {s['due']:,} due, {s['expired']} expired, {top['sweep_cpu']:.2f} cores | {res(ok)} |")
    big = [r for r in rs if r["count"] > int(cache)]
    if len(big) >= 2:
        g = big[-1]["rss_mb"] / big[0]["rss_mb"]
        print(f"| {b} | RSS bounded by the cache ({cache} instances): RSS at {big[-1]['rows']:,} ÷ RSS at {big[0]['rows']:,} ≤ 1.20 | {big[-1]['rss_mb']:.1f} / {big[0]['rss_mb']:.1f} MB: {g:.2f} | {res(g <= 1.2)} |")
    print(f"| {b} | start → ready ≤ 100 ms at {top['rows']:,} (median of {starts}) | {top['ready']['median_ms']:.1f} ms | {res(top['ready']['median_ms'] <= 100)} |")
print(f"\nMachine: {cpus} CPUs, Linux; the load generator, nginx and Junction share them.")
PY
