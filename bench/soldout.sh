#!/usr/bin/env bash
# Sold-out path of a running gate next to a bare net/http handler that
# answers the same bytes, with wrk, in one sitting.
#   bash bench/soldout.sh            (needs wrk: apt-get install wrk)
# Env: DURATION (default 10s), CONNS (128), THREADS (2), ROUNDS (5),
# PIN=1 to pin each server to core 0 and wrk (one thread) to core 1, which
# steadies the figures on a 2-core machine.
# The two servers take turns, round after round, and the medians are
# compared: on a 2-core machine shared with wrk one round varies by 10-15%.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s} CONNS=${CONNS:-128} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-5}
srv=() cli=()
if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 0) cli=(taskset -c 1) THREADS=1; fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/barehttp" ./internal/cmd/barehttp
"${srv[@]}" "$tmp/sluice" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 \
  --data-dir "$tmp/data" --sale s1=1 --no-demo --log-level warn &
until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first"}' 127.0.0.1:18080/v1/sales/s1/orders
curl -s -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"second"}' 127.0.0.1:18080/v1/sales/s1/orders -o "$tmp/answer.json"
grep -q '"reason":"sold_out"' "$tmp/answer.json"
"${srv[@]}" "$tmp/barehttp" -listen 127.0.0.1:18081 -status 410 -body-file "$tmp/answer.json" &
until curl -s -o /dev/null 127.0.0.1:18081/; do sleep 0.1; done
rate() { "${cli[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/post.lua "$1" | awk '/Requests\/sec/ {print $2}'; }
echo "wrk -t$THREADS -c$CONNS -d$DURATION, POST, alternating, $ROUNDS rounds${PIN:+, pinned}"
bs=() gs=()
for i in $(seq "$ROUNDS"); do
  b=$(rate http://127.0.0.1:18081/v1/sales/s1/orders)
  g=$(rate http://127.0.0.1:18080/v1/sales/s1/orders)
  bs+=("$b") gs+=("$g")
  echo "round $i: bare $b req/s, gate sold-out $g req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${bs[@]}") mg=$(median "${gs[@]}")
echo "median: bare $mb req/s, gate sold-out $mg req/s, ratio $(awk -v g="$mg" -v b="$mb" 'BEGIN{printf "%.3f", g/b}')"
curl -s 127.0.0.1:19464/metrics | grep 'sluice_admission_requests_total{outcome="diverted",reason="sold_out",sale="s1"}'
