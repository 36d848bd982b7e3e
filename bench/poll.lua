-- wrk script: poll a random ticket of those listed in $TICKETS (one id a
-- line): GET /v1/tickets/{id}, as a waiting page does.
local ids = {}
function init(args)
  for line in io.lines(os.getenv("TICKETS")) do ids[#ids + 1] = line end
  math.randomseed(os.time() + #ids)
end
function request()
  return wrk.format("GET", "/v1/tickets/" .. ids[math.random(#ids)], {Accept = "application/json"})
end
