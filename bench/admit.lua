-- wrk script: POST orders, each for a buyer no request used before
-- (ROUND, the thread and a counter name it), so every one is admitted.
-- VARIANTS (a comma-separated list) names a variant in each order, in
-- turn: a sale with variants.
local counter, thread_id = 0, 0
local next_id = 0
local variants = {}
for v in string.gmatch(os.getenv("VARIANTS") or "", "[^,]+") do
  variants[#variants + 1] = v
end
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end
function init(args)
  thread_id = tid
end
function request()
  counter = counter + 1
  local body
  if #variants > 0 then
    body = string.format('{"buyer_id":"r%s-t%d-%d","variant":"%s"}', os.getenv("ROUND") or "0", thread_id, counter,
      variants[counter % #variants + 1])
  else
    body = string.format('{"buyer_id":"r%s-t%d-%d"}', os.getenv("ROUND") or "0", thread_id, counter)
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
