package ledger_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"sluice/internal/ledger"
)

// BenchmarkVariantFollow is what a gate's book costs per message of a
// sale with variants' stream: a new ledger reads the units of orders
// another placed (one State, its catch-up), as every gate follows the
// orders of the others. Reported per message, in wall and in CPU time
// of the process (the in-process JetStream server's and the client's):
//
//	go test -run '^$' -bench VariantFollow -benchtime 5x ./internal/ledger/
func BenchmarkVariantFollow(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	jss := jetStream(b, 2)
	placer := ledger.New(jss[0], ledger.Options{})
	variants := map[string]int64{"a": n, "b": n, "c": n, "d": n}
	if _, err := placer.EnsureSale(ctx, ledger.Sale{Name: "drop", Variants: variants}); err != nil {
		b.Fatal(err)
	}
	names := []string{"a", "b", "c", "d"}
	for i := range n {
		if _, _, err := placer.Place(ctx, order("drop", fmt.Sprintf("b%d", i), names[i%len(names)]), ""); err != nil {
			b.Fatal(err)
		}
	}
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		follower := ledger.New(jss[1], ledger.Options{})
		before := cpuTime(b)
		st, err := follower.State(ctx, "drop")
		cpu += cpuTime(b) - before
		if err != nil {
			b.Fatal(err)
		}
		if st.Admitted != n {
			b.Fatalf("admitted %d, want %d", st.Admitted, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/msg")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
