#!/usr/bin/env bash
# What one attacker takes of a 300-item waiting-room sale, with and
# without the line's proof of work, in one sitting: for each round, a
# sale without a proof and one with join_proof: altcha (the default
# difficulty) run the same rehearsal: HONEST buyers join at random during
# the BEFORE window, and one client (--sybil) joins SYBIL ids from the
# window's start until the start, on one core, solving the proofs as
# ALTCHA's widget does. Prints the attacker's share of the line and of
# the stock and the CPU seconds it paid per ticket.
#   bash bench/sybil.sh
# Env: HONEST (2000), SYBIL (5000), BEFORE (15s), ROUNDS (1), WORKERS (1).
set -euo pipefail
cd "$(dirname "$0")/.."
HONEST=${HONEST:-2000} SYBIL=${SYBIL:-5000} BEFORE=${BEFORE:-15} ROUNDS=${ROUNDS:-1} WORKERS=${WORKERS:-1}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
"$tmp/sluice" serve --listen 127.0.0.1:18081 --ops-listen 127.0.0.1:19465 --admin-token bench-admin-token-0123456789 \
  --data-dir "$tmp/data" --no-demo --log-level warn &
until curl -fs 127.0.0.1:19465/readyz >/dev/null; do sleep 0.1; done
admin() { curl -fs -X"$1" -H 'Authorization: Bearer bench-admin-token-0123456789' "127.0.0.1:19465/admin/sales/$2" -d "$3" >/dev/null; }
for r in $(seq "$ROUNDS"); do
  for proof in none altcha; do
    sale="r${r}-${proof}"
    start=$(( $(date +%s) + BEFORE + 3 ))
    extra=""
    [ "$proof" = altcha ] && extra=",\"join_proof\":\"altcha\""
    admin PUT "$sale" "{\"stock\":300,\"waiting_room\":true,\"starts_at\":\"$(date -u -d @$start +%Y-%m-%dT%H:%M:%SZ)\",\"line_opens\":\"1h\",\"backend_rate\":300$extra}"
    sleep 2
    "$tmp/sluice" loadtest --waiting-room --target http://127.0.0.1:18081 --sale "$sale" --buyers "$HONEST" \
      --before "${BEFORE}s" --sybil "$SYBIL" --sybil-workers "$WORKERS" --connections 128 --max-duration 3m --json >"$tmp/$sale.json" 2>"$tmp/$sale.log" || true
    python3 - "$tmp/$sale.json" "$sale" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = r["sybil"]
print(f'{sys.argv[2]:>10}: attacker {s["joined"]}/{s["ids"]} ids in the draw of {r["joined"]} = {100*s["share_of_line"]:.1f}% of the line, '
      f'served {s["served"]}/{r["stock"]} = {100*s["share_of_stock"]:.1f}% of the stock; proofs {s["cpu_seconds"]:.1f} CPU s, '
      f'{s["cpu_seconds_per_ticket"]*1000:.2f} ms a ticket; honest proof {s["honest_proof_median_ms"]:.1f} ms; check passed: {r["passed"]}')
PY
  done
done
