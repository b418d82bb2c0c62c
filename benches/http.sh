#!/usr/bin/env bash
# HTTP benchmark of the edge runtime (prints figures; not a test).
#
#   benches/http.sh                     # median of 3 runs of 10 s per measurement
#   DURATION=5 REPEATS=1 benches/http.sh
#   COMPARE=0 benches/http.sh          # vitrine only: no wasmtime serve (nor its install)
#
# Measures, on loopback with wrk (load generator on the same cores):
#   - a trivial component (tests/guests/hello), GET /api/products and GET /api/lookbooks on `vitrine up`,
#     req/s and p50/p99 latency at concurrency 1 and 16;
#   - the same trivial component on `wasmtime serve` (wasmtime-cli 48.0.8) in three
#     configurations (plain, pooling allocator, pooling with memory kept resident);
#   - process start -> first response with a warm compile cache.
# Needs: wrk (apt), wasmtime-cli 48.0.8 (installed into target/bench-tools if missing, unless
# COMPARE=0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TOOLS=${BENCH_TOOLS:-$TARGET_DIR/bench-tools}
VITRINE_PORT=3101
WASMTIME_PORT=3102

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
COMPARE=${COMPARE:-1}
WASMTIME=$(command -v wasmtime || true)
if [[ "$COMPARE" != 0 && ( -z "$WASMTIME" || "$("$WASMTIME" --version)" != *"48.0.8"* ) ]]; then
  WASMTIME=$TOOLS/bin/wasmtime
  if [[ ! -x "$WASMTIME" ]]; then
    echo "installing wasmtime-cli 48.0.8 into $TOOLS (takes a while)"
    cargo install wasmtime-cli --version 48.0.8 --locked --root "$TOOLS"
  fi
fi

echo "building vitrine (release) and the guests"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release -p vitrine --quiet
cargo build --target wasm32-wasip2 --profile wasm -p hello -p catalog -p lookbook -p events --quiet
VITRINE=$TARGET_DIR/release/vitrine
GUESTS=$TARGET_DIR/wasm32-wasip2/wasm

WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench"
[variables]
admin_token = { default = "bench-token" }
[[trigger.http]]
route = "/hello"
component = "hello"
[[trigger.http]]
route = "/api/products/..."
component = "catalog"
[component.hello]
source = "$GUESTS/hello.wasm"
[[trigger.http]]
route = "/api/lookbooks"
component = "lookbook"
[component.catalog]
source = "$GUESTS/catalog.wasm"
sqlite_databases = ["default"]
[component.lookbook]
source = "$GUESTS/lookbook.wasm"
sqlite_databases = ["default"]
[[trigger.http]]
route = "/api/events"
component = "events"
[[trigger.http]]
route = "/api/shoppers/..."
component = "events"
[component.events]
source = "$GUESTS/events.wasm"
sqlite_databases = ["default"]
[component.events.variables]
admin_token = "{{ admin_token }}"
TOML

warm_up() { # url: a short untimed load, so every server is measured warm
  wrk -t1 -c16 -d2s "$1" >/dev/null
}

wait_for() { # url
  for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "no answer from $1" >&2; return 1
}

# run_wrk NAME URL CONCURRENCY [WRK_SCRIPT] -> "name c req/s p50 p99", the median of $REPEATS
# runs by req/s
run_wrk() {
  local runs=()
  local script=()
  if [ -n "${4:-}" ]; then script=(-s "$4"); fi
  for _ in $(seq 1 "$REPEATS"); do
    local out
    out=$(wrk -t1 -c"$3" -d"${DURATION}s" --latency "${script[@]}" "$2")
    runs+=("$(awk '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print rps, p50, p99}' <<<"$out")")
  done
  local median
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(( (REPEATS + 1) / 2 ))p")
  read -r rps p50 p99 <<<"$median"
  printf '%-28s c=%-3s %10s req/s   p50 %-9s p99 %-9s\n' "$1" "$3" "$rps" "$p50" "$p99"
  echo "$1 $3 $rps $p50 $p99" >> "$WORK/results"
}

"$VITRINE" up --skip-build -f "$WORK/spin.toml" --listen 127.0.0.1:$VITRINE_PORT --admin-listen off \
  --state-dir "$WORK/state" 2>"$WORK/vitrine.log" &
VPID=$!
wait_for "http://127.0.0.1:$VITRINE_PORT/hello"
wait_for "http://127.0.0.1:$VITRINE_PORT/api/products?limit=1"   # seeds the catalogue

warm_up "http://127.0.0.1:$VITRINE_PORT/hello"
echo
echo "== vitrine up (release) =="
run_wrk "vitrine hello" "http://127.0.0.1:$VITRINE_PORT/hello" 1
run_wrk "vitrine hello" "http://127.0.0.1:$VITRINE_PORT/hello" 16
run_wrk "vitrine /api/products" "http://127.0.0.1:$VITRINE_PORT/api/products?category=dresses&limit=20" 1
run_wrk "vitrine /api/products" "http://127.0.0.1:$VITRINE_PORT/api/products?category=dresses&limit=20" 16
# Lookbooks need shoppers with histories and product embeddings: 300 simulated shoppers, and
# random unit vectors as embeddings (the bench runs no inference worker; reading and comparing
# vectors costs the same whatever they hold).
"$VITRINE" shoppers simulate --shoppers 300 --seed 1 --url "http://127.0.0.1:$VITRINE_PORT" \
  --token bench-token --out "$WORK/shoppers" 2>&1 | tail -1
