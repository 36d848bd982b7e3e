#!/usr/bin/env bash
# The gate's sold-out path next to the floors it is measured against, in
# one sitting: nginx answering the same 410 through limit_req
# (bench/nginx.conf), a bare fasthttp handler and a bare net/http handler
# writing the same bytes, and optionally an older gate build (BEFORE).
#   bash bench/soldout.sh        (needs wrk and nginx: apt-get install wrk nginx)
# Env: DURATION (default 6s), CONNS (128), THREADS (2), ROUNDS (5),
# BEFORE=/path/to/an/older/sluice, PIN=1 to pin each server to core 0 and
# wrk (one thread) to core 1, CORS=1 to run the same gate a second time
# with --cors-origin https://shop.example ("cors") and send every request
# from that origin (Origin header): the CORS answer's cost against the
# gate without CORS, in the same sitting. VARIANTS=1 floods, on the same
# gate and in turns, its plain sold-out sale ("gate"), a sale with eight
# variants all sold out ("variants", each order naming one) and a sale
# whose variant a is sold out while b is on sale ("variant": each order
# names a, answered 410 variant_sold_out with variants_left), without
# the floors: what variants cost the sold-out path.
# PORT_OFFSET moves every port (18070-18090, 19464-19490) by that much.
# The servers take turns, round after round, and the medians are compared:
# on a 2-core machine shared with wrk one round varies by 10-15%.
set -euo pipefail
OFF=${PORT_OFFSET:-0} # every port this script uses, moved by PORT_OFFSET (another bench on the machine)
# Each server's ports must be free: a readiness check answered by another
# bench's gate would measure that gate.
free_ports() { for p in "$@"; do if curl -s -o /dev/null --max-time 1 "127.0.0.1:$p/"; then
  echo "bench: 127.0.0.1:$p is in use (another bench?): set PORT_OFFSET=100" >&2; exit 1; fi; done; }
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6s} CONNS=${CONNS:-128} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-5}
srv=() cli=()
if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 0) cli=(taskset -c 1) THREADS=1; fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/barehttp" ./internal/cmd/barehttp
sale_flags=(--sale s1=1)

start_gate() { # binary port ops-port [more flags]
  local bin=$1 port=$2 ops=$3
  shift 3
  free_ports "$port" "$ops"
  "${srv[@]}" "$bin" serve --listen "127.0.0.1:$port" --ops-listen "127.0.0.1:$ops" \
    --data-dir "$tmp/data-$port" "${sale_flags[@]}" --no-demo --log-level warn "$@" &
  until curl -fs "127.0.0.1:$ops/readyz" >/dev/null; do sleep 0.1; done
  curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first"}' "127.0.0.1:$port/v1/sales/s1/orders"
}
if [ "${VARIANTS:-0}" = 1 ]; then
  cat >"$tmp/sales.yaml" <<YAML
sales:
  - name: s1
    stock: 1
  - name: v1
    variants: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1}
  - name: v2
    variants: {a: 1, b: 1000000}
YAML
  sale_flags=(--config "$tmp/sales.yaml")
  start_gate "$tmp/sluice" $((18080+OFF)) $((19464+OFF))
  for v in a b c d e f g h; do
    curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first-'$v'","variant":"'$v'"}' 127.0.0.1:$((18080+OFF))/v1/sales/v1/orders
  done
  curl -s -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first-a","variant":"a"}' 127.0.0.1:$((18080+OFF))/v1/sales/v2/orders
  sleep 2 # the gate's view of the other variants follows the ledger within a second
  curl -s -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"second","variant":"a"}' 127.0.0.1:$((18080+OFF))/v1/sales/v1/orders | grep -q '"reason":"sold_out"'
  curl -s -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"second","variant":"a"}' 127.0.0.1:$((18080+OFF))/v1/sales/v2/orders | grep -q '"reason":"variant_sold_out"'
else
  start_gate "$tmp/sluice" $((18080+OFF)) $((19464+OFF))
fi
curl -s -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"second"}' 127.0.0.1:$((18080+OFF))/v1/sales/s1/orders -o "$tmp/answer.json"
grep -q '"reason":"sold_out"' "$tmp/answer.json"
names=(gate) ports=($((18080+OFF))) sales=(s1) vars=("")
if [ "${VARIANTS:-0}" = 1 ]; then
  names+=(variants variant) ports+=($((18080+OFF)) $((18080+OFF))) sales+=(v1 v2) vars+=(a a)
