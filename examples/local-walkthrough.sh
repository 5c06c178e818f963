#!/usr/bin/env bash
# The two-step OAuth provisioning flow, end to end on this machine: a real OAuth 2.0
# server (oidc-provider, standing in for Salesforce) and Junction with a fresh SQLite
# database in a temporary directory, each on a free loopback port.
#
#   bash scripts/setup-test-deps.sh      # once: installs the local OAuth server
#   bash examples/local-walkthrough.sh
#
# WALKTHROUGH_PROFILE=dev uses a debug build instead of a release one (the test suite
# runs the walk-through that way, reusing the build it already has).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
fail() {
  echo "walk-through: $1" >&2
  [[ -f ${2:-} ]] && { echo "--- $2" >&2; cat "$2" >&2; }
  exit 1
}

[[ -d $REPO/tests/peers/oidc/node_modules ]] \
  || fail "the local OAuth server is not installed: run 'bash scripts/setup-test-deps.sh' once"
PROFILE=${WALKTHROUGH_PROFILE:-release}
echo "== building Junction ($PROFILE)"
cargo build -q --profile "$PROFILE" -p junction --manifest-path "$REPO/Cargo.toml"
JUNCTION="$(cargo_target_dir "$REPO")/$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")/junction"
PEER_PORT=$(pick_port)
PORT=$(pick_port "$PEER_PORT")

echo "== starting a local OAuth 2.0 server (Salesforce stand-in) on :$PEER_PORT"
EXIT_ON_STDIN_EOF=0 PORT=$PEER_PORT node "$REPO/tests/peers/oidc/peer.mjs" >"$WORK/peer.out" 2>"$WORK/peer.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q READY "$WORK/peer.out" && break; sleep 0.1; done
grep -q READY "$WORK/peer.out" || fail "the local OAuth server did not start" "$WORK/peer.err"

echo "== starting Junction on :$PORT (first start prints the bootstrap secrets once)"
(cd "$WORK" && JUNCTION_LISTEN=127.0.0.1:$PORT JUNCTION_OUTBOUND_ALLOW_PRIVATE=true \
  exec "$JUNCTION" serve >"$WORK/secrets.json" 2>"$WORK/junction.log") &
JPID=$!
PIDS+=("$JPID")
wait_healthy "http://127.0.0.1:$PORT" "$JPID" || fail "Junction did not start" "$WORK/junction.log"

AUTH=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["authorization"])' "$WORK/secrets.json")
API=http://127.0.0.1:$PORT/elements/api-v2
CALLBACK=https://app.example.test/oauth/callback

echo "== step 1: GET /elements/sfdc/oauth/url"
status=$(curl -s -o "$WORK/url.json" -w '%{http_code}' "$API/elements/sfdc/oauth/url?apiKey=junction-test&callbackUrl=$CALLBACK")
[[ $status == 200 ]] || fail "GET /elements/sfdc/oauth/url answered $status: $(cat "$WORK/url.json")"
cat "$WORK/url.json"; echo
OAUTH_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["oauthUrl"])' "$WORK/url.json")

echo "== the customer consents (a scripted browser; the query is Junction's, the host the local server)"
URL="http://127.0.0.1:$PEER_PORT/auth?${OAUTH_URL#*\?}"
LOC=""
for _ in $(seq 10); do
  LOC=$(curl -s -o /dev/null -b "$WORK/jar" -c "$WORK/jar" -w '%{redirect_url}' "$URL")
  case "$LOC" in "$CALLBACK"*) break ;; esac
  URL=$LOC
done
CODE=$(sed -nE 's/.*[?&]code=([^&]+).*/\1/p' <<<"$LOC")
[[ -n $CODE ]] || fail "the local OAuth server sent no code (last redirect: ${LOC:-none})" "$WORK/peer.err"
echo "callback received code=${CODE:0:8}…"

echo "== step 2: POST /instances"
status=$(curl -s -o "$WORK/instance.json" -w '%{http_code}' -X POST "$API/instances" \
  -H "Authorization: $AUTH" -H 'Content-Type: application/json' -d @- <<JSON
{
  "element": {"key": "sfdc"},
  "providerData": {"code": "$CODE"},
  "configuration": {
    "oauth.api.key": "junction-test",
    "oauth.api.secret": "junction-test-secret",
    "oauth.callback.url": "$CALLBACK",
    "oauth.token.url": "http://127.0.0.1:$PEER_PORT/token"
  },
  "tags": ["customer-42"],
  "name": "Acme Salesforce"
}
JSON
)
[[ $status == 200 ]] || fail "POST /instances answered $status: $(cat "$WORK/instance.json")" "$WORK/junction.log"
python3 - "$WORK/instance.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
c = i["configuration"]
print(f'instance {i["id"]} "{i["name"]}" valid={i["valid"]} element={i["element"]["key"]}')
print(f'  base.url (from instance_url) = {c["base.url"]}')
print(f'  oauth.user.token = {c["oauth.user.token"]}   oauth.api.secret = {c["oauth.api.secret"]}')
PY

echo "== GET /instances?tags[]=customer-42"
curl -sf -g "$API/instances?tags[]=customer-42" -H "Authorization: $AUTH" | python3 -c 'import json,sys; print([i["id"] for i in json.load(sys.stdin)])'
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/instance.json")
echo "== DELETE /instances/$ID"
curl -s -o /dev/null -w '%{http_code}\n' -X DELETE "$API/instances/$ID" -H "Authorization: $AUTH"
