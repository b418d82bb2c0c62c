#!/usr/bin/env bash
# Benchmark of releases served side by side (prints figures; not a test):
#   - request overhead of the split router: req/s, p50, p99 at c=16 with 1 and with 2 releases
#     live (50/50 split), on the probe's `/env/GREETING`;
#   - time from `vitrine rollout start` to the first request the canary answers, with the
#     canary not loaded yet (compile cache warm);
#   - memory (RSS) per extra live release.
#
#   benches/rollout.sh          # DURATION=5 by default
# Needs: wrk (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
PORT=3301
ADMIN=3302
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
echo "building vitrine (release) and the probe guest"
cargo build --release -p vitrine --quiet
cargo build --target wasm32-wasip2 --profile wasm -p probe --quiet
VITRINE=$TARGET_DIR/release/vitrine
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export VITRINE_TRAFFIC_TOKEN=bench-token
for version in v1 v2 v3; do
  cat > "$WORK/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "$TARGET_DIR/wasm32-wasip2/wasm/probe.wasm"
environment = { GREETING = "$version" }
TOML
  "$VITRINE" deploy -f "$WORK/spin.toml" --skip-build --state-dir "$WORK/state" --version "$version" >/dev/null
done
"$VITRINE" up --release v1 --state-dir "$WORK/state" --listen 127.0.0.1:$PORT \
  --admin-listen 127.0.0.1:$ADMIN 2>"$WORK/up.log" &
UP=$!
for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/env/GREETING" && break; sleep 0.05; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$UP/status"; }
split() { curl -sf -X PUT -H "Authorization: Bearer $VITRINE_TRAFFIC_TOKEN" -d "$1" "http://127.0.0.1:$ADMIN/admin/traffic" >/dev/null; }
measure() { # name
  wrk -t1 -c16 -d2s "http://127.0.0.1:$PORT/env/GREETING" >/dev/null
  wrk -t1 -c16 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/env/GREETING" |
    awk -v name="$1" '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
      END {printf "%-28s c=16 %10s req/s   p50 %-9s p99 %s\n", name, rps, p50, p99}'
}
echo
echo "== split router =="
measure "1 release live"
RSS1=$(rss)
split '{"v1": 50, "v2": 50}'
measure "2 releases live (50/50)"
RSS2=$(rss)
echo
echo "== memory =="
echo "RSS with 1 release: $((RSS1 / 1024)) MiB; with 2, after load: $((RSS2 / 1024)) MiB (+$(((RSS2 - RSS1) / 1024)) MiB)"
split '{"v1": 100}'
echo
echo "== rollout start -> first canary request (v3 not loaded yet) =="
python3 - "$VITRINE" "$PORT" "$ADMIN" <<'PY'
import subprocess, sys, time, urllib.request
vitrine, port, admin = sys.argv[1:]
start = time.monotonic()
subprocess.run([vitrine, "rollout", "start", "v3", "--steps", "50,100", "--interval", "60s",
                "--admin", f"http://127.0.0.1:{admin}"], check=True, capture_output=True)
started = time.monotonic()
n = 0
while True:
    n += 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/env/GREETING") as r:
        if b"v3" in r.read():
            break
first = time.monotonic()
print(f"rollout start answered after {(started - start) * 1e3:.0f} ms (canary loaded, split set); "
      f"first canary answer {(first - start) * 1e3:.0f} ms after the start ({n} requests)")
PY
