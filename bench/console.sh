#!/usr/bin/env bash
# Console benchmark: seed N instances (default 10,000), then load the console's instance
# list in headless Chromium BENCH_RUNS times (default 20) and read the Performance API:
# when the page and then its scripts and stylesheet were received, first contentful paint, the list rendered and usable (the console's
# `instances-rendered` mark), the load event, and the bytes transferred. Results go to
# bench/results/console.md.
#   bash bench/console.sh
#   BENCH_PROFILE=debug bash bench/console.sh    # measure the debug binaries instead
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench/console
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
PROFILE=${BENCH_PROFILE:-release}
COUNT=${BENCH_COUNT:-10000}
RUNS=${BENCH_RUNS:-20}
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
USER_SECRET=bench-user-secret-0123456789
ORG_SECRET=bench-organization-secret-0123456789
WORK=$(mktemp -d)
PID=""
DRIVER=""
cleanup() {
  [[ -n $PID ]] && stop_pid "$PID"
  [[ -n $DRIVER ]] && stop_pid "$DRIVER"
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v chromium >/dev/null && command -v chromedriver >/dev/null \
  || die "needs chromium and chromedriver: apt-get install chromium chromium-driver"
if [[ $PROFILE == release ]]; then
  cargo build -q --release -p junction -p junction-bench --manifest-path "$REPO/Cargo.toml"
else
  cargo build -q -p junction -p junction-bench --manifest-path "$REPO/Cargo.toml"
fi
BIN=$(cargo_target_dir "$REPO")/$PROFILE
PORT=$(pick_port)
DB="sqlite://$WORK/console.db?mode=rwc"

serve() {
  JUNCTION_DATABASE_URL=$DB JUNCTION_LISTEN=127.0.0.1:$PORT JUNCTION_ENCRYPTION_KEY=$KEY \
  JUNCTION_BOOTSTRAP_USER_SECRET=$USER_SECRET JUNCTION_BOOTSTRAP_ORGANIZATION_SECRET=$ORG_SECRET \
  JUNCTION_LOG=warn "$BIN/junction" serve >"$WORK/serve.out" 2>"$WORK/serve.log" &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return; sleep 0.1; done
  cat "$WORK/serve.log" >&2; die "junction did not start"
}

# The server creates the organization; seeding fills its first account.
serve; stop_pid "$PID"; PID=""
log "seeding $COUNT instances"
"$BIN/junction-bench" seed --database-url "$DB" --encryption-key "$KEY" --count "$COUNT" >&2
serve

DRIVER_PORT=$(pick_port)
chromedriver --port="$DRIVER_PORT" >"$WORK/driver.log" 2>&1 &
DRIVER=$!

result=$(python3 - "$DRIVER_PORT" "http://127.0.0.1:$PORT" "$USER_SECRET" "$ORG_SECRET" "$RUNS" "$WORK" <<'PY'
import json, statistics, sys, time, urllib.request
driver, origin, user, org, runs, work = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
base = f"http://127.0.0.1:{driver}"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["value"]

for _ in range(100):
    try:
        call("GET", "/status"); break
    except Exception:
        time.sleep(0.1)
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1100,760", f"--user-data-dir={work}/profile"]
session = call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}})["sessionId"]
s = f"/session/{session}"
try:
    call("POST", s + "/url", {"url": origin + "/"})
    call("POST", s + "/execute/sync", {"script": "sessionStorage.setItem('junction.credentials', JSON.stringify({user: arguments[0], organization: arguments[1]}))", "args": [user, org]})
    # Every run is a full load with an empty HTTP cache, as a first visit is.
    call("POST", s + "/goog/cdp/execute", {"cmd": "Network.enable", "params": {}})
    call("POST", s + "/goog/cdp/execute", {"cmd": "Network.setCacheDisabled", "params": {"cacheDisabled": True}})
    rows = []
    for i in range(runs + 1):
        call("POST", s + "/url", {"url": f"{origin}/?run={i}#/instances"})
        for _ in range(600):
            done = call("POST", s + "/execute/sync", {"script": "return performance.getEntriesByName('instances-rendered').length > 0 && document.readyState === 'complete'", "args": []})
            if done: break
            time.sleep(0.01)
        else:
            sys.exit("the instance list never rendered")
        m = call("POST", s + "/execute/sync", {"script": """
            const nav = performance.getEntriesByType('navigation')[0];
            const paint = performance.getEntriesByName('first-contentful-paint')[0];
            const res = performance.getEntriesByType('resource');
            const rows = document.querySelectorAll('table[aria-label=Instances] tbody tr').length;
            const list = res.find(e => e.name.includes('/elements/api-v2/instances?'));
            const assets = res.filter(e => e.name.includes('/console/'));
            return {html: nav.responseEnd,
                    assets: Math.max(...assets.map(e => e.responseEnd)),
                    fcp: paint ? paint.startTime : null,
                    api: list ? list.responseEnd - list.startTime : null,
                    api_start: list ? list.startTime : null,
                    rendered: performance.getEntriesByName('instances-rendered')[0].startTime,
                    load: nav.loadEventEnd,
                    bytes: nav.transferSize + res.reduce((n, e) => n + e.transferSize, 0),
                    requests: 1 + res.length, rows,
                    total: document.querySelector('.pager span').textContent};""", "args": []})
        if i > 0:  # the first load warms the server
            rows.append(m)
