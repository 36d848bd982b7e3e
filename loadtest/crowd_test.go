package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The wheel gives back every buyer at its millisecond, in the order of
// their times, whether due within a turn, turns ahead, in the past, or
// after the taker was held up for longer than a turn.
func TestWheel(t *testing.T) {
	w := newWheel(1000)
	rng := rand.New(rand.NewPCG(1, 2))
	due := map[uint32]int32{}
	for i := range uint32(5000) {
		d := int32(1000 + rng.IntN(3*wheelSlots)) // up to three turns ahead
		if i%100 == 0 {
			d = 500 // in the past: due at once
		}
		due[i] = d
		w.add(i, d)
	}
	if w.len() != 5000 {
		t.Fatalf("%d waiting", w.len())
	}
	var got []wheelEntry
	for now := int32(1000); now < 1000+3*wheelSlots+10; now += int32(1 + rng.IntN(50)) {
		before := len(got)
		got = w.take(now, got)
		for _, e := range got[before:] {
			want := max(due[e.idx], 1000)
			if want > now {
				t.Fatalf("buyer %d due at %d taken at %d", e.idx, want, now)
			}
			if now-want > 50 {
				t.Fatalf("buyer %d due at %d taken only at %d", e.idx, want, now)
			}
		}
	}
	if len(got) != 5000 || w.len() != 0 {
		t.Fatalf("%d taken, %d left", len(got), w.len())
	}
	if !slices.IsSortedFunc(got, func(a, b wheelEntry) int { return int(max(a.due, 1000) - max(b.due, 1000)) }) {
		// Within one take the order is by slot, and takes are in time order.
		t.Error("taken out of the order of their times")
	}
	// Held up for two turns: everything due by now comes back at once.
	w.add(1, 70_000)
	w.add(2, 200_000)
	w.add(3, 400_000)
	got = w.take(300_000, got[:0])
	if len(got) != 2 || w.len() != 1 {
		t.Fatalf("after a stall: took %v, %d left", got, w.len())
	}
	if got = w.take(400_000, got[:0]); len(got) != 1 || got[0].idx != 3 {
		t.Fatalf("then %v", got)
	}
}

// gateTicket is an answer as the gate writes it (admission/line.go).
const gateTicket = `{"ticket_id":"a73oi2gj5oocrxxgc73ldx34qe","sale":"room","buyer_id":"bench-r0-1-2","state":"your_turn",` +
	`"claimed":true,"rejoined":false,"drawn":true,"position":4141,"let_in":4200,"line_length":37843,` +
	`"estimated_wait_seconds":1.25,"poll_after_seconds":40,"pass":"v1.abc_DEF-123","pass_expires_at":"2026-12-07T11:46:06.123Z",` +
	`"joined_at":"2026-12-07T11:43:58.131004496Z","starts_at":"2026-12-07T11:44:03Z","order_url":"/v1/sales/room/orders"}` + "\n"

func TestTicketAnswer(t *testing.T) {
	var a ticketAnswer
	if !a.parse([]byte(gateTicket)) {
		t.Fatal("the gate's answer not read")
	}
	if string(a.ticket) != "a73oi2gj5oocrxxgc73ldx34qe" || string(a.state) != "your_turn" || !a.drawn || a.rejoined ||
		a.position != 4141 || !a.hasEstimate || a.estimate != 1.25 || a.pollAfter != 40 || string(a.pass) != "v1.abc_DEF-123" ||
		string(a.passExp) != "2026-12-07T11:46:06.123Z" || string(a.orderURL) != "/v1/sales/room/orders" {
		t.Fatalf("%+v", a)
	}
	waiting := `{ "state" : "waiting", "position": null, "estimated_wait_seconds": null, "poll_after_seconds": 5, "rejoined": true }`
	if !a.parse([]byte(waiting)) || a.position != 0 || a.hasEstimate || a.pollAfter != 5 || !a.rejoined {
		t.Fatalf("spaces and nulls: %+v", a)
	}
	// An escape, a nested value: read by encoding/json instead.
	if !a.parse([]byte(`{"state":"wait\u0069ng","x":{"y":[1,2]},"position":7}`)) || string(a.state) != "waiting" || a.position != 7 {
		t.Fatalf("escaped: %+v", a)
	}
	for _, bad := range []string{"", "{}", `{"state":"waiting"`, `[1]`, `{"state":"waiting","position":"7"}`, `{"position":7}`,
		`{"state":"waiting","poll_after_seconds":1.5}`, "<html>"} {
		if a.parse([]byte(bad)) {
			t.Errorf("%q read as a ticket: %+v", bad, a)
		}
	}
	body := []byte(gateTicket)
	if n := testing.AllocsPerRun(100, func() { a.parse(body) }); n != 0 {
		t.Errorf("%v allocations a poll's answer", n)
	}
}

