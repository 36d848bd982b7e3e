package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/testkit/gatetest"
	"sluice/internal/testkit/testenv"
	"sluice/internal/waitingroom"
	"sluice/internal/waitingroom/line"
	"sluice/loadtest"
)

// The waiting room's promises under faults. Three clustered gates run a
// waiting-room sale whose stock is given back by cancels while buyers
// follow their tickets as the page does (polling when poll_after_seconds
// says, ordering the moment their turn comes; a fifth never come back).
// A loop of faults drawn from a printed seed hits the gates (each kind
// once in the first eight steps): SIGTERM and kill -9 with a restart,
// the room turned off and on, the room off while buyers without a pass
// order (after an order was given back, some of the time), pass_ttl
// changed, cancels and fifty concurrent cancels of one order. After every step,
// and at the end, the promises are checked against a recomputation from
// the durable records (line, pace, ledger):
//
//   - orders in the ledger plus passes outstanding never exceed what the
//     sale takes (no holder of a valid pass can be refused for stock);
//   - no holder of a valid pass was refused for stock;
//   - every gate's figures (let in, outstanding, tickets, the issued and
//     expired counters) equal the recomputation;
//   - the line's public log verifies (sluice line verify, the binary),
//     says what the recomputation says, and is the same on every live
//     gate (linefault_log_test.go);
//   - at the end: the stock exact in the database, every order answered
//     202 there once, the draw verifying, the buyers who came served
//     in draw order, and doctored copies of the log refused.
//
// SLUICE_FAULT_SEEDS picks the seeds ("7,8", or "random:20" for twenty
// fresh ones) and SLUICE_FAULT_STEPS the faults per seed; a failure
// names the seed and the step. CI runs one fixed seed (SLUICE_FAULT_SEEDS=1,2
// runs the two it ran before issue 23 cut the test run's time).
func TestLinePromisesUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("three clustered gates under faults: not in -short")
	}
	seeds, steps := faultSeeds(t, 8)
	binary(t) // built before the clock of any seed starts
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			testenv.Exclusive(t) // three gates and a crowd take both cores
			t.Logf("seed %d, %d steps (rerun: SLUICE_FAULT_SEEDS=%d go test ./cmd/sluice -run TestLinePromisesUnderFaults -v)", seed, steps, seed)
			runLineFaults(t, seed, steps)
		})
	}
}

// faultSeeds are the seeds of a randomized fault test (default 1) and
// its faults per seed (default steps): SLUICE_FAULT_SEEDS ("7,8", or
// "random:20" for twenty fresh ones) and SLUICE_FAULT_STEPS.
func faultSeeds(t *testing.T, steps int) ([]uint64, int) {
	seeds := []uint64{1}
	if v := os.Getenv("SLUICE_FAULT_SEEDS"); v != "" {
		seeds = nil
		if n, ok := strings.CutPrefix(v, "random:"); ok {
			k, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("SLUICE_FAULT_SEEDS=%q", v)
			}
			for range k {
				seeds = append(seeds, rand.Uint64())
			}
		} else {
			for _, f := range strings.Split(v, ",") {
				s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
				if err != nil {
					t.Fatalf("SLUICE_FAULT_SEEDS=%q", v)
				}
				seeds = append(seeds, s)
			}
		}
	}
	if v := os.Getenv("SLUICE_FAULT_STEPS"); v != "" {
		var err error
		if steps, err = strconv.Atoi(v); err != nil {
			t.Fatalf("SLUICE_FAULT_STEPS=%q", v)
		}
	}
	return seeds, steps
}

const (
	faultStock  = 24
	faultBuyers = 72
	faultToken  = "admin-token-for-fault-tests"
)

// faultGate is one gate of the cluster, at fixed addresses so that a
// restart keeps them.
type faultGate struct {
	n                    int
	api, ops, nats, rout string
	dir                  string
	p                    *proc // nil while down
}

type faultCluster struct {
	t     *testing.T
	gates []*faultGate
	mu    sync.Mutex // guards the gates' p
	c     *http.Client
	// res guards what the buyers learn (their order, position, refusal).
	res sync.Mutex
	// lastLog is the line's log as sluice line verify last saved it,
	// lastVerify what it said.
	lastLog, lastVerify string
	// backend, when set, is where gate 1 drains (else its SQLite).
	backend string
}

