package overflow

import "net/http"

// Reason is the stable, machine-readable cause of an answer. Clients and
// dashboards match on it; its values never change meaning.
type Reason string

// The reasons a gate answers with.
const (
	Admitted          Reason = "admitted"            // 202
	Replayed          Reason = "replayed"            // 202, a retry with the same Idempotency-Key
	AlreadyOrdered    Reason = "already_ordered"     // 409
	SoldOut           Reason = "sold_out"            // 410
	RateLimited       Reason = "rate_limited"        // 429, the sale's admission rate
	IPRateLimited     Reason = "ip_rate_limited"     // 429, the client address's rate
	BuyerRateLimited  Reason = "buyer_rate_limited"  // 429, the buyer's rate
	QueueFull         Reason = "queue_full"          // 429, the drain is behind
	NotStarted        Reason = "not_started"         // 425
	Closed            Reason = "closed"              // 403
	UnknownSale       Reason = "unknown_sale"        // 404
	OrderNotFound     Reason = "order_not_found"     // 404
	BadJSON           Reason = "bad_json"            // 400
	BadBuyerID        Reason = "bad_buyer_id"        // 400
	BadIdempotencyKey Reason = "bad_idempotency_key" // 400
	BodyTooLarge      Reason = "body_too_large"      // 413
	BadContentType    Reason = "bad_content_type"    // 415
	Unavailable       Reason = "unavailable"         // 503, the ledger did not take the order
	Unauthorized      Reason = "unauthorized"        // 401, admin API
	BadRequest        Reason = "bad_request"         // 400, admin API
	Conflict          Reason = "conflict"            // 409, admin API
	NotFound          Reason = "not_found"           // 404, no such endpoint
	MethodNotAllowed  Reason = "method_not_allowed"  // 405, with Allow
	HeaderTooLarge    Reason = "header_too_large"    // 431
	RequestTimeout    Reason = "request_timeout"     // 408, the request was not read in time
	OrderRejected     Reason = "order_rejected"      // 409, the backend refused the order (Prefer: wait)
	OrderFailed       Reason = "order_failed"        // 502, the drain gave up on the order (Prefer: wait)
	PassRequired      Reason = "pass_required"       // 428, a waiting-room sale's order without a pass
	BadPass           Reason = "bad_pass"            // 403, a forged, expired, used or someone else's pass
	LineFull          Reason = "line_full"           // 410, the waiting room's line holds line_limit tickets
	NoWaitingRoom     Reason = "no_waiting_room"     // 409, joining a sale that takes orders directly
	TicketNotFound    Reason = "ticket_not_found"    // 404
	// BadPayload: the order's payload is not a JSON object of at most
	// 2 KiB, or does not match the sale's payload_schema (path says where).
	BadPayload Reason = "bad_payload" // 400
	// IdempotencyKeyReused: a retry with the Idempotency-Key of an
	// earlier order and another payload.
	IdempotencyKeyReused Reason = "idempotency_key_reused" // 422

	UntrustedBuyerHeader Reason = "untrusted_buyer_header" // 403, the buyer header from a peer not in --trusted-proxies
	BadBuyerHeader       Reason = "bad_buyer_header"       // 400, the buyer header given twice
	BadForm              Reason = "bad_form"               // 400, a form body with a field twice or unparsable
	BuyerTokenRequired   Reason = "buyer_token_required"   // 401, no buyer token where the gate verifies them
	BadBuyerToken        Reason = "bad_buyer_token"        // 401, a token refused (signature, expiry, issuer, audience, algorithm)
	BuyerMismatch        Reason = "buyer_mismatch"         // 400, the body's buyer_id is not the token's or header's buyer
	BuyerKeysUnavailable Reason = "buyer_keys_unavailable" // 503, the shop's keys (JWKS) not read yet: no token can be checked
	ProofRequired        Reason = "proof_required"         // 428, a join without the proof of work its sale asks
	BadProof             Reason = "bad_proof"              // 403, a proof wrong, expired, for another sale or used
	AddressLimit         Reason = "address_limit"          // 429, the client address holds line_per_address tickets
	StockHeld            Reason = "stock_held"             // 409, an order without a pass while the stock left is held by the line's passes (the room off)
	VariantSoldOut       Reason = "variant_sold_out"       // 410, the order's variant is sold out; variants_left lists the others on sale
	VariantRequired      Reason = "variant_required"       // 400, an order of a sale with variants names none
	UnknownVariant       Reason = "unknown_variant"        // 400, an order names a variant its sale does not sell
)

