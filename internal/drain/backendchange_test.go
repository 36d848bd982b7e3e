package drain_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/consumer/sqlite"
	"sluice/internal/drain"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/internal/testkit/gatetest"
)

// A sale drained into one SQLite file and then by a drain into another:
// the second drain warns once that the earlier orders stay in the first
// file and sends it only the later ones. The first drain of a sale, and a
// drain into the same file again (even named by another path), say
// nothing.
func TestDrainWarnsWhenTheBackendChanges(t *testing.T) {
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 20})
	cfg.NoDrain = true
	srv := gatetest.Start(t, cfg)
	ctx := context.Background()
	status, err := orderstatus.OpenRecorder(ctx, srv.Ledger().JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	const warning = "were drained into"

	// drain runs a drainer into the SQLite file at path until the sale's
	// queue is empty, and returns its log, its sluice_drain_backend_changed
	// and the orders the file holds.
	drain := func(path string) (string, float64, int) {
		t.Helper()
		be, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		log, lines := gatetest.CaptureLog(t)
		reg := prometheus.NewRegistry()
		d := drain.New(srv.Ledger(), status, be,
			drain.Config{Discover: 50 * time.Millisecond, Logger: log}, drain.NewMetrics(reg))
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitDrained(t, srv.Ledger(), "s1", 30*time.Second)
		if err := d.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := be.DB().QueryRow(`SELECT COUNT(*) FROM orders WHERE sale = 's1'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return lines.String(), gatetest.Counter(t, reg, "sluice_drain_backend_changed", "sale", "s1"), n
	}
	place := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			o := ledger.Order{Sale: "s1", BuyerID: "buyer" + string(rune('a'+i)), Token: ledger.NewToken(), AdmittedAt: time.Now()}
			if _, _, err := srv.Ledger().Place(ctx, o, "b|"+o.BuyerID); err != nil {
				t.Fatal(err)
			}
		}
	}

	place(1, 5)
	if log, changes, n := drain(fileA); strings.Contains(log, warning) || changes != 0 || n != 5 {
		t.Fatalf("first drain into A: %d orders, %v changes, log:\n%s", n, changes, log)
	}

	place(6, 8)
	log, changes, n := drain(fileB)
	want := "sale s1: orders up to #5 were drained into sqlite:" + fileA +
		" and stay there; this drain sends only the later ones to sqlite:" + fileB
	if strings.Count(log, warning) != 1 || !strings.Contains(log, want) || !strings.Contains(log, "level=WARN") || changes != 1 {
		t.Fatalf("drain into B after A: want one warning %q, %v changes; log:\n%s", want, changes, log)
	}
	if n != 3 {
		t.Fatalf("B holds %d orders of s1, want the 3 placed after A's drain", n)
	}

	// B again, through a path with a detour: the same file, no warning.
	place(9, 9)
	same := filepath.Join(dir, "..", filepath.Base(dir), "b.db")
	if log, changes, n := drain(same); strings.Contains(log, warning) || changes != 0 || n != 4 {
		t.Fatalf("drain into B again: %d orders, %v changes, log:\n%s", n, changes, log)
	}
}
