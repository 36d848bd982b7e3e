package admission

import (
	"bytes"
	"encoding/json"
	"mime"
	"strings"

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
// payload (compacted; nil without one).
type decodedOrder struct {
	buyer    string
	hasBuyer bool // the body named a buyer (buyer is it)
	payload  []byte
	// bad says what is wrong with the payload (bad_payload).
	bad string
	// altcha is a form's proof of work (the ALTCHA widget's field).
	altcha string
}

// decodeOrder parses an order body. It returns the buyer id and payload,
// or the reason the body is refused. The body must be exactly one JSON
// object; fields other than buyer_id and payload are ignored so that
// clients may send more. A key given twice, or buyer_id or payload spelt
// in another case, is refused: encoding/json would take the last one, or
// match case-insensitively, while a proxy in front may have checked
// another. With needBuyer false (the buyer comes from a token or a
// header) buyer_id is not required; given, it must be valid.
func decodeOrder(body []byte, needBuyer bool) (decodedOrder, overflow.Reason) {
	if b, ok := plainOrder(body); ok {
		return decodedOrder{buyer: b, hasBuyer: true}, ""
	}
	return decodeObject(body, needBuyer)
}

// decodeObject is decodeOrder for any body, with a JSON decoder.
func decodeObject(body []byte, needBuyer bool) (decodedOrder, overflow.Reason) {
	var out decodedOrder
	if !isJSONObject(body) {
		return out, overflow.BadJSON
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the '{' isJSONObject saw
		return out, overflow.BadJSON
	}
	var (
		buyer   *string
		raw     json.RawMessage
		seen    = make(map[string]bool, 2)
		skipped json.RawMessage
	)
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok || seen[key] {
			return out, overflow.BadJSON
		}
		seen[key] = true
		switch {
		case key == "buyer_id":
			if err := dec.Decode(&buyer); err != nil {
				return out, overflow.BadJSON
			}
		case key == "payload":
			if err := dec.Decode(&raw); err != nil {
				return out, overflow.BadJSON
			}
		case strings.EqualFold(key, "buyer_id"), strings.EqualFold(key, "payload"):
			return out, overflow.BadJSON
		default:
			if err := dec.Decode(&skipped); err != nil {
				return out, overflow.BadJSON
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return out, overflow.BadJSON
	}
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return out, overflow.BadJSON // trailing data after the object
	}
	switch {
	case buyer != nil && validBuyerID(*buyer):
		out.buyer, out.hasBuyer = *buyer, true
	case buyer != nil || needBuyer:
		return out, overflow.BadBuyerID
	}
	if raw != nil {
		p, err := payload.Canonical(raw)
		if err != nil {
			out.bad = err.Error()
			return out, overflow.BadPayload
		}
		out.payload = p
	}
	return out, ""
}

// plainOrder reads the body clients send, {"buyer_id":"…"} exactly, with
// a valid buyer id, without a JSON decoder: such an id holds no escapes,
// so the bytes between the quotes are the id. Anything else is left to
// the decoder.
func plainOrder(body []byte) (string, bool) {
	const prefix, suffix = `{"buyer_id":"`, `"}`
	b := bytes.TrimRight(body, " \t\r\n")
	if len(b) <= len(prefix)+len(suffix) || string(b[:len(prefix)]) != prefix || string(b[len(b)-len(suffix):]) != suffix {
		return "", false
	}
	id := b[len(prefix) : len(b)-len(suffix)]
	if !validBuyerID(id) {
		return "", false
	}
	return string(id), true
}

// isJSONObject reports whether body, trimmed, starts like an object: the
// decoder accepts null and other values into a struct.
func isJSONObject(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}
