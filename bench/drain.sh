#!/usr/bin/env bash
# The drain's throughput next to a raw batched insert of the same rows
# (batches of 100, same durability settings), both in the same test run,
# round after round; compare the median ratio.
#   bash bench/drain.sh                 SQLite
#   BACKEND=Postgres bash bench/drain.sh  (needs /usr/lib/postgresql/*/bin)
# Env: BACKEND (SQLite or Postgres), ORDERS (200000 per benchmark: long
# enough that setting the drain up weighs nothing), ROUNDS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${BACKEND:-SQLite} ORDERS=${ORDERS:-200000} ROUNDS=${ROUNDS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/drain.test" ./internal/drain
echo "drain vs raw batched insert into $BACKEND, $ORDERS orders each, $ROUNDS rounds"
ds=() rs=() qs=()
for i in $(seq "$ROUNDS"); do
  out=$(cd internal/drain && "$tmp/drain.test" -test.run XXX -test.bench "^Benchmark(Drain|RawInsert)$BACKEND\$" -test.benchtime "${ORDERS}x")
  d=$(awk '/^BenchmarkDrain/ {for (i = 1; i < NF; i++) if ($(i+1) == "orders/s") print $i}' <<<"$out")
  r=$(awk '/^BenchmarkRawInsert/ {for (i = 1; i < NF; i++) if ($(i+1) == "orders/s") print $i}' <<<"$out")
  q=$(awk -v d="$d" -v r="$r" 'BEGIN{printf "%.3f", d/r}')
  ds+=("$d") rs+=("$r") qs+=("$q")
  echo "round $i: drain $d orders/s, raw insert $r orders/s, ratio $q"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median: drain $(median "${ds[@]}") orders/s, raw insert $(median "${rs[@]}") orders/s, ratio $(median "${qs[@]}")"
