#!/usr/bin/env bash
# Memory and goroutines of a gate holding many idle keep-alive connections
# (one request made on each), next to the same gate with none.
#   bash bench/idle.sh                         (this checkout's gate)
#   BEFORE=/path/to/old/sluice bash bench/idle.sh   (and an older build, same sitting)
# Env: N (connections, default 18000), HOLD (default 20s), FLAGS (more
# flags for this checkout's gate, e.g. --reduce-memory).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-18000} HOLD=${HOLD:-20s}
# The hard limit of open files bounds N (20,000 on the project machine, and
# root there cannot raise it): per-connection figures scale from there.
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/idleconns" ./internal/cmd/idleconns
gates=("this=$tmp/sluice")
[ -n "${BEFORE:-}" ] && gates=("before=$BEFORE" "this=$tmp/sluice")
[ -n "${FLAGS:-}" ] && gates+=("flags=$tmp/sluice")
metric() { curl -s 127.0.0.1:19464/metrics | awk -v m="$1" '$1==m {printf "%.0f", $2}'; }
rss() { awk '/VmRSS/ {print $2*1024}' "/proc/$1/status"; }
printf '%-8s %12s %12s %14s %14s %12s\n' gate rss_idle_MB rss_conns_MB bytes_per_conn heap_per_conn goroutines
for lg in "${gates[@]}"; do
  label=${lg%%=*} g=${lg#*=}
  rm -rf "$tmp/data" "$tmp/ready"
  extra=()
  [ "$label" = flags ] && read -ra extra <<<"$FLAGS"
  "$g" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 --data-dir "$tmp/data" \
    --sale s1=1000 --no-demo --log-level warn "${extra[@]}" &
  pid=$!
  until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
  sleep 1
  r0=$(rss $pid) h0=$(metric go_memstats_heap_inuse_bytes) g0=$(metric go_goroutines)
  "$tmp/idleconns" -target 127.0.0.1:18080 -path /v1/sales/s1 -n "$N" -hold "$HOLD" -ready-file "$tmp/ready" &
  idle=$!
  until [ -s "$tmp/ready" ]; do sleep 0.2; done
  sleep 2
  r1=$(rss $pid) h1=$(metric go_memstats_heap_inuse_bytes) g1=$(metric go_goroutines)
  open=$(cat "$tmp/ready")
  printf '%-8s %12.1f %12.1f %14.0f %14.0f %5d → %d\n' "$label" \
    "$(echo "$r0/1048576" | bc -l)" "$(echo "$r1/1048576" | bc -l)" "$(echo "($r1-$r0)/$open" | bc -l)" "$(echo "($h1-$h0)/$open" | bc -l)" "$g0" "$g1"
  kill $idle 2>/dev/null || true; wait $idle 2>/dev/null || true
  kill $pid; wait $pid 2>/dev/null || true
done
