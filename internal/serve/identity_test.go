package serve_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
)

// shopKeys is a shop's signing keys and the JWKS it serves on loopback.
type shopKeys struct {
	rsa  *rsa.PrivateKey
	ed   ed25519.PrivateKey
	jwks *httptest.Server
}

func newShop(t *testing.T) *shopKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "alg": "EdDSA", "use": "sig", "x": b64(edPub)},
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return &shopKeys{rsa: rk, ed: edKey, jwks: srv}
}

// token signs a token for sub, with the RSA key or (ed) the Ed25519 one.
func (k *shopKeys) token(t *testing.T, sub string, ed bool, exp time.Duration) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix(), "iss": "https://shop.example", "aud": "sluice"}
	m, kid, key := jwt.SigningMethod(jwt.SigningMethodRS256), "rsa-1", any(k.rsa)
	if ed {
		m, kid, key = jwt.SigningMethodEdDSA, "ed-1", k.ed
	}
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// With --buyer-token-jwks, every join and order needs the shop's token:
// its sub is the buyer; no token, or a refused one, is 401 with
// WWW-Authenticate: Bearer; a body naming another buyer 400; nothing is
// stored by a refusal. The cookie carries it as well as the header.
func TestBuyerTokenGate(t *testing.T) {
	shop := newShop(t)
	cfg := gatetest.Config(t,
		ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)},
		ledger.Sale{Name: "plain", Stock: 5})
	cfg.BuyerToken.JWKSURL = shop.jwks.URL
	cfg.BuyerToken.Cookie = "shop_session"
	cfg.BuyerToken.Issuer = "https://shop.example"
	cfg.BuyerToken.Audience = "sluice"
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	do := func(path, body, auth, cookie string) gatetest.Answer {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "shop_session", Value: cookie})
		}
		return gatetest.Do(t, c, req)
	}
	want401 := func(what string, a gatetest.Answer, reason string) {
		t.Helper()
		wantProblem(t, what, a, 401, reason)
		if !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", what, a.Header.Get("WWW-Authenticate"))
		}
	}
	for _, path := range []string{"/v1/sales/drop/line", "/v1/sales/plain/orders"} {
		want401(path+" without a token", do(path, `{"buyer_id":"alice"}`, "", ""), "buyer_token_required")
		want401(path+" with an expired token", do(path, `{}`, "Bearer "+shop.token(t, "alice", false, -5*time.Minute), ""), "bad_buyer_token")
		want401(path+" with garbage", do(path, `{}`, "Bearer abc.def.ghi", ""), "bad_buyer_token")
		want401(path+" with Basic", do(path, `{}`, "Basic YWxpY2U6eA==", ""), "bad_buyer_token")
		wantProblem(t, path+" naming another buyer", do(path, `{"buyer_id":"victim"}`, "Bearer "+shop.token(t, "mallory", true, time.Minute), ""), 400, "buyer_mismatch")
	}
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != 0 {
		t.Fatalf("refused joins stored %d tickets", n)
	}
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 0 {
		t.Fatalf("refused orders stored %d orders", n)
	}
	if a := do("/v1/sales/drop/line", ``, "Bearer "+shop.token(t, "alice", false, time.Minute), ""); a.Status != 201 || a.Str("buyer_id") != "alice" {
		t.Fatalf("join with an RS256 token: %d %s", a.Status, a.Raw)
	}
	if a := do("/v1/sales/drop/line", `{"buyer_id":"bob"}`, "", shop.token(t, "bob", true, time.Minute)); a.Status != 201 || a.Str("buyer_id") != "bob" {
		t.Fatalf("join with an EdDSA token in the cookie: %d %s", a.Status, a.Raw)
	}
	if a := do("/v1/sales/plain/orders", `{}`, "Bearer "+shop.token(t, "carol", true, time.Minute), ""); a.Status != 202 || a.Str("buyer_id") != "carol" {
		t.Fatalf("order with a token: %d %s", a.Status, a.Raw)
	}
}

