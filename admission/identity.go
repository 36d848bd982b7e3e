package admission

import (
	"bytes"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/overflow"
)

// Who a buyer is, in the order of trust a gate is set up with:
//
//   - BuyerTokens set: the shop's signed token (Authorization: Bearer, or
//     the cookie BuyerTokenCookie names) says, as its sub;
//   - else BuyerHeader set: the authenticating proxy's header says, and
//     only on a connection from TrustedProxies;
//   - else the body's buyer_id, which anyone may choose.
//
// With a token or a header, a body's buyer_id is not needed; when given
// it must name the same buyer, so that a client that believes it orders
// for one buyer never orders for another.

// BuyerTokens verifies the shop's buyer tokens (buyertoken.Verifier).
type BuyerTokens interface {
	// Buyer returns the buyer a token was issued to, or why it is refused.
	Buyer(token string) (string, error)
	// Ready reports whether tokens can be checked: false while the
	// shop's keys have never been read. Once true it stays true.
	Ready() bool
}

// keysRetryAfter is the Retry-After of buyer_keys_unavailable: the
// verifier reads the keys again at most 30 s apart, and a buyer's retry
// costs a prerendered answer.
const keysRetryAfter = 5 * time.Second

var (
	hAuthorization   = []byte("Authorization")
	hWWWAuthenticate = []byte("WWW-Authenticate")
	bearerPrefix     = []byte("Bearer ")
)

// readBuyer tells who the buyer of a request is, reading its body as an
// order's (JSON) or, when form is true, as a join's (JSON or a form). It
// returns the body's fields too, or the problem to answer with.
func (g *Gate) readBuyer(rc *fasthttp.RequestCtx, form bool) (string, decodedOrder, overflow.Problem) {
	var (
		who     string
		vouched bool
	)
	switch {
	case g.cfg.BuyerTokens != nil:
		b, p := g.tokenBuyer(rc)
		if p.Reason != "" {
			return "", decodedOrder{}, p
		}
		who, vouched = b, true
	case g.cfg.BuyerHeader != "":
		b, p := g.headerBuyer(rc)
		if p.Reason != "" {
			return "", decodedOrder{}, p
		}
		who, vouched = b, true
	}
	f, reason := g.readBody(rc, form, vouched)
	switch {
	case reason == overflow.BadPayload:
		return "", f, overflow.Problem{Reason: reason} // f.bad says why
	case reason == overflow.BadJSON && f.bad != "":
		return "", decodedOrder{}, overflow.Problem{Reason: reason, Detail: "The " + f.bad + ".", Path: f.badPath}
	case reason != "":
		return "", decodedOrder{}, overflow.Problem{Reason: reason}
	case !vouched:
		return f.buyer, f, overflow.Problem{}
	case f.hasBuyer && f.buyer != who:
		return "", decodedOrder{}, overflow.Problem{Reason: overflow.BuyerMismatch}
	}
	f.buyer = who
	return who, f, overflow.Problem{}
}

// headerBuyer reads the buyer from the header an authenticating proxy
// sets. The header is believed from a trusted proxy only: anyone else
// could name any buyer in it. A request that bypasses the proxy is
// refused whether or not it sends the header, and never falls back to
// its body: a gate behind a proxy takes buyers from the proxy alone.
func (g *Gate) headerBuyer(rc *fasthttp.RequestCtx) (string, overflow.Problem) {
	if !isTrusted(peerAddr(rc.RemoteAddr()), g.cfg.TrustedProxies) {
		return "", overflow.Problem{Reason: overflow.UntrustedBuyerHeader}
	}
	vals := rc.Request.Header.PeekAll(g.cfg.BuyerHeader)
	switch {
	case len(vals) > 1:
		return "", overflow.Problem{Reason: overflow.BadBuyerHeader}
	case len(vals) == 0 || !validBuyerID(vals[0]):
		return "", overflow.Problem{Reason: overflow.BadBuyerID,
			Detail: "The buyer header " + g.cfg.BuyerHeader + " must hold 1-128 characters of A-Z a-z 0-9 . _ : @ -."}
	}
	return string(vals[0]), overflow.Problem{}
}

// tokenBuyer reads the buyer from the shop's token: the Authorization
// header's bearer token, or the cookie. Two Authorization headers, or a
// header and a cookie holding different tokens, are refused rather than
// chosen from: whichever the gate took, a proxy or a page in front may
// have acted on the other (RFC 6750 section 2: one method per request).
// The same token in both is one credential, as a page that copies its
// cookie into the header sends it.
func (g *Gate) tokenBuyer(rc *fasthttp.RequestCtx) (string, overflow.Problem) {
	var tok []byte
	auths := rc.Request.Header.PeekAll(string(hAuthorization))
	switch {
	case len(auths) > 1:
		return "", overflow.Problem{Reason: overflow.BadBuyerToken, Detail: "The request has more than one Authorization header."}
	case len(auths) == 1:
		if len(auths[0]) < len(bearerPrefix) || !bytes.EqualFold(auths[0][:len(bearerPrefix)], bearerPrefix) {
			return "", overflow.Problem{Reason: overflow.BadBuyerToken, Detail: "The Authorization header must be Bearer <token>."}
		}
		tok = bytes.TrimSpace(auths[0][len(bearerPrefix):])
	}
	if name := g.cfg.BuyerTokenCookie; name != "" {
		fromHeader := len(tok) > 0
		// A browser sends a name twice when two cookies of it match
		// (another path or domain): they too must agree.
		for k, c := range rc.Request.Header.Cookies() {
			switch {
			case string(k) != name || len(c) == 0 || bytes.Equal(c, tok):
			case len(tok) == 0:
				tok = c
			case fromHeader:
				return "", overflow.Problem{Reason: overflow.BadBuyerToken,
					Detail: "The request carries a buyer token in the Authorization header and another in the cookie " + name + ": send one."}
			default:
				return "", overflow.Problem{Reason: overflow.BadBuyerToken,
					Detail: "The request carries the cookie " + name + " twice, with two different buyer tokens: send one."}
			}
		}
	}
	if len(tok) == 0 {
		return "", overflow.Problem{Reason: overflow.BuyerTokenRequired}
	}
	if !g.cfg.BuyerTokens.Ready() {
		// Not the buyer's fault: 503, and sign-in stays as it is.
		return "", overflow.Problem{Reason: overflow.BuyerKeysUnavailable}
	}
	buyer, err := g.cfg.BuyerTokens.Buyer(string(tok))
	if err != nil {
		return "", overflow.Problem{Reason: overflow.BadBuyerToken, Detail: "The buyer token is refused: " + err.Error() + "."}
	}
	if !validBuyerID(buyer) {
		return "", overflow.Problem{Reason: overflow.BadBuyerToken,
			Detail: "The buyer token's sub must be 1-128 characters of A-Z a-z 0-9 . _ : @ -."}
	}
	return buyer, overflow.Problem{}
}

