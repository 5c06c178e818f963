#!/usr/bin/env bash
# Hub resource benchmark: a paged walk of Salesforce-style records through Junction's
# `sfdc` element against the Salesforce stand-in, and the same walk straight against the
# stand-in (the ceiling: following `nextRecordsUrl` with the same batch size), in the same
# run. Collections of 10,000 (Contacts) and 100,000 (Accounts) records, pages of 2000 and
# 200; Junction's memory after the 10k walks and after the 100k walks; and a walk whose
# `where` Junction evaluates itself (a `junction`-translation resource of a custom
# element) beside the same filter sent to Salesforce as SOQL. Results go to
# bench/results/hub.md.
#   bash bench/hub.sh                    # release build first (a no-op when fresh)
#   BENCH_NO_BUILD=1 bash bench/hub.sh   # reuse the binaries
# Settings: BENCH_ACCOUNTS (100000), BENCH_CONTACTS (10000), BENCH_REPEAT (10: the
# fastest of that many walks counts; four times as many for a walk of under 20 pages),
# BENCH_PAGE_SIZES ("2000 200"), BENCH_RESULTS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench/hub
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
RELEASE=$(cargo_target_dir "$ROOT")/release
BIN=$RELEASE/junction
DRIVER=$RELEASE/junction-bench
ACCOUNTS=${BENCH_ACCOUNTS:-100000}
CONTACTS=${BENCH_CONTACTS:-10000}
REPEAT=${BENCH_REPEAT:-10}
PAGE_SIZES=${BENCH_PAGE_SIZES:-"2000 200"}
OUT=${BENCH_RESULTS:-$ROOT/bench/results/hub.md}
USER_SECRET=bench-user-secret-0123456789
ORG_SECRET=bench-organization-secret-0123456789
AUTH="User $USER_SECRET, Organization $ORG_SECRET"
WORK=$(mktemp -d)
STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT

command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    log "building the release binaries"
    cargo build -q --release -p junction -p junction-bench --manifest-path "$ROOT/Cargo.toml"
fi
[[ -x $BIN && -x $DRIVER ]] || die "no release binaries in $RELEASE"

# Other builds or benchmarks on the machine make every number here lower.
busy_before=$(pgrep -c -x 'rustc|cc1|ld|cargo' || true)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

log "starting the Salesforce stand-in ($ACCOUNTS Accounts, $CONTACTS Contacts)"
"$DRIVER" salesforce --accounts "$ACCOUNTS" --contacts "$CONTACTS" >"$WORK/sf.json" 2>"$WORK/sf.log" &
STARTED+=("$!")
SF_PID=$!
for ((i = 0; i < 600; i++)); do [[ -s $WORK/sf.json ]] && break; sleep 0.1; done
[[ -s $WORK/sf.json ]] || die "the stand-in did not start: $(cat "$WORK/sf.log")"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
SF_URL=$(field "$WORK/sf.json" url)
TOKEN_URL=$(field "$WORK/sf.json" tokenUrl)
SF_TOKEN=$(field "$WORK/sf.json" token)

# The bare hop: the same walk through a forwarder that does nothing but forward (axum in,
# reqwest out, the stand-in's token set), what any proxy on this stack costs per page.
BARE_PORT=$(pick_port)
"$DRIVER" bare-proxy --listen "127.0.0.1:$BARE_PORT" --upstream "$SF_URL" \
    --authorization "Bearer $SF_TOKEN" >"$WORK/bare.log" 2>&1 &
STARTED+=("$!")
BARE_URL=http://127.0.0.1:$BARE_PORT
for ((i = 0; i < 100; i++)); do curl -s -o /dev/null "$BARE_URL/" && break; sleep 0.1; done

PORT=$(pick_port)
API=http://127.0.0.1:$PORT/elements/api-v2
log "starting Junction on 127.0.0.1:$PORT (SQLite)"
start_junction "$PORT" "sqlite://$WORK/hub.db?mode=rwc" "$WORK/junction.log" \
    JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET
JPID=$JUNCTION_PID

post() {  # path, JSON body → JSON answer (fails on a non-2xx)
    curl -sf -X POST "$API$1" -H "Authorization: $AUTH" -H 'Content-Type: application/json' -d "$2" ||
        die "POST $1 failed: $(curl -s -X POST "$API$1" -H "Authorization: $AUTH" -H 'Content-Type: application/json' -d "$2")"
}
json_get() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

log "provisioning an sfdc instance through the code exchange"
instance=$(post /instances "{\"element\":{\"key\":\"sfdc\"},\"name\":\"bench\",\"providerData\":{\"code\":\"bench-code\"},
  \"configuration\":{\"oauth.api.key\":\"bench-client\",\"oauth.api.secret\":\"bench-secret\",
  \"oauth.callback.url\":\"https://app.example/cb\",\"oauth.token.url\":\"$TOKEN_URL\"}}")
ELEMENT_AUTH="Element $(json_get "$instance" token)"
idle_rss=$(status_kb "$JPID" VmRSS)

