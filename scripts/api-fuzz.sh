#!/usr/bin/env bash
# Sends schemathesis-generated requests to a fresh Junction (SQLite, temporary directory)
# for every operation of its OpenAPI document, and fails on any 5xx or any response that
# contradicts the document. Bounded: ST_MAX_EXAMPLES examples per operation (default 25).
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
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build -q -p junction --manifest-path "$REPO/Cargo.toml"
JUNCTION=$(cargo_target_dir "$REPO")/debug/junction
PORT=${ST_PORT:-$(pick_port)}
USER_SECRET=fuzz-user-secret-0123456789
ORG_SECRET=fuzz-organization-secret-0123456789
(
  cd "$WORK"
  JUNCTION_LISTEN=127.0.0.1:$PORT \
  JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET \
  JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET \
  JUNCTION_OUTBOUND_TIMEOUT=2 \
  JUNCTION_AUTH_FAILURE_LIMIT=1000000 \
  JUNCTION_LOG=warn \
  exec "$JUNCTION" serve >"$WORK/stdout" 2>"$WORK/junction.log"
) &
PID=$!
if ! wait_healthy "http://127.0.0.1:$PORT" "$PID"; then
  echo "api-fuzz: Junction did not start; its log:" >&2
  cat "$WORK/junction.log" >&2
  exit 1
fi

status=0
"$REPO/tests/schemathesis/.venv/bin/schemathesis" run \
  "http://127.0.0.1:$PORT/elements/api-v2/openapi.json" \
  --header "Authorization: User $USER_SECRET, Organization $ORG_SECRET" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "${ST_MAX_EXAMPLES:-25}" \
  --seed 1 \
  --no-color || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- junction log" >&2
  tail -50 "$WORK/junction.log" >&2
fi
exit "$status"
