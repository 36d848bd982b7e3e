package admission_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// rawExchange writes req as it is to the gate's public listener and reads
// one answer: for requests a well-behaved client cannot send.
func rawExchange(t *testing.T, addr, req string) (*http.Response, map[string]any) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("answer to %q is not JSON: %d %s", req, resp.StatusCode, raw)
	}
	return resp, doc
}

// TestEveryPublicAnswerIsAProblem: requests the router or the HTTP parser
// refuses are answered as the API's own refusals are, problem+json with a
// reason, and change nothing.
func TestEveryPublicAnswerIsAProblem(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10}))
	addr := srv.APIAddr()
	order := func(extra, body string) string {
		return "POST /v1/sales/s1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	cases := []struct {
		name, req string
		status    int
		reason    string
		allow     string
	}{
		{"GET on the orders endpoint", "GET /v1/sales/s1/orders HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed", "POST"},
		{"DELETE on a sale", "DELETE /v1/sales/s1 HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed", "GET, HEAD"},
		{"POST on an order", "POST /v1/orders/s1-1-x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "method_not_allowed", "GET, HEAD"},
		{"no such endpoint", "GET /v2/whatever HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", ""},
		{"dot segments are not redirected", "GET /v1/sales/../x HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", ""},
		{"dot segments into an order", "POST /v1/sales/x/../s1/../../x/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found", ""},
		{"control byte in Idempotency-Key", order("Idempotency-Key: a\x01b\r\n", `{"buyer_id":"a"}`), 400, "bad_request", ""},
		{"header too large", "GET /v1/sales/s1 HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 20<<10) + "\r\n\r\n", 431, "header_too_large", ""},
		{"not HTTP", "HELLO\r\n\r\n", 400, "bad_request", ""},
		{"two Idempotency-Keys", order("Idempotency-Key: k1\r\nIdempotency-Key: k2\r\n", `{"buyer_id":"a"}`), 400, "bad_idempotency_key", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, doc := rawExchange(t, addr, tc.req)
			if resp.StatusCode != tc.status || doc["reason"] != tc.reason {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, doc, tc.status, tc.reason)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
	if n := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); n != 0 {
		t.Fatalf("refused requests left %d orders", n)
	}
}

// TestLargeBodyRefusedBeforeItIsRead: a Content-Length over the bound is
// answered 413 at once, while the client has sent none of the body.
func TestLargeBodyRefusedBeforeItIsRead(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 10}))
	resp, doc := rawExchange(t, srv.APIAddr(),
		"POST /v1/sales/s1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
	if resp.StatusCode != 413 || doc["reason"] != "body_too_large" || doc["sale"] != nil {
		t.Fatalf("got %d %v", resp.StatusCode, doc)
	}
	c := gatetest.Client()
	m := gatetest.Get(t, c, "http://"+srv.OpsAddr()+"/metrics").Raw
	if want := `sluice_admission_requests_total{outcome="rejected",reason="body_too_large",sale="s1"} 1`; !strings.Contains(m, want) {
		t.Fatalf("/metrics lacks %s", want)
	}
}
