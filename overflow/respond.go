package overflow

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// The fixed header names and values of every answer, as bytes: Respond
// sets them without allocating or normalising.
var (
	hCacheControl = []byte("Cache-Control")
	hNosniff      = []byte("X-Content-Type-Options")
	hRetryAfter   = []byte("Retry-After")
	hAllow        = []byte("Allow")
	vNoStore      = []byte("no-store")
	vNosniff      = []byte("nosniff")
	vProblem      = []byte("application/problem+json")
	vHTML         = []byte("text/html; charset=utf-8")
	textHTML      = []byte("text/html")
)

// Respond writes the answer to a fasthttp response, as HTML when html is
// true. Headers and body are the answer's prerendered bytes, set without
// copying: a diverted request allocates nothing here.
func (a *Answer) Respond(ctx *fasthttp.RequestCtx, html bool) {
	ctx.SetStatusCode(a.status)
	h := &ctx.Response.Header
	h.SetCanonical(hCacheControl, vNoStore)
	h.SetCanonical(hNosniff, vNosniff)
	if a.retryAfterB != nil {
		h.SetCanonical(hRetryAfter, a.retryAfterB)
	}
	if a.allowB != nil {
		h.SetCanonical(hAllow, a.allowB)
	}
	if html {
		h.SetContentTypeBytes(vHTML)
		ctx.Response.SetBodyRaw(a.html)
		return
	}
	h.SetContentTypeBytes(vProblem)
	ctx.Response.SetBodyRaw(a.json)
}

// AcceptsHTML is WantsHTML for a fasthttp request: whether its first
// Accept header asks for text/html.
func AcceptsHTML(h *fasthttp.RequestHeader) bool {
	return bytes.Contains(h.Peek("Accept"), textHTML)
}

// Respond renders p and writes it: for answers that are not on a hot path.
func (r *Renderer) Respond(ctx *fasthttp.RequestCtx, p Problem) {
	r.Render(p).Respond(ctx, AcceptsHTML(&ctx.Request.Header))
}
