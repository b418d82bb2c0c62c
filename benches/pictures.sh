#!/usr/bin/env bash
# Product and look pictures on a running `vitrine up` (prints figures; not a test).
#
#   cargo run --release -p vitrine -- up &      # then, once it serves:
#   benches/pictures.sh                         # URL=http://127.0.0.1:3000 PRODUCTS=8 LOOKS=4
#
# Measures with curl, one request at a time: the first request of a product picture at each
# size (rendered in the guest, then kept) and a repeat (read back), over PRODUCTS products not
# requested before at that size; then the first request of a look's hero picture (composed by
# the worker's `lookbook-render`) and a repeat, over the LOOKS looks of a lookbook.
# Products and looks already kept are skipped over: figures of the first request stay first.
set -euo pipefail
URL=${URL:-http://127.0.0.1:3000}
PRODUCTS=${PRODUCTS:-8}
LOOKS=${LOOKS:-4}
# Products from a random offset, so a second run measures pictures not yet kept.
OFFSET=$(( (RANDOM % 5000) + 1 ))

seconds() { curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$1"; }
summary() {  # label, then lines "status seconds" on stdin: median and max in ms
  sort -k2 -n | awk -v label="$1" '
    $1 != 200 { bad++ } { t[NR] = $2 * 1000 }
    END { if (bad) { print label ": " bad " answers were not 200"; exit 1 }
          printf "%-34s n=%-3d median %8.1f ms   max %8.1f ms\n", label, NR, t[int((NR + 1) / 2)], t[NR] }'
}

echo "product pictures ($URL, products from p-$(printf %05d "$OFFSET"))"
for w in 64 128 256 400 512 800 1024; do
  first=""; again=""
  for i in $(seq 0 $((PRODUCTS - 1))); do
    id=$(printf 'p-%05d' $((OFFSET + i)))
    first+="$(seconds "$URL/images/products/$id?w=$w")"$'\n'
    again+="$(seconds "$URL/images/products/$id?w=$w")"$'\n'
  done
  printf '%s' "$first" | summary "  w=$w first (rendered)"
  printf '%s' "$again" | summary "  w=$w again (kept)"
done

echo "look hero pictures"
heroes=$(curl -s "$URL/api/lookbooks?occasion=evening&season=winter&looks=$LOOKS&budget=$((200 + RANDOM % 800))" \
  | python3 -c 'import json, sys; print("\n".join(l["hero_image"] for l in json.load(sys.stdin)["looks"]))')
first=""; again=""
for hero in $heroes; do
  first+="$(seconds "$URL$hero")"$'\n'
  again+="$(seconds "$URL$hero")"$'\n'
done
printf '%s' "$first" | summary "  first (composed by the worker)"
printf '%s' "$again" | summary "  again (kept)"
