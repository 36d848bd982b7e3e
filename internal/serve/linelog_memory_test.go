package serve_test

import (
	"encoding/json"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

// A page of the line's log is served from the records the gate holds
// for the sale, not from a copy of them made for each read: a page of
// 10,000 records is a megabyte or more, and readers many and slow (a
// client that reads its answer a byte a second holds it until the write
// timeout) would otherwise make the gate hold a copy each. Fifty
// concurrent reads of a full page allocate a small part of one page
// each.
func TestLineLogPagesAreNotCopiedForEachRead(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a line of ten thousand tickets: not in -short")
	}
	const n, limit = 12_000, 10_000
	cfg := gatetest.Config(t, ledger.Sale{Name: "big", Stock: 10, StartsAt: time.Now().Add(time.Hour), WaitingRoom: true,
		LineOpens: ledger.Duration(2 * time.Hour), LineLimit: n})
	cfg.NATSListen = "127.0.0.1:0"
	s := gatetest.Start(t, cfg)
	c := gatetest.Client()
	api := "http://" + s.APIAddr()
	fillLine(t, s.NATSURL(), "big", n)
	// The log holds the tickets once a cover record of the pace places
	// them (before the start: within about a second).
	gatetest.Eventually(t, 60*time.Second, "the tickets in the log", func() bool {
		a := gatetest.Get(t, c, api+"/v1/sales/big/line/log?limit=1")
		total, _ := a.Body["total"].(float64)
		return a.Status == 200 && total > limit
	})
	read := func() int64 {
		resp, err := c.Get(api + "/v1/sales/big/line/log?limit=10000")
		if err != nil {
			t.Error(err)
			return 0
		}
		defer resp.Body.Close()
		m, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("a full page: %d %v", resp.StatusCode, err)
		}
		return m
	}
	page := read()
	// The page is the records as the log writes them.
	resp, err := c.Get(api + "/v1/sales/big/line/log?limit=10000")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		From    int               `json:"from"`
		Records []json.RawMessage `json:"records"`
		Total   int               `json:"total"`
		Next    string            `json:"next"`
	}
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || p.From != 1 || len(p.Records) != limit || p.Total <= limit || p.Next != "/v1/sales/big/line/log?from=10001&limit=10000" {
		t.Fatalf("a full page: from %d, %d records of %d, next %q: %v", p.From, len(p.Records), p.Total, p.Next, err)
	}
	const readers = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() { read() })
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	perRead := int64(after.TotalAlloc-before.TotalAlloc) / readers
	t.Logf("a page of %d records is %d bytes; %d concurrent reads allocated %d bytes each (in the gate and the client)",
		limit, page, readers, perRead)
	if perRead > page/4 {
		t.Errorf("each read of a page of %d bytes allocated %d bytes: the page is copied for each read", page, perRead)
	}
}