func addrs(t *testing.T, n int) []string {
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func (fc *faultCluster) args(g *faultGate) []string {
	var routes []string
	for _, o := range fc.gates {
		routes = append(routes, "nats://"+o.rout)
	}
	args := []string{"serve", "--listen", g.api, "--ops-listen", g.ops, "--nats-listen", g.nats,
		"--data-dir", g.dir, "--no-demo", "--server-name", fmt.Sprint("g", g.n), "--cluster-name", "faults",
		"--cluster-listen", g.rout, "--cluster-routes", strings.Join(routes, ","), "--replicas", "3",
		"--admin-token", faultToken, "--publish-timeout", "2s", "--shutdown-timeout", "10s"}
	switch {
	case g.n != 1:
		args = append(args, "--no-drain") // gate 1 drains into its SQLite and takes the cancels
	case fc.backend != "":
		args = append(args, "--backend", fc.backend) // gate 1 drains there instead
	}
	return args
}

func (fc *faultCluster) start(g *faultGate) error {
	p, err := launch(fc.t, "sluice gate up", fc.args(g)...)
	if err != nil {
		return err
	}
	fc.mu.Lock()
	g.p = p
	fc.mu.Unlock()
	return nil
}

// stop ends a gate with sig and waits for it to exit.
func (fc *faultCluster) stop(g *faultGate, sig syscall.Signal) {
	fc.mu.Lock()
	p := g.p
	g.p = nil
	fc.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err // the cleanup reads it again
	case <-time.After(30 * time.Second):
		fc.t.Fatalf("gate %d did not exit on %v", g.n, sig)
	}
}

// live are the gates up now.
func (fc *faultCluster) live() []*faultGate {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []*faultGate
	for _, g := range fc.gates {
		if g.p != nil {
			out = append(out, g)
		}
	}
	return out
}

func (fc *faultCluster) up(n int) bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.gates[n-1].p != nil
}

// get asks a gate, without failing the test on a connection refused
// (the gate may be going down): ok false then.
func get(c *http.Client, url string) (int, map[string]any, bool) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, false
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body, true
}

func do(c *http.Client, method, url, token, body string, hdr map[string]string) (int, map[string]any, bool) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, false
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, true
}

// buyer is one holder of a ticket.
type buyer struct {
	id, ticket string
	absent     bool // not there at the start
	// returns is when an absent buyer comes back after the start (0:
	// never): their turn may have lapsed, and they go to the back.
	returns time.Duration
	// What happened to them: the order they got, and whether a valid
	// pass of theirs was refused for stock (a broken promise).
	order      string
	position   int64
	refused    string
	gaveUpWith string // the last answer, when their pass expired while every try failed
	// trace is what this buyer saw, the last traceLen answers, printed
	// when a check about them fails: which gate said what, and when.
	trace []string
}

const traceLen = 40

// clock is a time of day for the failure messages, to set beside the
// buyers' traces and the steps' log lines.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}

// note records one answer in the buyer's trace (under fc.res).
func (b *buyer) note(fc *faultCluster, format string, args ...any) {
	fc.res.Lock()
	defer fc.res.Unlock()
	if len(b.trace) == traceLen {
		b.trace = b.trace[1:]
	}
	b.trace = append(b.trace, clock(time.Now())+" "+fmt.Sprintf(format, args...))
}

// traceText is the buyer's trace, one answer a line.
func (b *buyer) traceText(fc *faultCluster) string {
	fc.res.Lock()
	defer fc.res.Unlock()
	return "\n\t\t" + strings.Join(b.trace, "\n\t\t")
}

// follow is the buyer's page: poll when told, order at the turn, retry
// an order that failed for want of a gate (same Idempotency-Key) until
// the pass expires.
func (b *buyer) follow(ctx context.Context, fc *faultCluster, rng *rand.Rand, mu *sync.Mutex) {
	pick := func() string {
		live := fc.live()
		if len(live) == 0 {
			return ""
		}
		mu.Lock()
		g := live[rng.IntN(len(live))]
		mu.Unlock()
		return "http://" + g.api
	}
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for ctx.Err() == nil {
		base := pick()
		if base == "" {
			wait(200 * time.Millisecond)
			continue
		}
		status, tk, ok := get(fc.c, base+"/v1/tickets/"+b.ticket)
		b.note(fc, "GET ticket at %s: %d %v position %v pass_expires_at %v poll_after %v reason %v", base, status, tk["state"], tk["position"], tk["pass_expires_at"], tk["poll_after_seconds"], tk["reason"])
		if !ok || status != 200 {
			// Gone, restarting, the room off or being read: another gate,
			// or the same one shortly, answers.
			wait(300 * time.Millisecond)
			continue
		}
		switch tk["state"] {
		case "ordered":
			fc.res.Lock()
			if b.order == "" {
				b.refused = "the ticket reads ordered, but this buyer's order never got a 202"
			}
			fc.res.Unlock()
			return
		case "closed":
			return
		case "your_turn":
			pass, _ := tk["pass"].(string)
			exp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(tk["pass_expires_at"]))
			pos, _ := tk["position"].(float64)
			order, refused, last := b.buy(ctx, fc, pick, pass, exp)
			fc.res.Lock()
			b.position, b.order, b.refused, b.gaveUpWith = int64(pos), order, refused, last
			fc.res.Unlock()
			if order != "" || refused != "" {
				return
			}
			continue // expired meanwhile: the ticket says what now
		}
		after, _ := tk["poll_after_seconds"].(float64)
		if !wait(time.Duration(max(1, after)) * time.Second) {
			return
		}
	}
}

