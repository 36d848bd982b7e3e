-- wrk script: POST orders, each for a buyer no request used before
-- (ROUND, the thread and a counter name it), so every one is admitted.
local counter, thread_id = 0, 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end
function init(args)
  thread_id = tid
end
function request()
  counter = counter + 1
  local body = string.format('{"buyer_id":"r%s-t%d-%d"}', os.getenv("ROUND") or "0", thread_id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
