package admission

import (
	"bytes"
	"errors"
	"mime"
	"strconv"
	"strings"

	"sluice/internal/ledger"
	"sluice/internal/payload"
	"sluice/overflow"
)

// maxBuyerLen bounds a buyer id; ids are 1-128 of [A-Za-z0-9._:@-].
const maxBuyerLen = 128

// validBuyerID reports whether id is 1-128 characters of [A-Za-z0-9._:@-].
func validBuyerID[T string | []byte](id T) bool {
	if len(id) == 0 || len(id) > maxBuyerLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// validIdempotencyKey reports whether k is 1-128 printable ASCII characters.
func validIdempotencyKey[T string | []byte](k T) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// jsonContentType reports whether ct is application/json, with any
// parameters: the one type the API documents for an order.
func jsonContentType(ct []byte) bool {
	if string(ct) == "application/json" {
		return true // the common case, without parsing
	}
	mt, _, err := mime.ParseMediaType(string(ct))
	return err == nil && mt == "application/json"
}

// decodedOrder is what an order body says: the buyer and the shop's
// payload (nil without one).
type decodedOrder struct {
	buyer    string
	hasBuyer bool // the body named a buyer (buyer is it)
	// variant is the variant the order names, empty for none; a name no
	// variant can have is refused as unknown (badVariant).
	variant    string
	badVariant bool
	// payload is the payload's canonical encoding, what the ledger keeps;
	// value is the tree it encodes, what the sale's schema checks.
	payload []byte
	value   map[string]any
	// bad says what is wrong with the body (bad_json) or the payload
	// (bad_payload); badPath points at it.
	bad, badPath string
	// altcha is a form's proof of work (the ALTCHA widget's field).
	altcha string
}

// decodeOrder parses an order body. It returns the buyer id and payload,
// or the reason the body is refused. The body must be exactly one JSON
// object, read by payload.Decode, the one strict decoder: a key given
// twice at any depth, invalid UTF-8, a lone surrogate, \u0000 or a
// number a double cannot hold is bad_json, with where it is. Fields
// other than buyer_id and payload are ignored so that clients may send
// more. buyer_id or payload spelt in another case is refused:
// encoding/json would match it case-insensitively, while a proxy in
// front may have checked another. With needBuyer false (the buyer comes
// from a token or a header) buyer_id is not required; given, it must be
// valid.
func decodeOrder(body []byte, needBuyer bool) (decodedOrder, overflow.Reason) {
	if b, v, ok := plainOrder(body); ok {
		return decodedOrder{buyer: b, hasBuyer: true, variant: v}, ""
	}
	return decodeObject(body, needBuyer)
}

// decodeObject is decodeOrder for any body, with the strict decoder.
func decodeObject(body []byte, needBuyer bool) (decodedOrder, overflow.Reason) {
	var out decodedOrder
	doc, err := payload.Decode(body, payload.MaxDepth+1) // the payload is the body's second level
	if err != nil {
		var de *payload.DecodeError
		if errors.As(err, &de) {
			out.bad, out.badPath = "body is not strict JSON: "+de.Error(), de.Path
		}
		return out, overflow.BadJSON
	}
	if _, ok := doc.Value.(map[string]any); !ok {
		out.bad = "body must be a JSON object"
		return out, overflow.BadJSON
	}
	var (
		buyer, variant any
		hasID          bool
		pm             *payload.Member
	)
	for i, m := range doc.Members {
		switch {
		case m.Key == "buyer_id":
			buyer, hasID = m.Value, true
		case m.Key == "payload":
			pm = &doc.Members[i]
		case m.Key == "variant":
			variant = m.Value
		case strings.EqualFold(m.Key, "buyer_id"), strings.EqualFold(m.Key, "payload"), strings.EqualFold(m.Key, "variant"):
			out.bad, out.badPath = "body names "+strconv.Quote(m.Key)+": buyer_id, variant and payload are spelt in lower case", "/"+m.Key
			return out, overflow.BadJSON
		}
	}
	switch v, isString := variant.(string); {
	case variant != nil && !isString:
		out.bad, out.badPath = "variant must be a string", "/variant"
		return out, overflow.BadJSON
	case isString:
		out.variant, out.badVariant = v, !ledger.ValidVariantName(v)
	}
	switch id, isString := buyer.(string); {
	case hasID && buyer != nil && !isString:
		out.bad, out.badPath = "buyer_id must be a string", "/buyer_id"
		return out, overflow.BadJSON
	case isString && validBuyerID(id):
		out.buyer, out.hasBuyer = id, true
	case hasID || needBuyer:
		return out, overflow.BadBuyerID
	}
	if pm != nil {
		v, err := payload.Object(pm.Value, pm.Canonical)
		if err != nil {
			out.bad, out.badPath = err.Error(), "/payload"
			return out, overflow.BadPayload
		}
		out.payload, out.value = pm.Canonical, v
	}
	return out, ""
}

// plainOrder reads the bodies clients send, {"buyer_id":"…"} or
// {"buyer_id":"…","variant":"…"} exactly, with a valid buyer id and
// variant name, without a JSON decoder: such an id or name holds no
// escapes, so the bytes between the quotes are it. Anything else is left
// to the decoder.
func plainOrder(body []byte) (buyer, variant string, ok bool) {
	const prefix, suffix, mid = `{"buyer_id":"`, `"}`, `","variant":"`
	b := bytes.TrimRight(body, " \t\r\n")
	if len(b) <= len(prefix)+len(suffix) || string(b[:len(prefix)]) != prefix || string(b[len(b)-len(suffix):]) != suffix {
		return "", "", false
	}
	id := b[len(prefix) : len(b)-len(suffix)]
	if i := bytes.Index(id, []byte(mid)); i >= 0 {
		v := string(id[i+len(mid):])
		if id = id[:i]; !ledger.ValidVariantName(v) || !validBuyerID(id) {
			return "", "", false
		}
		return string(id), v, true
	}
	if !validBuyerID(id) {
		return "", "", false
	}
	return string(id), "", true
}