// buy orders with a pass until it is answered or the pass expires.
func (b *buyer) buy(ctx context.Context, fc *faultCluster, pick func() string, pass string, exp time.Time) (order, refused, last string) {
	for ctx.Err() == nil && time.Now().Before(exp.Add(-200*time.Millisecond)) {
		base := pick()
		if base == "" {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		status, a, ok := do(fc.c, "POST", base+"/v1/sales/drop/orders", "", `{"buyer_id":"`+b.id+`"}`,
			map[string]string{"Sluice-Pass": pass, "Idempotency-Key": b.ticket})
		last = fmt.Sprint(status, " ", a["reason"])
		b.note(fc, "order at %s: %s (pass expires %s)", base, last, clock(exp))
		switch {
		case ok && status == 202:
			return fmt.Sprint(a["order_id"]), "", ""
		case ok && status == 410 && time.Now().Before(exp):
			return "", fmt.Sprintf("refused with a valid pass (position %d): %d %v", b.position, status, a["reason"]), ""
		case ok && status == 403 && a["reason"] == "bad_pass" && time.Now().Before(exp.Add(-time.Second)):
			return "", fmt.Sprintf("valid pass refused: %v", a["detail"]), ""
		case ok && status == 409: // already ordered: the key's order
			return fmt.Sprint(a["order_id"]), "", ""
		}
		time.Sleep(150 * time.Millisecond)
	}
	return "", "", last
}

// walkIns are n buyers without a pass or a ticket who order for d while
// the room is off, at gates picked at random, until they are answered
// 202 or sold out (stock_held, a gate down or a gate a refresh behind
// the room's change: they try again). It returns the orders answered
// 202 and a count of the answers.
func (fc *faultCluster) walkIns(t *testing.T, prefix string, n int, d time.Duration, rng *rand.Rand, mu *sync.Mutex) ([]string, map[string]int) {
	var (
		wg      sync.WaitGroup
		res     sync.Mutex
		orders  []string
		answers = map[string]int{}
	)
	until := time.Now().Add(d)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(prefix, "-", i)
			for time.Now().Before(until) {
				live := fc.live()
				if len(live) == 0 {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Lock()
				g := live[rng.IntN(len(live))]
				mu.Unlock()
				status, a, ok := do(fc.c, "POST", "http://"+g.api+"/v1/sales/drop/orders", "", `{"buyer_id":"`+id+`"}`,
					map[string]string{"Idempotency-Key": id})
				what := fmt.Sprint(status, " ", a["reason"])
				res.Lock()
				answers[what]++
				res.Unlock()
				switch {
				case !ok, status == 503, status == 428, status == 409 && a["reason"] == "stock_held":
					time.Sleep(200 * time.Millisecond)
					continue
				case status == 202:
					res.Lock()
					orders = append(orders, fmt.Sprint(a["order_id"]))
					res.Unlock()
				case status == 410:
				default:
					t.Errorf("%s: an order without a pass, the room off: %s %v", id, what, a)
				}
				return
			}
		}()
	}
	wg.Wait()
	return orders, answers
}

// lineAudit is the line recomputed from its durable records.
type lineAudit struct {
	st          line.State
	tickets     map[string]line.Ticket // by ticket id
	admitted    int64
	limit       int64
	ordered     map[string]bool // buyers with an order in the ledger
	outstanding int64           // claimed, let in, unexpired, its buyer without an order
	pending     int64           // let in, unclaimed, its window open, its buyer without an order
	lateUses    int64           // uses recorded after their pass expired
	// claimRecords are the claim records in the pace stream: at most one
	// per claimed turn, however many gates and polls asked.
	claimRecords, claimedTurns int64
	rejoinRecords              int64
}

