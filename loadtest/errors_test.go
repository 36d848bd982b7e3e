package loadtest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/loadtest"
)

// Every failed request is in the report by its class: between the
// generator and a real gate, a proxy refuses some joins 429
// rate_limited, answers some polls 503 unavailable, and holds some polls
// past the generator's timeout. The report counts each class as the
// proxy made it, and the sale still ends right (a failed poll is asked
// again).
func TestRehearsalClassifiesEveryError(t *testing.T) {
	testenv.Exclusive(t)
	const buyers, stock = 400, 30
	start := time.Now().Add(7 * time.Second)
	g := gatetest.Start(t, gatetest.Config(t, ledger.Sale{Name: "room", Stock: stock, StartsAt: start, WaitingRoom: true,
		BackendRate: 60, PassTTL: ledger.Duration(10 * time.Second), LineLimit: 5000}))
	u, _ := url.Parse("http://" + g.APIAddr())
	proxy := httputil.NewSingleHostReverseProxy(u)
	var joins, polls, refused, busy, held atomic.Int64
	problem := func(w http.ResponseWriter, status int, reason string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d,"reason":%q}`, status, reason)
	}
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/line"):
			if joins.Add(1)%40 == 0 {
				refused.Add(1)
				problem(w, http.StatusTooManyRequests, "rate_limited")
				return
			}
		case strings.HasPrefix(r.URL.Path, "/v1/tickets/") && time.Now().After(start):
			switch n := polls.Add(1); {
			case n%7 == 0:
				busy.Add(1)
				problem(w, http.StatusServiceUnavailable, "unavailable")
				return
			case n%23 == 0:
				held.Add(1)
				time.Sleep(1500 * time.Millisecond) // past the generator's timeout of 1 s
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer lb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadtest.RehearseRoom(ctx, loadtest.RoomOptions{Target: lb.URL, Sale: "room", Buyers: buyers,
		Before: time.Until(start) - time.Second, Connections: 32, Seed: 3, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Log("\n" + text.String())
	got := map[string]int{}
	for _, e := range rep.Errors {
		got[e.String()] += e.Count
	}
	if got["join 429 rate_limited"] != int(refused.Load()) || got["poll 503 unavailable"] != int(busy.Load()) ||
		got["poll timeout"] < 1 || got["poll timeout"] > int(held.Load()) || refused.Load() == 0 || busy.Load() == 0 {
		t.Errorf("errors %v; the proxy refused %d joins, answered %d polls 503 and held %d", got, refused.Load(), busy.Load(), held.Load())
	}
	if rep.JoinErrs != int(refused.Load()) || rep.Outcomes["join_429"] != int(refused.Load()) {
		t.Errorf("%d joins failed, outcomes %v", rep.JoinErrs, rep.Outcomes)
	}
	if !rep.Passed || rep.Served != stock {
		t.Errorf("passed %v, served %d", rep.Passed, rep.Served)
	}
	for _, want := range []string{"poll 503 unavailable", "join 429 rate_limited", "poll timeout"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the text report lacks %q", want)
		}
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "<td>rate_limited</td>") {
		t.Errorf("the HTML report lacks the errors: %v", err)
	}
}
