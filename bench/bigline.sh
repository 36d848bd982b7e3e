#!/usr/bin/env bash
# What a big waiting-room line costs a gate, and how fast a gate that
# restarts is ready again: a line of JOINERS tickets (default 1,000,000)
# is joined with wrk, the gate's RSS is read, the gate is stopped
# (SIGTERM) and started again on the same data directory, and the time
# until it answers the line (every ticket read back) and its RSS once
# settled are printed.
#   bash bench/bigline.sh        (needs wrk: apt-get install wrk)
# Env: JOINERS (1000000), SETTLE (20: seconds before the settled RSS),
# ARGS (more sluice serve flags, e.g. "--gc-headroom 0"), BIN (a sluice
# binary to measure instead of this tree's, e.g. an older build).
set -euo pipefail
cd "$(dirname "$0")/.."
JOINERS=${JOINERS:-1000000} SETTLE=${SETTLE:-20} ARGS=${ARGS:-}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
if [ -n "${BIN:-}" ]; then cp "$BIN" "$tmp/sluice"; else go build -o "$tmp/sluice" ./cmd/sluice; fi
serve() {
  # shellcheck disable=SC2086
  "$tmp/sluice" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 --admin-token bench-admin-token-0123456789 \
    --data-dir "$tmp/data" --no-demo --log-level warn $ARGS &
  pid=$!
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
length() { curl -s 127.0.0.1:18080/v1/sales/room/line | sed -n 's/.*"line_length":\([0-9]*\).*/\1/p'; }
serve
until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
start=$(( $(date +%s) + 7200 ))
curl -fs -XPUT -H 'Authorization: Bearer bench-admin-token-0123456789' 127.0.0.1:19464/admin/sales/room \
  -d "{\"stock\":1000,\"waiting_room\":true,\"starts_at\":\"$(date -u -d @$start +%Y-%m-%dT%H:%M:%SZ)\",\"line_opens\":\"3h\",\"line_limit\":$JOINERS}" >/dev/null
sleep 1
n=0 round=0
t0=$(date +%s)
while [ "${n:-0}" -lt "$JOINERS" ]; do
  round=$((round + 1))
  wrk -t2 -c64 -d10s -s bench/join.lua http://127.0.0.1:18080/v1/sales/room/line -- "r$round" >/dev/null
  n=$(length)
  echo "line: $n tickets ($(( $(date +%s) - t0 )) s)"
done
sleep "$SETTLE"
echo "after the joins: RSS $(rss) KiB, $(awk -v r="$(rss)" -v n="$n" 'BEGIN {printf "%.0f", r*1024/n}') bytes a ticket"
kill -TERM "$pid"; wait "$pid" || true
t1=$(date +%s.%N)
serve
until [ "$(length)" = "$n" ]; do sleep 0.05; done
t2=$(date +%s.%N)
echo "restart: the line of $n tickets answered after $(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.1f", b-a}') s"
echo "just ready: RSS $(rss) KiB"
sleep "$SETTLE"
echo "settled ($SETTLE s): RSS $(rss) KiB, $(awk -v r="$(rss)" -v n="$n" 'BEGIN {printf "%.0f", r*1024/n}') bytes a ticket"