# A custom element whose resource reads the same Accounts and evaluates `where` itself.
post /elements "$(
    cat <<JSON
{"name": "Bench Accounts", "key": "benchaccounts", "description": "Salesforce Accounts, filtered by Junction", "hub": "crm",
 "authentication": {"type": "apiKey"},
 "configuration": [
   {"key": "base.url", "name": "Base URL", "default": "https://login.salesforce.com"},
   {"key": "bench.token", "name": "Token", "type": "PASSWORD", "required": true}],
 "credentials": [{"in": "header", "name": "Authorization", "value": "Bearer {bench.token}"}],
 "resources": [{"path": "/hubs/crm/accounts", "method": "GET", "vendorPath": "/services/data/v59.0/query", "rootKey": "records",
   "parameters": [{"name": "SELECT FIELDS(STANDARD) FROM Account", "vendorName": "q", "type": "value", "vendorType": "query"}],
   "paging": {"style": "nextUrl", "next": "nextRecordsUrl", "more": "!done",
     "pageSize": {"name": "Sforce-Query-Options", "in": "header", "template": "batchSize={pageSize}", "default": 200, "max": 2000}},
   "query": {"translation": "junction"}}]}
JSON
)" >/dev/null
custom=$(post /instances "{\"element\":{\"key\":\"benchaccounts\"},\"name\":\"bench filtered\",
  \"configuration\":{\"base.url\":\"$SF_URL\",\"bench.token\":\"$SF_TOKEN\"}}")
CUSTOM_AUTH="Element $(json_get "$custom" token)"

walk() {  # via, url, authorization, target, page size[, repeat] → JSON line of the fastest walk
    "$DRIVER" hub-walk --via "$1" --url "$2" --authorization "$3" --target "$4" --page-size "$5" --repeat "${6:-$REPEAT}"
}
fastest() {  # file of JSON lines, one a walk → the fastest (all must have seen as many records)
    python3 - "$1" <<'PY'
import json, sys
walks = [json.loads(l) for l in open(sys.argv[1])]
if len({w["records"] for w in walks}) != 1:
    sys.exit("two walks of the same collection saw different record counts")
print(json.dumps(min(walks, key=lambda w: w["seconds"])))
PY
}

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
record() {  # label, collection size, page size, direct JSON, junction JSON[, bare hop JSON]
    python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
label, size, page, direct, through = sys.argv[1:6]
bare = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None
print(json.dumps({"label": label, "size": int(size), "page": int(page),
                  "direct": json.loads(direct), "junction": json.loads(through), "bare": bare}))
PY
}

for collection in contacts accounts; do
    if [[ $collection == contacts ]]; then object=Contact size=$CONTACTS; else object=Account size=$ACCOUNTS; fi
    for page in $PAGE_SIZES; do
        # A walk of a few pages is over in milliseconds, where one scheduling hiccup is
        # a large share: short walks are repeated more, so that their fastest is as
        # steady as a long walk's.
        repeat=$REPEAT
        ((size / page < 20)) && repeat=$((REPEAT * 4))
        log "walking $size ${collection} at $page a page, $repeat times each: direct, through Junction, through the bare hop, in turn"
        # In turn, one walk of each at a time, so that a slow minute on the machine
        # falls on all three alike rather than on whichever was walking then.
        : >"$WORK/direct.jsonl"
        : >"$WORK/through.jsonl"
        : >"$WORK/bare.jsonl"
        for ((r = 0; r < repeat; r++)); do
            walk direct "$SF_URL" "Bearer $SF_TOKEN" "SELECT FIELDS(STANDARD) FROM $object" "$page" 1 >>"$WORK/direct.jsonl"
            walk junction "$API" "$ELEMENT_AUTH" "/hubs/crm/$collection" "$page" 1 >>"$WORK/through.jsonl"
            walk direct "$BARE_URL" "Bearer ignored" "SELECT FIELDS(STANDARD) FROM $object" "$page" 1 >>"$WORK/bare.jsonl"
        done
        record "$collection" "$size" "$page" "$(fastest "$WORK/direct.jsonl")" "$(fastest "$WORK/through.jsonl")" \
            "$(fastest "$WORK/bare.jsonl")"
    done
    eval "rss_$collection=$(status_kb "$JPID" VmRSS)"
    eval "hwm_$collection=$(status_kb "$JPID" VmHWM)"
done

log "walking Accounts with where IsPartner = true: SOQL at Salesforce, then evaluated by Junction"
filtered_direct=$(walk direct "$SF_URL" "Bearer $SF_TOKEN" "SELECT FIELDS(STANDARD) FROM Account WHERE IsPartner = true" 2000)
filtered_junction=$(walk junction "$API" "$CUSTOM_AUTH" "/hubs/crm/accounts?where=IsPartner%20%3D%20true" 2000 2>"$WORK/filtered.err" ||
    echo '{"error": "refused"}')