// audit reads the line, pace and order streams through a live gate's
// NATS and recomputes the line at now with the same pure Book.
func (fc *faultCluster) audit(ctx context.Context, now time.Time) (lineAudit, error) {
	live := fc.live()
	if len(live) == 0 {
		return lineAudit{}, fmt.Errorf("no gate up")
	}
	nc, err := nats.Connect("nats://"+live[0].nats, nats.Timeout(5*time.Second))
	if err != nil {
		return lineAudit{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return lineAudit{}, err
	}
	keys, err := waitingroom.NewStore(js, streams.Options{Replicas: 3}).Keys(ctx, "drop")
	if err != nil {
		return lineAudit{}, err
	}
	book := line.NewBook(keys.Seed)
	a := lineAudit{tickets: map[string]line.Ticket{}, ordered: map[string]bool{}}
	var ids []line.TicketKey
	err = readStream(ctx, js, streams.LineName("drop"), nil, func(m jetstream.Msg, seq uint64, at time.Time) {
		waitingroom.ApplyLine(book, "drop", m.Subject(), m.Data(), at, seq)
		if strings.HasPrefix(m.Subject(), "sluice.line.drop.r.") {
			a.rejoinRecords++
			return
		}
		var r struct{ Ticket string }
		if json.Unmarshal(m.Data(), &r) == nil {
			if k, ok := line.KeyOf(r.Ticket); ok {
				ids = append(ids, k)
			}
		}
	})
	if err != nil {
		return a, err
	}
	type use struct {
		key line.TicketKey
		at  time.Time
	}
	var uses []use
	turns := map[string]bool{}
	err = readStream(ctx, js, streams.Pace, waitingroom.PaceSubjects("drop"),
		func(m jetstream.Msg, seq uint64, at time.Time) {
			waitingroom.ApplyPace(book, "drop", m.Subject(), m.Data(), at, seq)
			switch m.Subject() {
			case waitingroom.PaceUsedSubject("drop"):
				if k, ok := line.KeyOf(string(m.Data())); ok {
					uses = append(uses, use{k, at})
				}
			case waitingroom.PaceClaimSubject("drop"):
				var c struct {
					Ticket   string `json:"ticket"`
					Position int64  `json:"position"`
				}
				if json.Unmarshal(m.Data(), &c) == nil {
					if _, ok := line.KeyOf(c.Ticket); ok {
						a.claimRecords++
						turns[fmt.Sprint(c.Ticket, c.Position)] = true
					}
				}
			}
		})
	if err != nil {
		return a, err
	}
	err = readStream(ctx, js, ledger.StreamName("drop"), nil, func(m jetstream.Msg, seq uint64, at time.Time) {
		var o struct {
			Buyer string `json:"buyer_id"`
		}
		_ = json.Unmarshal(m.Data(), &o)
		a.ordered[o.Buyer] = true
		a.admitted++
	})
	if err != nil {
		return a, err
	}
	str, err := js.Stream(ctx, ledger.StreamName("drop"))
	if err != nil {
		return a, err
	}
	a.limit = str.CachedInfo().Config.MaxMsgs
	// Lapses judged as the gates judge them: a turn lapses claimGrace
	// (admission's clockSkew + 1 s) after its window closed.
	a.st = book.StateWith(now, 0, 3*time.Second)
	a.claimedTurns = int64(len(turns))
	for _, k := range ids {
		tk, _ := book.Lookup(k)
		a.tickets[k.String()] = tk
		switch {
		case a.ordered[tk.Buyer]:
		case tk.HasPass() && now.Before(tk.PassExpires):
			a.outstanding++
		case tk.LetIn && !tk.Claimed && now.Before(tk.ClaimBy):
			a.pending++
		}
	}
	for _, u := range uses {
		if tk, ok := book.Lookup(u.key); ok && tk.HasPass() && !u.at.Before(tk.PassExpires) {
			a.lateUses++
		}
	}
	return a, nil
}

// readStream reads every message of a stream (those on subjects, when
// given) stored so far.
func readStream(ctx context.Context, js jetstream.JetStream, name string, subjects []string, fn func(m jetstream.Msg, seq uint64, at time.Time)) error {
	str, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	last := str.CachedInfo().State.LastSeq
	if last == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		return err
	}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			fn(m, meta.Sequence.Stream, meta.Timestamp)
			if meta.Sequence.Stream >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			// The filtered subjects hold nothing more up to last.
			info, err := cons.Info(ctx)
			if err != nil || info.NumPending == 0 {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// checkPromises checks the invariants against the records now, and that
// every live gate's figures come to equal them.
func (fc *faultCluster) checkPromises(t *testing.T, when string) lineAudit {
	t.Helper()
	// A gate just restarted (kill -9 in a cluster) reads its line again
	// once its server has caught up: its figures may take a while to
	// come, and must then agree.
	const settle = 60 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), settle+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(settle)
	var a lineAudit
	var mismatch string
	for {
		var err error
		a, err = fc.audit(ctx, time.Now())
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: cannot read the records: %v", when, err)
			}
			time.Sleep(250 * time.Millisecond)
			continue
		}
		if a.admitted+a.outstanding+a.pending > a.limit {
			t.Fatalf("%s: %d orders, %d valid passes and %d turns let in that may still be claimed, of buyers without an order, for %d items: a holder of a valid pass can be refused",
				when, a.admitted, a.outstanding, a.pending, a.limit)
		}
		mismatch = fc.figuresDiffer(a)
		if mismatch == "" {
			fc.lastLog = fc.checkLog(t, when)
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: a gate's figures differ from the records for %v: %s", when, settle, mismatch)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// figuresDiffer compares each live gate's line and counters with the
// recomputation; "" when all agree.
func (fc *faultCluster) figuresDiffer(a lineAudit) string {
	for _, g := range fc.live() {
		status, v, ok := get(fc.c, "http://"+g.api+"/v1/sales/drop/line")
		if !ok {
			continue // going down
		}
		if status != 200 {
			return fmt.Sprintf("gate %d: GET the line: %d %v", g.n, status, v)
		}
		n := func(k string) int64 { f, _ := v[k].(float64); return int64(f) }
		if n("let_in") != a.st.LetIn || n("passes_outstanding") != a.st.Outstanding || n("line_length") != a.st.Tickets {
			return fmt.Sprintf("gate %d says let in %d, %d outstanding, %d tickets; the records %d, %d, %d",
				g.n, n("let_in"), n("passes_outstanding"), n("line_length"), a.st.LetIn, a.st.Outstanding, a.st.Tickets)
		}
		issued, expired, lapsed, claims, err := lineCounters("http://" + g.ops + "/metrics")
		if err != nil {
			continue
		}
		// Claims count from their durable records: every gate the same,
		// one record per claimed turn.
		if claims != a.st.Claimed || a.claimRecords != a.claimedTurns || a.claimRecords < a.st.Claimed {
			return fmt.Sprintf("gate %d counts %d claims; the records %d claimed turns in %d claim records of %d turns",
				g.n, claims, a.st.Claimed, a.claimRecords, a.claimedTurns)
		}
		if issued != a.st.LetIn || expired != a.st.Expired || lapsed != a.st.Lapsed {
			return fmt.Sprintf("gate %d counts %d issued, %d expired, %d lapsed; the records %d let in, %d expired (%d uses after expiry), %d lapsed",
				g.n, issued, expired, lapsed, a.st.LetIn, a.st.Expired, a.lateUses, a.st.Lapsed)
		}
	}
	return ""
}

// lineCounters reads the line's counters and gauges of sale drop from
// /metrics: passes issued, passes expired, turns lapsed, claims.
func lineCounters(url string) (issued, expired, lapsed, claims int64, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	for _, ln := range strings.Split(string(b), "\n") {
		for name, dst := range map[string]*int64{
			`sluice_line_passes_issued_total{sale="drop"}`: &issued,
			`sluice_line_passes_expired{sale="drop"}`:      &expired,
			`sluice_line_lapsed_turns{sale="drop"}`:        &lapsed,
			`sluice_line_claims_total{sale="drop"}`:        &claims,
		} {
			if v, ok := strings.CutPrefix(ln, name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				*dst = int64(f)
			}
		}
	}
	return issued, expired, lapsed, claims, nil
}

func runLineFaults(t *testing.T, seed uint64, steps int) {
	// The faults and the buyers draw from generators of their own: the
	// buyers' picks of a gate happen as the run's timing has them, and a
	// shared generator made the same seed draw other faults.
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	pickRng := rand.New(rand.NewPCG(seed^0xb0b, seed))
	var rngMu sync.Mutex
	a := addrs(t, 12)
	fc := &faultCluster{t: t, c: gatetest.Client()}
	for i := range 3 {
		fc.gates = append(fc.gates, &faultGate{n: i + 1, api: a[4*i], ops: a[4*i+1], nats: a[4*i+2], rout: a[4*i+3], dir: t.TempDir()})
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, g := range fc.gates {
		wg.Add(1)
		go func() { // JetStream waits for a quorum: the three start together
			defer wg.Done()
			errs[i] = fc.start(g)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("gate %d: %v", i+1, err)
		}
	}
	g1 := fc.gates[0]
	startsAt := time.Now().Add(6 * time.Second).UTC()
	body := fmt.Sprintf(`{"stock":%d,"starts_at":%q,"waiting_room":true,"line_opens":"1h","pass_ttl":"20s"}`,
		faultStock, startsAt.Format(time.RFC3339Nano))
	// A new cluster may still be electing the leaders of its streams:
	// the admin API answers 503 until then, and the sale is made again.
	gatetest.Eventually(t, 30*time.Second, "the sale to be made", func() bool {
		status, v, _ := do(fc.c, "PUT", "http://"+g1.ops+"/admin/sales/drop", faultToken, body, nil)
		if status != 200 && status != 201 && status != 503 {
			t.Fatalf("make the sale: %d %v", status, v)
		}
		return status == 200 || status == 201
	})
	for _, g := range fc.gates {
		gatetest.Eventually(t, 30*time.Second, "every gate to open the room", func() bool {
			status, _, _ := get(fc.c, "http://"+g.api+"/v1/sales/drop/line")
			return status == 200
		})
	}
	buyers := make([]*buyer, faultBuyers)
	for i := range buyers {
		b := &buyer{id: fmt.Sprint("buyer-", i), absent: rng.IntN(5) == 0}
		if b.absent && rng.IntN(2) == 0 {
			b.returns = time.Duration(10+rng.IntN(30)) * time.Second
		}
		g := fc.gates[i%3]
		status, v, _ := do(fc.c, "POST", "http://"+g.api+"/v1/sales/drop/line", "", `{"buyer_id":"`+b.id+`"}`, nil)
		if status != 201 {
			t.Fatalf("join %d: %d %v", i, status, v)
		}
		b.ticket = fmt.Sprint(v["ticket_id"])
		buyers[i] = b
	}
	time.Sleep(time.Until(startsAt))
	ctx, cancel := context.WithCancel(context.Background())
	var bw sync.WaitGroup
	defer func() { cancel(); bw.Wait() }()
	for _, b := range buyers {
		if b.absent && b.returns == 0 {
			continue
		}
		bw.Add(1)
		go func() {
			defer bw.Done()
			if b.absent {
				select { // away at the start, back later
				case <-time.After(b.returns):
				case <-ctx.Done():
					return
				}
			}
			b.follow(ctx, fc, pickRng, &rngMu)
		}()
	}
	fc.checkPromises(t, "at the start")

	confirmed := func() []string {
		fc.res.Lock()
		defer fc.res.Unlock()
		var out []string
		for _, b := range buyers {
			if b.order != "" {
				out = append(out, b.order)
			}
		}
		return out
	}
	cancelled := map[string]bool{}
	var walkedIn []string // orders without a pass answered 202 while the room was off
	cancelOne := func(id string, times int) string {
		if !fc.up(1) {
			return "gate 1 (the drain) is down: no cancel"
		}
		answers := map[int]int{}
		var mu sync.Mutex
		var cw sync.WaitGroup
		for range times {
			cw.Add(1)
			go func() {
				defer cw.Done()
				status, _, ok := do(fc.c, "POST", "http://"+g1.ops+"/admin/orders/"+id+"/cancel", faultToken, "", nil)
				if !ok {
					status = -1
				}
				mu.Lock()
				answers[status]++
				mu.Unlock()
			}()
		}
		cw.Wait()
		if answers[200] == times {
			cancelled[id] = true
		} else if answers[409] == 0 && answers[-1] == 0 {
			t.Fatalf("seed %d: %d cancels of %s answered %v, want all 200", seed, times, id, answers)
		}
		return fmt.Sprintf("cancel %s ×%d: %v", id, times, answers)
	}
	// The first faults are every kind once, in an order the seed draws;
	// then any kind: a run of eight steps or more tries each fault.
	const kinds = 8
	order := rng.Perm(kinds)
	for step := 1; step <= steps; step++ {
		rngMu.Lock()
		kind := rng.IntN(kinds)
		if step <= kinds {
			kind = order[step-1]
		}
		n := 1 + rng.IntN(3)
		pause := time.Duration(1500+rng.IntN(2500)) * time.Millisecond
		pick := rng.IntN(1 << 20)
		rngMu.Unlock()
		g := fc.gates[n-1]
		var did string
		switch kind {
		case 0, 1: // a gate stops and comes back
			sig := syscall.SIGTERM
			if kind == 1 {
				sig = syscall.SIGKILL
			}
			fc.stop(g, sig)
			time.Sleep(pause / 2)
			if err := fc.start(g); err != nil {
				t.Fatalf("seed %d step %d: gate %d does not come back after %v: %v", seed, step, n, sig, err)
			}
			did = fmt.Sprintf("gate %d %v and restarted", n, sig)
		case 2: // the room off and on
			for _, on := range []string{"false", "true"} {
				if status, v, _ := do(fc.c, "PATCH", "http://"+g1.ops+"/admin/sales/drop", faultToken, `{"waiting_room":`+on+`}`, nil); status != 200 {
					t.Fatalf("seed %d step %d: PATCH waiting_room %s: %d %v", seed, step, on, status, v)
				}
				time.Sleep(300 * time.Millisecond)
			}
			did = "the room turned off and on"
		case 3: // pass_ttl changed, 20 s to 29 s
			// Never under 20 s: a pass lives pass_ttl from its claim, and
			// a claim stored just before its stream's leader dies is read
			// only once JetStream has elected another, up to 10 s later
			// (nats-server's election timeout is 4 to 9 s). With 9 s
			// passes, a holder polling all along saw their whole pass go
			// by unread (docs/waiting-room.md, "What survives what").
			ttl := 20 + pick%10
			if status, v, _ := do(fc.c, "PATCH", "http://"+g1.ops+"/admin/sales/drop", faultToken, fmt.Sprintf(`{"pass_ttl":"%ds"}`, ttl), nil); status != 200 {
				t.Fatalf("seed %d step %d: PATCH pass_ttl: %d %v", seed, step, status, v)
			}
			did = fmt.Sprintf("pass_ttl %ds", ttl)
		case 4, 5: // a cancel, or fifty at once of one order
			ids := confirmed()
			if len(ids) == 0 {
				did = "no order to cancel yet"
				break
			}
			id := ids[pick%len(ids)]
			if cancelled[id] {
				did = "cancel of a cancelled order"
			}
			times := 1
			if kind == 5 {
				times = 50
			}
			did += cancelOne(id, times)
		case 6: // the room off while orders without a pass arrive, and on again
			if status, v, _ := do(fc.c, "PATCH", "http://"+g1.ops+"/admin/sales/drop", faultToken, `{"waiting_room":false}`, nil); status != 200 {
				t.Fatalf("seed %d step %d: PATCH waiting_room false: %d %v", seed, step, status, v)
			}
			// An order given back while the room is off is an item no
			// pass holds: one of them may take it, and no more.
			gave := "no order given back"
			if ids := confirmed(); len(ids) > 0 && pick%2 == 0 {
				if id := ids[pick%len(ids)]; !cancelled[id] {
					gave = cancelOne(id, 1)
				}
			}
			got, answers := fc.walkIns(t, fmt.Sprint("walkin-", step), 6, pause, pickRng, &rngMu)
			walkedIn = append(walkedIn, got...)
			fc.checkPromises(t, fmt.Sprintf("seed %d step %d, the room off after %d orders without a pass", seed, step, len(got)))
			if status, v, _ := do(fc.c, "PATCH", "http://"+g1.ops+"/admin/sales/drop", faultToken, `{"waiting_room":true}`, nil); status != 200 {
				t.Fatalf("seed %d step %d: PATCH waiting_room true: %d %v", seed, step, status, v)
			}
			did = fmt.Sprintf("the room off for %v (%s) while six buyers without a pass ordered: %v", pause, gave, answers)
		default:
			did = "nothing"
		}
		time.Sleep(pause)
		t.Logf("step %d (%s): %s", step, clock(time.Now()), did)
		fc.checkPromises(t, fmt.Sprintf("seed %d after step %d (%s)", seed, step, did))
	}

	// The end: every gate up, the crowd served as far as the stock goes.
	for _, g := range fc.gates {
		if !fc.up(g.n) {
			if err := fc.start(g); err != nil {
				t.Fatal(err)
			}
		}
	}
	gatetest.Eventually(t, 90*time.Second, "the stock to sell to those who came", func() bool {
		status, v, ok := get(fc.c, "http://"+g1.api+"/v1/sales/drop")
		return ok && status == 200 && v["state"] == "sold_out" && v["queue_depth"] == float64(0)
	})
	time.Sleep(2 * time.Second) // polls in flight settle
	cancel()
	bw.Wait()
	a2 := fc.checkPromises(t, fmt.Sprintf("seed %d at the end", seed))
	for _, b := range buyers {
		if b.refused != "" {
			t.Errorf("seed %d: %s: %s; what they saw:%s", seed, b.id, b.refused, b.traceText(fc))
		}
		if b.gaveUpWith != "" {
			t.Errorf("seed %d: %s's pass expired while every order failed (last: %s); what they saw:%s", seed, b.id, b.gaveUpWith, b.traceText(fc))
		}
	}
	// The stock exact in the database, each order there once.
	db := openSQLite(t, filepath.Join(g1.dir, "orders.db"))
	if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE sale = 'drop' AND status = 'confirmed'`); n != faultStock {
		t.Errorf("seed %d: %d orders confirmed and not cancelled, want the stock, %d", seed, n, faultStock)
	}
	for _, id := range append(confirmed(), walkedIn...) {
		if n := countRows(db, `SELECT COUNT(*) FROM orders WHERE order_id = ?`, id); n != 1 {
			t.Errorf("seed %d: order %s answered 202 is in the database %d times", seed, id, n)
		}
	}
	// The draw verifies from public data.
	d, err := loadtest.FetchDraw(context.Background(), fc.c, "http://"+g1.api, "drop")
	if err != nil {
		t.Fatal(err)
	}
	if err := line.VerifyDraw(d.Seed, d.Commitment, d.Hashes); err != nil {
		t.Errorf("seed %d: the draw does not verify: %v", seed, err)
	}
	t.Logf("seed %d: sluice line verify at the end:\n%s", seed, fc.lastVerify)
	refuseDoctored(t, fc.lastLog)
	// Those who came were served in draw order: nobody who came waits
	// unserved ahead of someone served.
	// One who came back after their turn lapsed was put at the back
	// (once, if stock remained): they count at that place, and one who
	// stayed lapsed was not there for their turn.
	var came []*buyer
	back := 0
	for _, b := range buyers {
		tk := a2.tickets[b.ticket]
		if tk.Rejoined {
			back++
		}
		if b.absent && (b.returns == 0 || (tk.Offered && !tk.Claimed && !time.Now().Before(tk.ClaimBy))) {
			continue
		}
		// A turn whose claim reached no record within its window lapsed:
		// for the line its holder was away (every poll of theirs may have
		// met a gate going down, or the line's stream electing a leader
		// for most of the window), and they go to the back if they ask
		// again while stock remains. Their place is not a promise broken;
		// a valid pass refused is (checked above).
		if !tk.Rejoined && tk.Offered && !tk.Claimed && !time.Now().Before(tk.ClaimBy) && b.order == "" {
			t.Logf("seed %d: %s's turn at position %d lapsed with no claim recorded (absent at the start %v)", seed, b.id, tk.Position, b.absent)
			continue
		}
		b.position = tk.Position
		came = append(came, b)
	}
	if int64(back) != a2.st.Rejoined || a2.rejoinRecords != a2.st.Rejoined {
		t.Errorf("seed %d: %d tickets read rejoined, the line counts %d, %d rejoin records", seed, back, a2.st.Rejoined, a2.rejoinRecords)
	}
	slices.SortFunc(came, func(x, y *buyer) int { return int(x.position - y.position) })
	lastServed := -1
	for i, b := range came {
		if b.order != "" {
			lastServed = i
		}
	}
	for _, b := range came[:lastServed+1] {
		if b.order == "" {
			tk := a2.tickets[b.ticket]
			t.Errorf("seed %d: %s at position %d came and was not served; %s at %d was (absent at the start %v, back after %v; ticket: offered %v at %s claimed %v at %s rejoined %v used %v let in %v at %s, pass expiring %s; refused %q, last %q); what they saw:%s",
				seed, b.id, b.position, came[lastServed].id, came[lastServed].position,
				b.absent, b.returns, tk.Offered, clock(tk.OfferedAt), tk.Claimed, clock(tk.ClaimedAt), tk.Rejoined, tk.Used, tk.LetIn, clock(tk.LetInAt), clock(tk.PassExpires),
				b.refused, b.gaveUpWith, b.traceText(fc))
		}
	}
	served := len(confirmed())
	t.Logf("seed %d: %d came, %d served, %d without a pass while the room was off (%d cancelled), let in %d, %d passes expired, %d turns claimed (%d claim records), %d lapsed, %d back at the end of the line, %d tickets; every promise held",
		seed, len(came), served, len(walkedIn), len(cancelled), a2.st.LetIn, a2.st.Expired, a2.st.Claimed, a2.claimRecords, a2.st.Lapsed, a2.st.Rejoined, a2.st.Tickets)
}
