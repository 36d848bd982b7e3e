#!/usr/bin/env bash
# A sold-out sale's answer to requests that each carry a new
# Idempotency-Key and buyer, next to the same requests (a new buyer each,
# made by the same wrk script) without a key, on
# the same gate, in one sitting (alternating rounds, medians).
#   bash bench/keyed.sh            (needs wrk)
# Env: DURATION (default 5s), CONNS (128), THREADS (2), ROUNDS (5),
# BIN (a sluice binary to measure instead of this checkout's).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s} CONNS=${CONNS:-128} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
bin=${BIN:-$tmp/sluice}
[ -n "${BIN:-}" ] || go build -o "$bin" ./cmd/sluice
"$bin" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 --data-dir "$tmp/data" --sale s1=100 --no-demo --log-level warn &
until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
for i in $(seq 100); do
  curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -H "Idempotency-Key: first-$i" -d "{\"buyer_id\":\"first-$i\"}" 127.0.0.1:18080/v1/sales/s1/orders
done
sleep 2 # the gate reads the sold-out sale's orders into memory
url=http://127.0.0.1:18080/v1/sales/s1/orders
rate() { NOKEY=$1 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/keyed.lua "$url" | awk '/Requests\/sec/ {print $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "wrk -t$THREADS -c$CONNS -d$DURATION on a sold-out sale, keyed (a new key and buyer each) vs unkeyed, $ROUNDS rounds"
ks=() us=()
for i in $(seq "$ROUNDS"); do
  u=$(rate 1) k=$(rate 0)
  us+=("$u") ks+=("$k")
  echo "round $i: unkeyed $u req/s, keyed $k req/s"
done
mu=$(median "${us[@]}") mk=$(median "${ks[@]}")
echo "median: unkeyed $mu, keyed $mk, keyed/unkeyed $(awk -v k="$mk" -v u="$mu" 'BEGIN{printf "%.3f", k/u}')"
curl -s 127.0.0.1:19464/metrics | grep 'sluice_admission_requests_total{.*sale="s1"' | grep -v ' 0$'
