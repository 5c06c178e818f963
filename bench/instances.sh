#!/usr/bin/env bash
# Instance listing benchmark: seed N instances, then walk GET /instances?pageSize=100 to
# the end and time every page, and time GET /instances/{id}; on SQLite and PostgreSQL,
# for each count in BENCH_COUNTS (default "10000 100000"). Release build, load from a
# second process on loopback. Results go to bench/results/instances.md.
#   bash bench/instances.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$REPO")/release
COUNTS=${BENCH_COUNTS:-"10000 100000"}
PORT=${BENCH_PORT:-18731}
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
USER_SECRET=bench-user-secret-0123456789
ORG_SECRET=bench-organization-secret-0123456789
AUTH="User $USER_SECRET, Organization $ORG_SECRET"
WORK=$(mktemp -d)
PID=""
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build -q --release -p junction -p junction-bench --manifest-path "$REPO/Cargo.toml"
BIN="$RELEASE"
PG_ADMIN=$(bash "$REPO/scripts/pg-test.sh" start)

serve() {  # database url
  JUNCTION_DATABASE_URL=$1 JUNCTION_LISTEN=127.0.0.1:$PORT JUNCTION_ENCRYPTION_KEY=$KEY \
  JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET \
  JUNCTION_LOG=warn "$BIN/junction" serve >"$WORK/serve.out" 2>"$WORK/serve.log" &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return; sleep 0.1; done
  echo "junction did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1
}

OUT="$REPO/bench/results/instances.md"
mkdir -p "$(dirname "$OUT")"
{
  echo "## Instance listing benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Command: \`bash bench/instances.sh\` (BENCH_COUNTS=\"$COUNTS\"); pages of 100; Junction commit $(git -C "$REPO" rev-parse --short=12 HEAD)."
  echo
  echo "| backend | instances | pages | walk s | page p50 ms | page p99 ms | page max ms | GET {id} p50 ms | GET {id} p99 ms |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$OUT"

for backend in sqlite postgres; do
  for count in $COUNTS; do
    if [[ $backend == sqlite ]]; then
      DB="sqlite://$WORK/bench-$count.db?mode=rwc"
    else
      name="bench_${count}_$$_$RANDOM"
      psql -q "$PG_ADMIN" -c "create database $name" >/dev/null
      DB="${PG_ADMIN%/*}/$name"
    fi
    # The server creates the organization; seeding fills its first account.
    serve "$DB"; kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    echo "== $backend: seeding $count instances" >&2
    "$BIN/junction-bench" seed --database-url "$DB" --encryption-key "$KEY" --count "$count"
    # Fresh planner statistics, as autovacuum gathers them soon after a bulk load.
    [[ $backend == postgres ]] && psql -q "$DB" -c analyze >/dev/null
    serve "$DB"
    echo "== $backend: walking $count instances" >&2
    result=$("$BIN/junction-bench" walk --api "http://127.0.0.1:$PORT/elements/api-v2" --authorization "$AUTH")
    echo "$result" >&2
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    python3 - "$backend" "$result" >>"$OUT" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print(f"| {sys.argv[1]} | {r['instances']:,} | {r['pages']:,} | {r['walk_seconds']:.1f} | {r['page_p50_ms']:.2f} | {r['page_p99_ms']:.2f} | {r['page_max_ms']:.2f} | {r['get_p50_ms']:.2f} | {r['get_p99_ms']:.2f} |")
PY
  done
done
echo >>"$OUT"
echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)." >>"$OUT"
cat "$OUT"
