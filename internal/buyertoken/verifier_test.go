package buyertoken

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// jwksServer serves a JWKS on loopback, whose keys a test replaces.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	keys  []map[string]string
	fetch atomic.Int64
}

func newJWKS(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetch.Add(1)
		s.mu.Lock()
		b, _ := json.Marshal(map[string]any{"keys": s.keys})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]string) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// The JWKs are written by hand from RFC 7517/8037, not by the library
// the verifier reads them with.
func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]string {
	return map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": b64(k)}
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, exp time.Duration, extra ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix(), "iss": "https://shop.example", "aud": "sluice"}
	for i := 0; i+1 < len(extra); i += 2 {
		k := extra[i].(string)
		if extra[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = extra[i+1]
		}
	}
	return c
}

func TestJWKS(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	srv := newJWKS(t)
	srv.set(rsaJWK("r1", &rsaKey.PublicKey), edJWK("e1", edPub))
	v, err := New(context.Background(), Options{JWKSURL: srv.URL, Issuer: "https://shop.example", Audience: "sluice",
		UnknownKeyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	defer v.Stop() // twice is safe

	pubDER := rsaKey.PublicKey.N.Bytes()
	cases := []struct {
		name  string
		token string
		buyer string
		want  error
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("alice", time.Minute)), "alice", nil},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, "e1", edKey, claims("bob", time.Minute)), "bob", nil},
		{"no kid: every key of the algorithm is tried", sign(t, jwt.SigningMethodRS256, "", rsaKey, claims("carol", time.Minute)), "carol", nil},
		{"expired within the leeway", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("dave", -10*time.Second)), "dave", nil},
		{"expired", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("x", -2*time.Minute)), "", ErrExpired},
		{"not valid yet", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("x", time.Hour, "nbf", time.Now().Add(10*time.Minute).Unix())), "", ErrNotYet},
		{"no exp", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("x", time.Hour, "exp", nil)), "", ErrNoExpiry},
		{"no sub", sign(t, jwt.SigningMethodEdDSA, "e1", edKey, claims("", time.Hour, "sub", nil)), "", ErrSubject},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("x", time.Hour, "iss", "https://evil.example")), "", ErrIssuer},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("x", time.Hour, "aud", "someone-else")), "", ErrAudience},
		{"another key under the kid", sign(t, jwt.SigningMethodRS256, "r1", otherRSA, claims("x", time.Hour)), "", ErrSignature},
		{"RS256 under the Ed25519 key's kid", sign(t, jwt.SigningMethodRS256, "e1", rsaKey, claims("x", time.Hour)), "", ErrAlgorithm},
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, "r1", pubDER, claims("x", time.Hour)), "", ErrSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, "r1", jwt.UnsafeAllowNoneSignatureType, claims("x", time.Hour)), "", ErrSignature},
		{"garbage", "not.a.token", "", ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			buyer, err := v.Buyer(tc.token)
			if buyer != tc.buyer || !errors.Is(err, tc.want) {
				t.Fatalf("Buyer = %q, %v; want %q, %v", buyer, err, tc.buyer, tc.want)
			}
		})
	}
}

