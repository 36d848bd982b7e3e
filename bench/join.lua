-- wrk script: join a sale's line (the path given) as a new buyer each
-- time; the argument after -- makes the buyer ids of this run unique.
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  run = args[1] or "run"
end
function request()
  counter = counter + 1
  local body = string.format('{"buyer_id":"bench-%s-%d-%d"}', run, tid, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
