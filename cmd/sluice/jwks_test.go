package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A shop's JWKS that cannot be read when the gate starts does not stop
// the gate (under a supervisor that was a crash loop): it comes up,
// /healthz is ok and /readyz is not, an order with a token is answered
// 503 buyer_keys_unavailable with Retry-After and nothing is ordered,
// sluice_buyer_token_keys_up is 0. Once the JWKS answers, the gate reads
// it in the background, turns ready and takes the token.
func TestServeStartsWhileTheShopsJWKSIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	jwksAddr := ln.Addr().String()
	ln.Close() // nothing listens there until the test serves the keys
	p := startServe(t, "--data-dir", t.TempDir(), "--no-demo", "--sale", "s1=10",
		"--buyer-token-jwks", "http://"+jwksAddr+"/jwks")
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	order := func() (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+p.api+"/v1/sales/s1/orders", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+signed)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body, resp.Header
	}
	metric := func(line string) bool {
		_, m := get("http://" + p.ops + "/metrics")
		return strings.Contains(m, "\n"+line+"\n")
	}

	if code, _ := get("http://" + p.ops + "/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := get("http://" + p.ops + "/readyz"); code != 503 || !strings.Contains(body, "JWKS") {
		t.Fatalf("/readyz without the keys: %d %q", code, body)
	}
	code, body, h := order()
	if code != 503 || body["reason"] != "buyer_keys_unavailable" || h.Get("Retry-After") == "" {
		t.Fatalf("an order without the keys: %d %v Retry-After %q", code, body, h.Get("Retry-After"))
	}
	if !metric("sluice_buyer_token_keys_up 0") {
		t.Fatal("sluice_buyer_token_keys_up is not 0")
	}

	// The shop comes back.
	b64 := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	ln, err = net.Listen("tcp", jwksAddr)
	if err != nil {
		t.Skipf("the JWKS's port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	deadline := time.Now().Add(45 * time.Second) // the retries back off to 30 s apart
	for {
		code, _ := get("http://" + p.ops + "/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz not ready 45 s after the JWKS came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body, _ := order(); code != 202 || body["buyer_id"] != "alice" {
		t.Fatalf("the order once the keys are read: %d %v", code, body)
	}
	if !metric("sluice_buyer_token_keys_up 1") {
		t.Fatal("sluice_buyer_token_keys_up is not 1")
	}
}