fi
if [ "${CORS:-0}" = 1 ]; then
  start_gate "$tmp/sluice" $((18070+OFF)) $((19470+OFF)) --cors-origin https://shop.example
  names+=(cors) ports+=($((18070+OFF))) sales+=(s1) vars+=("")
  # the flood's answer there carries CORS headers, or the figure means nothing
  curl -s -D - -o /dev/null -XPOST -H 'Origin: https://shop.example' -H 'Content-Type: application/json' \
    -d '{"buyer_id":"second"}' 127.0.0.1:$((18070+OFF))/v1/sales/s1/orders | grep -qi '^access-control-allow-origin: https://shop.example'
  export ORIGIN=https://shop.example
fi
if [ -n "${BEFORE:-}" ]; then
  start_gate "$BEFORE" $((18090+OFF)) $((19490+OFF))
  names+=(before) ports+=($((18090+OFF))) sales+=(s1) vars+=("")
fi
if [ "${VARIANTS:-0}" != 1 ]; then
free_ports $((18082+OFF)) $((18083+OFF)) $((18081+OFF))
body=$(tr -d '\n' <"$tmp/answer.json")
sed -e "s|@TMP@|$tmp|g" -e "s|@PORT@|$((18082+OFF))|" -e "s|@BODY@|$body|" bench/nginx.conf >"$tmp/nginx.conf"
"${srv[@]}" nginx -c "$tmp/nginx.conf" &
"${srv[@]}" "$tmp/barehttp" -listen 127.0.0.1:$((18083+OFF)) -status 410 -body-file "$tmp/answer.json" -fasthttp &
"${srv[@]}" "$tmp/barehttp" -listen 127.0.0.1:$((18081+OFF)) -status 410 -body-file "$tmp/answer.json" &
names+=(nginx fasthttp nethttp) ports+=($((18082+OFF)) $((18083+OFF)) $((18081+OFF))) sales+=(s1 s1 s1) vars+=("" "" "")
for p in $((18082+OFF)) $((18083+OFF)) $((18081+OFF)); do until curl -s -o /dev/null "127.0.0.1:$p/"; do sleep 0.1; done; done
fi

rate() { # port sale variant
  VARIANT=$3 "${cli[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/post.lua "http://127.0.0.1:$1/v1/sales/$2/orders" | awk '/Requests\/sec/ {print $2}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "wrk -t$THREADS${ORIGIN:+ Origin: $ORIGIN} -c$CONNS -d$DURATION, POST, the same 410 body ($(wc -c <"$tmp/answer.json") bytes), alternating, $ROUNDS rounds${PIN:+, pinned}"
declare -A all this ratios # this: the round's figures; ratios: each round's to the first server's
for i in $(seq "$ROUNDS"); do
  line="round $i:"
  for k in "${!names[@]}"; do
    r=$(rate "${ports[$k]}" "${sales[$k]}" "${vars[$k]}")
    all[${names[$k]}]+="$r "
    this[${names[$k]}]=$r
    line+=" ${names[$k]} $r"
  done
  echo "$line"
  for n in "${names[@]:1}"; do
    ratios[$n]+="$(awk -v a="${this[$n]}" -v b="${this[${names[0]}]}" 'BEGIN{printf "%.3f", a/b}') "
  done
done
declare -A med
for n in "${names[@]}"; do med[$n]=$(median ${all[$n]}); done
echo -n "median req/s:"; for n in "${names[@]}"; do echo -n " $n ${med[$n]}"; done; echo
for n in "${names[@]}"; do
  [ "$n" = gate ] && continue
  echo "gate / $n: $(awk -v g="${med[gate]}" -v b="${med[$n]}" 'BEGIN{printf "%.3f", g/b}')"
done
if [ "${VARIANTS:-0}" = 1 ]; then
  for n in variants variant; do
    echo "$n / plain: $(awk -v v="${med[$n]}" -v p="${med[gate]}" 'BEGIN{printf "%.3f", v/p}')" \
      "(of the medians; the median of each round's ratio, measured seconds apart: $(median ${ratios[$n]}))"
  done
fi
curl -s 127.0.0.1:$((19464+OFF))/metrics | grep 'sluice_admission_requests_total{outcome="diverted",reason="sold_out",sale="s1"}'
