package admission_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"sluice/admission"
	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

const shop = "https://shop.example"

func corsGate(t *testing.T, c admission.CORS) string {
	t.Helper()
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1})
	cfg.Gate.CORS = c
	return "http://" + gatetest.Start(t, cfg).APIAddr()
}

func request(t *testing.T, method, url, origin, body string, hdr ...string) gatetest.Answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return gatetest.Do(t, gatetest.Client(), req)
}

func TestCORSPreflightFromAllowedOrigin(t *testing.T) {
	base := corsGate(t, admission.CORS{Origins: []string{shop, "http://localhost:3000"}, Credentials: true})
	a := request(t, "OPTIONS", base+"/v1/sales/s1/orders", shop, "",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,idempotency-key,sluice-pass")
	if a.Status != 204 {
		t.Fatalf("preflight: %d %s", a.Status, a.Raw)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      shop,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET, HEAD, POST",
		"Access-Control-Max-Age":           "600",
		"Vary":                             "Origin",
	}
	for k, v := range want {
		if got := a.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	allowed := strings.ToLower(a.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"content-type", "idempotency-key", "sluice-pass", "prefer", "authorization"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
		}
	}
}

func TestCORSOtherOriginGetsNoHeader(t *testing.T) {
	base := corsGate(t, admission.CORS{Origins: []string{shop}})
	a := request(t, "OPTIONS", base+"/v1/sales/s1/orders", "https://evil.example", "", "Access-Control-Request-Method", "POST")
	if a.Status != 405 || a.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d, ACAO %q; want 405 and none", a.Status, a.Header.Get("Access-Control-Allow-Origin"))
	}
	a = request(t, "POST", base+"/v1/sales/s1/orders", "https://evil.example", `{"buyer_id":"b1"}`)
	if a.Status != 202 {
		t.Fatalf("order: %d", a.Status)
	}
	if h := a.Header.Get("Access-Control-Allow-Origin"); h != "" {
		t.Errorf("order from another origin carries Access-Control-Allow-Origin %q", h)
	}
	if v := a.Header.Get("Vary"); v != "Origin" {
		t.Errorf("Vary = %q, want Origin: the answer depends on it", v)
	}
	// A prefix or a case trick of an allowed origin is another origin.
	for _, o := range []string{shop + ".evil.example", "https://shop.example:444", "http://shop.example", "null"} {
		a := request(t, "GET", base+"/v1/sales/s1", o, "")
		if h := a.Header.Get("Access-Control-Allow-Origin"); h != "" {
			t.Errorf("origin %s got Access-Control-Allow-Origin %q", o, h)
		}
	}
}

func TestCORSOnEveryAnswer(t *testing.T) {
	base := corsGate(t, admission.CORS{Origins: []string{shop}})
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"bad json", "POST", "/v1/sales/s1/orders", `{`, 400},
		{"admitted", "POST", "/v1/sales/s1/orders", `{"buyer_id":"b1"}`, 202},
		{"sold out", "POST", "/v1/sales/s1/orders", `{"buyer_id":"b2"}`, 410},
		{"unknown sale", "POST", "/v1/sales/nope/orders", `{"buyer_id":"b2"}`, 404},
		{"sale", "GET", "/v1/sales/s1", "", 200},
		{"not found", "GET", "/nowhere", "", 404},
		{"method", "DELETE", "/v1/sales/s1", "", 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := request(t, c.method, base+c.path, shop, c.body)
			if a.Status != c.status {
				t.Fatalf("status %d, want %d: %s", a.Status, c.status, a.Raw)
			}
			if h := a.Header.Get("Access-Control-Allow-Origin"); h != shop {
				t.Errorf("Access-Control-Allow-Origin = %q", h)
			}
			if a.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("credentials allowed though not configured")
			}
			exp := a.Header.Get("Access-Control-Expose-Headers")
			for _, h := range []string{"Location", "Retry-After", "Idempotent-Replayed", "Preference-Applied"} {
				if !strings.Contains(exp, h) {
					t.Errorf("Access-Control-Expose-Headers %q lacks %s", exp, h)
				}
			}
		})
	}
}

func TestCORSOffByDefault(t *testing.T) {
	base := corsGate(t, admission.CORS{})
	a := request(t, "OPTIONS", base+"/v1/sales/s1/orders", shop, "", "Access-Control-Request-Method", "POST")
	if a.Status != 405 {
		t.Errorf("preflight with CORS off: %d, want 405", a.Status)
	}
	a = request(t, "POST", base+"/v1/sales/s1/orders", shop, `{"buyer_id":"b1"}`)
	for k := range a.Header {
		if strings.HasPrefix(k, "Access-Control-") || k == "Vary" {
			t.Errorf("CORS off, yet %s: %s", k, a.Header.Get(k))
		}
	}
}

func TestCORSConfigValidated(t *testing.T) {
	for _, c := range []admission.CORS{
		{Origins: []string{"*"}},
		{Origins: []string{"shop.example"}},
		{Origins: []string{"https://shop.example/path"}},
		{Origins: []string{"ftp://shop.example"}},
		{Credentials: true},
		{Origins: []string{shop}, MaxAge: -1},
	} {
		err := admission.Config{CORS: c}.Validate()
		if !errors.Is(err, admission.ErrBadConfig) {
			t.Errorf("%+v: err %v, want ErrBadConfig", c, err)
		}
	}
	if err := (admission.Config{CORS: admission.CORS{Origins: []string{"HTTPS://Shop.Example:8443/"}}}).Validate(); err != nil {
		t.Errorf("a valid origin refused: %v", err)
	}
}
