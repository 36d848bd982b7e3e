package consumer_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sluice/consumer"
	"sluice/consumer/postgres"
	"sluice/consumer/sqlite"
	"sluice/internal/testkit/pgtest"
)

// sqlBackend is a SQL backend with its handle, for reading stock back.
type sqlBackend interface {
	consumer.Backend
	DB() *sql.DB
}

// The SQL backends decide alike, batch by batch: stock in ledger order,
// one order per buyer slot, the same answer to a redelivered order, and
// the stock row never below zero.
func TestSQLBackendsDecideAlike(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var be sqlBackend
			var err error
			if name == "sqlite" {
				be, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "orders.db"))
			} else {
				be, err = postgres.Open(ctx, pgtest.Start(t).NewDatabase("alike"), 4)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			decideAlike(t, be)
		})
	}
}

func decideAlike(t *testing.T, be sqlBackend) {
	ctx := context.Background()
	now := time.Now()
	seq := map[string]uint64{}
	order := func(sale, id, buyer string, perBuyer int64) consumer.Order {
		seq[sale]++
		return consumer.Order{ID: id, Sale: sale, BuyerID: buyer, Seq: seq[sale], PerBuyer: perBuyer, AdmittedAt: now}
	}
	commit := func(step string, batch []consumer.Order, want string) {
		t.Helper()
		res, err := be.Commit(ctx, batch)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		var got []string
		for i, r := range res {
			switch r.Outcome {
			case consumer.Confirmed:
				got = append(got, batch[i].ID+"=ok")
			case consumer.Rejected:
				got = append(got, batch[i].ID+"="+r.Reason)
			default:
				got = append(got, batch[i].ID+"=retry:"+fmt.Sprint(r.Err))
			}
		}
		if g := strings.Join(got, " "); g != want {
			t.Fatalf("%s:\n got %s\nwant %s", step, g, want)
		}
	}
	remaining := func(sale string, want int64) {
		t.Helper()
		var n int64
		if err := be.DB().QueryRowContext(ctx, `SELECT remaining FROM sales WHERE sale = $1`, sale).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%s: remaining %d, want %d", sale, n, want)
		}
	}

	// One order per buyer, stock 3.
	if err := be.EnsureSale(ctx, "one", 3); err != nil {
		t.Fatal(err)
	}
	o1, o2, o3 := order("one", "o1", "b1", 1), order("one", "o2", "b2", 1), order("one", "o3", "b1", 1)
	o4, o5 := order("one", "o4", "b3", 1), order("one", "o5", "b4", 1)
	first := []consumer.Order{o1, o2, o3, o4, o5}
	commit("new batch", first, "o1=ok o2=ok o3=already_ordered o4=ok o5=sold_out")
	remaining("one", 0)
	commit("the same batch redelivered", first, "o1=ok o2=ok o3=already_ordered o4=ok o5=sold_out")
	o6 := order("one", "o6", "b5", 1)
	commit("redelivered and new, out of order", []consumer.Order{o6, o4, o5}, "o6=sold_out o4=ok o5=sold_out")
	remaining("one", 0)

	// Two orders per buyer, stock 10.
	if err := be.EnsureSale(ctx, "two", 10); err != nil {
		t.Fatal(err)
	}
	p1, p2, p3, p4 := order("two", "p1", "A", 2), order("two", "p2", "A", 2), order("two", "p3", "A", 2), order("two", "p4", "B", 2)
	commit("slots within a batch", []consumer.Order{p1, p2, p3, p4}, "p1=ok p2=ok p3=already_ordered p4=ok")
	p5, p6 := order("two", "p5", "A", 2), order("two", "p6", "B", 2)
	commit("slots across batches", []consumer.Order{p5, p6, p2}, "p5=already_ordered p6=ok p2=ok")
	remaining("two", 6)

	// Raising the stock of a sold-out sale frees what was not confirmed.
	if err := be.EnsureSale(ctx, "one", 5); err != nil {
		t.Fatal(err)
	}
	remaining("one", 2)
	o7 := order("one", "o7", "b6", 1)
	commit("after a restock", []consumer.Order{o7, o5}, "o7=ok o5=sold_out")
	remaining("one", 1)
	o8, o9 := order("one", "o8", "b7", 1), order("one", "o9", "b8", 1)
	commit("all new, past the stock", []consumer.Order{o8, o9}, "o8=ok o9=sold_out")
	o10 := order("one", "o10", "b2", 1)
	commit("a buyer who holds an order", []consumer.Order{o10}, "o10=already_ordered")
	remaining("one", 0)

	// Cancelling a confirmed order gives its item back and frees the
	// buyer's slot, once; a rejected order is not cancelled.
	canceller := be.(consumer.Canceller)
	for _, c := range []struct {
		o    consumer.Order
		want bool
	}{{o2, true}, {o2, false}, {o5, false}} {
		if got, err := canceller.Cancel(ctx, c.o); err != nil || got != c.want {
			t.Fatalf("cancel %s: %v %v, want %v", c.o.ID, got, err, c.want)
		}
	}
	remaining("one", 1)
	commit("a cancelled order redelivered", []consumer.Order{o2}, "o2=ok")
	o11 := order("one", "o11", "b2", 1)
	commit("the buyer of a cancelled order again", []consumer.Order{o11}, "o11=ok")
	remaining("one", 0)

	// An order's payload is kept in its row as the shop sent it; an order
	// without one has NULL there.
	q1 := order("two", "q1", "C", 2)
	q1.Payload = json.RawMessage(`{"sku":"TEE-1","size":"M","quantity":2,"note":"gift \u00e9"}`)
	commit("an order with a payload", []consumer.Order{q1, p1}, "q1=ok p1=ok")
	for id, want := range map[string]string{"q1": string(q1.Payload), "p1": ""} {
		var got sql.NullString
		if err := be.DB().QueryRowContext(ctx, `SELECT payload FROM orders WHERE order_id = $1`, id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !sameJSON(got.String, want) || got.Valid != (want != "") {
			t.Errorf("payload of %s: %v %q, want %q", id, got.Valid, got.String, want)
		}
	}

	// An order's variant is kept in its row, confirmed or refused; an
	// order of a sale without variants has NULL there. Both the plain
	// insert and the careful one (a buyer with several orders) keep it.
	if err := be.EnsureSale(ctx, "drop", 2); err != nil {
		t.Fatal(err)
	}
	v1, v2, v3 := order("drop", "v1", "D", 1), order("drop", "v2", "E", 1), order("drop", "v3", "D", 1)
	v1.Variant, v2.Variant, v3.Variant = "us9", "us10", "us10"
	commit("orders of variants", []consumer.Order{v1, v2, v3}, "v1=ok v2=ok v3=already_ordered")
	w1 := order("two", "w1", "F", 2)
	w1.Variant = "red"
	commit("an order of a variant, two per buyer", []consumer.Order{w1}, "w1=ok")
	for id, want := range map[string]string{"v1": "us9", "v2": "us10", "v3": "us10", "w1": "red", "q1": ""} {
		var got sql.NullString
		if err := be.DB().QueryRowContext(ctx, `SELECT variant FROM orders WHERE order_id = $1`, id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got.String != want || got.Valid != (want != "") {
			t.Errorf("variant of %s: %v %q, want %q", id, got.Valid, got.String, want)
		}
	}
}

// sameJSON compares two JSON texts as values ("" is no value): a jsonb
// column gives back its own spacing and key order.
func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// Gates that drain into one PostgreSQL start together (the cluster
// recipe): their migrations run at once on a fresh database and all of
// them succeed.
func TestPostgresMigratesConcurrently(t *testing.T) {
	url := pgtest.Start(t).NewDatabase("together")
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			be, err := postgres.Open(ctx, url, 2)
			if err == nil {
				be.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
}
