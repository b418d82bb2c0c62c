#!/usr/bin/env bash
# Benchmark of campaign decisions and feedback (prints figures; not a test):
#   - POST /api/campaigns/decide with 10 live campaigns (4 arms each; LinUCB, Thompson
#     sampling and uniform policies), 5,000 shoppers on three devices with carts of 0–200,
#     p50/p99 at c=1 and c=16, in an app with the shop's catalogue;
#   - POST /api/campaigns/feedback in batches of 500 conversions, 4 senders: events/s.
#
#   benches/campaigns.sh        # DURATION=5 by default
# Needs: wrk (apt), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
PORT=3311
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
echo "building vitrine (release) and the campaigns function"
cargo build --release -p vitrine --quiet
cargo build --target wasm32-wasip2 --profile wasm -p campaigns -p catalog --quiet
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "campaigns-bench"
[variables]
admin_token = { default = "bench-token" }
[[trigger.http]]
route = "/api/..."
component = "campaigns"
[component.campaigns]
source = "$TARGET_DIR/wasm32-wasip2/wasm/campaigns.wasm"
sqlite_databases = ["default"]
[component.campaigns.variables]
admin_token = "{{ admin_token }}"
[[trigger.http]]
route = "/api/products/..."
component = "catalog"
[component.catalog]
source = "$TARGET_DIR/wasm32-wasip2/wasm/catalog.wasm"
sqlite_databases = ["default"]
TOML
"$TARGET_DIR/release/vitrine" up --skip-build -f "$WORK/spin.toml" --listen 127.0.0.1:$PORT \
  --admin-listen off --state-dir "$WORK/state" 2>"$WORK/up.log" &
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/api/campaigns/decide" -d '{}' && break; sleep 0.05; done
# The shop's catalogue (seeded on first use), whose prices the contextual policy reads.
curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/products?limit=1"
for i in $(seq 0 9); do
  policy=$(case $((i % 3)) in 0) echo linucb;; 1) echo thompson;; *) echo uniform;; esac)
  curl -sf -o /dev/null -X PUT "http://127.0.0.1:$PORT/api/admin/campaigns/c$i" -H "authorization: Bearer bench-token" -d "{
    \"name\": \"c$i\", \"channel\": \"banner\", \"policy\": \"$policy\", \"holdout\": 0.05,
    \"arms\": [{\"id\": \"a\", \"offer\": \"5% off\", \"message\": \"Hi {shopper}: {offer}\"},
               {\"id\": \"b\", \"offer\": \"free delivery\", \"message\": \"{offer}\"},
               {\"id\": \"c\", \"offer\": \"gift\", \"message\": \"{offer}\"},
               {\"id\": \"d\", \"offer\": \"none\", \"message\": \"{offer}\"}]}"
done
cat > "$WORK/decide.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  local devices = {"mobile", "desktop", "tablet"}
  local body = string.format('{"shopper":"s%d","context":{"page":"home","device":"%s","cart":%.2f}}',
    counter % 5000, devices[counter % 3 + 1], (counter * 7919 % 20000) / 100)
  return wrk.format("POST", "/api/campaigns/decide", {["content-type"]="application/json"}, body)
end
LUA
echo
echo "== decide, 10 campaigns =="
for c in 1 16; do
  wrk -t1 -c$c -d2s -s "$WORK/decide.lua" "http://127.0.0.1:$PORT" >/dev/null
  wrk -t1 -c$c -d"${DURATION}s" --latency -s "$WORK/decide.lua" "http://127.0.0.1:$PORT" |
    awk -v c=$c '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /Non-2xx/ {bad=$NF}
      END {printf "c=%-3s %9s req/s   p50 %-9s p99 %-9s non-2xx %s\n", c, rps, p50, p99, bad+0}'
done
echo
echo "== feedback, batches of 500 conversions, 4 senders =="
python3 - "$PORT" <<'PY'
import json, sys, threading, time, urllib.request
port = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
ids = []
for n in range(2000):
    for d in post("/api/campaigns/decide", {"shopper": f"fb-{n}"})["decisions"]:
        if d.get("decision_id"):
            ids.append(d["decision_id"])
batches = [ids[i:i + 500] for i in range(0, len(ids) - 499, 500)]
def send(mine, k):
    for b, batch in enumerate(mine):
        events = [{"event_id": f"ev-{k}-{b}-{i}", "decision_id": d, "event": "conversion", "value": 10}
                  for i, d in enumerate(batch)]
        answer = post("/api/campaigns/feedback", {"events": events})
        assert answer["accepted"] == len(events), answer
start = time.monotonic()
threads = [threading.Thread(target=send, args=(batches[k::4], k)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - start
events = sum(len(b) for b in batches)
print(f"{events} events in {len(batches)} batches: {events / elapsed:,.0f} events/s")
PY
