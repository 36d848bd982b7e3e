-- wrk script: POST one order body to the path given on the command line.
wrk.method = "POST"
wrk.body = '{"buyer_id":"late-buyer"}'
wrk.headers["Content-Type"] = "application/json"
