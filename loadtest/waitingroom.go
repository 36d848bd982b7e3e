package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"sluice/internal/waitingroom/line"
)

// RoomOptions is a waiting-room rehearsal: buyers join a sale's line
// before its start, poll their ticket as it says, and order with their
// pass when their turn comes.
type RoomOptions struct {
	Target, Sale string
	// Buyers join during the Before that ends at the sale's start, at
	// random times; Late more join during the second after it.
	Buyers, Late int
	Before       time.Duration
	// Connections bounds the requests in flight.
	Connections int
	// MaxDuration bounds the whole run; default: until the start plus 2 minutes.
	MaxDuration time.Duration
	// VerifyTimeout bounds the wait for the drain before the check.
	VerifyTimeout time.Duration
	AllowRemote   bool
	Seed          uint64
	// Progress, if set, gets a line a second.
	Progress io.Writer
	// Sybil is an attacker: one client joining this many ids from the
	// line's opening (the window's start) until the start, SybilWorkers
	// at once (default 1: one core), solving proofs when the sale asks.
	Sybil, SybilWorkers int
	// Abandon is the share of joiners (0 to 1) who never come back
	// after the start: they close the tab once they have a ticket, and
	// their turns lapse.
	Abandon float64
}

// RoomReport is what a waiting-room rehearsal measured and checked.
type RoomReport struct {
	Target   string    `json:"target"`
	Sale     string    `json:"sale"`
	StartsAt time.Time `json:"starts_at"`
	Stock    int64     `json:"stock"`
	Joined   int       `json:"joined"` // tickets taken before the start (drawn)
	Late     int       `json:"late"`   // tickets taken after it
	JoinErrs int       `json:"join_errors"`
	Served   int       `json:"served"` // orders answered 202 with a pass
	// Outcomes of the tickets at the end: served, sold_out, expired, waiting…
	Outcomes map[string]int `json:"outcomes"`
	Polls    int            `json:"polls"`
	// TimeInLine is from the start (or the join, for a late ticket) to
	// the turn, over the buyers served: p50 and p99, seconds.
	TimeInLineP50 float64 `json:"time_in_line_p50_seconds"`
	TimeInLineP99 float64 `json:"time_in_line_p99_seconds"`
	// ETA accuracy: |estimated − actual wait| / max(actual, 1 s), over the
	// estimates of buyers who got their turn, at the join and at polls.
	ETAJoin ETAError `json:"eta_at_join"`
	ETAPoll ETAError `json:"eta_at_polls"`
	// Fairness among the drawn: by decile of join time, how many joined
	// and how many were served; chi-square of the served against the
	// joiners' shares, and its p-value.
	Deciles   []Decile `json:"fairness_deciles"`
	ChiSquare float64  `json:"chi_square"`
	ChiP      float64  `json:"chi_square_p"`
	// The checks.
	Confirmed int64    `json:"confirmed"`
	Checks    []Check  `json:"checks"`
	Passed    bool     `json:"passed"`
	Duration  float64  `json:"duration_seconds"`
	Problems  []string `json:"problems,omitempty"`
	// Sybil is the attacker's take, with --sybil.
	Sybil *SybilReport `json:"sybil,omitempty"`
	// With --abandon: the share asked, the joiners who left, the turns
	// that lapsed and were claimed (the line's count), the time from the
	// start to sold out, and how long those who stayed waited for their
	// turn (p50, p99, max; seconds from the start, or their join).
	Abandon       float64 `json:"abandon"`
	Absent        int     `json:"absent"`
	Lapsed        int64   `json:"lapsed_turns"`
	Claimed       int64   `json:"claimed_turns"`
	SoldOutAfter  float64 `json:"sold_out_after_seconds"`
	StayedWaitP50 float64 `json:"stayed_wait_p50_seconds"`
	StayedWaitP99 float64 `json:"stayed_wait_p99_seconds"`
	StayedWaitMax float64 `json:"stayed_wait_max_seconds"`
}

