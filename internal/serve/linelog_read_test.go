package serve_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/testkit/gatetest"
)

// Reading the line's log is a read: many readers at once, at every
// page, write no record of any stream (the line, the pace, the ledger,
// the decisions), on a sale where nothing else moves (before its start,
// its tickets placed in the log).
func TestReadingTheLineLogWritesNothing(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "drop", Stock: 3, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour)})
	cfg.NATSListen = "127.0.0.1:0"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	for i := range 5 {
		joinBuyer(t, c, api, "drop", fmt.Sprint("buyer-", i))
	}
	gatetest.Eventually(t, 20*time.Second, "the tickets placed in the log", func() bool {
		a := gatetest.Get(t, c, api+"/v1/sales/drop/line/log?limit=1")
		total, _ := a.Body["total"].(float64)
		return a.Status == 200 && total >= 6
	})
	nc, err := nats.Connect(s.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lasts := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, name := range []string{streams.LineName("drop"), streams.Pace, ledger.StreamName("drop"), streams.Decisions} {
			str, err := js.Stream(ctx, name)
			if err != nil {
				out[name] = 0 // not made (the decisions, with nothing decided)
				continue
			}
			info, err := str.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = info.State.LastSeq
		}
		return out
	}
	time.Sleep(2 * time.Second) // a cover record of the joins, if one is on its way
	before := lasts()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			a := gatetest.Get(t, c, fmt.Sprintf("%s/v1/sales/drop/line/log?from=%d&limit=%d", api, 1+i%7, 1+i%3))
			if a.Status != 200 {
				t.Errorf("a page: %d %s", a.Status, a.Raw)
			}
		})
	}
	wg.Wait()
	time.Sleep(3 * time.Second) // what the pacer would write of it, a second at most
	if after := lasts(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("reading the log wrote records: the streams' last records %v, before it %v", after, before)
	}
}
