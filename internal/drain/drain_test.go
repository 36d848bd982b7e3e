package drain_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/consumer"
	"sluice/internal/drain"
	"sluice/internal/ledger"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/pgtest"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(waitClientEnv); spec != "" {
		runWaitClient(spec) // this process is TestTenThousandWaiters's client
	}
	goleak.VerifyTestMain(m,
		// database/sql's connection opener lives as long as a *sql.DB
		// that a test helper opened and closed.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		gatetest.IgnoreServerClock, gatetest.IgnoreWorkerPoolCleaner,
	)
}

// fast makes the drain retry quickly in tests.
func fast(cfg serve.Config) serve.Config {
	cfg.Drain.BackoffBase = 20 * time.Millisecond
	cfg.Drain.BackoffMax = 200 * time.Millisecond
	cfg.Drain.Discover = 100 * time.Millisecond
	cfg.Drain.BackendTimeout = 2 * time.Second
	cfg.Drain.AckWait = 5 * time.Second
	return cfg
}

// buyAll sends one order per buyer, 64 at a time, and returns the ids
// answered 202.
func buyAll(t *testing.T, base, sale string, buyers int) []string {
	t.Helper()
	c := gatetest.Client()
	var (
		mu  sync.Mutex
		ids []string
		wg  sync.WaitGroup
		sem = make(chan struct{}, 64)
	)
	for i := range buyers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a := gatetest.Order(t, c, base, sale, fmt.Sprintf("buyer-%d", i), "")
			if a.Status == http.StatusAccepted {
				mu.Lock()
				ids = append(ids, a.Str("order_id"))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ids
}

// waitDrained waits until the sale's queue is empty.
func waitDrained(t *testing.T, l *ledger.Ledger, sale string, timeout time.Duration) {
	t.Helper()
	gatetest.Eventually(t, timeout, "the queue of "+sale+" to drain", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := l.State(ctx, sale)
		return err == nil && st.Draining && st.Pending == 0
	})
}

