package proof

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// solve finds the number the way ALTCHA's widget does, written from the
// protocol's description and not from this package: hash salt + the
// decimal number for 0, 1, 2, … until it is the challenge.
func solve(t testing.TB, c Challenge) string {
	t.Helper()
	for n := int64(0); n <= c.MaxNumber; n++ {
		sum := sha256.Sum256([]byte(c.Salt + fmt.Sprint(n)))
		if hex.EncodeToString(sum[:]) == c.Challenge {
			b, _ := json.Marshal(map[string]any{"algorithm": c.Algorithm, "challenge": c.Challenge, "number": n, "salt": c.Salt, "signature": c.Signature})
			return base64.StdEncoding.EncodeToString(b)
		}
	}
	t.Fatalf("no number up to %d solves %+v", c.MaxNumber, c)
	return ""
}

func TestVerify(t *testing.T) {
	key := Key([]byte("the sale's secret"))
	now := time.Unix(1_800_000_000, 0)
	c, err := New(key, "drop", 5000, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Algorithm != "SHA-256" || c.MaxNumber != 5000 || len(c.Challenge) != 64 || len(c.Signature) != 64 {
		t.Fatalf("challenge %+v", c)
	}
	good := solve(t, c)
	if p, err := Verify(key, good, "drop", now.Add(time.Minute)); err != nil || p.Challenge != c.Challenge {
		t.Fatalf("a good solution: %v", err)
	}
	edit := func(f func(m map[string]any)) string {
		raw, _ := base64.StdEncoding.DecodeString(good)
		var m map[string]any
		json.Unmarshal(raw, &m)
		f(m)
		b, _ := json.Marshal(m)
		return base64.StdEncoding.EncodeToString(b)
	}
	other, _ := New(key, "drop", 5000, now)
	for _, tc := range []struct {
		name    string
		payload string
		key     []byte
		sale    string
		at      time.Time
		want    error
	}{
		{"expired", good, key, "drop", now.Add(TTL), ErrExpired},
		{"another sale", good, key, "other", now, ErrSale},
		{"another sale's key", good, Key([]byte("another secret")), "drop", now, ErrSignature},
		{"a wrong number", edit(func(m map[string]any) { m["number"] = m["number"].(float64) + 1 }), key, "drop", now, ErrWrong},
		{"a forged signature", edit(func(m map[string]any) { m["signature"] = hex.EncodeToString(make([]byte, 32)) }), key, "drop", now, ErrSignature},
		{"another challenge's signature", edit(func(m map[string]any) { m["signature"] = other.Signature }), key, "drop", now, ErrSignature},
		{"a salt with a later expiry", edit(func(m map[string]any) { m["salt"] = m["salt"].(string) + "&expires=9999999999" }), key, "drop", now, ErrWrong},
		{"SHA-1", edit(func(m map[string]any) { m["algorithm"] = "SHA-1" }), key, "drop", now, ErrAlgorithm},
		{"not base64", "%%%", key, "drop", now, ErrMalformed},
		{"not JSON", base64.StdEncoding.EncodeToString([]byte("[1,2]")), key, "drop", now, ErrMalformed},
		{"a negative number", edit(func(m map[string]any) { m["number"] = -1 }), key, "drop", now, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(tc.key, tc.payload, tc.sale, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// The secret numbers spread over [0, maxnumber]: a solver cannot start
// where they gather.
func TestNumbersSpread(t *testing.T) {
	key := Key([]byte("k"))
	var low, high int
	for range 200 {
		c, _ := New(key, "s", 99, time.Now())
		for n := int64(0); n <= 99; n++ {
			if hashHex(c.Salt, n) == c.Challenge {
				if n < 50 {
					low++
				} else {
					high++
				}
			}
		}
	}
	// Binomial(200, 0.5): below 60 on one side has p < 1e-8.
	if low < 60 || high < 60 || low+high != 200 {
		t.Fatalf("numbers below half %d, above %d", low, high)
	}
}

func FuzzVerify(f *testing.F) {
	key := Key([]byte("k"))
	c, _ := New(key, "drop", 10, time.Now())
	f.Add(solve(f, c))
	f.Add("")
	f.Add("eyJ9")
	f.Fuzz(func(t *testing.T, payload string) {
		p, err := Verify(key, payload, "drop", time.Now())
		if err == nil && hashHex(p.Salt, p.Number) != p.Challenge {
			t.Fatalf("accepted a payload that does not solve its challenge: %q", payload)
		}
	})
}
