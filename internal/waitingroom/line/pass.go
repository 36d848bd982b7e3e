package line

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Pass admits one buyer to order in one sale until it expires. It is
// signed with a secret every gate shares, so any gate verifies it without
// I/O.
type Pass struct {
	Sale    string
	Buyer   string
	Ticket  string
	Expires time.Time
}

// Why a pass is refused; each matches ErrBadPass.
var (
	ErrBadPass     = errors.New("line: bad pass")
	ErrPassForged  = fmt.Errorf("%w: not signed by this sale's gates, or malformed", ErrBadPass)
	ErrPassExpired = fmt.Errorf("%w: expired", ErrBadPass)
	ErrPassBuyer   = fmt.Errorf("%w: issued to another buyer", ErrBadPass)
	ErrPassSale    = fmt.Errorf("%w: issued for another sale", ErrBadPass)
)

// MinSecretLen is the shortest secret passes are signed with.
const MinSecretLen = 32

const passVersion = "p1"

var b64 = base64.RawURLEncoding

// payload is what is signed: the fields, '|'-separated. Sale names,
// buyer ids and ticket ids cannot hold a '|'.
func (p Pass) payload() string {
	return strings.Join([]string{p.Sale, p.Buyer, p.Ticket, strconv.FormatInt(p.Expires.UnixMilli(), 10)}, "|")
}

func mac(secret []byte, payload string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(passVersion + "|" + payload))
	return m.Sum(nil)
}

// Sign writes the pass as a token: "p1.<payload>.<HMAC-SHA256>", both
// base64url, safe in a header.
func Sign(secret []byte, p Pass) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("line: a pass secret has at least %d bytes", MinSecretLen)
	}
	for _, f := range []string{p.Sale, p.Buyer, p.Ticket} {
		if f == "" || strings.Contains(f, "|") {
			return "", fmt.Errorf("line: pass field %q", f)
		}
	}
	pl := p.payload()
	return passVersion + "." + b64.EncodeToString([]byte(pl)) + "." + b64.EncodeToString(mac(secret, pl)), nil
}

// Verify reads a token and checks that it was signed with secret, for
// this sale and buyer, and has not expired at now. The signature is
// compared in constant time before any field is trusted.
func Verify(secret []byte, token, sale, buyer string, now time.Time) (Pass, error) {
	ver, rest, ok := strings.Cut(token, ".")
	if !ok || ver != passVersion || len(token) > 1024 {
		return Pass{}, ErrPassForged
	}
	plB64, sigB64, ok := strings.Cut(rest, ".")
	if !ok {
		return Pass{}, ErrPassForged
	}
	pl, err1 := b64.DecodeString(plB64)
	sig, err2 := b64.DecodeString(sigB64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, mac(secret, string(pl))) {
		return Pass{}, ErrPassForged
	}
	f := strings.Split(string(pl), "|")
	if len(f) != 4 {
		return Pass{}, ErrPassForged
	}
	ms, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return Pass{}, ErrPassForged
	}
	p := Pass{Sale: f[0], Buyer: f[1], Ticket: f[2], Expires: time.UnixMilli(ms)}
	switch {
	case p.Sale != sale:
		return p, ErrPassSale
	case p.Buyer != buyer:
		return p, ErrPassBuyer
	case !now.Before(p.Expires):
		return p, ErrPassExpired
	}
	return p, nil
}
