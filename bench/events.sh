#!/usr/bin/env bash
# Events end to end: provider webhooks into Junction, signed notifications out to a local
# receiver answering 200, on SQLite and on PostgreSQL.
#
#   bash bench/events.sh
#
# `junction-bench events` is both the provider and the app: it posts Salesforce-style
# webhooks to /events/sfdc (one event each, a new object each) and runs the receiver,
# which reads each event's send time from the payload. Per database it measures:
#   1. throughput: BENCH_COUNT webhooks from BENCH_CONCURRENCY senders as fast as they
#      go, until the last notification arrived (events/s end to end);
#   2. latency, send → receipt, at a light load (50/s), and paced open loop at 50% and
#      100% of the rate measured in 1;
#   3. an outage: the receiver answers 503 for BENCH_OUTAGE seconds while webhooks keep
#      arriving at BENCH_OUTAGE_RATE/s, then 200 again: seconds until the backlog is in.
# Junction runs with its defaults (4 delivery workers, the 4^n retry schedule). The table
# is written to bench/results/events.md.
#
# Environment: BENCH_COUNT (20000), BENCH_CONCURRENCY (32), BENCH_PHASE (10 s),
# BENCH_OUTAGE (60 s), BENCH_OUTAGE_RATE (200/s), BENCH_BACKENDS ("sqlite postgres"),
# BENCH_NO_BUILD (0), JUNCTION_TEST_DATABASE_URL (a PostgreSQL to use instead of
# scripts/pg-test.sh's).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
RELEASE=$(cargo_target_dir "$REPO")/release
COUNT=${BENCH_COUNT:-20000}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
PHASE=${BENCH_PHASE:-10}
OUTAGE=${BENCH_OUTAGE:-60}
OUTAGE_RATE=${BENCH_OUTAGE_RATE:-200}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
USER_SECRET=bench-user-0123456789abcdef
ORG_SECRET=bench-org-0123456789abcdef
AUTH="User $USER_SECRET, Organization $ORG_SECRET"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench-events.XXXXXX")
PID=""
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  cargo build -q --release -p junction -p junction-bench --manifest-path "$REPO/Cargo.toml"
fi
PORT=$(pick_port)

serve() {  # database url
  JUNCTION_DATABASE_URL=$1 JUNCTION_LISTEN=127.0.0.1:$PORT JUNCTION_ENCRYPTION_KEY=$KEY \
  JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET \
  JUNCTION_OUTBOUND_ALLOW_PRIVATE=true JUNCTION_CALLER_CONCURRENCY=64 \
  JUNCTION_LOG=warn "$RELEASE/junction" serve >"$WORK/serve.out" 2>"$WORK/serve.log" &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return; sleep 0.1; done
  echo "junction did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1
}

OUT="$REPO/bench/results/events.md"
mkdir -p "$(dirname "$OUT")"
{
  echo "## Events benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
  echo
  echo "Command: \`bash bench/events.sh\` (BENCH_COUNT=$COUNT, BENCH_CONCURRENCY=$CONCURRENCY, BENCH_PHASE=$PHASE s, BENCH_OUTAGE=$OUTAGE s at $OUTAGE_RATE/s); Junction commit $(git -C "$REPO" rev-parse --short=12 HEAD). Latencies are from the webhook's send to the receiver's receipt, in ms."
  echo
  echo "| backend | ingest/s | end to end events/s | p50 light (rate) | p99 light | p50 at 50% | p99 at 50% | p50 at 100% | p99 at 100% | outage backlog | drained after return |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$OUT"

for backend in $BACKENDS; do
  if [[ $backend == sqlite ]]; then
    DB="sqlite://$WORK/events.db?mode=rwc"
  else
    PG_ADMIN=${JUNCTION_TEST_DATABASE_URL:-$(bash "$REPO/scripts/pg-test.sh" start)}
    name="bench_events_$$_$RANDOM"
    psql -q "$PG_ADMIN" -c "create database $name" >/dev/null
    DB="${PG_ADMIN%/*}/$name"
  fi
  serve "$DB"
  echo "== $backend" >&2
  result=$("$RELEASE/junction-bench" events --api "http://127.0.0.1:$PORT/elements/api-v2" \
    --authorization "$AUTH" --count "$COUNT" --concurrency "$CONCURRENCY" \
    --phase-seconds "$PHASE" --outage-seconds "$OUTAGE" --outage-rate "$OUTAGE_RATE")
  echo "$result" >&2
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  if [[ $backend == postgres ]]; then psql -q "$PG_ADMIN" -c "drop database $name" >/dev/null; fi
  python3 - "$backend" "$result" >>"$OUT" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
t, o = r["throughput"], r["outage"]
l = {x["load"]: x for x in r["latency"]}
print(f"| {sys.argv[1]} | {t['ingest_per_s']:,.0f} | {t['end_to_end_per_s']:,.0f} "
      f"| {l['light']['p50_ms']:.1f} ({l['light']['rate']:.0f}/s) | {l['light']['p99_ms']:.1f} "
      f"| {l['50%']['p50_ms']:.1f} | {l['50%']['p99_ms']:.1f} "
      f"| {l['100%']['p50_ms']:.1f} | {l['100%']['p99_ms']:.1f} "
      f"| {o['backlog']:,} | {o['drain_seconds']:.1f} s{'' if o['drained'] else ' (NOT drained)'} |")
PY
done
cat "$OUT"
