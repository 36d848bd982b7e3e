package gatetest

import (
	"net/http"
	"strings"
	"testing"
)

func TestOpenAPIDocumentLoadsAndValidates(t *testing.T) {
	if _, _, err := OpenAPI(); err != nil {
		t.Fatal(err)
	}
}

// CheckAnswer must refuse an answer the document does not allow, or the
// API tests that go through Do check nothing.
func TestCheckAnswerRefusesWhatTheDocumentDoesNotAllow(t *testing.T) {
	problem := http.Header{"Content-Type": {"application/problem+json"}}
	for _, c := range []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		ok                 bool
	}{
		{"a sold-out problem", "POST", "/v1/sales/s1/orders", 410, problem,
			`{"type":"https://sluice.dev/problems/sold-out","title":"Sold out","status":410,"reason":"sold_out","sale":"s1"}`, true},
		{"a reason the document does not list", "POST", "/v1/sales/s1/orders", 410, problem,
			`{"type":"x","title":"x","status":410,"reason":"no_such_reason"}`, false},
		{"a problem without its reason", "POST", "/v1/sales/s1/orders", 410, problem,
			`{"type":"x","title":"x","status":410}`, false},
		{"a status the operation does not document", "GET", "/v1/sales", 418, problem,
			`{"type":"x","title":"x","status":418,"reason":"sold_out"}`, false},
		{"a queued order with no estimate yet", "GET", "/v1/orders/s1-1-abc", 200, http.Header{"Content-Type": {"application/json"}},
			`{"order_id":"s1-1-abc","sale":"s1","buyer_id":"alice","status":"queued","queue_position":1,"estimated_wait_seconds":null}`, true},
		{"a path of no operation", "GET", "/admin/sales", 200, http.Header{"Content-Type": {"application/json"}}, `[]`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, "http://127.0.0.1:8080"+c.path, nil)
			err := CheckAnswer(req, c.status, c.header, []byte(c.body))
			if c.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !c.ok && err == nil {
				t.Errorf("allowed: %s", c.body)
			}
			if err != nil && !c.ok && !strings.Contains(err.Error(), "openapi.yaml does not allow") {
				t.Errorf("error does not say what: %v", err)
			}
		})
	}
}
