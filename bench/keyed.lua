-- wrk script: POST orders each with a new Idempotency-Key and a new buyer,
-- as careful clients (or an attacker) send them. With NOKEY=1 the same
-- requests without the key: the baseline, at the same cost to wrk.
local counter, tid = 0, 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end
function init(args)
  tid = tid or 0
end
local nokey = os.getenv("NOKEY") == "1"
function request()
  counter = counter + 1
  local id = string.format("t%d-%d", tid, counter)
  local headers = {["Content-Type"] = "application/json"}
  if not nokey then headers["Idempotency-Key"] = "k-" .. id end
  return wrk.format("POST", nil, headers, '{"buyer_id":"b-' .. id .. '"}')
end
