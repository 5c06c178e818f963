#!/usr/bin/env bash
# Provisioning against the real OAuth server: oidc-provider from tests/peers/oidc performs
# every code exchange. In the same run, per number of connections (1, 4, 16):
#   1. the provider's own rate: `junction-bench provision-real` posts N fresh codes'
#      exchanges straight to its token endpoint (as the sfdc element sends them,
#      kept-alive connections like any ordinary client);
#   2. Junction's: `POST /instances` for sfdc with N fresh codes, its `oauth.token.url`
#      and `base.url` at the provider, on SQLite (and on PostgreSQL when
#      JUNCTION_BENCH_DATABASE_URL names a server).
# Codes are issued just before each run through the provider's authorization flow (plain
# HTTP with a cookie jar per issuer) and live 600 s there (CODE_TTL). The provider's rate
# with a new connection per exchange is measured too, for information (what a client
# opening one per token call would cost it). Goals: Junction ÷ provider ≥ 0.8 and, at 4 connections, p50 at most
# 2 ms above the provider's. Results go to bench/results/provision.md.
#   bash bench/provision.sh                    # release build in target/bench first
#   BENCH_NO_BUILD=1 bash bench/provision.sh   # reuse the binaries
# Settings: BENCH_COUNT (2000 a run), BENCH_WARMUP (100 a run), BENCH_CONNECTIONS ("1,4,16"),
# BENCH_FRESH_CONNECTIONS ("1,4"; 0 = none), BENCH_ISSUERS (4), BENCH_RESULTS,
# JUNCTION_BENCH_DATABASE_URL (a PostgreSQL server whose user may create databases: a
# database is created there for the run and dropped after), JUNCTION_TEST_PEERS_DIR
# (tests/peers of this checkout).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench/provision
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
RELEASE=$CARGO_TARGET_DIR/release
BIN=$RELEASE/junction
DRIVER=$RELEASE/junction-bench
COUNT=${BENCH_COUNT:-2000}
WARMUP=${BENCH_WARMUP:-100}
CONNECTIONS=${BENCH_CONNECTIONS:-1,4,16}
FRESH=${BENCH_FRESH_CONNECTIONS:-1,4}
ISSUERS=${BENCH_ISSUERS:-4}
OUT=${BENCH_RESULTS:-$ROOT/bench/results/provision.md}
export JUNCTION_TEST_PEERS_DIR=${JUNCTION_TEST_PEERS_DIR:-$ROOT/tests/peers}
USER_SECRET=bench-user-secret-0123456789
ORG_SECRET=bench-organization-secret-0123456789
AUTH="User $USER_SECRET, Organization $ORG_SECRET"
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
WORK=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-provision.XXXXXX")
STARTED=()
PG_ADMIN=""
PG_NAME=""
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    if [[ -n $PG_NAME ]]; then
        psql -q "$PG_ADMIN" -c "drop database if exists $PG_NAME" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"
command -v node >/dev/null || die "node is needed for the OAuth server (tests/peers/oidc)"
[[ -d $JUNCTION_TEST_PEERS_DIR/oidc/node_modules ]] ||
    die "$JUNCTION_TEST_PEERS_DIR/oidc has no node_modules: run bash scripts/setup-test-deps.sh"
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    log "building the release binaries in $CARGO_TARGET_DIR"
    cargo build -q --release -p junction -p junction-bench --manifest-path "$ROOT/Cargo.toml"
fi
[[ -x $BIN && -x $DRIVER ]] || die "no release binaries in $RELEASE"

# Other builds or benchmarks on the machine make every number here lower.
busy_before=$(pgrep -c -x 'rustc|cc1|ld|cargo' || true)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# 16 connections from one caller: above the default of 8 calls in progress per caller.
SETTINGS=(JUNCTION_ENCRYPTION_KEY=$KEY JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET
    JUNCTION_CALLER_CONCURRENCY=256 JUNCTION_REFRESH_INTERVAL=0)
TARGETS=()
PORT=$(pick_port)
log "starting Junction on 127.0.0.1:$PORT (SQLite)"
start_junction "$PORT" "sqlite://$WORK/provision.db?mode=rwc" "$WORK/junction-sqlite.log" "${SETTINGS[@]}"
TARGETS+=(--junction "sqlite=http://127.0.0.1:$PORT/elements/api-v2" --pid "sqlite=$JUNCTION_PID")
PIDS=("$JUNCTION_PID")
if [[ -n ${JUNCTION_BENCH_DATABASE_URL:-} ]]; then
    command -v psql >/dev/null || die "psql is needed for JUNCTION_BENCH_DATABASE_URL"
    PG_ADMIN=$JUNCTION_BENCH_DATABASE_URL
    PG_NAME="bench_provision_$$_$RANDOM"
    psql -q "$PG_ADMIN" -c "create database $PG_NAME" >/dev/null
    PG_PORT=$(pick_port "$PORT")
    log "starting Junction on 127.0.0.1:$PG_PORT (PostgreSQL)"
    start_junction "$PG_PORT" "${PG_ADMIN%/*}/$PG_NAME" "$WORK/junction-postgres.log" "${SETTINGS[@]}"
    TARGETS+=(--junction "postgres=http://127.0.0.1:$PG_PORT/elements/api-v2" --pid "postgres=$JUNCTION_PID")
    PIDS+=("$JUNCTION_PID")
fi

