package loadtest_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/loadtest"
)

// Against a real gate with stock 100 the rehearsal's outcome check passes.
func TestOutcomeCheckPassesOnARealGate(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	rep, err := loadtest.Rehearse(context.Background(), loadtest.Options{
		Config: loadtest.Config{
			Target:  "http://" + srv.APIAddr(),
			Sale:    "s1",
			Profile: loadtest.Spike(50, 500*time.Millisecond, 1500, time.Second, 500*time.Millisecond),
			Mix:     loadtest.Mix{Buyers: 800, Impatient: 0.1, Greedy: 0.05, Bad: 0.05, Keyed: 0.5, Seed: 7},
		},
		Verify:        true,
		VerifyTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	v := rep.Verification
	if v == nil || !v.Passed || v.Confirmed != 100 || v.Stock != 100 || v.ByStatus["confirmed"] != 100 {
		t.Fatalf("outcome check:\n%s", buf.String())
	}
	if rep.Reasons["sold_out"] == 0 || rep.Kinds["bad"] == 0 || rep.Kinds["impatient"] == 0 || rep.Kinds["greedy"] == 0 {
		t.Fatalf("the mix did not exercise the gate:\n%s", buf.String())
	}
	if len(rep.SaleSamples) == 0 || len(rep.Timeline) < 2 {
		t.Fatalf("no timeline: %d samples, %d seconds", len(rep.SaleSamples), len(rep.Timeline))
	}
	t.Logf("\n%s", buf.String())
}

// With PreferWait the gate answers admitted orders with their decision:
// 201 confirmed, counted as admitted, and the outcome check still passes.
func TestOutcomeCheckWithPreferWait(t *testing.T) {
	srv := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	rep, err := loadtest.Rehearse(context.Background(), loadtest.Options{
		Config: loadtest.Config{
			Target:     "http://" + srv.APIAddr(),
			Sale:       "s1",
			Profile:    loadtest.Constant(200, time.Second),
			Mix:        loadtest.Mix{Buyers: 400, Seed: 3},
			PreferWait: 10 * time.Second,
		},
		Verify:        true,
		VerifyTimeout: 30 * time.Second,
	})
	t.Logf("rehearsal done at %v", time.Now().Format("15:04:05.000"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	v := rep.Verification
	if v == nil || !v.Passed || v.Confirmed != 100 || v.Admitted != 100 {
		t.Fatalf("outcome check:\n%s", buf.String())
	}
	if rep.Reasons["confirmed"] != 100 || rep.Reasons["admitted"] != 0 {
		t.Fatalf("answers by reason %v: want 100 confirmed (201), none merely queued", rep.Reasons)
	}
	t.Logf("\n%s", buf.String())
}

// A broken target answers 202 to everyone and never confirms: the check
// fails and names the lost orders.
func TestOutcomeCheckFailsOnABrokenTarget(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST":
			w.WriteHeader(202)
			fmt.Fprintf(w, `{"order_id":"s1-%d-fake","status":"queued"}`, rand.Uint64())
		case strings.HasPrefix(r.URL.Path, "/v1/orders/"):
			fmt.Fprintf(w, `{"order_id":%q,"status":"queued"}`, strings.TrimPrefix(r.URL.Path, "/v1/orders/"))
		default:
			fmt.Fprint(w, `{"sale":"s1","state":"open","stock":100,"confirmed":0,"queue_depth":0}`)
		}
	}))
	defer broken.Close()
	rep, err := loadtest.Rehearse(context.Background(), loadtest.Options{
		Config: loadtest.Config{Target: broken.URL, Sale: "s1", Profile: loadtest.Constant(200, time.Second)},
		Verify: true, VerifyTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Verification
	if v == nil || v.Passed || len(v.Lost) != 200 {
		t.Fatalf("the check passed a target that loses every order: %+v", v)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	if !strings.Contains(buf.String(), "FAILED") || !strings.Contains(buf.String(), "-fake (queued)") {
		t.Fatalf("the summary does not name the lost orders:\n%s", buf.String())
	}
}

// The check of a sale with variants fails on a target that puts every
// order in one variant, whatever its buyer asked: that variant is
// oversold, and the orders of the other were not what was asked.
func TestOutcomeCheckCountsEachVariant(t *testing.T) {
	var n atomic.Int64
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST":
			w.WriteHeader(202)
			fmt.Fprintf(w, `{"order_id":"s1-%d-x","status":"queued"}`, n.Add(1))
		case strings.HasPrefix(r.URL.Path, "/v1/orders/"):
			fmt.Fprintf(w, `{"order_id":%q,"status":"confirmed","variant":"us9"}`, strings.TrimPrefix(r.URL.Path, "/v1/orders/"))
		default:
			fmt.Fprint(w, `{"sale":"s1","state":"open","stock":200,"confirmed":0,"queue_depth":0,
				"variants":{"us9":{"stock":100,"admitted":0,"remaining":100},"us10":{"stock":100,"admitted":0,"remaining":100}}}`)
		}
	}))
	defer broken.Close()
	vs, err := loadtest.ParseVariants("us9=1,us10=1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := loadtest.Rehearse(context.Background(), loadtest.Options{
		Config: loadtest.Config{Target: broken.URL, Sale: "s1", Profile: loadtest.Constant(300, time.Second),
			Mix: loadtest.Mix{Buyers: 100000, Variants: vs, Seed: 5}},
		Verify: true, VerifyTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Verification
	if v == nil || v.Passed || !v.Oversold || !v.VariantMismatch || v.Variants["us9"].Confirmed != 300 || v.Variants["us10"].Confirmed != 0 {
		t.Fatalf("the check passed a target that puts every order in us9: %+v", v)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	if !strings.Contains(buf.String(), "variant us9 oversold: 300 confirmed, stock 100") || !strings.Contains(buf.String(), "asked us10, took \"us9\"") {
		t.Fatalf("the summary does not say what went wrong:\n%s", buf.String())
	}
}
