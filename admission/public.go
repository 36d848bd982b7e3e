package admission

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"sluice/internal/waitingroom/line"
	"sluice/overflow"
)

// Handler returns the public API as a fasthttp handler: orders, order
// status, sale state and the OpenAPI document. Serve it with a
// fasthttp.Server whose ErrorHandler is g.ParseError, so that requests
// fasthttp refuses before routing are problem documents too.
//
// POST /v1/sales/{sale}/orders, the path every buyer of a drop hits, is
// matched first and counted by sluice_admission_requests_total, whose
// reasons each map to one status. The other routes are counted by
// sluice_http_requests_total and the in-flight gauge. Paths are matched
// after fasthttp's normalisation (dot segments and repeated slashes
// removed, percent-escapes decoded), so no path is answered by a redirect.
//
// With CORS on (Config.CORS), a preflight from an allowed origin is
// answered 204 before routing, and every answer carries the CORS headers
// its request's origin gets.
func (g *Gate) Handler() fasthttp.RequestHandler {
	c := g.cors
	if c == nil {
		return g.handle
	}
	return func(ctx *fasthttp.RequestCtx) {
		if c.preflight(ctx) {
			g.httpCount(ctx.Response.StatusCode(), ctx.Method())
			return
		}
		g.handle(ctx)
		c.annotate(ctx)
	}
}

func (g *Gate) handle(ctx *fasthttp.RequestCtx) {
	g.dispatch(ctx)
	if ctx.Response.StatusCode() >= 500 {
		g.serverErrors.Add(1)
	}
}

func (g *Gate) dispatch(ctx *fasthttp.RequestCtx) {
	method := ctx.Method()
	if string(method) == fasthttp.MethodPost {
		// The flood's request line needs no normalising: match it
		// as sent, and parse the URI only for anything else.
		if sale, ok := plainOrderPath(ctx.Request.Header.RequestURI()); ok {
			g.placeOrder(ctx, sale)
			return
		}
	}
	if string(method) == fasthttp.MethodGet {
		// A waiting room's polls, the other flood: matched as sent,
		// counted by sluice_line_polls_total alone.
		if id, ok := plainTicketPath(ctx.Request.Header.RequestURI()); ok {
			g.getTicket(ctx, id)
			return
		}
	}
	r := route(ctx.Path())
	if r.kind == routeOrders && string(method) == fasthttp.MethodPost {
		g.placeOrder(ctx, r.arg)
		return
	}
	g.m.inFlight.Inc()
	g.serveOther(ctx, r, method)
	g.m.inFlight.Dec()
	g.httpCount(ctx.Response.StatusCode(), method)
}

// plainOrderPath matches a request target that is exactly
// /v1/sales/{sale}/orders with a sale name of [a-z0-9_-], which no
// normalisation changes, and returns the sale.
func plainOrderPath(uri []byte) ([]byte, bool) {
	const prefix, suffix = "/v1/sales/", "/orders"
	if len(uri) <= len(prefix)+len(suffix) || string(uri[:len(prefix)]) != prefix ||
		string(uri[len(uri)-len(suffix):]) != suffix {
		return nil, false
	}
	sale := uri[len(prefix) : len(uri)-len(suffix)]
	for _, c := range sale {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return nil, false
		}
	}
	return sale, true
}

// plainTicketPath matches a request target that is exactly
// /v1/tickets/{id} with an id of 26 characters of [a-z2-7], which no
// normalisation changes, and returns the id.
func plainTicketPath(uri []byte) (string, bool) {
	const prefix = "/v1/tickets/"
	if len(uri) != len(prefix)+line.TicketIDLen || string(uri[:len(prefix)]) != prefix {
		return "", false
	}
	id := uri[len(prefix):]
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return "", false
		}
	}
	return string(id), true
}

type routeKind uint8

const (
	routeNone routeKind = iota
	routeOrders
	routeSale
	routeSales
	routeOrder
	routeOpenAPI
	routeLine
	routeDraw
	routeDrawTickets
	routeLineLog
	routeTicket
	routeChallenge
)

// allow is each route's Allow header; HEAD goes with every GET.
var allow = [...]string{
	routeOrders:      "POST",
	routeSale:        "GET, HEAD",
	routeSales:       "GET, HEAD",
	routeOrder:       "GET, HEAD",
	routeOpenAPI:     "GET, HEAD",
	routeLine:        "GET, HEAD, POST",
	routeDraw:        "GET, HEAD",
	routeDrawTickets: "GET, HEAD",
	routeLineLog:     "GET, HEAD",
	routeTicket:      "GET, HEAD",
	routeChallenge:   "GET, HEAD",
}

type matched struct {
	kind routeKind
	arg  []byte // the sale or order id in the path
}