python3 - "$WORK/state/sqlite/default.db" <<'PY'
import random, sqlite3, struct, sys
random.seed(1)
db = sqlite3.connect(sys.argv[1], timeout=30)
def unit():
    v = [random.gauss(0, 1) for _ in range(384)]
    n = sum(x * x for x in v) ** 0.5
    return struct.pack("<384f", *(x / n for x in v))
rows = [(rowid, unit()) for (rowid,) in db.execute("SELECT rowid FROM products")]
db.executemany("INSERT OR REPLACE INTO product_embeddings (product, vector) VALUES (?, ?)", rows)
db.commit()
print(f"{len(rows)} random product embeddings written")
PY
# The same lookbook again and again (answered from the 60 s cache after the first); without a
# shopper, assembled every time; personalized, assembled every time.
run_wrk "vitrine /api/lookbooks" "http://127.0.0.1:$VITRINE_PORT/api/lookbooks?occasion=weekend&season=winter" 1
run_wrk "vitrine /api/lookbooks" "http://127.0.0.1:$VITRINE_PORT/api/lookbooks?occasion=weekend&season=winter" 16
run_wrk "vitrine lookbooks uncached" "http://127.0.0.1:$VITRINE_PORT" 1 benches/lookbook-uncached.lua
run_wrk "vitrine lookbooks uncached" "http://127.0.0.1:$VITRINE_PORT" 16 benches/lookbook-uncached.lua
run_wrk "vitrine lookbooks personal" "http://127.0.0.1:$VITRINE_PORT" 1 benches/lookbook-personal.lua
run_wrk "vitrine lookbooks personal" "http://127.0.0.1:$VITRINE_PORT" 16 benches/lookbook-personal.lua
kill -TERM $VPID; wait $VPID || true

if [[ "$COMPARE" == 0 ]]; then
  echo; echo "(COMPARE=0: no wasmtime serve, no warm start, no targets)"
  exit 0
fi

echo
echo "== wasmtime serve 48.0.8: plain, pooling allocator, pooling with memory kept resident =="
declare -A WASMTIME_OPTIONS=(
  [plain]=""
  [pooling]="-O pooling-allocator=y"
  [pooling+keep]="-O pooling-allocator=y -O pooling-memory-keep-resident=8388608 -O pooling-table-keep-resident=1048576"
)
for config in plain pooling pooling+keep; do
  # shellcheck disable=SC2086 # the options are words
  "$WASMTIME" serve -Scli ${WASMTIME_OPTIONS[$config]} --addr 127.0.0.1:$WASMTIME_PORT \
    "$GUESTS/hello.wasm" 2>"$WORK/wasmtime.log" &
  WPID=$!
  wait_for "http://127.0.0.1:$WASMTIME_PORT/hello"
  warm_up "http://127.0.0.1:$WASMTIME_PORT/hello"
  run_wrk "wasmtime serve hello $config" "http://127.0.0.1:$WASMTIME_PORT/hello" 1
  run_wrk "wasmtime serve hello $config" "http://127.0.0.1:$WASMTIME_PORT/hello" 16
  kill $WPID; wait $WPID 2>/dev/null || true
done

echo
echo "== warm start (compile cache filled above): process start -> first response =="
python3 - "$VITRINE" "$WORK" "$VITRINE_PORT" <<'PY'
import socket, statistics, subprocess, sys, time
vitrine, work, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
samples = []
for _ in range(7):
    start = time.perf_counter()
    proc = subprocess.Popen([vitrine, "up", "--skip-build", "-f", f"{work}/spin.toml",
                             "--listen", f"127.0.0.1:{port}", "--admin-listen", "off",
                             "--state-dir", f"{work}/state"], stderr=subprocess.DEVNULL)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /hello HTTP/1.0\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(64):
                    break
        except OSError:
            time.sleep(0.002)
    samples.append((time.perf_counter() - start) * 1000)
    proc.terminate(); proc.wait()
print(f"warm start: median {statistics.median(samples):.0f} ms (min {min(samples):.0f}, max {max(samples):.0f}) over {len(samples)} starts")
with open(f"{work}/results", "a") as f:
    f.write(f"warm_start_ms {statistics.median(samples)}\n")
PY

echo
echo "== against the targets =="
python3 - "$WORK/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[0] == "warm_start_ms":
        rows["warm"] = float(parts[1]); continue
    name = " ".join(parts[:-4]); c, rps, p50, p99 = parts[-4], float(parts[-3]), parts[-2], parts[-1]
    def us(t):
        for unit, f in (("us", 1), ("ms", 1000), ("s", 1e6)):
            if t.endswith(unit): return float(t[:-len(unit)]) * f
    rows[(name, c)] = (rps, us(p50), us(p99))
configs = ["plain", "pooling", "pooling+keep"]
v16, v1 = rows[("vitrine hello", "16")][0], rows[("vitrine hello", "1")]
best16 = max(configs, key=lambda c: rows[(f"wasmtime serve hello {c}", "16")][0])
w16 = rows[(f"wasmtime serve hello {best16}", "16")][0]
best1 = min(configs, key=lambda c: rows[(f"wasmtime serve hello {c}", "1")][2])
w1 = rows[(f"wasmtime serve hello {best1}", "1")]
print(f"throughput c=16: vitrine {v16:.0f} / wasmtime serve's best ({best16}) {w16:.0f} req/s = {v16/w16:.2f}x (target >= 2x)")
print(f"p50 c=1: vitrine {v1[1]:.0f} us vs wasmtime serve ({best1}) {w1[1]:.0f} us (target: no worse)")
print(f"p99 c=1: vitrine {v1[2]:.0f} us vs wasmtime serve's best ({best1}) {w1[2]:.0f} us (target: no worse)")
print(f"warm start: {rows['warm']:.0f} ms (target <= 300 ms)")
PY
