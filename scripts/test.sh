#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine:
#   1. installs the OAuth2 test peers' dependencies (scripts/setup-test-deps.sh);
#   2. starts a throwaway PostgreSQL (scripts/pg-test.sh), stopped again on exit
#      unless it was already running (set JUNCTION_TEST_DATABASE_URL to use another one);
#   3. cargo test --workspace --locked "$@";
#   4. scripts/api-fuzz.sh: schemathesis-generated requests against the OpenAPI document,
#      and examples/local-walkthrough.sh with port 8080 taken (both skipped when arguments
#      select a subset of the cargo tests).
# The script fails when either step fails.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

echo "--- test dependencies"
bash scripts/setup-test-deps.sh

if [[ -z ${JUNCTION_TEST_DATABASE_URL:-} ]]; then
  echo "--- postgresql"
  if ! bash scripts/pg-test.sh status >/dev/null 2>&1; then
    trap 'bash "$REPO/scripts/pg-test.sh" stop || true' EXIT
  fi
  JUNCTION_TEST_DATABASE_URL=$(bash scripts/pg-test.sh start)
  echo "postgresql: $JUNCTION_TEST_DATABASE_URL"
fi
export JUNCTION_TEST_DATABASE_URL
export JUNCTION_TEST_PEERS_DIR="$REPO/tests/peers"

echo "--- cargo test --workspace --locked $*"
status=0
cargo test --workspace --locked "$@" || status=$?
if [[ $# -eq 0 ]]; then
  echo "--- schemathesis against the OpenAPI document"
  bash scripts/api-fuzz.sh || status=1
  echo "--- the README's walk-through, with port 8080 taken"
  holder=""
  if ! (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8080)); s.listen(); time.sleep(600)' &
    holder=$!
  fi
  WALKTHROUGH_PROFILE=dev bash examples/local-walkthrough.sh || status=1
  [[ -z $holder ]] || kill "$holder" 2>/dev/null || true
fi
exit "$status"
