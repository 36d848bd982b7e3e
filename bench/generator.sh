#!/usr/bin/env bash
# The load generator's top rate next to wrk's, same gate, same concurrency,
# same requests (sold-out answers; no bad, keyed, greedy or impatient
# buyers), in one sitting.
#   bash bench/generator.sh            (needs wrk: apt-get install wrk)
# Env: DURATION (default 5s), CONNS (128), ROUNDS (5), RATE (the offered
# rate of sluice loadtest, above what the gate can answer; 150000), PIN=1
# to pin the gate to core 0 and the client (wrk -t1, or the generator) to
# core 1, so that neither client takes CPU from the gate.
# wrk and sluice loadtest take turns, round after round; compare medians.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s} CONNS=${CONNS:-128} ROUNDS=${ROUNDS:-5} RATE=${RATE:-150000}
srv=() cli=() THREADS=2
if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 0) cli=(taskset -c 1) THREADS=1; fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
"${srv[@]}" "$tmp/sluice" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 \
  --data-dir "$tmp/data" --sale s1=1 --no-demo --log-level warn &
until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first"}' 127.0.0.1:18080/v1/sales/s1/orders
url=http://127.0.0.1:18080
wrk_rate() { "${cli[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/post.lua "$url/v1/sales/s1/orders" | awk '/Requests\/sec/ {print $2}'; }
gen_rate() {
  "${cli[@]}" "$tmp/sluice" loadtest --target "$url" --sale s1 --profile constant --rate "$RATE" --duration "$DURATION" \
    --connections "$CONNS" --bad 0 --keyed 0 --impatient 0 --greedy 0 --no-verify --quiet --json >"$tmp/rep.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f" % r["achieved_rate"])' "$tmp/rep.json"
}
echo "wrk -t$THREADS -c$CONNS vs sluice loadtest --connections $CONNS --rate $RATE, $DURATION, alternating, $ROUNDS rounds${PIN:+, pinned}"
ws=() gs=()
for i in $(seq "$ROUNDS"); do
  w=$(wrk_rate); g=$(gen_rate)
  ws+=("$w") gs+=("$g")
  echo "round $i: wrk $w req/s, sluice loadtest $g req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mw=$(median "${ws[@]}") mg=$(median "${gs[@]}")
echo "median: wrk $mw req/s, sluice loadtest $mg req/s, ratio $(awk -v g="$mg" -v w="$mw" 'BEGIN{printf "%.3f", g/w}')"