// A key the shop rotates in is taken at its first token (one fetch for an
// unknown kid); made-up kids do not make a fetch each; a key rotated out
// is refused after the next refresh.
func TestJWKSRotation(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := newJWKS(t)
	srv.set(rsaJWK("k1", &k1.PublicKey))
	v, err := New(context.Background(), Options{JWKSURL: srv.URL, Refresh: 100 * time.Millisecond, UnknownKeyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	if b, err := v.Buyer(sign(t, jwt.SigningMethodRS256, "k1", k1, claims("alice", time.Minute))); b != "alice" {
		t.Fatalf("k1: %v", err)
	}
	srv.set(rsaJWK("k1", &k1.PublicKey), rsaJWK("k2", &k2.PublicKey))
	v.lastUnknown = time.Time{} // not under the bound: the test does not wait out an hour
	before := srv.fetch.Load()
	if b, err := v.Buyer(sign(t, jwt.SigningMethodRS256, "k2", k2, claims("bob", time.Minute))); b != "bob" {
		t.Fatalf("the key rotated in: %v", err)
	}
	// Made-up kids, many: at most the one fetch the bound allows. The
	// tokens are signed first: 50 RSA signatures under -race on a busy
	// machine took longer than a few refreshes.
	var madeUp []string
	for i := range 50 {
		madeUp = append(madeUp, sign(t, jwt.SigningMethodRS256, "made-up-"+string(rune('a'+i%26)), k2, claims("x", time.Minute)))
	}
	mid := srv.fetch.Load()
	for _, tok := range madeUp {
		if _, err := v.Buyer(tok); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("a made-up kid: %v", err)
		}
	}
	if n := srv.fetch.Load() - mid; n > 3 { // the periodic refresh may run meanwhile
		t.Fatalf("50 tokens with made-up kids made %d fetches", n)
	}
	if srv.fetch.Load() == before {
		t.Fatal("no fetch for the rotated key")
	}
	srv.set(rsaJWK("k2", &k2.PublicKey))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Buyer(sign(t, jwt.SigningMethodRS256, "k1", k1, claims("alice", time.Minute)))
		if errors.Is(err, ErrUnknownKey) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key rotated out is still taken: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSecret(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := New(context.Background(), Options{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	if b, err := v.Buyer(sign(t, jwt.SigningMethodHS256, "", secret, claims("alice", time.Minute))); b != "alice" || err != nil {
		t.Fatalf("HS256: %q %v", b, err)
	}
	if _, err := v.Buyer(sign(t, jwt.SigningMethodHS256, "", []byte("another secret, just as long.."), claims("alice", time.Minute))); !errors.Is(err, ErrSignature) {
		t.Fatalf("another secret: %v", err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_ = edPub
	if _, err := v.Buyer(sign(t, jwt.SigningMethodEdDSA, "", edKey, claims("alice", time.Minute))); err == nil {
		t.Fatal("an EdDSA token where the secret is the key was taken")
	}
	if _, err := New(context.Background(), Options{Secret: []byte("short")}); !errors.Is(err, ErrSecret) {
		t.Fatalf("a short secret: %v", err)
	}
	if _, err := New(context.Background(), Options{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no key: %v", err)
	}
	if _, err := New(context.Background(), Options{Secret: secret, JWKSURL: "http://127.0.0.1:1/"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("two keys: %v", err)
	}
}

// Each claim a token gets wrong is refused for that reason, and the
// error's text (the detail the gate answers) names the claim: a missing
// iss is not "no expiry", and a date written as a string is not a date
// (RFC 7519 NumericDate is a JSON number), whatever number it spells.
func TestClaimsRefusedForTheirOwnReason(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := New(context.Background(), Options{Secret: secret, Issuer: "https://shop.example", Audience: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	soon := time.Now().Add(time.Hour).Unix()
	cases := []struct {
		name  string
		extra []any
		want  error
		names string // what the error's text must name
	}{
		{"no iss", []any{"iss", nil}, ErrNoIssuer, "(iss)"},
		{"empty iss", []any{"iss", ""}, ErrNoIssuer, "(iss)"},
		{"no aud", []any{"aud", nil}, ErrNoAudience, "(aud)"},
		{"no exp", []any{"exp", nil}, ErrNoExpiry, "(exp)"},
		{"exp as a string", []any{"exp", strconv.FormatInt(soon, 10)}, ErrClaimType, "exp"},
		{"nbf as a string", []any{"nbf", "0"}, ErrClaimType, "nbf"},
		{"iat as a string", []any{"iat", "0"}, ErrClaimType, "iat"},
		{"iss a number", []any{"iss", 7}, ErrClaimType, "iss"},
		{"aud a number", []any{"aud", 7}, ErrClaimType, "aud"},
		{"sub a number", []any{"sub", 7}, ErrClaimType, "sub"},
		{"iat in the future", []any{"iat", time.Now().Add(10 * time.Minute).Unix()}, ErrIssuedLater, "(iat)"},
		{"expired and no iss: the first in a fixed order", []any{"exp", time.Now().Add(-time.Hour).Unix(), "iss", nil}, ErrNoIssuer, "(iss)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			buyer, err := v.Buyer(sign(t, jwt.SigningMethodHS256, "", secret, claims("alice", time.Hour, tc.extra...)))
			if buyer != "" || !errors.Is(err, tc.want) {
				t.Fatalf("Buyer = %q, %v; want %v", buyer, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("the error %q does not name %s", err, tc.names)
			}
		})
	}
	// A numeric date with a fraction is a NumericDate.
	if b, err := v.Buyer(sign(t, jwt.SigningMethodHS256, "", secret, claims("alice", time.Hour, "exp", float64(soon)+0.5))); b != "alice" {
		t.Fatalf("a fractional exp: %v", err)
	}
}

// A JWKS that cannot be read when New runs does not fail it: the
// Verifier is not Ready and refuses every token with ErrNoKeys, reads the
// JWKS again with backoff, and takes tokens once it has. Stop ends the
// retries (goleak checks the goroutine is gone).
func TestJWKSUnreachableAtStart(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	var up atomic.Bool
	var tries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		b, _ := json.Marshal(map[string]any{"keys": []map[string]string{rsaJWK("k1", &k.PublicKey)}})
		w.Write(b)
	}))
	defer srv.Close()
	v, err := New(context.Background(), Options{JWKSURL: srv.URL, Retry: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with a JWKS answering 502: %v", err)
	}
	defer v.Stop()
	tok := sign(t, jwt.SigningMethodRS256, "k1", k, claims("alice", time.Minute))
	if v.Ready() {
		t.Fatal("Ready before any key set was read")
	}
	if _, err := v.Buyer(tok); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Buyer without keys: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, failed, last := v.Fetches()
		if ok != 0 || !last.IsZero() {
			t.Fatalf("Fetches = %d ok, %d failed, last %v", ok, failed, last)
		}
		if failed >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the JWKS was asked %d times in 5 s: no retry", tries.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	up.Store(true)
	for !v.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("not Ready 5 s after the JWKS came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b, err := v.Buyer(tok); b != "alice" {
		t.Fatalf("Buyer once the keys are read: %q %v", b, err)
	}
	if ok, _, last := v.Fetches(); ok != 1 || last.IsZero() {
		t.Fatalf("Fetches = %d ok, last %v", ok, last)
	}
}

// Stop while the JWKS is being retried returns, and the goroutine is
// gone; a URL that is no http(s) URL is a configuration error.
func TestJWKSStopWhileRetrying(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	v, err := New(context.Background(), Options{JWKSURL: srv.URL, Retry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	v.Stop()
	v.Stop()
	for _, u := range []string{"127.0.0.1:8080/jwks", "ftp://shop.example/jwks", "https:///jwks"} {
		if _, err := New(context.Background(), Options{JWKSURL: u}); !errors.Is(err, ErrJWKSURL) {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}