// route matches a normalised path to a route and its one path argument.
func route(p []byte) matched {
	const sales, orders, tickets = "/v1/sales/", "/v1/orders/", "/v1/tickets/"
	switch {
	case bytes.HasPrefix(p, []byte(tickets)):
		if rest := p[len(tickets):]; len(rest) > 0 && bytes.IndexByte(rest, '/') < 0 {
			return matched{routeTicket, rest}
		}
	case bytes.HasPrefix(p, []byte(sales)):
		rest := p[len(sales):]
		i := bytes.IndexByte(rest, '/')
		switch {
		case i < 0 && len(rest) > 0:
			return matched{routeSale, rest}
		case i > 0 && string(rest[i:]) == "/orders":
			return matched{routeOrders, rest[:i]}
		case i > 0 && string(rest[i:]) == "/line":
			return matched{routeLine, rest[:i]}
		case i > 0 && string(rest[i:]) == "/line/challenge":
			return matched{routeChallenge, rest[:i]}
		case i > 0 && string(rest[i:]) == "/draw":
			return matched{routeDraw, rest[:i]}
		case i > 0 && string(rest[i:]) == "/draw/tickets":
			return matched{routeDrawTickets, rest[:i]}
		case i > 0 && string(rest[i:]) == "/line/log":
			return matched{routeLineLog, rest[:i]}
		}
	case string(p) == "/v1/sales":
		return matched{kind: routeSales}
	case bytes.HasPrefix(p, []byte(orders)):
		if rest := p[len(orders):]; len(rest) > 0 && bytes.IndexByte(rest, '/') < 0 {
			return matched{routeOrder, rest}
		}
	case string(p) == "/openapi.yaml":
		return matched{kind: routeOpenAPI}
	}
	return matched{}
}

func (g *Gate) serveOther(ctx *fasthttp.RequestCtx, r matched, method []byte) {
	if r.kind == routeNone {
		g.render.Respond(ctx, overflow.Problem{Reason: overflow.NotFound})
		return
	}
	if r.kind == routeLine && string(method) == fasthttp.MethodPost {
		g.joinLine(ctx, string(r.arg))
		return
	}
	if r.kind == routeOrders || (string(method) != fasthttp.MethodGet && string(method) != fasthttp.MethodHead) {
		g.render.Respond(ctx, overflow.Problem{Reason: overflow.MethodNotAllowed, Allow: allow[r.kind]})
		return
	}
	switch r.kind {
	case routeSale:
		g.getSale(ctx, string(r.arg))
	case routeSales:
		g.listSales(ctx)
	case routeOrder:
		g.getOrder(ctx, string(r.arg))
	case routeTicket:
		g.getTicket(ctx, string(r.arg))
	case routeLine:
		g.getLine(ctx, string(r.arg))
	case routeDraw:
		g.getDraw(ctx, string(r.arg))
	case routeDrawTickets:
		g.getDrawTickets(ctx, string(r.arg))
	case routeLineLog:
		g.getLineLog(ctx, string(r.arg))
	case routeChallenge:
		g.getChallenge(ctx, string(r.arg))
	case routeOpenAPI:
		ctx.Response.Header.SetContentType("application/yaml")
		ctx.Response.SetBodyRaw(openAPI)
	}
}

// ParseError answers a request fasthttp could not read (bad syntax, a
// header or body over the bounds, a client too slow) with a problem
// document, as every other answer of the public listener. A body over the
// bound of an order request counts as that sale's body_too_large.
func (g *Gate) ParseError(ctx *fasthttp.RequestCtx, err error) {
	var (
		small *fasthttp.ErrSmallBuffer
		nerr  net.Error
	)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		if r := route(ctx.Path()); r.kind == routeOrders && ctx.IsPost() {
			g.finish(ctx, g.lookupSale(string(r.arg)), overflow.BodyTooLarge, g.tooLarge, g.now())
			return
		}
		g.tooLarge.Respond(ctx, false)
	case errors.As(err, &small):
		g.render.Respond(ctx, overflow.Problem{Reason: overflow.HeaderTooLarge})
	case errors.As(err, &nerr) && nerr.Timeout():
		g.render.Respond(ctx, overflow.Problem{Reason: overflow.RequestTimeout})
	default:
		g.render.Respond(ctx, overflow.Problem{Reason: overflow.BadRequest, Detail: "The request is not valid HTTP/1.1."})
	}
	if g.cors != nil {
		g.cors.annotate(ctx)
	}
	g.httpCount(ctx.Response.StatusCode(), ctx.Method())
}

// httpCounters caches sluice_http_requests_total's children by status and
// method, so counting costs no label formatting.
type httpCounters struct {
	vec *prometheus.CounterVec
	m   sync.Map // uint32 (status<<4 | method) → prometheus.Counter
}

// methods are the method label's values; anything else is "other".
var methods = [...]string{"get", "head", "post", "put", "patch", "delete", "options", "other"}

func methodIndex(m []byte) uint32 {
	switch string(m) {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	}
	return 7
}

func (g *Gate) httpCount(status int, method []byte) {
	key := uint32(status)<<4 | methodIndex(method)
	c, ok := g.m.http.m.Load(key)
	if !ok {
		c, _ = g.m.http.m.LoadOrStore(key, g.m.http.vec.WithLabelValues(strconv.Itoa(status), methods[key&15]))
	}
	c.(prometheus.Counter).Inc()
}
