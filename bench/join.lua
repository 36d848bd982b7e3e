-- wrk script: join a sale's line (the path given) as a new buyer each
-- time; the argument after -- makes the buyer ids of this run unique.
-- With TICKETS_OUT set, each thread appends the ticket ids it was given
-- to TICKETS_OUT.<thread>, one a line: they are their holders' secrets,
-- which no public list gives (the draw lists their hashes).
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  run = args[1] or "run"
  local out = os.getenv("TICKETS_OUT")
  if out then file = io.open(out .. "." .. tid, "a") end
end
function response(status, headers, body)
  if file and status == 201 then
    local id = body:match('"ticket_id":"([a-z2-7]+)"')
    if id then file:write(id, "\n"); file:flush() end
  end
end
function request()
  counter = counter + 1
  local body = string.format('{"buyer_id":"bench-%s-%d-%d"}', run, tid, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