// sign signs claims as they are, with the RSA key.
func (k *shopKeys) sign(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "rsa-1"
	s, err := tok.SignedString(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenGate starts a gate taking buyers from the shop's JWKS, with the
// cookie shop_session, issuer and audience checked; and a function
// posting an order to its sale "plain" with a bearer token and a cookie
// (either may be empty).
func tokenGate(t *testing.T, shop *shopKeys) (*serve.Server, func(auth, cookie string) gatetest.Answer) {
	t.Helper()
	cfg := gatetest.Config(t, ledger.Sale{Name: "plain", Stock: 5})
	cfg.BuyerToken.JWKSURL = shop.jwks.URL
	cfg.BuyerToken.Cookie = "shop_session"
	cfg.BuyerToken.Issuer = "https://shop.example"
	cfg.BuyerToken.Audience = "sluice"
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	return g, func(auth, cookie string) gatetest.Answer {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/sales/plain/orders", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "shop_session", Value: cookie})
		}
		return gatetest.Do(t, c, req)
	}
}

// A token whose claims are wrong is refused with a detail naming the
// claim at fault: a missing iss or aud is not "no expiry", and a date
// written as a string (RFC 7519's NumericDate is a JSON number) is
// refused, whatever number it spells. Nothing is stored.
func TestBuyerTokenClaimDetails(t *testing.T) {
	shop := newShop(t)
	g, order := tokenGate(t, shop)
	soon := time.Now().Add(time.Hour).Unix()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "exp": soon, "iss": "https://shop.example", "aud": "sluice"}
	}
	cases := []struct {
		name   string
		edit   func(jwt.MapClaims)
		detail string
	}{
		{"no iss", func(c jwt.MapClaims) { delete(c, "iss") }, "names no issuer (iss)"},
		{"no aud", func(c jwt.MapClaims) { delete(c, "aud") }, "names no audience (aud)"},
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }, "has no expiry (exp)"},
		{"exp as a string", func(c jwt.MapClaims) { c["exp"] = "1999999999" }, "its exp is not a NumericDate"},
		{"nbf as a string", func(c jwt.MapClaims) { c["nbf"] = "0" }, "its nbf is not a NumericDate"},
		{"iat as a string", func(c jwt.MapClaims) { c["iat"] = "0" }, "its iat is not a NumericDate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(c)
			a := order(shop.sign(t, c), "")
			wantProblem(t, tc.name, a, 401, "bad_buyer_token")
			if d := a.Str("detail"); !strings.Contains(d, tc.detail) {
				t.Errorf("%s: detail %q does not say %q", tc.name, d, tc.detail)
			}
		})
	}
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 0 {
		t.Fatalf("refused orders stored %d orders", n)
	}
	if a := order(shop.sign(t, good()), ""); a.Status != 202 || a.Str("buyer_id") != "alice" {
		t.Fatalf("the good token: %d %s", a.Status, a.Raw)
	}
}

// A token in the Authorization header and another in the cookie are
// refused, whichever is valid, as is the cookie twice with two tokens:
// the gate does not choose a buyer between two credentials. The same
// token in both is one credential, and taken.
func TestBuyerTokenHeaderAndCookie(t *testing.T) {
	shop := newShop(t)
	g, order := tokenGate(t, shop)
	alice, bob := shop.token(t, "alice", false, time.Minute), shop.token(t, "bob", true, time.Minute)
	for _, tc := range []struct{ name, auth, cookie string }{
		{"two buyers", alice, bob},
		{"a valid header and a garbage cookie", alice, "garbage"},
		{"a garbage header and a valid cookie", "garbage", alice},
	} {
		a := order(tc.auth, tc.cookie)
		wantProblem(t, tc.name, a, 401, "bad_buyer_token")
		if d := a.Str("detail"); !strings.Contains(d, "Authorization header") || !strings.Contains(d, "shop_session") {
			t.Errorf("%s: detail %q does not name both places", tc.name, d)
		}
		if !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, a.Header.Get("WWW-Authenticate"))
		}
	}
	// The cookie twice (two paths or domains), with two tokens.
	req, _ := http.NewRequest("POST", "http://"+g.APIAddr()+"/v1/sales/plain/orders", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cookie", "shop_session="+alice+"; shop_session="+bob)
	a := gatetest.Do(t, gatetest.Client(), req)
	wantProblem(t, "the cookie twice", a, 401, "bad_buyer_token")
	if d := a.Str("detail"); !strings.Contains(d, "twice") {
		t.Errorf("the cookie twice: detail %q", d)
	}
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 0 {
		t.Fatalf("refused orders stored %d orders", n)
	}
	if a := order(alice, alice); a.Status != 202 || a.Str("buyer_id") != "alice" {
		t.Fatalf("the same token in both: %d %s", a.Status, a.Raw)
	}
	if a := order("", bob); a.Status != 202 || a.Str("buyer_id") != "bob" {
		t.Fatalf("the cookie alone: %d %s", a.Status, a.Raw)
	}
}

