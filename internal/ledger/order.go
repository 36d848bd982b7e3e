package ledger

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sluice/internal/streams"
)

// Order is an admitted order as the ledger stores it.
type Order struct {
	ID             OrderID   `json:"-"`
	Sale           string    `json:"sale"`
	BuyerID        string    `json:"buyer_id"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Token          string    `json:"token"`
	AdmittedAt     time.Time `json:"admitted_at"`
	// Round counts the buyer's earlier orders in this sale that gave
	// their slot back (see BuyerRoundSubject); 0 for a first order.
	Round int `json:"round,omitempty"`
	// Variant is the variant the order takes, in a sale with variants.
	Variant string `json:"variant,omitempty"`
	// Pass is the ticket of the waiting-room pass the order was placed
	// with; an order of a sale with variants keeps it (in a header, not
	// in its JSON): a pass admits one order.
	Pass string `json:"-"`
	// Payload is the shop's own JSON object sent with the order (item,
	// size, quantity…), in the canonical form of package payload; opaque
	// to sluice, handed to the backend as it is. Orders with one are
	// decoded by encoding/json.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// encode is the order as the ledger stores it: JSON with the payload
// byte for byte as the gate made it. json.Marshal would write <, > and &
// in it as \u003c…: the same value, but not the bytes a retry's payload
// is compared with, nor the canonical form the backends are promised.
func (o Order) encode() ([]byte, error) {
	// Sized for the order at once: grown from bytes.Buffer's 64 bytes it
	// was copied two or three times on every admit.
	buf := bytes.NewBuffer(make([]byte, 0, 192+len(o.Sale)+len(o.BuyerID)+len(o.IdempotencyKey)+len(o.Token)+len(o.Variant)+len(o.Payload)))
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// OrderID names an order: its sale, its sequence in the sale's stream and a
// random token. The sequence makes a lookup one direct get; the token makes
// ids unguessable and tells apart orders of a sale stream that was deleted
// and made again with the same name.
type OrderID struct {
	Sale  string
	Seq   uint64
	Token string
}

// String renders the id as sale-seq-token, e.g. "demo-42-5tq3xzd0y7k2a".
func (id OrderID) String() string {
	return id.Sale + "-" + strconv.FormatUint(id.Seq, 10) + "-" + id.Token
}

// ParseOrderID parses the form String renders.
func ParseOrderID(s string) (OrderID, error) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return OrderID{}, fmt.Errorf("%w: malformed order id", ErrNotFound)
	}
	tok := s[i+1:]
	rest := s[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 {
		return OrderID{}, fmt.Errorf("%w: malformed order id", ErrNotFound)
	}
	seq, err := strconv.ParseUint(rest[j+1:], 10, 64)
	if err != nil || seq == 0 || !validToken(tok) || !ValidSaleName(rest[:j]) {
		return OrderID{}, fmt.Errorf("%w: malformed order id", ErrNotFound)
	}
	return OrderID{Sale: rest[:j], Seq: seq, Token: tok}, nil
}

var tokenEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

const tokenLen = 13 // 8 random bytes in base32

// NewToken returns a fresh random order token.
func NewToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return tokenEncoding.EncodeToString(b[:])
}

func validToken(t string) bool {
	if len(t) != tokenLen {
		return false
	}
	_, err := tokenEncoding.DecodeString(t)
	return err == nil
}

// StreamName is the JetStream stream that holds a sale's orders.
func StreamName(sale string) string { return streams.SaleName(sale) }

// SubjectPrefix is the subject prefix of a sale's orders; one subject per
// buyer follows it.
func SubjectPrefix(sale string) string { return streams.SaleSubjectPrefix(sale) }

// BuyerSubject is the subject of one buyer's orders in a sale. The buyer id
// is encoded as one subject token so that dots in ids cannot nest subjects.
func BuyerSubject(sale, buyer string) string {
	return SubjectPrefix(sale) + base64.RawURLEncoding.EncodeToString([]byte(buyer))
}

// BuyerRoundSubject is the subject of a buyer's orders after round
// orders of theirs gave their slot back: the per-buyer limit holds per
// subject, so a buyer whose order was rejected may order again, once per
// release, and never hold more than the limit at once.
func BuyerRoundSubject(sale, buyer string, round int) string {
	if round <= 0 {
		return BuyerSubject(sale, buyer)
	}
	return BuyerSubject(sale, buyer) + "." + strconv.Itoa(round)
}

// decodePlain decodes the payload the ledger writes in the common case
// without encoding/json, which the drain otherwise pays for on every
// order: one flat object of the Order's keys with plain string values (no
// escapes, no white space, valid UTF-8). Anything else is left to
// encoding/json (ok false), so the result is always what it would give.
func decodePlain(data []byte) (o Order, ok bool) {
	n := len(data)
	if n < 2 || data[0] != '{' || data[n-1] != '}' {
		return Order{}, false
	}
	for i := 1; ; {
		key, j, ok := plainString(data, i)
		if !ok || j >= n || data[j] != ':' {
			return Order{}, false
		}
		val, k, ok := plainString(data, j+1)
		if !ok || k >= n {
			return Order{}, false
		}
		switch string(key) {
		case "sale":
			o.Sale = string(val)
		case "buyer_id":
			o.BuyerID = string(val)
		case "idempotency_key":
			o.IdempotencyKey = string(val)
		case "token":
			o.Token = string(val)
		case "variant":
			o.Variant = string(val)
		case "admitted_at":
			// As encoding/json does for a time.Time.
			if o.AdmittedAt.UnmarshalText(val) != nil {
				return Order{}, false
			}
		default:
			return Order{}, false
		}
		switch {
		case data[k] == ',':
			i = k + 1
		case k == n-1: // the closing brace
			return o, true
		default:
			return Order{}, false
		}
	}
}

// plainString reads the JSON string at data[i] when it needs no
// unescaping, returning its contents and the index just past it.
func plainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			s := data[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}
