package admission

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// CORS lets a shop's front end on another origin call the public API
// from a browser. The zero value is off: no answer carries a CORS header
// and a preflight is answered as any OPTIONS request (405).
type CORS struct {
	// Origins are the exact origins allowed (scheme://host[:port]); a
	// request from any other origin gets no CORS header. There is no
	// wildcard: an allowed origin is echoed, so credentials stay safe.
	Origins []string
	// Credentials lets the browser send cookies and HTTP authentication
	// with the calls (fetch's credentials: "include"): for a front door
	// that reads the buyer from a cookie (--buyer-header set by it).
	Credentials bool
	// MaxAge is how long a browser may cache a preflight, in seconds;
	// zero means 600 (Chromium caps it at 7200).
	MaxAge int
}

// The CORS headers' names and fixed values, as bytes: set on every answer
// without allocating.
var (
	hOrigin        = []byte("Origin")
	hVary          = []byte("Vary")
	hACAO          = []byte("Access-Control-Allow-Origin")
	hACAC          = []byte("Access-Control-Allow-Credentials")
	hACAM          = []byte("Access-Control-Allow-Methods")
	hACAH          = []byte("Access-Control-Allow-Headers")
	hACMA          = []byte("Access-Control-Max-Age")
	hACEH          = []byte("Access-Control-Expose-Headers")
	hACRM          = "Access-Control-Request-Method"
	vOrigin        = []byte("Origin")
	vCORSMethods   = []byte("GET, HEAD, POST")
	vCORSHeaders   = []byte("Content-Type, Accept, Idempotency-Key, Sluice-Pass, Prefer, Authorization")
	vCORSExposed   = []byte("Location, Retry-After, Idempotent-Replayed, Preference-Applied")
	optionsMethod  = []byte(fasthttp.MethodOptions)
	corsMaxDefault = 600
)

// cors is a validated CORS: the allowed origins as the bytes echoed back.
type cors struct {
	origins     map[string][]byte
	credentials bool
	maxAge      []byte
}

// ParseCORSOrigin checks that o is an exact origin a browser sends:
// http or https, a host, an optional port, nothing else.
func ParseCORSOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	switch {
	case o == "*":
		return "", fmt.Errorf("origin %q: no wildcard; list each origin the shop's pages come from", o)
	case err != nil:
		return "", fmt.Errorf("origin %q: %w", o, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("origin %q: want http:// or https:// and a host, like https://shop.example", o)
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("origin %q: want only scheme://host[:port], like https://shop.example", o)
	}
	// Browsers send the origin in lower case, without a trailing slash.
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func newCORS(c CORS) (*cors, error) {
	if len(c.Origins) == 0 {
		if c.Credentials {
			return nil, fmt.Errorf("%w: CORS credentials need at least one allowed origin", ErrBadConfig)
		}
		return nil, nil
	}
	out := &cors{origins: make(map[string][]byte, len(c.Origins)), credentials: c.Credentials}
	for _, o := range c.Origins {
		norm, err := ParseCORSOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
		}
		out.origins[norm] = []byte(norm)
	}
	age := c.MaxAge
	if age == 0 {
		age = corsMaxDefault
	}
	if age < 0 {
		return nil, fmt.Errorf("%w: CORS max age %d: want >= 0", ErrBadConfig, age)
	}
	out.maxAge = fmt.Appendf(nil, "%d", age)
	return out, nil
}

// allowed is the allowed origin the request comes from, or nil.
func (c *cors) allowed(req *fasthttp.RequestHeader) []byte {
	o := req.PeekBytes(hOrigin)
	if len(o) == 0 {
		return nil
	}
	return c.origins[string(o)] // a map index by string(b) does not allocate
}

// preflight answers a CORS preflight from an allowed origin and reports
// whether it did. A preflight from another origin is left to the router,
// which answers it 405 with no CORS header: the browser then refuses the
// call.
func (c *cors) preflight(ctx *fasthttp.RequestCtx) bool {
	req := &ctx.Request.Header
	if string(req.Method()) != string(optionsMethod) || len(req.Peek(hACRM)) == 0 {
		return false
	}
	origin := c.allowed(req)
	if origin == nil {
		return false
	}
	h := &ctx.Response.Header
	h.SetCanonical(hACAO, origin)
	if c.credentials {
		h.SetCanonical(hACAC, vTrue)
	}
	h.SetCanonical(hACAM, vCORSMethods)
	h.SetCanonical(hACAH, vCORSHeaders)
	h.SetCanonical(hACMA, c.maxAge)
	h.SetCanonical(hVary, vOrigin)
	h.SetCanonical(hCache, vNoStore)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return true
}

// annotate adds the CORS headers of a real answer. Every answer says
// Vary: Origin, since whether it carries them depends on the Origin.
func (c *cors) annotate(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.SetCanonical(hVary, vOrigin)
	origin := c.allowed(&ctx.Request.Header)
	if origin == nil {
		return
	}
	h.SetCanonical(hACAO, origin)
	if c.credentials {
		h.SetCanonical(hACAC, vTrue)
	}
	h.SetCanonical(hACEH, vCORSExposed)
}
