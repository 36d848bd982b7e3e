#!/usr/bin/env bash
# Polling a waiting room's line next to the sold-out path, in one sitting:
# a line of JOINERS tickets (default 100,000) is made with wrk, the draw
# is made, and then wrk alternates between GET /v1/tickets/{id} on random
# tickets (the tickets wait: the line barely moves) and the sold-out POST
# of bench/soldout.sh (formatted per request, as the polls are), on the
# same gate.
#   bash bench/tickets.sh        (needs wrk: apt-get install wrk)
# Env: DURATION (6s), CONNS (128), THREADS (2), ROUNDS (5), JOINERS (100000).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6s} CONNS=${CONNS:-128} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-5} JOINERS=${JOINERS:-100000}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
"$tmp/sluice" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 --admin-token bench-admin-token-0123456789 \
  --data-dir "$tmp/data" --sale s1=1 --no-demo --log-level warn &
until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
post() { curl -s -XPOST -H 'Content-Type: application/json' -d "{\"buyer_id\":\"$1\"}" "127.0.0.1:18080/v1/sales/$2/$3"; }
post first s1 orders >/dev/null
post second s1 orders | grep -q '"reason":"sold_out"'
admin() { curl -fs -X"$1" -H 'Authorization: Bearer bench-admin-token-0123456789' "127.0.0.1:19464/admin/sales/$2" -d "$3" >/dev/null; }
start=$(( $(date +%s) + 3600 ))
admin PUT room "{\"stock\":100,\"waiting_room\":true,\"starts_at\":\"$(date -u -d @$start +%Y-%m-%dT%H:%M:%SZ)\",\"line_opens\":\"2h\",\"line_limit\":$JOINERS,\"backend_rate\":1}"
sleep 1
n=0
while [ "$n" -lt "$JOINERS" ]; do
  TICKETS_OUT="$tmp/joined" wrk -t2 -c64 -d3s -s bench/join.lua http://127.0.0.1:18080/v1/sales/room/line -- "r$n" >/dev/null
  n=$(curl -s 127.0.0.1:18080/v1/sales/room/line | sed 's/.*"line_length":\([0-9]*\).*/\1/')
  echo "line: $n tickets"
done
admin PATCH room "{\"starts_at\":\"$(date -u -d @$(( $(date +%s) + 2 )) +%Y-%m-%dT%H:%M:%SZ)\"}"
until curl -s 127.0.0.1:18080/v1/sales/room/draw | grep -q '"seed":"'; do sleep 0.5; done
# The ticket ids as their holders got them when joining: the draw's
# public list holds only their hashes.
cat "$tmp"/joined.* >"$tmp/tickets"
echo "polling $(wc -l <"$tmp/tickets") tickets; a sample: $(curl -s "127.0.0.1:18080/v1/tickets/$(tail -1 "$tmp/tickets")" | head -c 300)"
rate_poll() { TICKETS="$tmp/tickets" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/poll.lua http://127.0.0.1:18080 | awk '/Requests\/sec/ {print $2}'; }
# The sold-out POST formatted per request, as the polls are (post_each.lua):
# wrk's Lua then costs the same on both sides of the ratio.
rate_sold() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/post_each.lua http://127.0.0.1:18080/v1/sales/s1/orders | awk '/Requests\/sec/ {print $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
polls=() solds=()
for i in $(seq "$ROUNDS"); do
  p=$(rate_poll); s=$(rate_sold)
  polls+=("$p") solds+=("$s")
  echo "round $i: ticket poll $p  sold-out $s"
done
mp=$(median "${polls[@]}") ms=$(median "${solds[@]}")
echo "median req/s: ticket poll $mp, sold-out $ms, ratio $(awk -v a="$mp" -v b="$ms" 'BEGIN {printf "%.2f", a/b}')×"
echo "gate RSS: $(ps -o rss= -C sluice | head -1) KiB with the line of $(wc -l <"$tmp/tickets") tickets"
