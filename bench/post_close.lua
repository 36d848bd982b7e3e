-- wrk script: post.lua's POST with Connection: close, so that every
-- request opens a new connection (over HTTPS: a new handshake).
wrk.method = "POST"
wrk.body = '{"buyer_id":"late-buyer"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Connection"] = "close"
