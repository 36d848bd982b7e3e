#!/usr/bin/env bash
# The flood path (a sold-out sale's 410) over HTTPS next to plain HTTP, in
# one sitting: the same binary runs two gates, one with --tls-cert and
# --tls-key, and wrk floods each in turn, round after round; the medians
# are compared. wrk keeps its connections, so this is the cost of TLS per
# request (record encryption), not of handshakes; HANDSHAKE=1 adds both
# again with a new connection per request (bench/post_close.lua), where
# https-new-conn / http-new-conn is the handshake's cost.
#   bash bench/tls.sh            (needs wrk and openssl: apt-get install wrk openssl)
# Env: DURATION (default 6s), CONNS (128), THREADS (2), ROUNDS (5), PIN=1
# to pin each gate to core 0 and wrk (one thread) to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6s} CONNS=${CONNS:-128} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-5}
srv=() cli=()
if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 0) cli=(taskset -c 1) THREADS=1; fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
# An ECDSA P-256 certificate, what a current CA (Let's Encrypt) issues.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

start_gate() { # scheme port ops-port [more flags]
  local scheme=$1 port=$2 ops=$3
  shift 3
  "${srv[@]}" "$tmp/sluice" serve --listen "127.0.0.1:$port" --ops-listen "127.0.0.1:$ops" \
    --data-dir "$tmp/data-$port" --sale s1=1 --no-demo --log-level warn "$@" &
  until curl -fs "127.0.0.1:$ops/readyz" >/dev/null; do sleep 0.1; done
  curl -ks -o /dev/null -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"first"}' "$scheme://127.0.0.1:$port/v1/sales/s1/orders"
  # the flood's answer is the sold-out one, or the figure means nothing
  curl -ks -XPOST -H 'Content-Type: application/json' -d '{"buyer_id":"second"}' "$scheme://127.0.0.1:$port/v1/sales/s1/orders" | grep -q '"reason":"sold_out"'
}
start_gate http 18080 19464
start_gate https 18443 19465 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
names=(http https) urls=(http://127.0.0.1:18080 https://127.0.0.1:18443)
if [ "${HANDSHAKE:-0}" = 1 ]; then
  names+=(http-new-conn https-new-conn) urls+=(http://127.0.0.1:18080 https://127.0.0.1:18443)
fi

rate() { # name url
  local script=bench/post.lua
  case $1 in *-new-conn) script=bench/post_close.lua ;; esac
  "${cli[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$script" "$2/v1/sales/s1/orders" | awk '/Requests\/sec/ {print $2}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "wrk -t$THREADS -c$CONNS -d$DURATION, POST to a sold-out sale (410), alternating, $ROUNDS rounds${PIN:+, pinned}; TLS 1.3, ECDSA P-256"
declare -A all
for i in $(seq "$ROUNDS"); do
  line="round $i:"
  for k in "${!names[@]}"; do
    r=$(rate "${names[$k]}" "${urls[$k]}")
    all[${names[$k]}]+="$r "
    line+=" ${names[$k]} $r"
  done
  echo "$line"
done
declare -A med
for n in "${names[@]}"; do med[$n]=$(median ${all[$n]}); done
echo -n "median req/s:"; for n in "${names[@]}"; do echo -n " $n ${med[$n]}"; done; echo
ratio() { awk -v a="${med[$1]}" -v b="${med[$2]}" 'BEGIN{printf "%.3f", a/b}'; }
echo "https / http: $(ratio https http)"
if [ "${HANDSHAKE:-0}" = 1 ]; then
  echo "https-new-conn / http-new-conn: $(ratio https-new-conn http-new-conn)"
fi
