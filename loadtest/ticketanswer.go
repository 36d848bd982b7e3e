package loadtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unsafe"
)

// ticketAnswer is what the rehearsal reads of a ticket, as the join and
// GET /v1/tickets/{id} answer it. Its byte slices point into the answer's
// body: valid until the next request on the same response.
type ticketAnswer struct {
	ticket, state, pass, passExp, orderURL []byte
	drawn, rejoined                        bool
	position                               int64 // 0: null (before the draw)
	estimate                               float64
	hasEstimate                            bool
	pollAfter                              int
}

// parse reads a ticket answer: the gate's are flat objects of plain
// strings, numbers, booleans and nulls, read here in one pass without
// allocating; anything else (an escape in a string, a nested value) is
// decoded by encoding/json instead. False when it is not a ticket.
func (a *ticketAnswer) parse(body []byte) bool {
	*a = ticketAnswer{}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	for i++; ; {
		i = skipSpace(body, i)
		if i >= len(body) {
			return false
		}
		switch body[i] {
		case '}':
			return len(a.state) > 0
		case ',':
			i++
			continue
		case '"':
		default:
			return false
		}
		key, next, ok := jsonString(body, i)
		if !ok {
			return a.slowParse(body)
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return false
		}
		i = skipSpace(body, i+1)
		if i >= len(body) {
			return false
		}
		var val []byte
		str := body[i] == '"'
		switch {
		case str:
			if val, i, ok = jsonString(body, i); !ok {
				return a.slowParse(body)
			}
		case body[i] == '{' || body[i] == '[':
			return a.slowParse(body)
		default:
			j := i
			for j < len(body) && body[j] != ',' && body[j] != '}' && !isSpace(body[j]) {
				j++
			}
			val, i = body[i:j], j
		}
		if !a.set(key, val, str) {
			return a.slowParse(body)
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// set keeps one field; false when its value is not of the kind expected.
func (a *ticketAnswer) set(key, val []byte, str bool) bool {
	switch string(key) { // no allocation: a switch on a conversion
	case "ticket_id":
		a.ticket = val
	case "state":
		a.state = val
	case "pass":
		a.pass = val
	case "pass_expires_at":
		a.passExp = val
	case "order_url":
		a.orderURL = val
	case "drawn":
		a.drawn = string(val) == "true"
	case "rejoined":
		a.rejoined = string(val) == "true"
	case "position":
		if str {
			return false
		}
		if string(val) != "null" {
			n, err := strconv.ParseInt(unsafeString(val), 10, 64)
			if err != nil {
				return false
			}
			a.position = n
		}
	case "estimated_wait_seconds":
		if str {
			return false
		}
		if string(val) != "null" {
			f, err := strconv.ParseFloat(unsafeString(val), 64)
			if err != nil {
				return false
			}
			a.estimate, a.hasEstimate = f, true
		}
	case "poll_after_seconds":
		n, err := strconv.Atoi(unsafeString(val))
		if str || err != nil {
			return false
		}
		a.pollAfter = n
	}
	return true
}

// jsonString reads the string without escapes that starts at p[i]: its
// contents and the index after it; false if it has an escape or no end.
func jsonString(p []byte, i int) (s []byte, next int, ok bool) {
	end := bytes.IndexByte(p[i+1:], '"')
	if end < 0 {
		return nil, 0, false
	}
	s = p[i+1 : i+1+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, 0, false
	}
	return s, i + 2 + end, true
}

// slowParse decodes a ticket with encoding/json: for answers the quick
// reader does not take.
func (a *ticketAnswer) slowParse(body []byte) bool {
	var t struct {
		Ticket    string   `json:"ticket_id"`
		State     string   `json:"state"`
		Drawn     bool     `json:"drawn"`
		Rejoined  bool     `json:"rejoined"`
		Position  *int64   `json:"position"`
		Estimate  *float64 `json:"estimated_wait_seconds"`
		PollAfter int      `json:"poll_after_seconds"`
		Pass      string   `json:"pass"`
		PassExp   string   `json:"pass_expires_at"`
		OrderURL  string   `json:"order_url"`
	}
	*a = ticketAnswer{}
	if json.Unmarshal(body, &t) != nil || t.State == "" {
		return false
	}
	a.ticket, a.state, a.pass, a.passExp, a.orderURL = []byte(t.Ticket), []byte(t.State), []byte(t.Pass), []byte(t.PassExp), []byte(t.OrderURL)
	a.drawn, a.rejoined, a.pollAfter = t.Drawn, t.Rejoined, t.PollAfter
	if t.Position != nil {
		a.position = *t.Position
	}
	if t.Estimate != nil {
		a.estimate, a.hasEstimate = *t.Estimate, true
	}
	return true
}

// unsafeString is b as a string for a call that does not keep it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
