#!/usr/bin/env bash
# The rehearsal's poll path next to wrk's, against the same gate and the
# same tickets, in one sitting: a line of JOINERS tickets (default
# 100,000) is joined with wrk (bench/join.lua writes the ticket ids), the
# draw is made, and then wrk (bench/poll.lua) and `sluice loadtest polls`
# (the rehearsal's timer wheel, workers, connections and answer reader,
# each ticket polled again as soon as it is answered) take turns polling
# GET /v1/tickets/{id}. Each client's CPU (user + system) is read by
# /usr/bin/time, so that the figure compared is polls per CPU-second of
# the client: on a machine the client shares with the gate, the CPU a
# client spends is taken from the gate.
#   bash bench/pollgen.sh        (needs wrk: apt-get install wrk)
# Env: DURATION (6s), CONNS (128), THREADS (wrk's, 1), ROUNDS (5),
# JOINERS (100000), PORT (18080: the gate's; its ops listener on
# PORT+1384), PIN=1 to pin the gate to core 0 and the client to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6s} CONNS=${CONNS:-128} THREADS=${THREADS:-1} ROUNDS=${ROUNDS:-5} JOINERS=${JOINERS:-100000}
PORT=${PORT:-18080} OPS=$(( ${PORT:-18080} + 1384 ))
srv=() cli=()
if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 0) cli=(taskset -c 1); fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
token=bench-admin-token-0123456789
"${srv[@]}" "$tmp/sluice" serve --listen 127.0.0.1:$PORT --ops-listen 127.0.0.1:$OPS --admin-token "$token" \
  --data-dir "$tmp/data" --no-demo --log-level warn &
until curl -fs 127.0.0.1:$OPS/readyz >/dev/null; do sleep 0.1; done
admin() { curl -fs -X"$1" -H "Authorization: Bearer $token" "127.0.0.1:$OPS/admin/sales/$2" -d "$3" >/dev/null; }
start=$(( $(date +%s) + 3600 ))
admin PUT room "{\"stock\":100,\"waiting_room\":true,\"starts_at\":\"$(date -u -d @$start +%Y-%m-%dT%H:%M:%SZ)\",\"line_opens\":\"2h\",\"line_limit\":$JOINERS,\"backend_rate\":1}"
sleep 1
n=0
while [ "$n" -lt "$JOINERS" ]; do
  TICKETS_OUT="$tmp/joined" wrk -t2 -c64 -d3s -s bench/join.lua http://127.0.0.1:$PORT/v1/sales/room/line -- "r$n" >/dev/null
  n=$(curl -s 127.0.0.1:$PORT/v1/sales/room/line | sed 's/.*"line_length":\([0-9]*\).*/\1/')
done
admin PATCH room "{\"starts_at\":\"$(date -u -d @$(( $(date +%s) + 2 )) +%Y-%m-%dT%H:%M:%SZ)\"}"
until curl -s 127.0.0.1:$PORT/v1/sales/room/draw | grep -q '"seed":"'; do sleep 0.5; done
cat "$tmp"/joined.* >"$tmp/tickets"
echo "a line of $(wc -l <"$tmp/tickets") tickets; wrk -t$THREADS -c$CONNS and sluice loadtest polls --connections $CONNS, $DURATION each, alternating${PIN:+, pinned}"
# Each prints: requests/s, CPU seconds, requests per CPU-second.
cpu() { awk '/^cpu / {print $2 + $3}' "$1"; }
wrk_round() {
  TICKETS="$tmp/tickets" /usr/bin/time -f 'cpu %U %S' -o "$tmp/time" "${cli[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" \
    -s bench/poll.lua http://127.0.0.1:$PORT >"$tmp/wrk.out"
  local n rate c
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.out"); rate=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out"); c=$(cpu "$tmp/time")
  echo "$rate $c $(awk -v n="$n" -v c="$c" 'BEGIN {printf "%.0f", n/c}')"
}
gen_round() {
  /usr/bin/time -f 'cpu %U %S' -o "$tmp/time" "${cli[@]}" "$tmp/sluice" loadtest polls --target http://127.0.0.1:$PORT \
    --tickets "$tmp/tickets" --duration "$DURATION" --connections "$CONNS" --json >"$tmp/gen.json"
  local c
  c=$(cpu "$tmp/time")
  python3 - "$tmp/gen.json" "$c" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = float(sys.argv[2])
errs = sum(e["count"] for e in r["errors"])
print("%.0f %.2f %.0f %d" % (r["polls_per_second"], c, r["polls"] / c, errs))
PY
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
wr=() wc=() gr=() gc=()
for i in $(seq "$ROUNDS"); do
  read -r r c per <<<"$(wrk_round)"; wr+=("$r") wc+=("$per")
  read -r r2 c2 per2 errs <<<"$(gen_round)"; gr+=("$r2") gc+=("$per2")
  echo "round $i: wrk $r/s ($c CPU s, $per per CPU-second); generator $r2/s ($c2 CPU s, $per2 per CPU-second, $errs errors)"
done
mwr=$(median "${wr[@]}") mwc=$(median "${wc[@]}") mgr=$(median "${gr[@]}") mgc=$(median "${gc[@]}")
echo "median: wrk $mwr/s, $mwc per CPU-second; generator $mgr/s, $mgc per CPU-second"
echo "generator/wrk: rate $(awk -v a="$mgr" -v b="$mwr" 'BEGIN {printf "%.2f", a/b}')x, per CPU-second $(awk -v a="$mgc" -v b="$mwc" 'BEGIN {printf "%.2f", a/b}')x"
