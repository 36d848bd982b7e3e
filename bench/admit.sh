#!/usr/bin/env bash
# The admit path over HTTP: every request a new buyer, admitted, stored by
# JetStream and answered 202 after the PubAck. This checkout's gate next
# to an older build (BEFORE) in one sitting, without a drain so that only
# the admission path shares the cores with wrk.
#   BEFORE=/path/to/an/older/sluice bash bench/admit.sh   (needs wrk)
#   VARIANTS=1 bash bench/admit.sh: the same gate's sale with 8 variants
#     (each order names one, in turn) next to its plain sale, in turns:
#     what a sale with variants costs an admit. With BEFORE too, the
#     older build's gate likewise, in the same rounds.
# Env: DURATION (default 5s), CONNS (128), THREADS (2), ROUNDS (5),
# PORT_OFFSET (0: ports 18080 and 19464 and up).
set -euo pipefail
OFF=${PORT_OFFSET:-0} # every port this script uses, moved by PORT_OFFSET (another bench on the machine)
# Each server's ports must be free: a readiness check answered by another
# bench's gate would measure that gate.
free_ports() { for p in "$@"; do if curl -s -o /dev/null --max-time 1 "127.0.0.1:$p/"; then
  echo "bench: 127.0.0.1:$p is in use (another bench?): set PORT_OFFSET=100" >&2; exit 1; fi; done; }
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s} CONNS=${CONNS:-128} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
cat >"$tmp/sales.yaml" <<YAML
sales:
  - name: s1
    stock: 100000000
  - name: v1
    variants: {a: 1000000, b: 1000000, c: 1000000, d: 1000000, e: 1000000, f: 1000000, g: 1000000, h: 1000000}
YAML
start_gate() { # binary port ops-port [flags]
  local bin=$1 port=$2 ops=$3
  shift 3
  free_ports "$port" "$ops"
  "$bin" serve --listen "127.0.0.1:$port" --ops-listen "127.0.0.1:$ops" --data-dir "$tmp/data-$port" \
    --no-demo --no-drain --log-level error "$@" &
  until curl -fs "127.0.0.1:$ops/readyz" >/dev/null; do sleep 0.1; done
}
names=() ports=() sales=() vars=()
if [ "${VARIANTS:-0}" = 1 ]; then
  start_gate "$tmp/sluice" $((18080+OFF)) $((19464+OFF)) --config "$tmp/sales.yaml"
  names=(plain variants) ports=($((18080+OFF)) $((18080+OFF))) sales=(s1 v1) vars=("" "a,b,c,d,e,f,g,h")
else
  start_gate "$tmp/sluice" $((18080+OFF)) $((19464+OFF)) --sale s1=100000000
  names=(gate) ports=($((18080+OFF))) sales=(s1) vars=("")
fi
if [ -n "${BEFORE:-}" ] && [ "${VARIANTS:-0}" = 1 ]; then
  start_gate "$BEFORE" $((18090+OFF)) $((19490+OFF)) --config "$tmp/sales.yaml"
  names+=(before-plain before-variants) ports+=($((18090+OFF)) $((18090+OFF))) sales+=(s1 v1) vars+=("" "a,b,c,d,e,f,g,h")
elif [ -n "${BEFORE:-}" ]; then
  start_gate "$BEFORE" $((18090+OFF)) $((19490+OFF)) --sale s1=100000000
  names+=(before) ports+=($((18090+OFF))) sales+=(s1) vars+=("")
fi
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "wrk -t$THREADS -c$CONNS -d$DURATION, POST, a new buyer each, alternating, $ROUNDS rounds"
declare -A all this ratios # this: the round's figures; ratios: each round's to the first server's
for i in $(seq "$ROUNDS"); do
  line="round $i:"
  for k in "${!names[@]}"; do
    out=$(ROUND="$i-$k" VARIANTS="${vars[$k]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/admit.lua \
      "http://127.0.0.1:${ports[$k]}/v1/sales/${sales[$k]}/orders")
    r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    if grep -q 'Non-2xx' <<<"$out"; then echo "${names[$k]}: $(grep Non-2xx <<<"$out")" >&2; fi
    all[${names[$k]}]+="$r "
    this[${names[$k]}]=$r
    line+=" ${names[$k]} $r"
  done
  echo "$line"
  for n in "${names[@]:1}"; do
    base=${names[0]}
    if [ "$n" = before-variants ]; then base=before-plain; fi # the older gate's sale with variants to its own plain one
    ratios[$n]+="$(awk -v a="${this[$n]}" -v b="${this[$base]}" 'BEGIN{printf "%.3f", a/b}') "
  done
done
echo -n "median admits/s:"; for n in "${names[@]}"; do echo -n " $n $(median ${all[$n]})"; done; echo
if [ -n "${BEFORE:-}" ] && [ "${VARIANTS:-0}" != 1 ]; then
  echo "gate / before: $(awk -v g="$(median ${all[gate]})" -v b="$(median ${all[before]})" 'BEGIN{printf "%.3f", g/b}')"
fi
if [ "${VARIANTS:-0}" = 1 ]; then
  echo "variants / plain: $(awk -v v="$(median ${all[variants]})" -v p="$(median ${all[plain]})" 'BEGIN{printf "%.3f", v/p}')" \
    "(of the medians; the median of each round's ratio, measured seconds apart: $(median ${ratios[variants]}))"
  if [ -n "${BEFORE:-}" ]; then
    echo "before: variants / plain: $(awk -v v="$(median ${all[before-variants]})" -v p="$(median ${all[before-plain]})" 'BEGIN{printf "%.3f", v/p}')" \
      "(rounds' ratios: $(median ${ratios[before-variants]}))"
  fi
fi