type reasonInfo struct {
	status int
	title  string
	detail string
}

var catalog = map[Reason]reasonInfo{
	AlreadyOrdered:       {http.StatusConflict, "Already ordered", "You already hold an order in this sale."},
	SoldOut:              {http.StatusGone, "Sold out", "Every item of this sale is taken. A returned one goes on sale."},
	RateLimited:          {http.StatusTooManyRequests, "Busy", "Too many orders are arriving at once. Try again shortly."},
	IPRateLimited:        {http.StatusTooManyRequests, "Busy", "Too many requests from your address. Try again shortly."},
	BuyerRateLimited:     {http.StatusTooManyRequests, "Busy", "Too many requests for this buyer. Try again shortly."},
	QueueFull:            {http.StatusTooManyRequests, "Busy", "The queue of orders is full. Try again shortly."},
	NotStarted:           {http.StatusTooEarly, "Not started", "This sale has not started yet."},
	Closed:               {http.StatusForbidden, "Closed", "This sale has ended."},
	UnknownSale:          {http.StatusNotFound, "Unknown sale", "There is no sale by this name."},
	OrderNotFound:        {http.StatusNotFound, "Order not found", "There is no order with this id."},
	BadJSON:              {http.StatusBadRequest, "Bad request body", `The body must be a JSON object {"buyer_id": "..."}.`},
	BadBuyerID:           {http.StatusBadRequest, "Bad buyer id", "buyer_id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -."},
	BadIdempotencyKey:    {http.StatusBadRequest, "Bad Idempotency-Key", "Idempotency-Key must be 1-128 printable ASCII characters."},
	BodyTooLarge:         {http.StatusRequestEntityTooLarge, "Body too large", "The request body is larger than the gate accepts."},
	BadContentType:       {http.StatusUnsupportedMediaType, "Unsupported media type", "Send the order as Content-Type: application/json."},
	Unavailable:          {http.StatusServiceUnavailable, "Unavailable", "The gate could not learn whether the order was stored. Retry with the same Idempotency-Key to learn its fate."},
	Unauthorized:         {http.StatusUnauthorized, "Unauthorized", "A valid bearer token is required."},
	BadRequest:           {http.StatusBadRequest, "Bad request", "The request is not valid."},
	Conflict:             {http.StatusConflict, "Conflict", "The request conflicts with the current state."},
	NotFound:             {http.StatusNotFound, "Not found", "No such endpoint: see /openapi.yaml."},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, "Method not allowed", "This endpoint does not take this method: see the Allow header."},
	HeaderTooLarge:       {http.StatusRequestHeaderFieldsTooLarge, "Header too large", "The request's headers are larger than the gate accepts."},
	RequestTimeout:       {http.StatusRequestTimeout, "Request timeout", "The request was not received in time."},
	OrderRejected:        {http.StatusConflict, "Order rejected", "The shop did not take this order."},
	OrderFailed:          {http.StatusBadGateway, "Order failed", "The order could not be handed to the shop and was set aside."},
	PassRequired:         {http.StatusPreconditionRequired, "Pass required", "This sale has a waiting room: join its line, and order with the pass you get when your turn comes (Sluice-Pass header)."},
	BadPass:              {http.StatusForbidden, "Bad pass", "The Sluice-Pass is not valid for this order."},
	LineFull:             {http.StatusGone, "Sold out", "The line already holds more buyers than this sale can serve: you would not get an item."},
	BadPayload:           {http.StatusBadRequest, "Bad payload", "The order's payload must be a JSON object of at most 2 KiB, matching the sale's payload_schema."},
	IdempotencyKeyReused: {http.StatusUnprocessableEntity, "Idempotency-Key reused", "This Idempotency-Key was used for an order with another payload: a retry must send the same request, a new order a new key."},
	NoWaitingRoom:        {http.StatusConflict, "No waiting room", "This sale has no waiting room: order directly."},
	TicketNotFound:       {http.StatusNotFound, "Ticket not found", "There is no ticket with this id."},
	UntrustedBuyerHeader: {http.StatusForbidden, "Untrusted buyer header", "This gate takes the buyer from its authenticating proxy: connect through it."},
	BadBuyerHeader:       {http.StatusBadRequest, "Bad buyer header", "The buyer header must be given once."},
	BadForm:              {http.StatusBadRequest, "Bad form", "The form must be URL-encoded, each field once."},
	BuyerTokenRequired:   {http.StatusUnauthorized, "Sign in", "Sign in to the shop first: this sale takes buyers by the shop's token (Authorization: Bearer, or its cookie)."},
	BadBuyerToken:        {http.StatusUnauthorized, "Sign in again", "The buyer token is not valid: sign in to the shop again."},
	BuyerMismatch:        {http.StatusBadRequest, "Buyer mismatch", "The body's buyer_id is not the signed-in buyer."},
	BuyerKeysUnavailable: {http.StatusServiceUnavailable, "Unavailable", "The gate has not read the shop's keys yet, so it cannot check sign-ins: nothing was ordered. Try again shortly."},
	ProofRequired:        {http.StatusPreconditionRequired, "Proof of work required", "This line asks a proof of work per ticket: solve a challenge from its line's /challenge and send it in the Sluice-Proof header (or the altcha form field)."},
	BadProof:             {http.StatusForbidden, "Bad proof", "The proof of work is wrong, expired, for another sale or used already: solve a new challenge."},
	AddressLimit:         {http.StatusTooManyRequests, "Too many tickets from your address", "Your network address holds as many tickets as this sale allows one address."},
	StockHeld:            {http.StatusConflict, "Held for the line", "Every item left is held for buyers of the waiting room who were given their turn; one may come free if its pass expires unused. Try again later."},
	VariantSoldOut:       {http.StatusGone, "Sold out", "This variant is sold out; the sale's other variants are still on sale (variants_left). A returned item goes on sale."},
	VariantRequired:      {http.StatusBadRequest, "Choose a variant", `This sale sells variants: name one in the order, {"buyer_id": "...", "variant": "..."}.`},
	UnknownVariant:       {http.StatusBadRequest, "Unknown variant", "This sale sells no such variant."},
}

// Status returns the HTTP status a reason is answered with.
func (r Reason) Status() int {
	switch r {
	case Admitted, Replayed:
		return http.StatusAccepted
	}
	if info, ok := catalog[r]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// Reasons lists every reason a gate can answer an order with, admitted
// ones first: the fixed label set of the admission metrics.
func Reasons() []Reason {
	return []Reason{Admitted, Replayed, AlreadyOrdered, SoldOut, RateLimited,
		IPRateLimited, BuyerRateLimited, QueueFull, NotStarted, Closed,
		UnknownSale, BadJSON, BadBuyerID, BadIdempotencyKey, BodyTooLarge,
		BadContentType, Unavailable, PassRequired, BadPass, BadPayload,
		IdempotencyKeyReused, UntrustedBuyerHeader, BadBuyerHeader, BuyerTokenRequired,
		BadBuyerToken, BuyerMismatch, BuyerKeysUnavailable, StockHeld,
		VariantSoldOut, VariantRequired, UnknownVariant}
}
