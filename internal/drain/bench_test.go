package drain_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/consumer"
	"sluice/consumer/postgres"
	"sluice/consumer/sqlite"
	"sluice/internal/drain"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/internal/serve"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/pgtest"
)

// The drain benchmarks admit b.N orders into a sale's ledger (not timed),
// then time the drain from start until the queue is empty; the raw
// benchmarks time inserting the same rows in batches of the same size
// with the same durability settings. Run them together, with a fixed
// count so both move the same rows:
//
//	go test -run XXX -bench 'Drain|RawInsert' -benchtime 200000x ./internal/drain
//
// or bench/drain.sh, which alternates rounds and prints the median ratio.
const benchBatch = 100

func fillLedger(b *testing.B, n int) *serve.Server {
	b.Helper()
	cfg := gatetest.Config(b, ledger.Sale{Name: "s1", Stock: int64(n)})
	cfg.NoDrain = true
	srv := gatetest.Start(b, cfg)
	gatetest.FillLedger(b, srv.Ledger(), "s1", n)
	return srv
}

// binaryGC sets the GC target the sluice binary runs with (serve and
// drain, --gc-percent 400) for the rest of the benchmark: every benchmark
// of the comparison runs with it.
func binaryGC(b *testing.B) {
	old := debug.SetGCPercent(400)
	b.Cleanup(func() { debug.SetGCPercent(old) })
}

func benchDrain(b *testing.B, backend consumer.Backend) {
	binaryGC(b)
	srv := fillLedger(b, b.N)
	ctx := context.Background()
	status, err := orderstatus.OpenRecorder(ctx, srv.Ledger().JetStream(), 1)
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d := drain.New(srv.Ledger(), status, backend,
		drain.Config{Batch: benchBatch, Discover: 50 * time.Millisecond, Logger: gatetest.Logger(b)},
		drain.NewMetrics(reg))
	b.ResetTimer()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	// Watch the drain's own counter, which costs nothing to read, then
	// ask JetStream (an API round trip, not to be made every millisecond
	// while the drain runs) that every ack landed.
	for gatetest.Counter(b, reg, "sluice_drain_orders_total", "outcome", "confirmed") < float64(b.N) {
		time.Sleep(time.Millisecond)
	}
	for {
		st, err := srv.Ledger().State(ctx, "s1")
		if err == nil && st.Draining && st.Pending == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.ReportMetric(cpuSince(ru0).Seconds()/elapsed.Seconds(), "cores")
	b.StopTimer()
	if err := d.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
}

func BenchmarkDrainSQLite(b *testing.B) {
	be, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "orders.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchDrain(b, be)
	checkConfirmed(b, be.DB(), b.N)
}

func BenchmarkDrainPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	be, err := postgres.Open(context.Background(), pg.NewDatabase(fmt.Sprint("drain", b.N)), 8)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchDrain(b, be)
	checkConfirmed(b, be.DB(), b.N)
}

func checkConfirmed(b *testing.B, db *sql.DB, want int) {
	var n int
	_ = db.QueryRow(`SELECT COUNT(*) FROM orders WHERE status = 'confirmed'`).Scan(&n)
	if n != want {
		b.Fatalf("%d confirmed, want %d", n, want)
	}
}

// rawInsert inserts n order rows in multi-row INSERTs of benchBatch, one
// transaction each: the floor a drain is compared with.
func rawInsert(b *testing.B, db *sql.DB, n int, placeholder func(i int) string) {
	binaryGC(b)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO sales (sale, stock, remaining, updated_at) VALUES ('s1', 0, 0, '2026-01-01')`); err != nil {
		if _, err := db.ExecContext(ctx, `INSERT INTO sales (sale, stock, remaining) VALUES ('s1', 0, 0)`); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now().UTC()
	b.ResetTimer()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	for done := 0; done < n; {
		k := min(benchBatch, n-done)
		var q strings.Builder
		q.WriteString(`INSERT INTO orders (order_id, sale, buyer_id, buyer_slot, status, seq, admitted_at, decided_at) VALUES `)
		args := make([]any, 0, 7*k)
		for j := range k {
			if j > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(")
			for c := range 7 {
				if c > 0 {
					q.WriteByte(',')
				}
				q.WriteString(placeholder(len(args) + 1))
				if c == 3 {
					q.WriteString(",'confirmed'")
				}
				args = append(args, rowValue(c, done+j, now)...)
			}
			q.WriteString(")")
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	elapsed := time.Since(start)
	b.ReportMetric(cpuSince(ru0).Seconds()/elapsed.Seconds(), "cores")
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "orders/s")
}

func rowValue(col, i int, now time.Time) []any {
	switch col {
	case 0:
		return []any{fmt.Sprintf("s1-%d-%013d", i+1, i)}
	case 1:
		return []any{"s1"}
	case 2:
		return []any{fmt.Sprint("b", i)}
	case 3:
		return []any{0}
	case 4:
		return []any{int64(i + 1)}
	case 5:
		return []any{now.Format(time.RFC3339Nano)}
	}
	return []any{now.Format(time.RFC3339Nano)}
}

func BenchmarkRawInsertSQLite(b *testing.B) {
	be, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "orders.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	rawInsert(b, be.DB(), b.N, func(int) string { return "?" })
}

func BenchmarkRawInsertPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	be, err := postgres.Open(context.Background(), pg.NewDatabase(fmt.Sprint("raw", b.N)), 8)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	rawInsert(b, be.DB(), b.N, func(i int) string { return fmt.Sprint("$", i) })
}

// BenchmarkCommitSQLite is the backend alone: the same batches the drain
// hands it, without JetStream.
func BenchmarkCommitSQLite(b *testing.B) {
	be, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "orders.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchCommit(b, be)
}

func benchCommit(b *testing.B, be consumer.Backend) {
	binaryGC(b)
	ctx := context.Background()
	if err := be.EnsureSale(ctx, "s1", int64(b.N)); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; {
		k := min(benchBatch, b.N-done)
		batch := make([]consumer.Order, k)
		for j := range batch {
			i := done + j
			batch[j] = consumer.Order{ID: fmt.Sprintf("s1-%d-%013d", i+1, i), Sale: "s1", BuyerID: fmt.Sprint("b", i),
				Seq: uint64(i + 1), PerBuyer: 1, AdmittedAt: now}
		}
		if _, err := be.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
}

// BenchmarkCommitPostgres is the PostgreSQL backend alone.
func BenchmarkCommitPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	be, err := postgres.Open(context.Background(), pg.NewDatabase(fmt.Sprint("commit", b.N)), 8)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	benchCommit(b, be)
}

// cpuSince is the CPU time the process (JetStream, drain and backend, all
// in it) spent since ru0.
func cpuSince(ru0 syscall.Rusage) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
}
