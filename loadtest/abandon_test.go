package loadtest_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/internal/waitingroom/line"
	"sluice/loadtest"
)

// rehearseAbandon runs a waiting-room rehearsal against gates gates
// sharing one JetStream (round robin behind one address, as a load
// balancer does), a share abandon of the joiners leaving once they hold
// a ticket.
func rehearseAbandon(t *testing.T, gates int, abandon float64, sale ledger.Sale, buyers int) loadtest.RoomReport {
	t.Helper()
	// The start leaves the gates time to come up and the buyers 3 s to
	// join before it.
	sale.StartsAt = time.Now().Add(time.Duration(3+2*gates) * time.Second)
	cfg := gatetest.Config(t, sale)
	if gates > 1 {
		cfg.NATSListen = "127.0.0.1:0"
	}
	first := gatetest.Start(t, cfg)
	all := []*serve.Server{first}
	for range gates - 1 {
		c := gatetest.Config(t)
		c.NATSURL = first.NATSURL()
		c.NoDrain = true
		all = append(all, gatetest.Start(t, c))
	}
	for _, g := range all {
		gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return g.Rooms().Room(sale.Name) != nil })
	}
	target := "http://" + first.APIAddr()
	if gates > 1 {
		var next atomic.Uint64
		proxies := make([]*httputil.ReverseProxy, len(all))
		for i, g := range all {
			u, _ := url.Parse("http://" + g.APIAddr())
			proxies[i] = httputil.NewSingleHostReverseProxy(u)
		}
		lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			proxies[next.Add(1)%uint64(len(proxies))].ServeHTTP(w, r)
		}))
		t.Cleanup(lb.Close)
		target = lb.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := loadtest.RehearseRoom(ctx, loadtest.RoomOptions{Target: target, Sale: sale.Name, Buyers: buyers,
		Before: time.Until(sale.StartsAt) - 500*time.Millisecond, Connections: 64, Seed: 11, Abandon: abandon})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("%d gate(s), abandon %.0f%%:\n%s", gates, 100*abandon, text.String())
	if !rep.Passed {
		t.Fatal("the outcome check failed")
	}
	if rep.Served != int(sale.Stock) || rep.Confirmed != sale.Stock {
		t.Fatalf("served %d, confirmed %d; want the stock, %d", rep.Served, rep.Confirmed, sale.Stock)
	}
	return rep
}

// Half the line gone after joining: the stock still sells, to those who
// stayed and in draw order among them (the rehearsal's check "draw order
// among those who stayed"), the absent's turns lapse, and the sale sells
// out about as soon as with everyone there: the absent cost a window or
// two, not one window per halving of the stock (log2(60) = 6 windows)
// nor a pass_ttl each. One gate, and three behind a round robin.
func TestRehearseHalfTheLineGone(t *testing.T) {
	if testing.Short() {
		t.Skip("four rehearsals of 1,000 buyers: not in -short")
	}
	testenv.Exclusive(t)
	const stock, buyers = 60, 1000
	window := 8 * time.Second
	for _, gates := range []int{1, 3} {
		sale := func() ledger.Sale {
			return ledger.Sale{Name: "room", Stock: stock, WaitingRoom: true, ClaimWindow: ledger.Duration(window), LineLimit: 5000}
		}
		all := rehearseAbandon(t, gates, 0, sale(), buyers)
		half := rehearseAbandon(t, gates, 0.5, sale(), buyers)
		// With everyone there a turn lapses only when its holder's polls
		// came too rarely (a machine this loaded): they go to the back.
		t.Logf("%d gate(s): %d turns lapsed with everyone there, %d with half gone", gates, all.Lapsed, half.Lapsed)
		if half.Lapsed == 0 || half.Absent < buyers/3 {
			t.Errorf("%d gate(s): half gone, %d absent and %d turns lapsed", gates, half.Absent, half.Lapsed)
		}
		// The report says why: the turns of those who left are away.
		if half.LapseCauses.Away == 0 || all.LapseCauses.Away != 0 {
			t.Errorf("%d gate(s): lapses away %d of %d with half gone, %d with everyone there", gates,
				half.LapseCauses.Away, half.Lapsed, all.LapseCauses.Away)
		}
		// The bound is the algorithm's, in rounds of a claim window and
		// its grace (3 s): learning the share who came takes one, the
		// absent among those offered then lapse in the next, and a third
		// covers a shortfall of claimers; halving the stock per round
		// would take six.
		// A round is also the holder's look: a claim window starts at the
		// first look after the offer (line.Opening), at most a period
		// later, MinPeriod in a line this short.
		round := window + 3*time.Second + line.MinPeriod
		if slack := time.Duration((half.SoldOutAfter - all.SoldOutAfter) * float64(time.Second)); slack > 3*round {
			t.Errorf("%d gate(s): sold out %.1fs after the start with half gone, %.1fs with everyone: %v more, over 3 rounds of %v",
				gates, half.SoldOutAfter, all.SoldOutAfter, slack, round)
		}
	}
}