// While the shop's JWKS has never been read, a join and an order with a
// token are answered 503 buyer_keys_unavailable with Retry-After (one
// without a token still 401: signing in is asked for either way), and
// nothing is stored; the gate is not ready, and sluice_buyer_token_keys_up
// is 0. Once the JWKS answers, both go through.
func TestBuyerTokenKeysNotReadYet(t *testing.T) {
	shop := newShop(t)
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "the shop is down", http.StatusBadGateway)
			return
		}
		shop.jwks.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(jwks.Close)
	cfg := gatetest.Config(t,
		ledger.Sale{Name: "drop", Stock: 5, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true, LineOpens: ledger.Duration(2 * time.Hour)},
		ledger.Sale{Name: "plain", Stock: 5})
	cfg.BuyerToken.JWKSURL = jwks.URL
	g := gatetest.Start(t, cfg)
	base, c := "http://"+g.APIAddr(), gatetest.Client()
	post := func(path, auth string) gatetest.Answer {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		return gatetest.Do(t, c, req)
	}
	ready := func() int {
		resp, err := http.Get("http://" + g.OpsAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tok := shop.token(t, "alice", false, time.Hour)
	for _, path := range []string{"/v1/sales/drop/line", "/v1/sales/plain/orders"} {
		a := post(path, tok)
		wantProblem(t, path+" before the keys", a, 503, "buyer_keys_unavailable")
		if a.Header.Get("Retry-After") == "" {
			t.Errorf("%s before the keys: no Retry-After", path)
		}
		wantProblem(t, path+" without a token", post(path, ""), 401, "buyer_token_required")
	}
	if n := gatetest.StreamMsgs(t, g.Ledger(), "plain"); n != 0 {
		t.Fatalf("refused orders stored %d orders", n)
	}
	if n := lineMsgs(t, g.RoomStore(), "drop"); n != 0 {
		t.Fatalf("refused joins stored %d tickets", n)
	}
	if code := ready(); code != 503 {
		t.Fatalf("/readyz before the keys: %d", code)
	}
	if v := gatetest.Counter(t, g.Registry(), "sluice_buyer_token_keys_up"); v != 0 {
		t.Fatalf("sluice_buyer_token_keys_up = %v before the keys", v)
	}
	if v := gatetest.Counter(t, g.Registry(), "sluice_admission_requests_total", "sale", "plain", "reason", "buyer_keys_unavailable"); v != 1 {
		t.Fatalf("sluice_admission_requests_total{reason=buyer_keys_unavailable} = %v", v)
	}

	up.Store(true)
	gatetest.Eventually(t, 20*time.Second, "the gate ready once the JWKS answers", func() bool { return ready() == 200 })
	if a := post("/v1/sales/drop/line", tok); a.Status != 201 {
		t.Fatalf("join once the keys are read: %d %s", a.Status, a.Raw)
	}
	if a := post("/v1/sales/plain/orders", tok); a.Status != 202 {
		t.Fatalf("order once the keys are read: %d %s", a.Status, a.Raw)
	}
	if v := gatetest.Counter(t, g.Registry(), "sluice_buyer_token_keys_up"); v != 1 {
		t.Fatalf("sluice_buyer_token_keys_up = %v once the keys are read", v)
	}
}
