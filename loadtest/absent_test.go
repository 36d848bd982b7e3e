package loadtest

import (
	"testing"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/waitingroom/line"
)

// An --abandon buyer closes its tab once it holds a ticket, so its turn
// lapses: it sends nothing more. It used to poll until the start, and a
// poll left for just before the start that a generator fallen behind
// sent after the first offers claimed the turn: 100,000 in line, half
// gone, 641 of them held passes for pass_ttl with no order to come,
// exactly the stock left, and the sale stalled. Here the buyer joins a
// real gate a few seconds before the start, and the generator takes its
// next step, if it has one, only once the line offers it its turn.
func TestAbsentBuyerClaimsNothing(t *testing.T) {
	sale := ledger.Sale{Name: "absent", Stock: 5, WaitingRoom: true, StartsAt: time.Now().Add(4 * time.Second)}
	gate := gatetest.Start(t, gatetest.Config(t, sale))
	gatetest.Eventually(t, 10*time.Second, "the room to open", func() bool { return gate.Rooms().Room(sale.Name) != nil })
	room := gate.Rooms().Room(sale.Name)
	target := "http://" + gate.APIAddr()
	host, path, err := hostAndPath(target)
	if err != nil {
		t.Fatal(err)
	}
	client, err := newCrowdClient(target, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := newCrowd("t", Shard{}, 1, 0, 0, now, sale.StartsAt)
	c.buyers[0].flags |= fAbsent
	r := &crowdRun{c: c, client: client, sale: sale.Name, base: target, lineURL: target + "/v1/sales/" + sale.Name + "/line",
		ticketsPath: path + "/v1/tickets/", host: host, ttl: sale.PassLifetime(), lateAfter: time.Second, timeout: 5 * time.Second,
		deadline: now.Add(time.Minute), workers: 1, wheel: newWheel(c.ms(now)), st: newCrowdStats(), estLimit: 100,
		ended: make(chan struct{})}
	w := r.newWorker()
	defer w.pc.close()
	w.step(0) // the join
	b := &c.buyers[0]
	if !b.is(fTicket) {
		t.Fatalf("the join failed: %+v %v", b, r.st.errs)
	}
	key := line.TicketKey(b.ticket)
	offered := func() bool { tk, _ := room.Book.Lookup(key); return tk.Offered }
	gatetest.Eventually(t, 15*time.Second, "the turn to be offered", offered)
	for b.step != stepDone && time.Since(now) < 30*time.Second {
		w.step(0) // late: the start and the first offers came meanwhile
	}
	tk, _ := room.Book.Lookup(key)
	if tk.Claimed {
		t.Fatalf("a buyer gone since it joined claimed its turn at %s (offered at %s): a pass held for nobody",
			tk.ClaimedAt.Format(time.StampMilli), tk.OfferedAt.Format(time.StampMilli))
	}
	if b.step != stepDone || c.names.name(b.outcome) != "absent" {
		t.Fatalf("the buyer ends %q (step %d); want absent", c.names.name(b.outcome), b.step)
	}
	if polls := r.st.polls.Load(); polls != 0 {
		t.Fatalf("a buyer gone since it joined polled %d times", polls)
	}
}
