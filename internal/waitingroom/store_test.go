package waitingroom

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/broker"
	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/waitingroom/line"
)

// lineOf starts an in-process JetStream and fills a waiting-room sale's
// line with n tickets as Join writes them.
func lineOf(tb testing.TB, n int) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	b, err := broker.Start(ctx, broker.Config{StoreDir: tb.TempDir(), Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close(context.Background()) })
	js, err := jetstream.New(b.Conn)
	if err != nil {
		tb.Fatal(err)
	}
	st := NewStore(js, streams.Options{})
	l := ledger.New(js, ledger.Options{Lines: st})
	if _, err := l.EnsureSale(ctx, ledger.Sale{Name: "big", Stock: 1000, StartsAt: time.Now().Add(time.Hour),
		WaitingRoom: true, LineLimit: int64(n)}); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		id, _ := line.NewTicketID()
		buyer := "buyer-" + strconv.Itoa(1_000_000+i)
		data, _ := json.Marshal(ticketRecord{Ticket: id, Buyer: buyer})
		if _, err := js.PublishAsync(LineBuyerSubject("big", buyer), data); err != nil {
			tb.Fatal(err)
		}
		if i%10_000 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	return st
}

// BenchmarkOpenRoom replays a line of a hundred thousand tickets, as a
// gate does when it starts (per op: one whole replay).
func BenchmarkOpenRoom(b *testing.B) {
	const n = 100_000
	l := lineOf(b, n)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	b.ResetTimer()
	for b.Loop() {
		r, err := l.OpenRoom(context.Background(), "big", quiet)
		if err != nil {
			b.Fatal(err)
		}
		if got := r.Book.Len(); got != n {
			b.Fatalf("replayed %d tickets of %d", got, n)
		}
		r.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/ticket")
}

// A room replays a line into the same book whatever it is.
func TestOpenRoomReplaysTheLine(t *testing.T) {
	l := lineOf(t, 3000)
	r, err := l.OpenRoom(context.Background(), "big", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.Book.Len(); got != 3000 {
		t.Fatalf("replayed %d tickets of 3000", got)
	}
}

// ticketOf reads what json.Marshal writes, on its fast path or not.
func TestTicketOf(t *testing.T) {
	id, _ := line.NewTicketID()
	for _, buyer := range []string{"alice", "a.b_c:d@e-f", "x<y>&z", `q"uote`, "é"} {
		data, _ := json.Marshal(ticketRecord{Ticket: id, Buyer: buyer})
		r, ok := ticketOf(data)
		if !ok || r.Ticket != id || r.Buyer != buyer {
			t.Errorf("ticketOf(%s) = %+v, %v", data, r, ok)
		}
	}
	for _, bad := range []string{``, `{`, `{"ticket":"` + id + `","buyer":"`, `[]`} {
		if r, ok := ticketOf([]byte(bad)); ok && r.Ticket != "" {
			t.Errorf("ticketOf(%q) = %+v", bad, r)
		}
	}
}

func FuzzTicketOf(f *testing.F) {
	id, _ := line.NewTicketID()
	f.Add([]byte(`{"ticket":"` + id + `","buyer":"alice"}`))
	f.Add([]byte(`{"ticket":"` + id + `","buyer":"a\"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, ok := ticketOf(data)
		var want ticketRecord
		err := json.Unmarshal(data, &want)
		if ok && err == nil && r != want {
			t.Fatalf("ticketOf(%q) = %+v, encoding/json reads %+v", data, r, want)
		}
	})
}