// checkBackend proves the invariants in the database: exactly `want`
// confirmed orders, the stock row at stock-want, and every admitted id
// present exactly once.
func checkBackend(t *testing.T, db *sql.DB, sale string, stock int, admitted []string, wantConfirmed int) {
	t.Helper()
	var confirmed, remaining int
	if err := db.QueryRow(`SELECT COUNT(*) FROM orders WHERE sale = $1 AND status = 'confirmed'`, sale).Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT remaining FROM sales WHERE sale = $1`, sale).Scan(&remaining); err != nil {
		t.Fatal(err)
	}
	if confirmed != wantConfirmed || remaining != stock-wantConfirmed {
		t.Fatalf("backend: %d confirmed, %d remaining; want %d and %d", confirmed, remaining, wantConfirmed, stock-wantConfirmed)
	}
	rows, err := db.Query(`SELECT order_id, COUNT(*) FROM orders WHERE sale = $1 GROUP BY order_id`, sale)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	inDB := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		inDB[id] = n
	}
	for _, id := range admitted {
		if inDB[id] != 1 {
			t.Fatalf("order %s answered 202 is in the backend %d times", id, inDB[id])
		}
	}
	if len(inDB) != len(admitted) {
		t.Fatalf("backend holds %d orders, %d were admitted", len(inDB), len(admitted))
	}
	var dupBuyers int
	if err := db.QueryRow(`SELECT COUNT(*) FROM (SELECT buyer_id FROM orders WHERE sale = $1 AND status = 'confirmed'
		GROUP BY buyer_id HAVING COUNT(*) > 1) d`, sale).Scan(&dupBuyers); err != nil {
		t.Fatal(err)
	}
	if dupBuyers != 0 {
		t.Fatalf("%d buyers hold two confirmed orders", dupBuyers)
	}
}

func checkStatuses(t *testing.T, base string, ids []string, want string) {
	t.Helper()
	c := gatetest.Client()
	for _, id := range ids {
		a := gatetest.Get(t, c, base+"/v1/orders/"+id)
		if a.Status != 200 || a.Str("status") != want {
			t.Fatalf("order %s: %d %s, want status %s", id, a.Status, a.Raw, want)
		}
	}
}

func backendDB(t *testing.T, srv *serve.Server) *sql.DB {
	t.Helper()
	return srv.Backend().(interface{ DB() *sql.DB }).DB()
}

// stockOf100 is the drain's main invariant on a backend: stock 100, 2,000
// buyers through the HTTP API; after the drain exactly 100 confirmed rows,
// the stock row at 0, every 202 order present once and confirmed.
func stockOf100(t *testing.T, backend string) {
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 100}))
	cfg.Backend = backend
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	ids := buyAll(t, base, "s1", 2000)
	if len(ids) != 100 {
		t.Fatalf("%d answers 202, want 100", len(ids))
	}
	waitDrained(t, srv.Ledger(), "s1", 30*time.Second)
	checkBackend(t, backendDB(t, srv), "s1", 100, ids, 100)
	checkStatuses(t, base, ids, "confirmed")
	gatetest.Eventually(t, 5*time.Second, "the sale to report 100 confirmed", func() bool {
		a := gatetest.Get(t, gatetest.Client(), base+"/v1/sales/s1")
		return a.Body["confirmed"] == float64(100)
	})
}

func TestStockOf100With2000BuyersSQLite(t *testing.T) { stockOf100(t, "") }

func TestStockOf100With2000BuyersPostgres(t *testing.T) {
	stockOf100(t, pgtest.Start(t).NewDatabase("stock100"))
}

// The backend decides stock: with overbooking the ledger admits more than
// the stock and the backend confirms exactly the stock, rejecting the rest.
func TestBackendHasTheLastWordOnStock(t *testing.T) {
	srv := gatetest.Start(t, fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 50, Overbook: 20})))
	base := "http://" + srv.APIAddr()
	ids := buyAll(t, base, "s1", 500)
	if len(ids) != 70 {
		t.Fatalf("%d answers 202, want stock+overbook = 70", len(ids))
	}
	waitDrained(t, srv.Ledger(), "s1", 30*time.Second)
	checkBackend(t, backendDB(t, srv), "s1", 50, ids, 50)
	c := gatetest.Client()
	byStatus := map[string]int{}
	for _, id := range ids {
		a := gatetest.Get(t, c, base+"/v1/orders/"+id)
		byStatus[a.Str("status")+"/"+a.Str("reason")]++
	}
	if byStatus["confirmed/"] != 50 || byStatus["rejected/sold_out"] != 20 {
		t.Fatalf("statuses %v", byStatus)
	}
}

// A worker dies after the backend committed and before anything was
// recorded or acked: the batch is redelivered, the backend finds the
// orders already there, and each is confirmed once.
func TestCrashAfterCommitBeforeAck(t *testing.T) {
	var crashes atomic.Int64
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 300}))
	cfg.Drain.AckWait = time.Second // the redelivery of the abandoned batch
	cfg.Drain = drain.WithAfterCommit(cfg.Drain, func(orders []consumer.Order) bool {
		return crashes.Add(1) > 3 // the first three batches "crash"
	})
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	ids := buyAll(t, base, "s1", 300)
	waitDrained(t, srv.Ledger(), "s1", 30*time.Second)
	if crashes.Load() <= 3 {
		t.Fatalf("only %d batches went through the hook", crashes.Load())
	}
	checkBackend(t, backendDB(t, srv), "s1", 300, ids, 300)
	checkStatuses(t, base, ids, "confirmed")
	a := gatetest.Get(t, gatetest.Client(), base+"/v1/sales/s1")
	if a.Body["confirmed"] != float64(300) {
		t.Fatalf("confirmed count %v after redeliveries, want 300", a.Body["confirmed"])
	}
	if gatetest.Counter(t, srv.Registry(), "sluice_drain_redeliveries_total") == 0 {
		t.Fatal("no redeliveries counted")
	}
}

func TestPostgresDownForAWhile(t *testing.T) {
	pg := pgtest.Start(t)
	cfg := fast(gatetest.Config(t, ledger.Sale{Name: "s1", Stock: 500}))
	cfg.Backend = pg.NewDatabase("down")
	srv := gatetest.Start(t, cfg)
	base := "http://" + srv.APIAddr()
	first := buyAll(t, base, "s1", 100)
	waitDrained(t, srv.Ledger(), "s1", 30*time.Second)

	pg.Stop()
	// Orders keep being admitted while the backend is down: the ledger
	// holds them.
	var more []string
	for i := range 200 {
		a := gatetest.Order(t, gatetest.Client(), base, "s1", fmt.Sprintf("late-%d", i), "")
		if a.Status != 202 {
			t.Fatalf("admission with the backend down: %d %s", a.Status, a.Raw)
		}
		more = append(more, a.Str("order_id"))
	}
	time.Sleep(time.Second) // the drain fails and backs off meanwhile
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := srv.Ledger().State(ctx, "s1")
	cancel()
	if err != nil || st.Pending == 0 {
		t.Fatalf("with the backend down the queue should hold orders: %+v %v", st, err)
	}
	pg.Restart()
	waitDrained(t, srv.Ledger(), "s1", 60*time.Second)
	all := append(first, more...)
	checkBackend(t, backendDB(t, srv), "s1", 500, all, 300)
	checkStatuses(t, base, all, "confirmed")
}

// With SLUICE_REQUIRE_POSTGRES=1 (as .ci/run sets) a missing PostgreSQL
// fails the tests that need it instead of skipping them; this test makes
// that visible on its own.
func TestPostgresPresentWhenRequired(t *testing.T) {
	if os.Getenv("SLUICE_REQUIRE_POSTGRES") != "1" {
		t.Skip("SLUICE_REQUIRE_POSTGRES is not 1")
	}
	pgtest.Start(t)
}