finally:
    call("DELETE", s)
# A run can miss an entry (no first-contentful-paint when the list replaced the page
# before Chromium painted, say): medians are of the runs that have it.
seen = lambda k: sorted(r[k] for r in rows if r[k] is not None) or [float("nan")]
med = lambda k: statistics.median(seen(k))
p95 = lambda k: seen(k)[max(0, int(len(seen(k)) * 0.95) - 1)]
print(json.dumps({"runs": len(rows), "html_ms": med("html"), "assets_ms": med("assets"), "fcp_ms": med("fcp"), "rendered_ms": med("rendered"),
                  "api_ms": med("api"), "api_start_ms": med("api_start"),
                  "rendered_p95_ms": p95("rendered"), "load_ms": med("load"),
                  "bytes": rows[-1]["bytes"], "requests": rows[-1]["requests"],
                  "rows": rows[-1]["rows"], "shown": rows[-1]["total"]}))
PY
)
echo "$result" >&2

OUT=${BENCH_RESULTS:-$REPO/bench/results/console.md}
mkdir -p "$(dirname "$OUT")"
python3 - "$result" "$COUNT" "$PROFILE" "$(git -C "$REPO" rev-parse --short=12 HEAD)" "$(date -u '+%Y-%m-%d %H:%M UTC')" >"$OUT" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
count, profile, commit, when = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
print(f"## Console benchmark, {when}\n")
print(f"Command: `bash bench/console.sh` ({profile} build, SQLite, {int(count):,} instances, "
      f"{r['runs']} cold-cache loads, medians); Junction commit {commit}.\n")
print("| instances | rows shown | page received ms | scripts and stylesheet received ms | first contentful paint ms | list call starts ms | list call takes ms | list rendered and usable ms (p50 / p95) | load event ms | requests | bytes transferred |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| {int(count):,} | {r['rows']} ({r['shown']}) | {r['html_ms']:.1f} | {r['assets_ms']:.1f} | {r['fcp_ms']:.1f} | {r['api_start_ms']:.1f} | {r['api_ms']:.1f} | {r['rendered_ms']:.1f} / {r['rendered_p95_ms']:.1f} | {r['load_ms']:.1f} | {r['requests']} | {r['bytes']:,} |")
print("\nGoal: the list under 100 ms, the console under 200 KB.")
PY
echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)." >>"$OUT"
cat "$OUT"
