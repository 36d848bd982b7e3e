package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/consumer/sqlite"
	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
)

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countRows(db *sql.DB, q string, args ...any) int {
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// startProc runs a sluice subcommand and waits for its readiness line.
func startProc(t *testing.T, ready string, args ...string) *proc {
	t.Helper()
	return startWith(t, ready, args...)
}

// kill -9 of a `sluice drain` in the middle of draining, then a new one:
// every order ends in SQLite exactly once, none is lost.
func TestKill9OfDrainNeitherLosesNorDoubles(t *testing.T) {
	const orders = 3000
	cfg := gatetest.Config(t, ledger.Sale{Name: "s1", Stock: orders})
	cfg.NoDrain = true
	cfg.NATSListen = "127.0.0.1:0"
	gate := gatetest.Start(t, cfg)
	gatetest.FillLedger(t, gate.Ledger(), "s1", orders)

	dbPath := filepath.Join(t.TempDir(), "orders.db")
	// The default --ack-wait: a crashed drain's batch comes back within it.
	args := []string{"drain", "--nats-url", gate.NATSURL(), "--backend", dbPath, "--batch", "20", "--workers", "2", "--backend-timeout", "1s"}
	first := startProc(t, "sluice drain up", args...)
	db := openSQLite(t, dbPath)
	gatetest.Eventually(t, 30*time.Second, "the first drain to commit some orders", func() bool {
		return countRows(db, `SELECT COUNT(*) FROM orders`) >= orders/5
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.done <- nil
	atKill := countRows(db, `SELECT COUNT(*) FROM orders`)
	if atKill >= orders {
		t.Fatalf("the drain finished (%d rows) before it was killed; nothing was tested", atKill)
	}

	restarted := time.Now()
	startProc(t, "sluice drain up", args...)
	// The killed drain's batches in flight are handed out again after the
	// default ack wait (5 s), not the 30 s it once was.
	gatetest.Eventually(t, 20*time.Second, "the second drain to finish, the killed one's batches included", func() bool {
		st, err := gate.Ledger().State(context.Background(), "s1")
		return err == nil && st.Pending == 0
	})
	t.Logf("the second drain finished %v after it started", time.Since(restarted).Round(100*time.Millisecond))
	if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE status = 'confirmed'`); n != orders {
		t.Fatalf("%d confirmed rows, want %d", n, orders)
	}
	if n := countRows(db, `SELECT remaining FROM sales WHERE sale = 's1'`); n != 0 {
		t.Fatalf("stock remaining %d, want 0", n)
	}
	// Every order of the ledger is in SQLite once, and confirmed once.
	c := gatetest.Client()
	ctx := context.Background()
	str, err := gate.Ledger().JetStream().Stream(ctx, ledger.StreamName("s1"))
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= orders; seq += 97 {
		raw, err := str.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := ledger.DecodeOrder(raw.Data)
		id := ledger.OrderID{Sale: "s1", Seq: seq, Token: o.Token}.String()
		if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE order_id = ?`, id); n != 1 {
			t.Fatalf("order %s is in SQLite %d times", id, n)
		}
		if a := gatetest.Get(t, c, "http://"+gate.APIAddr()+"/v1/orders/"+id); a.Str("status") != "confirmed" {
			t.Fatalf("order %s: %s", id, a.Raw)
		}
	}
	t.Logf("killed the drain at %d of %d orders; the second drain finished them exactly once", atKill, orders)
}

// kill -9 of `sluice serve` in the middle of a burst, then a restart:
// every order answered 202 ends in the backend exactly once, and the
// backend never confirms more than the stock.
func TestKill9OfServeMidBurst(t *testing.T) {
	const stock = 500
	dir := t.TempDir()
	p := startServe(t, "--data-dir", dir, "--sale", fmt.Sprintf("s1=%d", stock), "--no-demo", "--backend-timeout", "1s")
	base := "http://" + p.api
	b := startBurst(t, base, 200)
	b.waitFor(t, 150)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
	admitted := b.stop()

	c := gatetest.Client()
	q := startServe(t, "--data-dir", dir, "--no-demo", "--backend-timeout", "1s")
	gatetest.Eventually(t, 60*time.Second, "the restarted gate to drain", func() bool {
		a := gatetest.Get(t, c, "http://"+q.api+"/v1/sales/s1")
		return a.Status == 200 && a.Body["queue_depth"] == float64(0)
	})
	db := openSQLite(t, filepath.Join(dir, "orders.db"))
	for _, id := range admitted {
		if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE order_id = ? AND status = 'confirmed'`, id); n != 1 {
			t.Fatalf("order %s answered 202 is confirmed %d times in the backend", id, n)
		}
	}
	confirmed := countRows(db, `SELECT COUNT(*) FROM orders WHERE status = 'confirmed'`)
	if confirmed > stock || confirmed < len(admitted) {
		t.Fatalf("%d confirmed, %d answered 202, stock %d", confirmed, len(admitted), stock)
	}
	t.Logf("killed mid-burst after %d answers 202; after restart %d confirmed (stock %d)", len(admitted), confirmed, stock)
}

// kill -9 of one of three clustered gates (--replicas 3) in the middle of
// a burst that sends the same buyers to all three: the other two keep
// selling, exactly the stock is confirmed, every 202 is confirmed once,
// and no buyer holds two orders.
func TestKill9OfAClusteredGateMidBurst(t *testing.T) {
	const stock = 300
	var routes, urls []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, ln.Addr().String())
		urls = append(urls, "nats://"+ln.Addr().String())
		ln.Close()
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	gates := make([]*proc, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		args := []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dirs[i], "--no-demo",
			"--server-name", fmt.Sprint("g", i+1), "--cluster-name", "kill9", "--cluster-listen", routes[i],
			"--cluster-routes", strings.Join(urls, ","), "--replicas", "3", "--backend-timeout", "1s"}
		if i == 0 {
			args = append(args, "--sale", fmt.Sprintf("s1=%d", stock)) // gate 1 provisions and drains
		} else {
			args = append(args, "--no-drain")
		}
		wg.Add(1)
		go func() { // JetStream waits for a quorum: start the three together
			defer wg.Done()
			gates[i], errs[i] = launch(t, "sluice gate up", args...)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gate %d: %v", i+1, err)
		}
	}
	c := gatetest.Client()
	for _, g := range gates {
		gatetest.Eventually(t, 30*time.Second, "every gate to know the sale", func() bool {
			return gatetest.Get(t, c, "http://"+g.api+"/v1/sales/s1").Status == 200
		})
	}
	// The same buyers (w<worker>-<n>) at all three gates.
	var bursts []*burst
	for _, g := range gates {
		bursts = append(bursts, startBurst(t, "http://"+g.api, 40))
	}
	gatetest.Eventually(t, 20*time.Second, "60 orders admitted across the gates", func() bool {
		n := 0
		for _, b := range bursts {
			b.mu.Lock()
			n += len(b.admitted)
			b.mu.Unlock()
		}
		return n >= 60
	})
	if err := gates[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var admitted []string
	for _, b := range bursts { // the living gates' buyers go on to their end
		admitted = append(admitted, b.stop()...)
	}
	// New buyers at the living gates until the stock is gone: the cluster
	// elects new stream leaders, and the sale must still end exact.
	for i := 0; ; i++ {
		a := gatetest.Order(t, c, "http://"+gates[i%2].api, "s1", fmt.Sprint("late-", i), "")
		if a.Status == 202 {
			admitted = append(admitted, a.Str("order_id"))
		}
		if a.Status == 410 {
			break
		}
		if i > 5000 {
			t.Fatalf("not sold out after 5000 more buyers: %d %s", a.Status, a.Raw)
		}
	}

	g1 := "http://" + gates[0].api
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("gate 1's view of the sale: %s", last)
		}
	}()
	gatetest.Eventually(t, 60*time.Second, "the drain to empty the queue with a peer gone", func() bool {
		a := gatetest.Get(t, c, g1+"/v1/sales/s1")
		last = a.Raw
		return a.Status == 200 && a.Body["queue_depth"] == float64(0) && a.Body["admitted"] == float64(stock)
	})
	db := openSQLite(t, filepath.Join(dirs[0], "orders.db"))
	if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE status = 'confirmed'`); n != stock {
		t.Fatalf("%d orders confirmed, want exactly the stock, %d", n, stock)
	}
	if n := countRows(db, `SELECT COUNT(*) FROM (SELECT buyer_id FROM orders GROUP BY buyer_id HAVING COUNT(*) > 1)`); n != 0 {
		t.Fatalf("%d buyers hold two orders", n)
	}
	seen := map[string]bool{}
	for _, id := range admitted {
		if seen[id] {
			t.Fatalf("order %s answered 202 twice", id)
		}
		seen[id] = true
		if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE order_id = ? AND status = 'confirmed'`, id); n != 1 {
			t.Fatalf("order %s answered 202 is confirmed %d times", id, n)
		}
	}
	t.Logf("gate 3 killed mid-burst; %d answers 202 across the gates, all confirmed once; %d confirmed of stock %d", len(admitted), stock, stock)
}
