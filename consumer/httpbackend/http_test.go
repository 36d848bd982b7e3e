package httpbackend_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sluice/consumer"
	"sluice/consumer/httpbackend"
)

// The shop's endpoint gets the order's payload unchanged, byte for byte
// (the canonical form the gate made: no \u003c for <), as "payload", and
// no payload key for an order without one; likewise its variant.
func TestPayloadSentAsIs(t *testing.T) {
	got := make(chan map[string]json.RawMessage, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("body %s: %v", raw, err)
		}
		got <- body
		w.WriteHeader(201)
	}))
	defer srv.Close()
	b, err := httpbackend.New(httpbackend.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := json.RawMessage("{\"sku\":\"TEE-1\",\"size\":\"M\",\"quantity\":2,\"note\":\"<b>&amp; \u2028\"}")
	for _, o := range []consumer.Order{
		{ID: "s-1-abc", Sale: "s", BuyerID: "alice", AdmittedAt: time.Now(), Payload: p, Variant: "us9"},
		{ID: "s-2-abc", Sale: "s", BuyerID: "bob", AdmittedAt: time.Now()},
	} {
		res, err := b.Commit(context.Background(), []consumer.Order{o})
		if err != nil || res[0].Outcome != consumer.Confirmed {
			t.Fatalf("commit %s: %+v %v", o.ID, res, err)
		}
		body := <-got
		if string(body["order_id"]) != `"`+o.ID+`"` {
			t.Errorf("order_id %s", body["order_id"])
		}
		// The variant goes with an order of a sale with variants, and
		// only then.
		switch v, ok := body["variant"]; {
		case o.Variant == "" && ok:
			t.Errorf("%s: variant %s sent for an order without one", o.ID, v)
		case o.Variant != "" && string(v) != `"`+o.Variant+`"`:
			t.Errorf("%s: variant %s, want %q", o.ID, v, o.Variant)
		}
		switch pl, ok := body["payload"]; {
		case o.Payload == nil && ok:
			t.Errorf("%s: payload %s sent for an order without one", o.ID, pl)
		case o.Payload != nil && string(pl) != string(p):
			t.Errorf("%s: payload %s, want %s", o.ID, pl, p)
		}
	}
}