// ETAError summarises estimates against what happened.
type ETAError struct {
	N              int     `json:"n"`
	MedianRelative float64 `json:"median_relative_error"`
	P90Relative    float64 `json:"p90_relative_error"`
	MedianAbsolute float64 `json:"median_absolute_error_seconds"`
}

// Decile is one tenth of the drawn buyers by join time.
type Decile struct {
	Joined int     `json:"joined"`
	Served int     `json:"served"`
	Share  float64 `json:"share_served"`
}

// Check is one property the outcome check proves.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

type roomBuyer struct {
	id       string
	sybil    bool
	proofCPU time.Duration // the proof of work its join took
	late     bool
	absent   bool // leaves after joining: never polls after the start
	joinAt   time.Time
	ticket   string
	drawn    bool
	position int64
	ests     []estimateAt // predicted turn times
	turnAt   time.Time    // the turn: the pass's expiry less the pass lifetime
	orderID  string
	outcome  string
}

type estimateAt struct {
	at, turn time.Time
	join     bool
}

type ticketAnswer struct {
	Ticket    string   `json:"ticket_id"`
	State     string   `json:"state"`
	Drawn     bool     `json:"drawn"`
	Position  *int64   `json:"position"`
	Estimate  *float64 `json:"estimated_wait_seconds"`
	PollAfter int      `json:"poll_after_seconds"`
	Pass      string   `json:"pass"`
	Rejoined  bool     `json:"rejoined"`
	PassExp   string   `json:"pass_expires_at"`
	OrderURL  string   `json:"order_url"`
}

// roomSale is GET /v1/sales/{sale} with its waiting room.
type roomSale struct {
	saleState
	StartsAt time.Time `json:"starts_at"`
	Room     *struct {
		LineOpensAt time.Time `json:"line_opens_at"`
		PassTTL     float64   `json:"pass_ttl_seconds"`
		LetIn       int64     `json:"let_in"`
		Drawn       int64     `json:"drawn_tickets"`
		Outstanding int64     `json:"passes_outstanding"`
		LineLimit   int64     `json:"line_limit"`
		LineLength  int64     `json:"line_length"`
		JoinProof   string    `json:"join_proof"`
		Challenge   string    `json:"challenge_url"`
	} `json:"waiting_room"`
}

