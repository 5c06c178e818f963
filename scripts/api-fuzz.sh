#!/usr/bin/env bash
# Sends schemathesis-generated requests to a fresh Junction for every operation of its
# OpenAPI document, and fails on any 5xx or any response that contradicts the document.
# It runs on SQLite (temporary directory) and, when JUNCTION_TEST_DATABASE_URL names a
# PostgreSQL cluster (scripts/test.sh sets it), again on a fresh database there: some
# inputs only fail on one of them (a NUL character in text only on PostgreSQL).
#
# The document states every size limit (maxItems on tags[], maxLength on searchText and
# names, maxProperties on configuration), and the coverage phase generates values at and
# just past each of them; negative mode sends inputs that break them, NUL characters
# included. Bounded: ST_MAX_EXAMPLES examples per operation (default 25).
#
# Every request comes from one address and many carry generated credentials, so the
# failed-authentication limit is raised far enough that they all reach their operation.
#   bash scripts/setup-test-deps.sh   # once
#   bash scripts/api-fuzz.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
WORK=$(mktemp -d)
PID=""
PG_DB=""
PG_ADMIN=${JUNCTION_TEST_DATABASE_URL:-}
cleanup() {
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  [[ -n $PG_DB ]] && psql -q "$PG_ADMIN" -c "drop database if exists \"$PG_DB\" with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build -q -p junction --manifest-path "$REPO/Cargo.toml"
JUNCTION=$(cargo_target_dir "$REPO")/debug/junction
PORT=${ST_PORT:-$(pick_port)}
USER_SECRET=fuzz-user-secret-0123456789
ORG_SECRET=fuzz-organization-secret-0123456789

# run <name> <database url>: one server on a fresh database, one schemathesis run.
run() {
  local name=$1 database=$2 status=0
  mkdir -p "$WORK/$name"
  (
    cd "$WORK/$name"
    JUNCTION_LISTEN=127.0.0.1:$PORT \
    JUNCTION_DATABASE_URL=$database \
    JUNCTION_ENCRYPTION_KEY=$("$JUNCTION" config generate-key) \
    JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET \
    JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET \
    JUNCTION_OUTBOUND_TIMEOUT=2 \
    JUNCTION_AUTH_FAILURE_LIMIT=1000000 \
    JUNCTION_LOG=warn \
    exec "$JUNCTION" serve >"$WORK/$name/stdout" 2>"$WORK/$name/junction.log"
  ) &
  PID=$!
  if ! wait_healthy "http://127.0.0.1:$PORT" "$PID"; then
    echo "api-fuzz: Junction did not start on $name; its log:" >&2
    cat "$WORK/$name/junction.log" >&2
    PID=""
    return 1
  fi
  echo "--- schemathesis on $name"
  "$REPO/tests/schemathesis/.venv/bin/schemathesis" run \
    "http://127.0.0.1:$PORT/elements/api-v2/openapi.json" \
    --header "Authorization: User $USER_SECRET, Organization $ORG_SECRET" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --phases examples,coverage,fuzzing,stateful \
    --mode all \
    --generation-allow-x00 true \
    --max-examples "${ST_MAX_EXAMPLES:-25}" \
    --seed 1 \
    --no-color || status=$?
  if [[ $status -ne 0 ]]; then
    echo "--- junction log ($name)" >&2
    tail -50 "$WORK/$name/junction.log" >&2
  fi
  kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  PID=""
  return "$status"
}

status=0
run sqlite "$WORK/sqlite/junction.db" || status=1
if [[ -n $PG_ADMIN ]]; then
  PG_DB="junction_fuzz_$$"
  psql -q "$PG_ADMIN" -c "create database \"$PG_DB\"" >/dev/null
  run postgres "$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_ADMIN" "$PG_DB")" || status=1
fi
exit "$status"
