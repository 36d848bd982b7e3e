package admission

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/broker"
	"sluice/internal/ledger"
)

// unitGate is a gate built of a real ledger on an in-process JetStream
// and d's other parts, for the tests of its own figures: they feed it
// sale states themselves (UpdateSales).
func unitGate(t *testing.T, d Deps) *Gate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Config{StoreDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	js, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	d.Ledger, d.Metrics = ledger.New(js, ledger.Options{}), NewMetrics(prometheus.NewRegistry())
	g, err := New(Config{}, d)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestStaleRefreshDoesNotUndoANewerChange: a refresh that began reading
// before an admin change landed must not put the old settings back, even
// when it is applied after the change.
func TestStaleRefreshDoesNotUndoANewerChange(t *testing.T) {
	g := unitGate(t, Deps{})
	t0 := time.Now()
	open := ledger.Sale{Name: "s1", Stock: 10}
	g.UpdateSales(t0, []ledger.SaleState{{Sale: open, Read: t0}}, nil)
	closed := open
	closed.EndsAt = t0.Add(-time.Hour)
	g.UpdateSale(ledger.SaleState{Sale: closed, Read: t0.Add(2 * time.Millisecond)})
	// The refresh read at t0+1ms answers after the change.
	g.UpdateSales(t0.Add(time.Millisecond), []ledger.SaleState{{Sale: open, Admitted: 10, Read: t0.Add(time.Millisecond)}}, nil)
	s := g.lookupSale("s1")
	if got := stateOf(s, time.Now()); got != "closed" || s.admitted.Load() != 0 {
		t.Fatalf("state %s, admitted %d: the stale refresh was applied", got, s.admitted.Load())
	}
	// A refresh read after the change applies.
	g.UpdateSales(t0.Add(3*time.Millisecond), []ledger.SaleState{{Sale: closed, Admitted: 3, Read: t0.Add(3 * time.Millisecond)}}, nil)
	if s.admitted.Load() != 3 {
		t.Fatalf("admitted %d after a fresh refresh, want 3", s.admitted.Load())
	}
}

type decided struct{ confirmed, decided int64 }

func (d decided) ConfirmedCount(context.Context, string) (int64, error) { return d.confirmed, nil }
func (d decided) DecidedCount(context.Context, string) (int64, error)   { return d.decided, nil }

// TestQueueNeverDeeperThanUndecided: after a drain's crash its decided but
// unacknowledged orders are pending in JetStream until redelivered; the
// gate's queue depth counts only the orders not decided, so queue depth
// plus decided never exceeds admitted.
func TestQueueNeverDeeperThanUndecided(t *testing.T) {
	g := unitGate(t, Deps{Confirmed: decided{confirmed: 3, decided: 4}})
	g.UpdateSales(time.Now(), []ledger.SaleState{{Sale: ledger.Sale{Name: "s1", Stock: 10}, Admitted: 10, Pending: 10, Draining: true, Read: time.Now()}}, nil)
	s := g.lookupSale("s1")
	if s.pending.Load() != 6 || s.drained.Load() != 4 {
		t.Fatalf("pending %d, drained %d; want 6 and 4", s.pending.Load(), s.drained.Load())
	}
}

// TestNeverMoreConfirmedThanAdmitted: under load a refresh may be read
// before decisions the gate has already seen; the sale's admitted count
// (and what is left) follow the decisions, never showing more orders
// confirmed than admitted.
func TestNeverMoreConfirmedThanAdmitted(t *testing.T) {
	g := unitGate(t, Deps{Confirmed: decided{confirmed: 8, decided: 9}})
	g.UpdateSales(time.Now(), []ledger.SaleState{{Sale: ledger.Sale{Name: "s1", Stock: 10}, Admitted: 7, Pending: 0, Draining: true, Read: time.Now()}}, nil)
	v := g.view(context.Background(), g.lookupSale("s1"), time.Now())
	if v.Admitted != 9 || v.Remaining != 1 || *v.Confirmed != 8 {
		t.Fatalf("admitted %d, remaining %d, confirmed %d; want 9, 1, 8", v.Admitted, v.Remaining, *v.Confirmed)
	}
}

// TestQueueHoldsNoDecidedOrder: an order the gate admitted since the last
// refresh counts in the queue until the decisions name it; a client that
// waited for its decision then reads a queue without it, not one the next
// refresh will correct.
func TestQueueHoldsNoDecidedOrder(t *testing.T) {
	g := unitGate(t, Deps{Confirmed: decided{confirmed: 5, decided: 5}})
	g.UpdateSales(time.Now(), []ledger.SaleState{{Sale: ledger.Sale{Name: "s1", Stock: 10}, Admitted: 4, Pending: 0, Draining: true, Read: time.Now()}}, nil)
	s := g.lookupSale("s1")
	s.admitted.Add(1) // admitted here, then decided, before the next refresh
	s.pending.Add(1)
	v := g.view(context.Background(), s, time.Now())
	if v.Admitted != 5 || v.QueueDepth != 0 || *v.Confirmed != 5 {
		t.Fatalf("admitted %d, queue %d, confirmed %d; want 5, 0, 5", v.Admitted, v.QueueDepth, *v.Confirmed)
	}
}

// TestRefreshKeepsLaterAdmits: a refresh that read the stream before this
// gate stored more orders keeps those orders in the queue. Applied as
// read, it set the depth back and a queue bound let as many more in until
// the next refresh (how the flaky TestQueueBoundAnswersBusy could admit
// more than its bound of 10).
func TestRefreshKeepsLaterAdmits(t *testing.T) {
	g := unitGate(t, Deps{})
	created := time.Now().Add(-time.Minute)
	state := func(msgs uint64, created time.Time) []ledger.SaleState {
		return []ledger.SaleState{{Sale: ledger.Sale{Name: "s1", Stock: 100, QueueBound: 10}, Admitted: msgs, Pending: msgs,
			LastSeq: msgs, Created: created, Read: time.Now()}}
	}
	g.UpdateSales(time.Now(), state(5, created), nil)
	s := g.lookupSale("s1")
	for seq := uint64(6); seq <= 7; seq++ { // stored while the next refresh was reading
		s.admitted.Add(1)
		s.pending.Add(1)
		s.storedSeq(seq)
	}
	g.UpdateSales(time.Now(), state(5, created), nil)
	if p, a := s.pending.Load(), s.admitted.Load(); p != 7 || a != 7 {
		t.Fatalf("after a refresh read before orders 6 and 7: pending %d, admitted %d; want 7, 7", p, a)
	}
	g.UpdateSales(time.Now(), state(7, created), nil)
	if p := s.pending.Load(); p != 7 {
		t.Fatalf("after a refresh that read them: pending %d, want 7", p)
	}
	// The sale made again: a new stream, numbered from 1.
	g.UpdateSales(time.Now(), state(1, created.Add(time.Second)), nil)
	if p := s.pending.Load(); p != 1 {
		t.Fatalf("a new stream: pending %d, want 1", p)
	}
}

// TestStaleRefreshDoesNotDropANewSale: a sale an admin made after a
// refresh began reading is not in that refresh's list; applied after the
// change, the list must not take the sale away (a PATCH right after the
// PUT would answer 404). A list read later without it does.
func TestStaleRefreshDoesNotDropANewSale(t *testing.T) {
	g := unitGate(t, Deps{})
	t0 := time.Now()
	old := ledger.Sale{Name: "s1", Stock: 10}
	g.UpdateSales(t0, []ledger.SaleState{{Sale: old, Read: t0}}, nil)
	g.UpdateSale(ledger.SaleState{Sale: ledger.Sale{Name: "s2", Stock: 5}, Read: t0.Add(2 * time.Millisecond)})
	g.UpdateSales(t0.Add(time.Millisecond), []ledger.SaleState{{Sale: old, Read: t0.Add(time.Millisecond)}}, nil)
	if g.lookupSale("s2") == nil {
		t.Fatal("a refresh read before the sale was made dropped it")
	}
	g.UpdateSales(t0.Add(3*time.Millisecond), []ledger.SaleState{{Sale: old, Read: t0.Add(3 * time.Millisecond)}}, nil)
	if g.lookupSale("s2") != nil {
		t.Fatal("a refresh read after the sale was gone kept it")
	}
	// An empty list carries its read time too: a stale one keeps s1, a
	// fresh one drops it.
	g.UpdateSale(ledger.SaleState{Sale: old, Read: t0.Add(5 * time.Millisecond)})
	if g.UpdateSales(t0.Add(4*time.Millisecond), nil, nil); g.lookupSale("s1") == nil {
		t.Fatal("an empty list read before s1's last change dropped it")
	}
	if g.UpdateSales(t0.Add(6*time.Millisecond), nil, nil); g.lookupSale("s1") != nil {
		t.Fatal("an empty list read after s1's last change kept it")
	}
}

// TestLineBudgetKeepsTheDrainsCapacity: a drain that drained a burst and
// then found nothing to drain has shown what it takes; the line's budget
// stays at five seconds of that, not of its rate of the moment, which
// falls to nothing with the orders (a line paced by it stalled at 300,000
// in line, unused passes holding the shrunken budget until they expired).
func TestLineBudgetKeepsTheDrainsCapacity(t *testing.T) {
	g := unitGate(t, Deps{})
	t0 := time.Now()
	var clock time.Time
	g.now = func() time.Time { return clock }
	room := ledger.Sale{Name: "s1", Stock: 10_000, WaitingRoom: true}
	drained := uint64(0)
	for i := range 40 {
		if i < 10 {
			drained += 400 // 400 a second for 10 s, then nothing
		}
		at := t0.Add(time.Duration(i) * time.Second)
		clock = at
		g.UpdateSales(at, []ledger.SaleState{{Sale: room, Admitted: drained, Drained: drained, Draining: true, Read: at}}, nil)
	}
	s := g.lookupSale("s1")
	if r := s.rate(); r > 1 {
		t.Fatalf("the drain's rate after 30 idle seconds is %.1f/s, want near 0", r)
	}
	cfg := s.cfg.Load()
	if b := lineBudget(s, cfg); b < 5*300 {
		t.Fatalf("line budget %d after the drain went idle, want five seconds of the ~400/s it showed", b)
	}
}

// A ticket told to come back at a look comes at it or after, never a
// second before (to be told to come again): poll_after_seconds rounds
// up.
func TestPollAfterRoundsUpToTheLook(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond, 59*time.Second + time.Millisecond} {
		if s := secondsUp(d); time.Duration(s)*time.Second < d || time.Duration(s-1)*time.Second >= d {
			t.Errorf("%v: told %d s", d, s)
		}
	}
}
