// Package proof is the waiting room's proof of work, in ALTCHA's
// published protocol (https://altcha.org/docs/proof-of-work, the npm
// widget `altcha`), so that its widget and solvers work against a gate.
//
// A challenge is SHA-256(salt + N) for a secret N in [0, maxnumber],
// signed with HMAC-SHA-256(key, challenge) so that a gate need not
// remember the challenges it gave: any gate holding the key checks a
// solution with one hash and one HMAC. The salt carries the challenge's
// expiry and the sale it is for, as URL query parameters after the random
// part ("…?expires=UNIX&sale=NAME"), which the hash and the signature
// cover. That a solution is spent only once is for the caller to record
// (ledger.SpendProof): this package does no I/O and keeps no state.
package proof

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the one hash ALTCHA's challenges use here.
const Algorithm = "SHA-256"

// DefaultMaxNumber is the difficulty unless a sale sets its own: a
// solver tries half of it on average (measured in headless Chromium: see
// the README's "Bots and identity").
const DefaultMaxNumber = 50_000

// TTL is how long a challenge may be solved and spent.
const TTL = 10 * time.Minute

// Errors of Verify.
var (
	ErrMalformed = errors.New("proof: not an ALTCHA payload (base64 of a JSON object)")
	ErrAlgorithm = errors.New("proof: the algorithm is not SHA-256")
	ErrSignature = errors.New("proof: the challenge is not one a gate signed")
	ErrWrong     = errors.New("proof: the number does not solve the challenge")
	ErrExpired   = errors.New("proof: the challenge has expired")
	ErrSale      = errors.New("proof: the challenge is for another sale")
)

// Challenge is what GET /v1/sales/{sale}/line/challenge answers, in
// ALTCHA's field names.
type Challenge struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	MaxNumber int64  `json:"maxnumber"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// Payload is a solution as ALTCHA's widget sends it, base64 of its JSON.
type Payload struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	Number    int64  `json:"number"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// Key derives a sale's proof key from its waiting-room secret, which
// every gate reads from JetStream: the challenges of one sale are not
// another's, and the pass secret is not used for two things.
func Key(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sluice altcha v1"))
	return m.Sum(nil)
}

// New makes a challenge for sale, valid until now+TTL, whose secret
// number is at most maxNumber.
func New(key []byte, sale string, maxNumber int64, now time.Time) (Challenge, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Challenge{}, err
	}
	// A uniform number in [0, maxNumber]: the modulo bias of 64 random
	// bits over a difficulty of millions is below 1e-12.
	n := int64(binary.LittleEndian.Uint64(b[12:]) % uint64(maxNumber+1))
	q := url.Values{"expires": {strconv.FormatInt(now.Add(TTL).Unix(), 10)}, "sale": {sale}}
	salt := hex.EncodeToString(b[:12]) + "?" + q.Encode()
	ch := hashHex(salt, n)
	return Challenge{Algorithm: Algorithm, Challenge: ch, MaxNumber: maxNumber, Salt: salt, Signature: sign(key, ch)}, nil
}

// Verify checks a solution for sale at now: one base64 and JSON decode,
// one HMAC, one hash. It returns the payload, whose Challenge names the
// solution (what the caller records as spent).
func Verify(key []byte, payload, sale string, now time.Time) (Payload, error) {
	if len(payload) > 2048 {
		return Payload{}, ErrMalformed
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(payload); err != nil {
			return Payload{}, ErrMalformed
		}
	}
	var p Payload
	if err := json.Unmarshal(raw, &p); err != nil || p.Number < 0 || len(p.Challenge) != 64 {
		return Payload{}, ErrMalformed
	}
	if p.Algorithm != Algorithm {
		return Payload{}, ErrAlgorithm
	}
	if !hmac.Equal([]byte(sign(key, p.Challenge)), []byte(strings.ToLower(p.Signature))) {
		return Payload{}, ErrSignature
	}
	// Signed: the challenge is a gate's, so its salt is too once the
	// number solves it.
	if hashHex(p.Salt, p.Number) != p.Challenge {
		return Payload{}, ErrWrong
	}
	_, query, _ := strings.Cut(p.Salt, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return Payload{}, ErrMalformed
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return Payload{}, ErrExpired
	}
	if q.Get("sale") != sale {
		return Payload{}, ErrSale
	}
	return p, nil
}

func hashHex(salt string, n int64) string {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write(strconv.AppendInt(nil, n, 10))
	return hex.EncodeToString(h.Sum(nil))
}

func sign(key []byte, challenge string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(challenge))
	return hex.EncodeToString(m.Sum(nil))
}