log "measuring: $COUNT exchanges a run at $CONNECTIONS connection(s)"
"$DRIVER" provision-real "${TARGETS[@]}" --authorization "$AUTH" --count "$COUNT" --warmup "$WARMUP" \
    --connections "$CONNECTIONS" --fresh-connections "$FRESH" --issuers "$ISSUERS" >"$WORK/report.json" ||
    die "the driver failed; Junction's log: $(tail -c 2000 "$WORK/junction-sqlite.log")"

busy_after=$(pgrep -c -x 'rustc|cc1|ld|cargo' || true)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "Junction (pid $pid) stopped during the run"; done

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK/report.json" "$COUNT" "$WARMUP" "$ISSUERS" "$busy_before" "$busy_after" "$load_before" "$load_after" \
    "$(git -C "$ROOT" rev-parse --short=12 HEAD)" "$(git -C "$ROOT" status --porcelain --untracked-files=no | wc -l)" >"$OUT" <<'PY'
import datetime, json, sys
(path, count, warmup, issuers, busy0, busy1, load0, load1, commit, dirty) = sys.argv[1:]
report = json.load(open(path))
runs = report["runs"]
provider = {r["connections"]: r for r in runs if r["target"] == "provider" and r["keep_alive"]}
fresh = [r for r in runs if r["target"] == "provider" and not r["keep_alive"]]
targets = [r for r in runs if r["target"] != "provider"]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
cores = lambda r, k: f"{r['cores'][k]:.2f}" if k in r["cores"] else "—"
print(f"**Provisioning against the real OAuth server, {now}**\n")
print(f"Command: `bash bench/provision.sh` (oidc-provider from `tests/peers/oidc` on node; {int(count):,} exchanges "
      f"per run after {int(warmup)} unmeasured, each with a fresh code; loopback); commit `{commit}`"
      + (f" with {dirty} uncommitted change(s)" if int(dirty) else "") + ". "
      f"Codes were issued before each run through the provider's authorization flow by {issuers} user agents "
      f"({report['codes_issued']:,} codes, {report['issue_rate']:,.0f} a second).\n")
print("| Connections | Junction on | Provider exchanges/s | p50 / p99 ms | Junction provisions/s | p50 / p99 ms | Ratio | Goal ≥ 0.80 | p50 difference | Goal ≤ 2 ms | Cores, provider run: provider / driver / other | Cores, Junction run: provider / Junction / driver / other |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- |")
for r in targets:
    p = provider[r["connections"]]
    ratio = r["rate"] / p["rate"]
    diff = r["p50_ms"] - p["p50_ms"]
    goal2 = ("PASS" if diff <= 2.0 else "MISS") if r["connections"] == 4 else "— (at 4)"
    print(f"| {r['connections']} | {r['target']} | {p['rate']:,.0f} | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} | "
          f"{r['rate']:,.0f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {ratio:.2f} | {'PASS' if ratio >= 0.8 else 'MISS'} | "
          f"{diff:+.2f} ms | {goal2} | {cores(p, 'provider')} / {cores(p, 'driver')} / {cores(p, 'other')} | "
          f"{cores(r, 'provider')} / {cores(r, r['target'])} / {cores(r, 'driver')} / {cores(r, 'other')} |")
print()
for f in fresh:
    p = provider.get(f["connections"])
    share = f" ({f['rate'] / p['rate']:.2f} of its rate on kept-alive connections, p50 {f['p50_ms'] - p['p50_ms']:+.2f} ms)" if p else ""
    print(f"The provider with a new connection per exchange, "
          f"{f['connections']} connections: {f['rate']:,.0f} exchanges/s, p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms"
          f"{share}; provider {cores(f, 'provider')} cores, driver {cores(f, 'driver')}, other {cores(f, 'other')}.\n")
kinds = sorted({k for r in targets for k in r.get("junction_threads", {})})
if kinds:
    print("Junction's CPU per provisioning by thread, in µs (user + system), from `/proc/<pid>/task/*/stat` "
          "(10 ms ticks, so a few µs of resolution at these counts):\n")
    # Thread names are cut at 15 characters.
    shown = {"sqlx-sqlite-wor": "sqlx-sqlite-worker-N", "junction": "junction (main)"}
    print("| Connections | Junction on | " + " | ".join(f"`{shown.get(k, k)}`" for k in kinds) + " | total |")
    print("| ---: | --- | " + " | ".join("---:" for _ in kinds) + " | ---: |")
    for r in targets:
        t = r["junction_threads"]
        cell = lambda k: f"{t[k]['user_us']:.0f} + {t[k]['system_us']:.0f}" if k in t else "—"
        total = sum(v["user_us"] + v["system_us"] for v in t.values())
        print(f"| {r['connections']} | {r['target']} | " + " | ".join(cell(k) for k in kinds) + f" | {total:.0f} |")
    print()
busiest = max((r["cores"].get("other", 0.0), r["target"], r["connections"]) for r in runs)
if busiest[0] > 0.25:
    print(f"**Warning:** other processes used up to {busiest[0]:.2f} cores during a run ({busiest[1]} at "
          f"{busiest[2]} connections): the machine was not quiet, and the runs concerned are not comparable.\n")
note = (f"Other builds were running on the machine ({busy0} compiler/linker processes at the start, {busy1} at the end; "
        f"load average {load0} → {load1}), so these numbers are lower than a quiet machine's."
        if int(busy0) or int(busy1) else f"No compiler or linker ran during the run (load average {load0} → {load1}).")
print(note)
PY
cat "$OUT"
