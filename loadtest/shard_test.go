package loadtest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/loadtest"
)

// A rehearsal run in three shards against one real gate, their --json
// reports merged, checks as a run of the same crowd in one process: the
// same checks, all passed, the same counts. The merge checks the union
// for real: without a shard it refuses, and with a shard's order ids
// missing its check of the orders fails.
func TestRehearseInShardsChecksAsOneRun(t *testing.T) {
	testenv.Exclusive(t) // two rehearsals and a gate: both cores
	const buyers, late, stock = 600, 30, 40
	start := time.Now().Add(8 * time.Second)
	sale := func(name string) ledger.Sale {
		return ledger.Sale{Name: name, Stock: stock, StartsAt: start, WaitingRoom: true, BackendRate: 40, QueueBound: 10,
			PassTTL: ledger.Duration(10 * time.Second), LineLimit: 5000}
	}
	g := gatetest.Start(t, gatetest.Config(t, sale("one"), sale("sharded")))
	target := "http://" + g.APIAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := func(name string, sh loadtest.Shard) loadtest.RoomOptions {
		return loadtest.RoomOptions{Target: target, Sale: name, Buyers: buyers, Late: late, Before: time.Until(start) - time.Second,
			Connections: 32, Seed: 5, Shard: sh}
	}
	var wg sync.WaitGroup
	var one loadtest.RoomReport
	shards := make([]loadtest.RoomReport, 3)
	errs := make([]error, 4)
	wg.Go(func() { one, errs[3] = loadtest.RehearseRoom(ctx, opts("one", loadtest.Shard{})) })
	for i := range shards {
		wg.Go(func() {
			shards[i], errs[i] = loadtest.RehearseRoom(ctx, opts("sharded", loadtest.Shard{Index: i, Of: 3}))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each shard's report goes through its JSON, as sluice loadtest
	// merge reads it.
	dir := t.TempDir()
	reps := make([]loadtest.RoomReport, 3)
	simulated, polls := 0, 0
	for i, s := range shards {
		if s.Shard == nil || s.Records == nil || len(s.Checks) != 0 || s.Passed {
			t.Fatalf("shard %d: shard %v, records %v, checks %v", i+1, s.Shard, s.Records != nil, s.Checks)
		}
		simulated += s.Generator.Buyers
		polls += s.Polls
		path := filepath.Join(dir, s.Shard.String()[:1]+".json")
		var js bytes.Buffer
		if err := s.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, js.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		if reps[i], err = loadtest.ReadRoomReport(path); err != nil {
			t.Fatal(err)
		}
	}
	if simulated != buyers+late {
		t.Fatalf("the shards simulated %d buyers, want %d", simulated, buyers+late)
	}
	merged, err := loadtest.MergeRoomReports(ctx, loadtest.MergeOptions{}, reps)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	merged.WriteText(&text)
	t.Log("merged:\n" + text.String())
	for name, r := range map[string]loadtest.RoomReport{"one run": one, "merged shards": merged} {
		if !r.Passed || r.Joined != buyers || r.Late != late || r.Served != stock || r.Confirmed != stock {
			t.Errorf("%s: passed %v, joined %d, late %d, served %d, confirmed %d", name, r.Passed, r.Joined, r.Late, r.Served, r.Confirmed)
		}
	}
	if len(merged.Checks) != len(one.Checks) {
		t.Fatalf("merged %d checks, one run %d", len(merged.Checks), len(one.Checks))
	}
	for i, c := range one.Checks {
		if m := merged.Checks[i]; m.Name != c.Name || !m.Passed || !c.Passed {
			t.Errorf("check %d: one run %+v, merged %+v", i, c, m)
		}
	}
	if merged.Polls != polls || len(merged.Shards) != 3 || merged.Generator.Buyers != buyers+late || merged.ETAPoll.N == 0 {
		t.Errorf("merged figures: %d polls of %d, %d shards, %d buyers, %d estimates", merged.Polls, polls, len(merged.Shards),
			merged.Generator.Buyers, merged.ETAPoll.N)
	}
	if _, err := loadtest.MergeRoomReports(ctx, loadtest.MergeOptions{}, reps[:2]); err == nil || !strings.Contains(err.Error(), "shard 3/3 is missing") {
		t.Errorf("two shards of three: %v", err)
	}
	if _, err := loadtest.MergeRoomReports(ctx, loadtest.MergeOptions{}, append(reps[:2:2], reps[0])); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("a shard twice: %v", err)
	}
	// A shard that lost its order ids: the union's orders do not check.
	for i := range reps {
		if len(reps[i].Records.Orders) > 0 {
			for k := range reps[i].Records.Orders {
				delete(reps[i].Records.Orders, k)
				break
			}
			break
		}
	}
	bad, err := loadtest.MergeRoomReports(ctx, loadtest.MergeOptions{VerifyTimeout: 5 * time.Second}, reps)
	if err != nil || bad.Passed {
		t.Fatalf("an order id missing from a shard: passed %v, %v", bad.Passed, err)
	}
}