[[ -s $WORK/filtered.err ]] && log "the filtered walk through Junction failed: $(head -c 300 "$WORK/filtered.err")"
record "accounts where IsPartner = true" "$ACCOUNTS" 2000 "$filtered_direct" "$filtered_junction"
rss_after=$(status_kb "$JPID" VmRSS)
hwm_after=$(status_kb "$JPID" VmHWM)

busy_after=$(pgrep -c -x 'rustc|cc1|ld|cargo' || true)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$SF_PID" 2>/dev/null || die "the stand-in stopped during the run"
kill -0 "$JPID" 2>/dev/null || die "Junction stopped during the run"

mkdir -p "$(dirname "$OUT")"
python3 - "$RESULTS" "$idle_rss" "${rss_contacts:?}" "${hwm_contacts:?}" "${rss_accounts:?}" "${hwm_accounts:?}" \
    "$rss_after" "$hwm_after" "$CONTACTS" "$ACCOUNTS" "$REPEAT" \
    "$busy_before" "$busy_after" "$load_before" "$load_after" \
    "$(git -C "$ROOT" rev-parse --short=12 HEAD)" "$(git -C "$ROOT" status --porcelain | wc -l)" >"$OUT" <<'PY'
import datetime, json, sys
(path, idle, rss10, hwm10, rss100, hwm100, rss_end, hwm_end, n10, n100, repeat,
 busy0, busy1, load0, load1, commit, dirty) = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
mb = lambda kb: int(kb) / 1000
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"**Hub resource benchmark, {now}**\n")
print(f"Command: `bash bench/hub.sh` (Salesforce stand-in with {int(n100):,} Accounts and {int(n10):,} Contacts; "
      f"each walk is the fastest of {repeat} (of {4 * int(repeat)} for a walk of under 20 pages), the direct, Junction and bare-hop walks "
      f"taking turns; loopback; Junction on SQLite); commit `{commit}`"
      + (f" with {dirty} uncommitted change(s)" if int(dirty) else "") + ".\n")
print("| Walk | Records | Page size | Pages | Direct records/s | Junction records/s | Ratio | Goal | Added ms per page | Goal | Bare hop records/s (ratio) | Junction ÷ bare hop |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |")
for r in rows:
    d, j = r["direct"], r["junction"]
    if "records_per_s" not in j:
        print(f"| {r['label']} | — | {r['page']} | — | {d['records_per_s']:,.0f} | refused | — | — | — | — | — | — |")
        continue
    filtered = "where" in r["label"]
    ratio = j["records_per_s"] / d["records_per_s"]
    added = j["ms_per_page"] - d["ms_per_page"]
    if filtered:
        goal1 = goal2 = "— (beside)"
    else:
        goal1 = ("PASS" if ratio >= 0.8 else "MISS") + " (≥ 0.80)"
        goal2 = ("PASS" if added <= 1.0 else "MISS") + " (≤ 1 ms)"
    pages = f"{j['pages']:,}" if j["pages"] == d["pages"] else f"{d['pages']:,} / {j['pages']:,}"
    b = r.get("bare")
    if b and "records_per_s" in b:
        bare = f"{b['records_per_s']:,.0f} ({b['records_per_s'] / d['records_per_s']:.2f})"
        over = f"{j['records_per_s'] / b['records_per_s']:.2f}"
    else:
        bare = over = "—"
    print(f"| {r['label']} | {j['records']:,} | {r['page']} | {pages} | {d['records_per_s']:,.0f} | {j['records_per_s']:,.0f} | "
          f"{ratio:.2f} | {goal1} | {added:.2f} | {goal2} | {bare} | {over} |")
print()
growth = mb(hwm100) - mb(hwm10)
flat = "PASS" if growth <= 0.1 * mb(hwm10) else "MISS"
print("Junction memory (MB = 10^6 bytes; VmRSS now, VmHWM the peak so far):\n")
print("| Moment | VmRSS | VmHWM |")
print("| --- | ---: | ---: |")
print(f"| idle, after provisioning | {mb(idle):.1f} MB | — |")
print(f"| after the {int(n10):,}-record walks | {mb(rss10):.1f} MB | {mb(hwm10):.1f} MB |")
print(f"| after the {int(n100):,}-record walks | {mb(rss100):.1f} MB | {mb(hwm100):.1f} MB |")
print(f"| after the filtered walk | {mb(rss_end):.1f} MB | {mb(hwm_end):.1f} MB |")
print(f"\nMemory flat in the collection's size (peak after {int(n100):,} within 10 % of the peak after {int(n10):,}): "
      f"{flat} ({growth:+.1f} MB).\n")
note = (f"Other builds were running on the machine ({busy0} compiler/linker processes at the start, {busy1} at the end; "
        f"load average {load0} → {load1}), so these numbers are lower than a quiet machine's."
        if int(busy0) or int(busy1) else f"No compiler or linker ran during the run (load average {load0} → {load1}).")
print(note)
PY
cat "$OUT"
