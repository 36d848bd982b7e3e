#!/usr/bin/env bash
# A crowd in a waiting room: N buyers (default 10,000) join a sale of
# STOCK items (1,000) during the BEFORE seconds before its start, poll
# their tickets and order with their passes (sluice loadtest
# --waiting-room), everyone there and then half of them gone after
# joining (ABANDON: the shares who leave, "0 0.5"); against one gate, and against a cluster of three gates
# on loopback (JetStream routes, replicas 3) with the generator in three
# shards (--shard i/3, shard i talking to gate i), their reports merged
# by sluice loadtest merge, which runs the outcome check. Each run has
# fresh gates. Prints, per run: the time from the start to sold out, the
# polls per second after the start, the claim records the gates wrote
# (sluice_line_claim_writes_total, summed over the gates) and their rate
# up to sold out, the gates' peak RSS and CPU, the generators' peak RSS
# and CPU, the lapsed turns and the errors, and whether the outcome
# check passed.
#   bash bench/crowd.sh
# Env: N (10000), STOCK (1000), BEFORE (seconds of joins, 20), ABANDON
# ("0 0.5"), GATES ("1 3": which setups), CONNS (the generator's
# connections, each shard's, 256), PORT (18080: gate i's API on
# PORT+i-1, its ops on PORT+1384+i-1, its routes on PORT-1858+i-1),
# KEEP=1 keeps the reports and, with PROFILES=1, each generator's CPU
# profile and its heap profile at the start (their directory is
# printed; go tool pprof reads them).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000} STOCK=${STOCK:-1000} BEFORE=${BEFORE:-20} ABANDON=${ABANDON:-"0 0.5"} GATES=${GATES:-"1 3"} CONNS=${CONNS:-256}
PORT=${PORT:-18080}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
token=bench-admin-token-0123456789
pids=()
api() { echo "127.0.0.1:$(( PORT + $1 ))"; }
ops() { echo "127.0.0.1:$(( PORT + 1384 + $1 ))"; }
route() { echo "127.0.0.1:$(( PORT - 1858 + $1 ))"; }
start_gates() { # $1: how many; $2: the run's name
  pids=()
  local routes="" i
  for i in $(seq 0 $(( $1 - 1 ))); do routes="$routes${routes:+,}nats://$(route "$i")"; done
  for i in $(seq 0 $(( $1 - 1 ))); do
    local args=(serve --listen "$(api "$i")" --ops-listen "$(ops "$i")" --admin-token "$token" --data-dir "$tmp/$2-g$i"
      --no-demo --log-level warn)
    if [ "$1" -gt 1 ]; then
      args+=(--server-name "g$i" --cluster-name crowd --cluster-listen "$(route "$i")" --cluster-routes "$routes" --replicas 3)
      [ "$i" = 0 ] || args+=(--no-drain) # gate 0 drains
    fi
    "$tmp/sluice" "${args[@]}" &
    pids+=($!)
  done
  for i in $(seq 0 $(( $1 - 1 ))); do
    until curl -fs "$(ops "$i")/readyz" >/dev/null; do sleep 0.2; done
  done
}
# cpu PID: the process's CPU seconds so far (user + system).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
runs=0
run() { # $1: gates; $2: the share who leave
  runs=$(( runs + 1 ))
  local name="run$runs-g$1-a$2" i
  start_gates "$1" "$name"
  local starts=$(( $(date +%s) + BEFORE + 3 ))
  curl -fs -XPUT -H "Authorization: Bearer $token" "$(ops 0)/admin/sales/drop" \
    -d "{\"stock\":$STOCK,\"waiting_room\":true,\"starts_at\":\"$(date -u -d @$starts +%Y-%m-%dT%H:%M:%SZ)\",\"line_limit\":$(( N * 2 ))}" >/dev/null
  for i in $(seq 0 $(( $1 - 1 ))); do # every gate has the line open (503 while it reads it)
    until curl -fs "$(api "$i")/v1/sales/drop/line" >/dev/null; do sleep 0.2; done
  done
  local cpu0=() p
  for p in "${pids[@]}"; do cpu0+=("$(cpu "$p")"); done
  local before=$(( starts - $(date +%s) - 1 ))
  local common=(loadtest --waiting-room --sale drop --buyers "$N" --before "${before}s" --abandon "$2" --connections "$CONNS" --json --quiet)
  prof() { [ "${PROFILES:-0}" != 1 ] || echo --cpu-profile "$tmp/$name.cpu$1.pprof" --heap-profile "$tmp/$name.heap$1.pprof"; }
  if [ "$1" = 1 ]; then
    # shellcheck disable=SC2046
    /usr/bin/time -f '%M %U %S' -o "$tmp/$name.time0" "$tmp/sluice" "${common[@]}" --target "http://$(api 0)" $(prof 0) >"$tmp/$name.json" || true
  else
    local gens=()
    for i in $(seq 0 $(( $1 - 1 ))); do
      # shellcheck disable=SC2046
      /usr/bin/time -f '%M %U %S' -o "$tmp/$name.time$i" "$tmp/sluice" "${common[@]}" --target "http://$(api "$i")" \
        --shard "$(( i + 1 ))/$1" $(prof "$i") >"$tmp/$name.shard$i.json" &
      gens+=($!)
    done
    wait "${gens[@]}" || true
    "$tmp/sluice" loadtest merge --target "http://$(api 0)" --json "$tmp/$name".shard*.json >"$tmp/$name.json" || true
  fi
  local gcpu=0 grss=0 writes=0 w
  for i in "${!pids[@]}"; do
    gcpu=$(awk -v a="$gcpu" -v b="$(cpu "${pids[$i]}")" -v c="${cpu0[$i]}" 'BEGIN {print a + b - c}')
    grss=$(( grss > $(hwm "${pids[$i]}") ? grss : $(hwm "${pids[$i]}") ))
    w=$(curl -s "$(ops "$i")/metrics" | awk '/^sluice_line_claim_writes_total\{sale="drop"\}/ {print $2}')
    writes=$(awk -v a="$writes" -v b="${w:-0}" 'BEGIN {print a + b}')
  done
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  python3 - "$tmp/$name.json" "$1" "$2" "$writes" "$gcpu" "$grss" "$tmp/$name".time* <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
gates, abandon, writes, gcpu, grss = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
gen = [open(f).read().split() for f in sys.argv[7:]]
genrss = max(int(g[0]) for g in gen) / 1024
gencpu = sum(float(g[1]) + float(g[2]) for g in gen)
sold = r["sold_out_after_seconds"]
g = r["generator"]
after = max(1.0, g["polls_after_start"] / g["polls_per_second_after_start"]) if g["polls_per_second_after_start"] > 0 else 1.0
errs = sum(e["count"] for e in r.get("errors") or [])
lc = r.get("lapse_causes", {})
print(f"{gates} gate(s), {r['joined'] + r['late']} in line, stock {r['stock']}, abandon {abandon:.0%}: "
      f"sold out {'%.1fs' % sold if sold > 0 else 'never'} after the start; polls {r['polls']} ({g['polls_per_second_after_start']:.0f}/s after the start, "
      f"{r.get('late_polls', 0)} late); claim writes {writes:.0f} ({writes / (sold if sold > 0 else after):.0f}/s to sold out); "
      f"gate{'s' if gates != '1' else ''}: CPU {gcpu:.1f}s{' together' if gates != '1' else ''}, peak RSS {grss / 1024:.0f} MiB{' the largest' if gates != '1' else ''}; "
      f"generator{'s' if len(gen) > 1 else ''}: CPU {gencpu:.1f}s{' together' if len(gen) > 1 else ''}, peak RSS {genrss:.0f} MiB{' the largest' if len(gen) > 1 else ''}; "
      f"served {r['served']}; lapsed {r['lapsed_turns']} (generator late {lc.get('generator_late', 0)}, came when told {lc.get('came_when_told', 0)}, "
      f"poll failed {lc.get('poll_failed', 0)}, away {lc.get('away', 0)}); errors {errs}; check {'passed' if r['passed'] else 'FAILED'}", flush=True)
PY
}
for g in $GATES; do
  for a in $ABANDON; do run "$g" "$a"; done
done
[ "${KEEP:-0}" != 1 ] || echo "reports in $tmp"
