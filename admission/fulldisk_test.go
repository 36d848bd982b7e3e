package admission_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
)

// TestFullDiskAnswers503AtOnce: with the store's disk full, the order
// that finds it waits out the publish timeout, and the orders after it are
// answered 503 at once until the store takes writes again, however many
// there are. nats-server stops writing a stream whose file hit a write
// error until it restarts, so here the gate is restarted once space is
// back; TestStoreLimitRecoversWithoutRestart shows the recovery without.
func TestFullDiskAnswers503AtOnce(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=20m"); err != nil {
		testenv.Missing(t, fmt.Sprintf("mounting a 20 MB tmpfs needs root: %v", err), "SLUICE_REQUIRE_TMPFS")
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 1_000_000})
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.NoDrain = true
	cfg.Gate.PublishTimeout = 2 * time.Second
	srv, err := serve.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := srv
	t.Cleanup(func() { // when the test ends early; a second Shutdown is a no-op
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = first.Shutdown(ctx)
	})
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	if a := gatetest.Order(t, c, base, "s1", "before", ""); a.Status != 202 {
		t.Fatalf("before the disk filled: %d %s", a.Status, a.Raw)
	}
	fill := filepath.Join(dir, "fill")
	fillDisk(t, fill)
	took := refusals(t, c, base, "s1")
	if p99 := took[98]; p99 > 100*time.Millisecond {
		t.Fatalf("p99 of the 503s after the first: %v, want under 100 ms (max %v)", p99, took[99])
	}
	// While the store refuses, at most one order at a time tries it after
	// a probe: 50 concurrent orders over 3 s, all answered, none waits
	// out the publish timeout but a trial.
	var slow, answered atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				start := time.Now()
				if a := gatetest.Order(t, c, base, "s1", fmt.Sprint("many-", i, "-", j), ""); a.Status != 503 {
					t.Errorf("with the disk full: %d", a.Status)
				}
				answered.Add(1)
				if time.Since(start) > time.Second {
					slow.Add(1)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if slow.Load() > 3 {
		t.Fatalf("%d of %d orders waited over a second: more than one trial at a time", slow.Load(), answered.Load())
	}

	// Space returns: the gate takes orders again on its own, without a
	// restart (it restarts JetStream in process to clear the stream's
	// write error), and the orders admitted before are all there.
	before := gatetest.StreamMsgs(t, srv.Ledger(), "s1")
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	gatetest.Eventually(t, 5*time.Second, "an order admitted within 5 s of space returning", func() bool {
		return gatetest.Order(t, c, base, "s1", fmt.Sprint("after-", time.Now().UnixNano()), "").Status == 202
	})
	recovered := time.Since(freed)
	if after := gatetest.StreamMsgs(t, srv.Ledger(), "s1"); after < before+1 {
		t.Fatalf("%d orders in the ledger after recovery, %d before: orders were lost", after, before)
	}
	if a := gatetest.Order(t, c, base, "s1", "before", ""); a.Status != http.StatusConflict {
		t.Fatalf("the buyer admitted before the disk filled: %d %s", a.Status, a.Raw)
	}
	t.Logf("p99 of 100 refusals %v; %d concurrent orders, %d waited over 1 s; the first 202 %v after space returned",
		took[98], answered.Load(), slow.Load(), recovered.Round(10*time.Millisecond))
}

// TestStoreLimitRecoversWithoutRestart: a store that refuses because it
// reached --max-store (what the README advises, below the disk's free
// space) is answered 503 at once, and orders are admitted again within
// seconds of space returning, without a restart.
func TestStoreLimitRecoversWithoutRestart(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "old", Stock: 1_000_000}, ledger.Sale{Name: "s1", Stock: 1_000_000})
	cfg.MaxStore = 256 << 10
	cfg.NoDrain = true
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	c := gatetest.Client()
	took := refusals(t, c, base, "old")
	if p99 := took[98]; p99 > 100*time.Millisecond {
		t.Fatalf("p99 of the 503s after the first: %v, want under 100 ms", p99)
	}
	if a := gatetest.Order(t, c, base, "s1", "x", ""); a.Status != 503 {
		t.Fatalf("another sale with the store full: %d", a.Status)
	}
	// The operator removes an old sale's stream (nats stream rm).
	if err := srv.Ledger().JetStream().DeleteStream(context.Background(), ledger.StreamName("old")); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	gatetest.Eventually(t, 5*time.Second, "an order admitted after space returned", func() bool {
		return gatetest.Order(t, c, base, "s1", fmt.Sprint("after-", time.Now().UnixNano()), "").Status == 202
	})
	t.Logf("p99 of 100 refusals %v; the first 202 %v after space returned", took[98], time.Since(freed).Round(10*time.Millisecond))
}

// refusals orders until the store refuses one, then 100 more one after
// the other, each of which must be a 503 with Retry-After; it returns
// their times, sorted.
func refusals(t *testing.T, c *http.Client, base, sale string) []time.Duration {
	t.Helper()
	i := 0
	for ; i < 5000; i++ {
		if a := gatetest.Order(t, c, base, sale, fmt.Sprint("fill-", i), ""); a.Status == 503 {
			break
		}
	}
	if i == 5000 {
		t.Fatal("5000 orders admitted and the store never refused one")
	}
	var took []time.Duration
	for j := range 100 {
		start := time.Now()
		a := gatetest.Order(t, c, base, sale, fmt.Sprint("refused-", j), "")
		took = append(took, time.Since(start))
		if a.Status != 503 || a.Str("reason") != "unavailable" || a.Header.Get("Retry-After") == "" {
			t.Fatalf("order %d with the store refusing: %d %s", j, a.Status, a.Raw)
		}
	}
	slices.Sort(took)
	return took
}

// fillDisk writes path until its file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
