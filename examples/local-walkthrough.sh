#!/usr/bin/env bash
# The two-step OAuth provisioning flow, end to end on this machine: a real OAuth 2.0
# server (oidc-provider, standing in for Salesforce) on 127.0.0.1:18081 and Junction on
# 127.0.0.1:8080 with a fresh SQLite database in a temporary directory.
#
#   bash scripts/setup-test-deps.sh      # once: installs the local OAuth server
#   bash examples/local-walkthrough.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build -q --release -p junction --manifest-path "$REPO/Cargo.toml"
JUNCTION="$REPO/target/release/junction"

echo "== starting a local OAuth 2.0 server (Salesforce stand-in) on :18081"
EXIT_ON_STDIN_EOF=0 PORT=18081 node "$REPO/tests/peers/oidc/peer.mjs" >"$WORK/peer.out" 2>"$WORK/peer.err" &
PIDS+=($!)
echo "== starting Junction on :8080 (first start prints the bootstrap secrets once)"
(cd "$WORK" && JUNCTION_OUTBOUND_ALLOW_PRIVATE=true exec "$JUNCTION" serve >"$WORK/secrets.json" 2>"$WORK/junction.log") &
PIDS+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:8080/health >/dev/null && grep -q READY "$WORK/peer.out" && break; sleep 0.2; done

AUTH=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["authorization"])' "$WORK/secrets.json")
API=http://127.0.0.1:8080/elements/api-v2
CALLBACK=https://app.example.test/oauth/callback

echo "== step 1: GET /elements/sfdc/oauth/url"
curl -s "$API/elements/sfdc/oauth/url?apiKey=junction-test&apiSecret=junction-test-secret&callbackUrl=$CALLBACK" | tee "$WORK/url.json"
echo
OAUTH_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["oauthUrl"])' "$WORK/url.json")

echo "== the customer consents (a scripted browser; the query is Junction's, the host the local server)"
URL="http://127.0.0.1:18081/auth?${OAUTH_URL#*\?}"
for _ in $(seq 10); do
  LOC=$(curl -s -o /dev/null -b "$WORK/jar" -c "$WORK/jar" -w '%{redirect_url}' "$URL")
  case "$LOC" in "$CALLBACK"*) break ;; esac
  URL=$LOC
done
CODE=$(sed -nE 's/.*[?&]code=([^&]+).*/\1/p' <<<"$LOC")
echo "callback received code=${CODE:0:8}…"

echo "== step 2: POST /instances"
curl -s -X POST "$API/instances" -H "Authorization: $AUTH" -H 'Content-Type: application/json' -d @- >"$WORK/instance.json" <<JSON
{
  "element": {"key": "sfdc"},
  "providerData": {"code": "$CODE"},
  "configuration": {
    "oauth.api.key": "junction-test",
    "oauth.api.secret": "junction-test-secret",
    "oauth.callback.url": "$CALLBACK",
    "oauth.token.url": "http://127.0.0.1:18081/token"
  },
  "tags": ["customer-42"],
  "name": "Acme Salesforce"
}
JSON
python3 - "$WORK/instance.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
c = i["configuration"]
print(f'instance {i["id"]} "{i["name"]}" valid={i["valid"]} element={i["element"]["key"]}')
print(f'  base.url (from instance_url) = {c["base.url"]}')
print(f'  oauth.user.token = {c["oauth.user.token"]}   oauth.api.secret = {c["oauth.api.secret"]}')
PY

echo "== GET /instances?tags[]=customer-42"
curl -s -g "$API/instances?tags[]=customer-42" -H "Authorization: $AUTH" | python3 -c 'import json,sys; print([i["id"] for i in json.load(sys.stdin)])'
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/instance.json")
echo "== DELETE /instances/$ID"
curl -s -o /dev/null -w '%{http_code}\n' -X DELETE "$API/instances/$ID" -H "Authorization: $AUTH"
