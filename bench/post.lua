-- wrk script: POST one order body to the path given on the command line.
wrk.method = "POST"
wrk.body = '{"buyer_id":"late-buyer"}'
-- VARIANT in the environment names that variant in the order (a sale
-- with variants).
local variant = os.getenv("VARIANT")
if variant and variant ~= "" then wrk.body = '{"buyer_id":"late-buyer","variant":"' .. variant .. '"}' end
wrk.headers["Content-Type"] = "application/json"
-- ORIGIN in the environment sends the request from that origin (CORS).
local origin = os.getenv("ORIGIN")
if origin and origin ~= "" then wrk.headers["Origin"] = origin end