// RehearseRoom runs a waiting-room rehearsal against a sale whose line is
// open and whose start is ahead, and checks the outcome.
func RehearseRoom(ctx context.Context, o RoomOptions) (RoomReport, error) {
	if err := CheckTarget(o.Target, o.AllowRemote); err != nil {
		return RoomReport{}, err
	}
	if o.Buyers <= 0 {
		return RoomReport{}, errors.New("loadtest: --waiting-room needs --buyers > 0")
	}
	if o.Abandon < 0 || o.Abandon >= 1 || math.IsNaN(o.Abandon) {
		return RoomReport{}, errors.New("loadtest: --abandon is a share from 0 to below 1")
	}
	if o.Connections <= 0 {
		o.Connections = 256
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 60 * time.Second
	}
	base := strings.TrimRight(o.Target, "/")
	tr := &http.Transport{MaxIdleConnsPerHost: o.Connections, MaxConnsPerHost: o.Connections, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	var sale roomSale
	if err := getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(o.Sale), &sale); err != nil {
		return RoomReport{}, fmt.Errorf("loadtest: sale %s at %s: %w", o.Sale, o.Target, err)
	}
	now := time.Now()
	switch {
	case sale.Room == nil:
		return RoomReport{}, fmt.Errorf("loadtest: sale %s has no waiting room (PATCH it with \"waiting_room\": true)", o.Sale)
	case sale.StartsAt.IsZero() || !sale.StartsAt.After(now.Add(time.Second)):
		return RoomReport{}, fmt.Errorf("loadtest: sale %s must start in the future (at least a second from now) for buyers to join before it", o.Sale)
	case now.Before(sale.Room.LineOpensAt):
		return RoomReport{}, fmt.Errorf("loadtest: the line of %s opens at %s", o.Sale, sale.Room.LineOpensAt.Format(time.RFC3339))
	}
	ttl := time.Duration(sale.Room.PassTTL * float64(time.Second))
	// Joins spread over the window before the start, ending a little
	// before it so that every one lands before the draw's mark.
	winEnd := sale.StartsAt.Add(-300 * time.Millisecond)
	winStart := sale.StartsAt.Add(-o.Before)
	if o.Before <= 0 || winStart.Before(now) {
		winStart = now
	}
	if !winEnd.After(winStart) {
		winEnd = winStart.Add(time.Millisecond)
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = time.Until(sale.StartsAt) + 2*time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.MaxDuration)
	defer cancel()

	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed))
	run := fmt.Sprintf("%x", rand.Uint32())
	buyers := make([]*roomBuyer, o.Buyers+o.Late, o.Buyers+o.Late+o.Sybil)
	span := winEnd.Sub(winStart)
	for i := range buyers {
		b := &roomBuyer{id: fmt.Sprintf("wr-%s-%d", run, i)}
		if i < o.Buyers {
			b.joinAt = winStart.Add(time.Duration(rng.Int64N(int64(span))))
		} else {
			b.late = true
			b.joinAt = sale.StartsAt.Add(200*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second))))
		}
		b.absent = o.Abandon > 0 && rng.Float64() < o.Abandon
		buyers[i] = b
	}
	// The attacker's ids all wait at the window's start, and join as fast
	// as its workers solve their proofs, until the start.
	for i := range o.Sybil {
		buyers = append(buyers, &roomBuyer{id: fmt.Sprintf("sybil-%s-%d", run, i), sybil: true, joinAt: winStart})
	}
	o.SybilWorkers = max(1, o.SybilWorkers)
	sybilSem := make(chan struct{}, o.SybilWorkers)
	proof := sale.Room.JoinProof != ""
	sem := make(chan struct{}, o.Connections)
	var mu sync.Mutex
	polls := 0
	// soldOut ends the buyers still waiting: the sale has nothing left
	// and no pass is out (a real buyer learns it at its next poll).
	soldOut := make(chan struct{})
	var soldOnce sync.Once
	var soldAt time.Time // when the sale first read sold_out
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var st roomSale
			ok := getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(o.Sale), &st) == nil
			if ok && st.State == "sold_out" {
				mu.Lock()
				if soldAt.IsZero() {
					soldAt = time.Now()
				}
				mu.Unlock()
			}
			if ok && st.State == "sold_out" && st.Room != nil && st.Room.Outstanding == 0 {
				soldOnce.Do(func() { close(soldOut) })
				return
			}
		}
	}()
	progressDone := make(chan struct{})
	if o.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
				}
				mu.Lock()
				var joined, served int
				for _, b := range buyers {
					if b.ticket != "" {
						joined++
					}
					if b.orderID != "" {
						served++
					}
				}
				p := polls
				mu.Unlock()
				fmt.Fprintf(o.Progress, "%+6.1fs from the start  joined %d  polls %d  served %d\n", time.Since(sale.StartsAt).Seconds(), joined, p, served)
			}
		}()
	}
	do := func(req *http.Request, v any) (int, error) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		defer func() { <-sem }()
		req = req.WithContext(ctx)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return resp.StatusCode, err
		}
		if v != nil {
			_ = json.Unmarshal(body, v)
		}
		return resp.StatusCode, nil
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-soldOut:
			return false
		case <-ctx.Done():
			return false
		}
	}
	started := time.Now()
	var wg sync.WaitGroup
	for _, b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleep(time.Until(b.joinAt)) {
				b.outcome = "not_joined"
				return
			}
			if b.sybil {
				select {
				case sybilSem <- struct{}{}:
				case <-ctx.Done():
					b.outcome = "not_joined"
					return
				}
				if time.Now().After(winEnd) {
					<-sybilSem
					b.outcome = "not_joined" // too late for the draw: the attacker stops
					return
				}
			}
			var t ticketAnswer
			req, _ := http.NewRequest("POST", base+"/v1/sales/"+url.PathEscape(o.Sale)+"/line", strings.NewReader(`{"buyer_id":"`+b.id+`"}`))
			req.Header.Set("Content-Type", "application/json")
			if proof {
				payload, cpu, err := proofFor(ctx, c, base+sale.Room.Challenge)
				if err != nil {
					if b.sybil {
						<-sybilSem
					}
					mu.Lock()
					b.outcome = "proof_error"
					mu.Unlock()
					return
				}
				req.Header.Set("Sluice-Proof", payload)
				mu.Lock()
				b.proofCPU = cpu
				mu.Unlock()
			}
			at := time.Now()
			status, err := do(req, &t)
			if b.sybil {
				<-sybilSem
			}
			if err != nil || status != http.StatusCreated {
				mu.Lock()
				b.outcome = fmt.Sprintf("join_%d", status)
				mu.Unlock()
				return
			}
			mu.Lock()
			b.joinAt, b.ticket, b.drawn = at, t.Ticket, t.Drawn
			mu.Unlock()
			for {
				mu.Lock()
				if t.Position != nil {
					b.position = *t.Position
				}
				if t.Estimate != nil {
					b.ests = append(b.ests, estimateAt{at: at, turn: at.Add(time.Duration(*t.Estimate * float64(time.Second))), join: at.Equal(b.joinAt)})
				}
				mu.Unlock()
				if b.absent && !time.Now().Before(sale.StartsAt) {
					mu.Lock()
					b.outcome = "absent"
					mu.Unlock()
					return
				}
				switch t.State {
				case "your_turn":
					exp, _ := time.Parse(time.RFC3339Nano, t.PassExp)
					var ans struct {
						OrderID string `json:"order_id"`
						Reason  string `json:"reason"`
					}
					req, _ := http.NewRequest("POST", base+t.OrderURL, strings.NewReader(`{"buyer_id":"`+b.id+`"}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Sluice-Pass", t.Pass)
					req.Header.Set("Idempotency-Key", "ticket-"+t.Ticket)
					status, err := do(req, &ans)
					mu.Lock()
					b.turnAt = exp.Add(-ttl)
					switch {
					case err == nil && (status == http.StatusAccepted || status == http.StatusCreated):
						b.orderID, b.outcome = ans.OrderID, "served"
					case err == nil:
						b.outcome = "order_" + ans.Reason
					default:
						b.outcome = "order_error"
					}
					mu.Unlock()
					return
				case "waiting", "offered":
					// offered: the claim could not be recorded; asking
					// again claims it.
				case "lapsed":
					// Too late for the turn (the polls came too rarely):
					// asking again puts the ticket at the back, once.
					if t.Rejoined {
						mu.Lock()
						b.outcome = "lapsed"
						mu.Unlock()
						return
					}
				default:
					mu.Lock()
					b.outcome = t.State
					mu.Unlock()
					return
				}
				wait := time.Duration(max(1, t.PollAfter)) * time.Second
				if b.absent && time.Now().Add(wait).After(sale.StartsAt) {
					// Gone at the start: the tab is closed then.
					if !sleep(time.Until(sale.StartsAt)) {
						return
					}
					mu.Lock()
					b.outcome = "absent"
					mu.Unlock()
					return
				}
				if !sleep(wait) {
					mu.Lock()
					b.outcome = "sold_out"
					mu.Unlock()
					return
				}
				at = time.Now()
				req, _ := http.NewRequest("GET", base+"/v1/tickets/"+t.Ticket, nil)
				status, err := do(req, &t)
				mu.Lock()
				polls++
				mu.Unlock()
				if err != nil || status != http.StatusOK {
					t.State = "waiting" // a failed poll is tried again
					t.Estimate = nil
				}
			}
		}()
	}
	wg.Wait()
	close(progressDone)
	rep := RoomReport{Target: o.Target, Sale: o.Sale, StartsAt: sale.StartsAt, Stock: sale.Stock, Polls: polls,
		Outcomes: map[string]int{}, Duration: time.Since(started).Seconds()}
	rep.summarise(buyers)
	rep.Abandon = o.Abandon
	mu.Lock()
	if !soldAt.IsZero() {
		rep.SoldOutAfter = soldAt.Sub(sale.StartsAt).Seconds()
	}
	mu.Unlock()
	var ln struct {
		Lapsed  int64 `json:"lapsed"`
		Claimed int64 `json:"claimed"`
	}
	if getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(o.Sale)+"/line", &ln) == nil {
		rep.Lapsed, rep.Claimed = ln.Lapsed, ln.Claimed
	}
	if o.Sybil > 0 {
		rep.Sybil = sybilReport(buyers, o.Sybil, o.SybilWorkers, proof, sale.Stock, rep.Joined)
	}
	rep.check(ctx, c, base, buyers, o.VerifyTimeout)
	return rep, nil
}

// summarise computes the figures from the buyers' records.
func (r *RoomReport) summarise(buyers []*roomBuyer) {
	var inLine []float64
	var joinErr, pollErr, joinAbs, pollAbs []float64
	var drawn []*roomBuyer
	var stayed []float64
	for _, b := range buyers {
		r.Outcomes[b.outcome]++
		if b.absent && b.ticket != "" {
			r.Absent++
		}
		switch {
		case b.ticket == "":
			r.JoinErrs++
			continue
		case b.drawn:
			r.Joined++
			drawn = append(drawn, b)
		default:
			r.Late++
		}
		if b.orderID != "" {
			r.Served++
		}
		if b.turnAt.IsZero() {
			continue
		}
		from := r.StartsAt
		if b.joinAt.After(from) {
			from = b.joinAt
		}
		inLine = append(inLine, b.turnAt.Sub(from).Seconds())
		if !b.absent {
			stayed = append(stayed, b.turnAt.Sub(from).Seconds())
		}
		for _, e := range b.ests {
			actual := b.turnAt.Sub(e.at).Seconds()
			est := e.turn.Sub(e.at).Seconds()
			abs := math.Abs(est - actual)
			rel := abs / math.Max(1, actual)
			if e.join {
				joinErr, joinAbs = append(joinErr, rel), append(joinAbs, abs)
			} else {
				pollErr, pollAbs = append(pollErr, rel), append(pollAbs, abs)
			}
		}
	}
	r.TimeInLineP50, r.TimeInLineP99 = quantile(inLine, 0.5), quantile(inLine, 0.99)
	r.StayedWaitP50, r.StayedWaitP99, r.StayedWaitMax = quantile(stayed, 0.5), quantile(stayed, 0.99), quantile(stayed, 1)
	r.ETAJoin = ETAError{N: len(joinErr), MedianRelative: quantile(joinErr, 0.5), P90Relative: quantile(joinErr, 0.9), MedianAbsolute: quantile(joinAbs, 0.5)}
	r.ETAPoll = ETAError{N: len(pollErr), MedianRelative: quantile(pollErr, 0.5), P90Relative: quantile(pollErr, 0.9), MedianAbsolute: quantile(pollAbs, 0.5)}
	sort.Slice(drawn, func(i, j int) bool { return drawn[i].joinAt.Before(drawn[j].joinAt) })
	r.Deciles = make([]Decile, 10)
	for i, b := range drawn {
		d := &r.Deciles[i*10/len(drawn)]
		d.Joined++
		if b.orderID != "" {
			d.Served++
		}
	}
	served := 0
	for _, d := range r.Deciles {
		served += d.Served
	}
	for i := range r.Deciles {
		d := &r.Deciles[i]
		if d.Joined > 0 {
			d.Share = float64(d.Served) / float64(d.Joined)
		}
		if served > 0 && len(drawn) > 0 {
			exp := float64(served) * float64(d.Joined) / float64(len(drawn))
			if exp > 0 {
				r.ChiSquare += (float64(d.Served) - exp) * (float64(d.Served) - exp) / exp
			}
		}
	}
	r.ChiP = 1
	if served > 0 {
		r.ChiP = line.ChiSquareP(r.ChiSquare, 9)
	}
}

// lateJoinCheck says whether the late buyers rehearsed anything: when the
// line held its line_limit at the start, every one of them is refused
// 410 line_full, and "no late ticket was served" holds for want of late
// tickets. The run then rehearsed something other than what was asked,
// and says so, with what to change.
func lateJoinCheck(buyers []*roomBuyer, lineLimit, lineLength int64) Check {
	late, joined, full := 0, 0, 0
	for _, b := range buyers {
		if !b.late {
			continue
		}
		late++
		if b.ticket != "" {
			joined++
		}
		if b.outcome == "join_410" {
			full++
		}
	}
	c := Check{Name: "late buyers joined", Passed: late == 0 || joined > 0}
	switch {
	case late == 0:
		c.Detail = "no --late-buyers"
	case joined == 0:
		c.Detail = fmt.Sprintf("none of the %d late buyers joined (%d refused 410 line_full): the line held %d tickets, its line_limit is %d; raise the sale's line_limit above --buyers or lower --buyers",
			late, full, lineLength, lineLimit)
	default:
		c.Detail = fmt.Sprintf("%d of %d late buyers joined behind the drawn (%d refused 410 line_full)", joined, late, full)
	}
	return c
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

// check proves the outcome: the draw verifies and our drawn tickets hold
// the positions it gives; every order in the sale is one the generator
// placed with its buyer's pass (the generator is the sale's only
// client); no late ticket was served while drawn ones waited; and the
// orders served end as Verify requires of any drop: decided, no
// oversell, no buyer twice.
func (r *RoomReport) check(ctx context.Context, c *http.Client, base string, buyers []*roomBuyer, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
	defer cancel()
	add := func(name string, ok bool, detail string, args ...any) {
		r.Checks = append(r.Checks, Check{Name: name, Passed: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	d, err := FetchDraw(ctx, c, base, r.Sale)
	if err != nil {
		add("draw verifies", false, "cannot read the draw: %v", err)
	} else {
		verr := d.Verify()
		add("draw verifies", verr == nil, "%d tickets, SHA-256(seed) = commitment, HMAC order: %v", len(d.Hashes), errOrOK(verr))
		pos := make(map[string]int, len(d.Hashes))
		for i, id := range d.Hashes {
			pos[id] = i + 1
		}
		bad, ours := 0, 0
		for _, b := range buyers {
			if b.ticket == "" || !b.drawn {
				continue
			}
			ours++
			if p, ok := pos[line.TicketHash(b.ticket)]; !ok || (b.position != 0 && int64(p) != b.position) {
				bad++
			}
		}
		add("positions", bad == 0 && len(pos) == len(d.Hashes), "%d of our %d drawn tickets hold the position the draw gives them (positions 1..%d, %d distinct)",
			ours-bad, ours, len(d.Hashes), len(pos))
	}
	// The orders served, as any drop's are checked.
	var served []Admission
	lateServed, withoutTurn := 0, 0
	for _, b := range buyers {
		if b.orderID == "" {
			continue
		}
		served = append(served, Admission{OrderID: b.orderID, Buyer: b.id, Key: "ticket-" + b.ticket})
		if b.late {
			lateServed++
		}
		if b.turnAt.IsZero() {
			withoutTurn++
		}
	}
	v := Verify(ctx, c, base, r.Sale, served, 1, timeout)
	r.Confirmed = v.Confirmed
	add("orders", v.Passed, "%d served: %s; confirmed %d of stock %d%s", len(served), countsInt(v.ByStatus), v.Confirmed, v.Stock, problemsText(v))
	var st roomSale
	if err := getJSON(ctx, c, base+"/v1/sales/"+url.PathEscape(r.Sale), &st); err != nil {
		add("passes", false, "cannot read the sale: %v", err)
		r.Passed = false
		return
	}
	add("passes", st.Admitted == int64(len(served)) && withoutTurn == 0 && r.Outcomes["order_pass_required"] == 0 && r.Outcomes["order_bad_pass"] == 0,
		"the sale holds %d orders, the %d the generator placed each with the pass its buyer got at its turn (%d without a turn)",
		st.Admitted, len(served), withoutTurn)
	letIn, drawn := int64(0), int64(len(d.Hashes))
	if st.Room != nil {
		letIn = st.Room.LetIn
	}
	add("late after drawn", lateServed == 0 || letIn >= drawn, "%d late tickets served; the line let in %d of %d drawn", lateServed, letIn, drawn)
	if st.Room != nil {
		r.Checks = append(r.Checks, lateJoinCheck(buyers, st.Room.LineLimit, st.Room.LineLength))
	}
	// Nobody who stayed is overtaken by someone behind: among the drawn
	// who kept polling, those served are the first in draw order.
	var stayed []*roomBuyer
	for _, b := range buyers {
		if b.drawn && !b.absent && !b.sybil && b.position > 0 {
			stayed = append(stayed, b)
		}
	}
	sort.Slice(stayed, func(i, j int) bool { return stayed[i].position < stayed[j].position })
	lastServed, skipped := -1, 0
	for i, b := range stayed {
		if b.orderID != "" {
			lastServed = i
		}
	}
	for _, b := range stayed[:lastServed+1] {
		if b.orderID == "" {
			skipped++
		}
	}
	add("draw order among those who stayed", skipped == 0, "%d of the %d who stayed were served, the first in draw order; %d passed over by someone behind",
		lastServed+1-skipped, len(stayed), skipped)
	r.Passed = true
	for _, ch := range r.Checks {
		r.Passed = r.Passed && ch.Passed
	}
}

// problemsText lists a Verification's problems, after a semicolon.
func problemsText(v Verification) string {
	var parts []string
	if v.Oversold {
		parts = append(parts, "OVERSOLD")
	}
	for name, ids := range map[string][]string{"lost": v.Lost, "buyers twice": v.DoubleBuyers, "keys with two orders": v.KeyMismatch} {
		if len(ids) > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, len(ids)))
		}
	}
	parts = append(parts, v.Problems...)
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// WriteJSON writes the report as JSON.
func (r RoomReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(roomJSON(r))
}

// roomJSON replaces the NaNs JSON cannot hold (no buyer served) by -1.
func roomJSON(r RoomReport) RoomReport {
	fix := func(f *float64) {
		if math.IsNaN(*f) {
			*f = -1
		}
	}
	for _, f := range []*float64{&r.TimeInLineP50, &r.TimeInLineP99, &r.ETAJoin.MedianRelative, &r.ETAJoin.P90Relative,
		&r.ETAJoin.MedianAbsolute, &r.ETAPoll.MedianRelative, &r.ETAPoll.P90Relative, &r.ETAPoll.MedianAbsolute,
		&r.StayedWaitP50, &r.StayedWaitP99, &r.StayedWaitMax} {
		fix(f)
	}
	return r
}

// WriteText writes the report for a terminal.
func (r RoomReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "waiting room: sale %s at %s, stock %d, started %s\n", r.Sale, r.Target, r.Stock, r.StartsAt.Format(time.RFC3339))
	fmt.Fprintf(w, "  %d joined before the start (drawn), %d after; %d joins failed; %d polls in %.1fs\n", r.Joined, r.Late, r.JoinErrs, r.Polls, r.Duration)
	fmt.Fprintf(w, "  served %d with their pass; %d confirmed\n", r.Served, r.Confirmed)
	fmt.Fprintf(w, "  tickets at the end: %s\n", outcomeText(r.Outcomes))
	fmt.Fprintf(w, "  time in line (start or join to turn): p50 %s  p99 %s\n", secsText(r.TimeInLineP50), secsText(r.TimeInLineP99))
	if r.SoldOutAfter > 0 {
		fmt.Fprintf(w, "  sold out %.1fs after the start\n", r.SoldOutAfter)
	}
	fmt.Fprintf(w, "  turns: %d claimed, %d lapsed (their holders never came for them)\n", r.Claimed, r.Lapsed)
	if r.Abandon > 0 {
		fmt.Fprintf(w, "  abandon %.0f%%: %d joiners left after joining; those who stayed waited p50 %s  p99 %s  max %s for their turn\n",
			100*r.Abandon, r.Absent, secsText(r.StayedWaitP50), secsText(r.StayedWaitP99), secsText(r.StayedWaitMax))
	}
	for _, e := range []struct {
		name string
		e    ETAError
	}{{"at join ", r.ETAJoin}, {"at polls", r.ETAPoll}} {
		if e.e.N == 0 {
			fmt.Fprintf(w, "  ETA accuracy %s: no estimate of a buyer who got the turn\n", e.name)
			continue
		}
		fmt.Fprintf(w, "  ETA accuracy %s: median relative error %.0f%% (p90 %.0f%%), median %.1fs off, over %d estimates\n",
			e.name, 100*e.e.MedianRelative, 100*e.e.P90Relative, e.e.MedianAbsolute, e.e.N)
	}
	if r.Sybil != nil {
		r.Sybil.writeText(w)
	}
	fmt.Fprintln(w, "  fairness among the drawn, by decile of join time:")
	fmt.Fprintln(w, "    decile  joined  served  share")
	for i, d := range r.Deciles {
		fmt.Fprintf(w, "    %6d  %6d  %6d  %5.2f%%\n", i+1, d.Joined, d.Served, 100*d.Share)
	}
	fmt.Fprintf(w, "    chi-square %.2f (9 df) against the joiners' shares: p = %.3f\n", r.ChiSquare, r.ChiP)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	if r.Passed {
		fmt.Fprintln(w, "  outcome check: passed")
	} else {
		fmt.Fprintln(w, "  outcome check: FAILED")
	}
}

func secsText(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fs", s)
}

func outcomeText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteHTML writes the report as one self-contained page: the summary,
// and the share served per decile of join time as bars.
func (r RoomReport) WriteHTML(w io.Writer) error {
	var text bytes.Buffer
	r.WriteText(&text)
	maxShare := 0.0
	for _, d := range r.Deciles {
		maxShare = math.Max(maxShare, d.Share)
	}
	type bar struct {
		N            int
		X, H, Y      float64
		Share        float64
		Served, Join int
	}
	var bars []bar
	for i, d := range r.Deciles {
		h := 0.0
		if maxShare > 0 {
			h = 180 * d.Share / maxShare
		}
		bars = append(bars, bar{N: i + 1, X: float64(40 + i*60), H: h, Y: 200 - h, Share: 100 * d.Share, Served: d.Served, Join: d.Joined})
	}
	return roomPage.Execute(w, struct {
		R       RoomReport
		Summary string
		Bars    []bar
	}{roomJSON(r), text.String(), bars})
}

var roomPage = template.Must(template.New("room").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>sluice loadtest — waiting room {{.R.Sale}}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:900px;padding:0 1em;color:#222}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}.pass{color:#070}.fail{color:#b00}
svg text{font-size:11px}</style></head><body>
<h1>sluice loadtest — waiting room of <code>{{.R.Sale}}</code></h1>
<p>Outcome check: {{if .R.Passed}}<b class="pass">passed</b>{{else}}<b class="fail">FAILED</b>{{end}} —
{{.R.Served}} served of {{.R.Joined}} drawn and {{.R.Late}} late, stock {{.R.Stock}}.</p>
<h2>Share served, by decile of join time (among the drawn)</h2>
<svg id="fairness" width="660" height="230" role="img" aria-label="share served per decile">
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="44" height="{{.H}}" fill="#0a7"><title>decile {{.N}}: {{.Served}} of {{.Join}}</title></rect>
<text x="{{.X}}" y="215">{{.N}}</text><text x="{{.X}}" y="{{.Y}}" dy="-3">{{printf "%.1f" .Share}}%</text>
{{end}}</svg>
<p>chi-square {{printf "%.2f" .R.ChiSquare}} (9 df), p = {{printf "%.3f" .R.ChiP}}</p>
<h2>Summary</h2><pre>{{.Summary}}</pre>
</body></html>
`))