// caller tells who asks to read an order (GET /v1/orders/{id}): the
// buyer the gate proves, as for an order, or nobody. Reading needs no
// proof (the order id is its holder's), so a request without a token,
// or without the proxy's header, or from a peer that bypasses the proxy
// (whose header is not believed), reads as nobody. A token, or a
// trusted proxy's header, presented and refused is answered its problem
// rather than read past: the client learns why it sees less.
func (g *Gate) caller(rc *fasthttp.RequestCtx) (string, bool, overflow.Problem) {
	switch {
	case g.cfg.BuyerTokens != nil:
		b, p := g.tokenBuyer(rc)
		switch p.Reason {
		case "":
			return b, true, p
		case overflow.BuyerTokenRequired:
			return "", false, overflow.Problem{}
		}
		return "", false, p
	case g.cfg.BuyerHeader != "":
		if !isTrusted(peerAddr(rc.RemoteAddr()), g.cfg.TrustedProxies) || len(rc.Request.Header.Peek(g.cfg.BuyerHeader)) == 0 {
			return "", false, overflow.Problem{}
		}
		b, p := g.headerBuyer(rc)
		return b, p.Reason == "", p
	}
	return "", false, overflow.Problem{}
}

// challenge sets the WWW-Authenticate header of a refusal that a token
// answers (RFC 6750 section 3).
func challenge(rc *fasthttp.RequestCtx, p overflow.Problem) {
	switch p.Reason {
	case overflow.BuyerTokenRequired:
		rc.Response.Header.SetCanonical(hWWWAuthenticate, []byte(`Bearer realm="sluice"`))
	case overflow.BadBuyerToken:
		rc.Response.Header.SetCanonical(hWWWAuthenticate, []byte(`Bearer realm="sluice", error="invalid_token"`))
	}
}

// readBody reads an order's or a join's body. optional: the buyer is
// known from elsewhere, so an empty body is fine and a body without
// buyer_id too. The server has already refused a body over MaxBodyBytes.
func (g *Gate) readBody(rc *fasthttp.RequestCtx, form, optional bool) (decodedOrder, overflow.Reason) {
	body := rc.Request.Body()
	if int64(len(body)) > g.cfg.MaxBodyBytes {
		return decodedOrder{}, overflow.BodyTooLarge
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return decodedOrder{}, ""
	}
	ct := rc.Request.Header.ContentType()
	if form && bytes.HasPrefix(ct, []byte("application/x-www-form-urlencoded")) {
		return decodeForm(body, optional)
	}
	if !jsonContentType(ct) {
		if optional {
			return decodedOrder{}, "" // not a body the gate reads: the buyer is known
		}
		return decodedOrder{}, overflow.BadContentType
	}
	return decodeOrder(body, !optional)
}

// decodeForm reads a form body (the waiting page's join form). A field
// given twice, or buyer_id spelt in another case, is refused, as in a
// JSON body: url.Values.Get would take the first, while a proxy in
// front may have checked another.
func decodeForm(body []byte, optional bool) (decodedOrder, overflow.Reason) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return decodedOrder{}, overflow.BadForm
	}
	for k, v := range vals {
		if len(v) != 1 || (k != "buyer_id" && strings.EqualFold(k, "buyer_id")) {
			return decodedOrder{}, overflow.BadForm
		}
	}
	var f decodedOrder
	if v, ok := vals["altcha"]; ok {
		f.altcha = v[0]
	}
	v, ok := vals["buyer_id"]
	switch {
	case !ok && optional:
		return f, ""
	case !ok || !validBuyerID(v[0]):
		return decodedOrder{}, overflow.BadBuyerID
	}
	f.buyer, f.hasBuyer = v[0], true
	return f, ""
}

// joinOutcomeOf is the join outcome label of a refusal.
func joinOutcomeOf(r overflow.Reason) string {
	switch r {
	case overflow.UntrustedBuyerHeader, overflow.BuyerTokenRequired, overflow.BadBuyerToken:
		return "unauthorized"
	case overflow.ProofRequired:
		return "proof_required"
	case overflow.BadProof:
		return "bad_proof"
	case overflow.AddressLimit:
		return "address_limit"
	case overflow.BuyerKeysUnavailable:
		return "unavailable"
	}
	return "bad_request"
}
