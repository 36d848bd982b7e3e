#!/usr/bin/env bash
# Half the line gone, next to everyone there, in one sitting: a
# waiting-room sale of STOCK (300) items, JOINERS (5,000) joining during
# the BEFORE seconds (20) before its start, the default settings
# (claim_window 15s, pass_ttl 2m); ROUNDS (2) of alternating rehearsals
# (sluice loadtest --waiting-room) with --abandon 0 and --abandon ABANDON
# (0.5), each against a fresh gate. Prints, per run: the time from the
# start to sold out, the turns claimed and lapsed, how long those who
# stayed waited for their turn, the claim records the gate wrote
# (sluice_line_claim_writes_total) and whether the outcome check passed.
#   bash bench/abandon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STOCK=${STOCK:-300} JOINERS=${JOINERS:-5000} BEFORE=${BEFORE:-20} ROUNDS=${ROUNDS:-2} ABANDON=${ABANDON:-0.5}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
token=bench-admin-token-0123456789
run() { # $1: the share who leave; $2: the round
  "$tmp/sluice" serve --listen 127.0.0.1:18080 --ops-listen 127.0.0.1:19464 --admin-token "$token" \
    --data-dir "$tmp/data-$2-$1" --no-demo --log-level warn &
  local pid=$!
  until curl -fs 127.0.0.1:19464/readyz >/dev/null; do sleep 0.1; done
  local start=$(( $(date +%s) + BEFORE + 2 ))
  curl -fs -XPUT -H "Authorization: Bearer $token" 127.0.0.1:19464/admin/sales/drop \
    -d "{\"stock\":$STOCK,\"waiting_room\":true,\"starts_at\":\"$(date -u -d @$start +%Y-%m-%dT%H:%M:%SZ)\",\"line_limit\":$(( JOINERS * 2 ))}" >/dev/null
  sleep 1
  "$tmp/sluice" loadtest --waiting-room --target http://127.0.0.1:18080 --sale drop --buyers "$JOINERS" \
    --before "$(( start - $(date +%s) - 1 ))s" --abandon "$1" --json --quiet >"$tmp/report.json" || true
  local writes
  writes=$(curl -s 127.0.0.1:19464/metrics | awk '/^sluice_line_claim_writes_total\{sale="drop"\}/ {print $2}')
  kill "$pid"; wait "$pid" || true
  python3 - "$tmp/report.json" "$1" "$2" "$writes" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"round {sys.argv[3]} abandon {float(sys.argv[2]):.0%}: sold out {r['sold_out_after_seconds']:.1f}s after the start; "
      f"served {r['served']}; turns claimed {r['claimed_turns']}, lapsed {r['lapsed_turns']}; claim records written {sys.argv[4]}; "
      f"those who stayed waited p50 {r['stayed_wait_p50_seconds']:.1f}s p99 {r['stayed_wait_p99_seconds']:.1f}s "
      f"max {r['stayed_wait_max_seconds']:.1f}s; check {'passed' if r['passed'] else 'FAILED'}", flush=True)
PY
}
for i in $(seq "$ROUNDS"); do
  run 0 "$i"
  run "$ABANDON" "$i"
done