// The quick reader and encoding/json agree on every answer the quick
// one accepts.
func FuzzTicketAnswer(f *testing.F) {
	f.Add([]byte(gateTicket))
	f.Add([]byte(`{"state":"waiting","position":null,"poll_after_seconds":5}`))
	f.Add([]byte(`{"state":"lapsed","rejoined":true,"estimated_wait_seconds":-1e3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var a ticketAnswer
		if !a.parse(body) {
			return
		}
		var b ticketAnswer
		if !b.slowParse(body) {
			t.Fatalf("%q: read quickly, refused by encoding/json", body)
		}
		if !bytes.Equal(a.state, b.state) || !bytes.Equal(a.ticket, b.ticket) || !bytes.Equal(a.pass, b.pass) ||
			a.position != b.position || a.hasEstimate != b.hasEstimate || (a.hasEstimate && a.estimate != b.estimate) ||
			a.pollAfter != b.pollAfter || a.drawn != b.drawn || a.rejoined != b.rejoined {
			t.Fatalf("%q: quick %+v, encoding/json %+v", body, a, b)
		}
	})
}

// A poll's connection: kept alive across polls, redialled when the gate
// closed it while idle, closed when told to, and an answer it cannot
// frame, or none in time, is an error.
func TestPollConn(t *testing.T) {
	var conns, hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch id := strings.TrimPrefix(r.URL.Path, "/base/v1/tickets/"); id {
		case "close":
			w.Header().Set("Connection", "close")
		case "chunked":
			w.(http.Flusher).Flush() // no Content-Length: chunked
		case "slow":
			time.Sleep(300 * time.Millisecond)
		case "busy":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, `{"state":"waiting","n":%d,"id":"%s","accept":"%s"}`, n, r.URL.Path, r.Header.Get("Accept"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := newPollConn(strings.TrimPrefix(srv.URL, "http://"), "/base/v1/tickets/", false, time.Second)
	defer p.close()
	get := func(id string, timeout time.Duration) error {
		p.setID(func(b []byte) []byte { return append(b, id...) })
		return p.get(time.Now().Add(timeout))
	}
	for i := range 3 {
		if err := get("abc", time.Second); err != nil || p.status != 200 || !strings.Contains(string(p.body), `"id":"/base/v1/tickets/abc","accept":"application/json"`) {
			t.Fatalf("poll %d: %v %d %s", i, err, p.status, p.body)
		}
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections for 3 polls", conns.Load())
	}
	if err := get("busy", time.Second); err != nil || p.status != 503 || p.retryAfter != 3 {
		t.Fatalf("503: %v %d %d", err, p.status, p.retryAfter)
	}
	if err := get("close", time.Second); err != nil || p.conn != nil {
		t.Fatalf("Connection: close: %v, conn kept %v", err, p.conn != nil)
	}
	if err := get("abc", time.Second); err != nil || conns.Load() != 2 {
		t.Fatalf("after a close: %v, %d connections", err, conns.Load())
	}
	srv.CloseClientConnections() // the gate drops the idle connection
	if err := get("abc", time.Second); err != nil || p.status != 200 {
		t.Fatalf("after the gate closed it: %v", err)
	}
	if err := get("chunked", time.Second); !errors.Is(err, errAnswer) {
		t.Fatalf("chunked: %v", err)
	}
	if err := get("slow", 100*time.Millisecond); !isTimeout(err) || transportCause(err) != "timeout" {
		t.Fatalf("slow: %v", err)
	}
}

// Transport errors are named by cause, whatever the address.
func TestTransportCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	if got := transportCause(err); got != "connection refused" {
		t.Errorf("refused: %q (%v)", got, err)
	}
	for err, want := range map[error]string{
		io.EOF: "EOF", io.ErrUnexpectedEOF: "EOF", syscall.ECONNRESET: "connection reset",
		fmt.Errorf("read: %w", syscall.EPIPE): "broken pipe", errRunOver: "the run ended",
	} {
		if got := transportCause(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
	long := errors.New(strings.Repeat("x", 200))
	if got := transportCause(long); len(got) != 80 {
		t.Errorf("a long error kept %d bytes", len(got))
	}
}

func TestParseShard(t *testing.T) {
	for s, want := range map[string]Shard{"1/1": {0, 1}, "2/3": {1, 3}, "3/3": {2, 3}} {
		if got, err := ParseShard(s); err != nil || got != want || got.String() != s {
			t.Errorf("%s: %+v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "0/3", "4/3", "1/0", "a/b", "1/3x", "-1/3", "1 / 3"} {
		if _, err := ParseShard(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	// Every buyer in exactly one shard.
	for _, total := range []int{0, 1, 2, 7, 100} {
		n := 0
		for i := range 3 {
			n += Shard{i, 3}.count(total)
		}
		if n != total {
			t.Errorf("%d buyers in 3 shards: %d", total, n)
		}
	}
}

// A shard's records read back as they were written.
func TestBuyerRecordsRoundTrip(t *testing.T) {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	sh := Shard{Index: 1, Of: 3}
	c := newCrowd("r1", sh, 10, 2, 1, start.Add(-time.Minute), start)
	for i := range c.buyers {
		b := &c.buyers[i]
		b.flags |= fTicket | fDrawn
		b.ticket[0], b.position, b.current = byte(i+1), uint32(i+10), uint32(i+20)
		b.joinAt, b.proofUS = c.ms(start.Add(-time.Duration(i)*time.Second)), uint32(i*7)
		b.outcome = c.names.code(fmt.Sprintf("outcome_%d", i%2))
		if i == 2 {
			b.flags |= fTurn | fServed
			b.turnAt = c.ms(start.Add(1500 * time.Millisecond))
			c.setOrder(uint32(i), "room-1-abc", "us9") // a sale with variants: the variant goes with the order
		}
	}
	c.setTicket(0, []byte("not-base32"))
	st := newCrowdStats()
	_ = st.lat[latPoll].RecordValue(1234)
	rec := recordsOf(c, etaErrors{pollRel: []float32{0.5}, pollAbs: []float32{2}, stride: 2}, st)
	js, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var back BuyerRecords
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	all := newCrowd("r1", Shard{}, 10, 2, 1, start, start)
	eta, lat, err := back.unpack(all, sh)
	if err != nil {
		t.Fatal(err)
	}
	for l := range c.buyers {
		a, b := c.buyers[l], all.buyers[c.global(uint32(l))]
		if a.ticket != b.ticket || a.position != b.position || a.current != b.current || a.flags != b.flags ||
			c.sinceStart(a.joinAt) != all.sinceStart(b.joinAt) || a.proofUS != b.proofUS ||
			c.names.name(a.outcome) != all.names.name(b.outcome) {
			t.Fatalf("buyer %d: %+v, read back %+v", l, a, b)
		}
	}
	if all.sinceStart(all.buyers[c.global(2)].turnAt) != 1.5 || all.order(uint32(c.global(2))) != "room-1-abc" || all.variant(uint32(c.global(2))) != "us9" ||
		all.ticket(uint32(c.global(0))) != "not-base32" || all.id(uint32(c.global(3))) != c.id(3) {
		t.Fatalf("turn, order, variant, odd ticket or id lost")
	}
	if len(eta.pollRel) != 1 || eta.pollAbs[0] != 2 || eta.stride != 2 || lat[latPoll].TotalCount() != 1 {
		t.Fatalf("estimates %+v, %d latencies", eta, lat[latPoll].TotalCount())
	}
	back.Data = back.Data[:len(back.Data)/2]
	if _, _, err := back.unpack(newCrowd("r1", Shard{}, 10, 2, 1, start, start), sh); !errors.Is(err, errRecords) {
		t.Fatalf("cut records: %v", err)
	}
}

// A lapse seen by its holder is counted once a turn, by why the holder
// missed it: its poll left late, the poll before failed, or it came when
// told (the gate's poll_after_seconds brought it after the window). The
// turn at the back lapsing too ends the buyer lapsed.
func TestLapseCauses(t *testing.T) {
	now := time.Now()
	c := newCrowd("t", Shard{}, 4, 0, 0, now.Add(-time.Minute), now.Add(-30*time.Second))
	r := &crowdRun{c: c, st: newCrowdStats(), wheel: newWheel(0), estLimit: 100, ended: make(chan struct{})}
	w := &crowdWorker{r: r, est: &estimateLog{}}
	lapsed := []byte(`{"state":"lapsed","rejoined":false,"position":3,"poll_after_seconds":2}`)
	for idx, tc := range []struct{ late, failed bool }{{true, false}, {false, true}, {false, false}} {
		for range 2 { // seen twice: counted once
			if !w.ans.parse(lapsed) {
				t.Fatal("not read")
			}
			w.handle(uint32(idx), now, now, false, tc.late, tc.failed)
		}
	}
	if l, f, told := r.st.lapseLate.Load(), r.st.lapseFailed.Load(), r.st.lapseTold.Load(); l != 1 || f != 1 || told != 1 {
		t.Fatalf("late %d, failed %d, came when told %d; want 1 each", l, f, told)
	}
	if b := c.buyers[2]; !b.is(fLapsed) || b.step != stepPoll || b.current != 3 {
		t.Fatalf("after a lapse the buyer asks again (to go to the back): %+v", b)
	}
	// Back in line, then its turn there lapses too: counted, and final.
	w.ans.parse([]byte(`{"state":"waiting","rejoined":true,"position":90,"poll_after_seconds":2}`))
	w.handle(2, now, now, false, false, false)
	if b := c.buyers[2]; b.is(fLapsed) || b.current != 90 || b.position != 3 {
		t.Fatalf("back in line: %+v", b)
	}
	w.ans.parse([]byte(`{"state":"lapsed","rejoined":true,"position":90,"poll_after_seconds":60}`))
	w.handle(2, now, now, false, true, false)
	if b := c.buyers[2]; r.st.lapseLate.Load() != 2 || b.step != stepDone || c.names.name(b.outcome) != "lapsed" {
		t.Fatalf("the second lapse: %d late, %+v", r.st.lapseLate.Load(), b)
	}
}
