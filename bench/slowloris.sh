#!/usr/bin/env bash
# Normal buyers' latency while a slowloris client holds 2,000 connections
# open by trickling header bytes, next to the same load without it, in
# one sitting. The buyers are `sluice loadtest` at a constant rate against
# a sold-out sale (an open model: latency counts from the intended send
# time), so the p99 shows any stall the held connections cause.
#   bash bench/slowloris.sh                       (this checkout's gate)
#   BEFORE=/path/to/an/older/sluice bash bench/slowloris.sh
# Env: RATE (default 3000), DURATION (10s), N (2000), ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-3000} DURATION=${DURATION:-10s} N=${N:-2000} ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/slowloris" ./internal/cmd/slowloris
gates=("this=$tmp/sluice")
[ -n "${BEFORE:-}" ] && gates=("before=$BEFORE" "this=$tmp/sluice")
p99() {
  "$tmp/sluice" loadtest --target http://127.0.0.1:18080 --sale s1 --profile constant --rate "$RATE" \
    --duration "$DURATION" --bad 0 --keyed 0 --impatient 0 --greedy 0 --no-verify --quiet --json >"$tmp/rep.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r["latency"]["all"]; print("%.2f %d" % (l["p99"]/1e6, r["requests"]))' "$tmp/rep.json"
}
echo "sluice loadtest --rate $RATE for $DURATION on a sold-out sale, with and without $N slowloris connections, $ROUNDS rounds"
for lg in "${gates[@]}"; do
  label=${lg%%=*} g=${lg#*=}
  rm -rf "$tmp/data"
  "$g" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 --data-dir "$tmp/data" --sale s1=1 --no-demo --log-level error &
  pid=$!
  until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
  curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first"}' 127.0.0.1:18080/v1/sales/s1/orders
  for i in $(seq "$ROUNDS"); do
    quiet=$(p99)
    "$tmp/slowloris" -target 127.0.0.1:18080 -n "$N" -every 1s -for 60s >"$tmp/loris.out" &
    loris=$!
    sleep 3 # let it open its connections
    attacked=$(p99)
    kill $loris 2>/dev/null; wait $loris 2>/dev/null || true
    echo "$label round $i: p99 ${quiet% *} ms alone, ${attacked% *} ms under slowloris ($(awk -v a="${attacked% *}" -v q="${quiet% *}" 'BEGIN{printf "%.2f", a/q}')×)"
  done
  kill $pid; wait $pid 2>/dev/null || true
done
