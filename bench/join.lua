-- wrk script: join a sale's line (the path given) as a new buyer each time.
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  counter = counter + 1
  local body = string.format('{"buyer_id":"bench-%d-%d"}', tid, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
