-- wrk script: the same POST as post.lua, but formatted in request() for
-- every request, as poll.lua's are: the client then spends on each
-- request what it spends on a poll's, and the two compare the gate alone.
function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, '{"buyer_id":"late-buyer"}')
end
