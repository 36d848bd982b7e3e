package loadtest

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// crowdWorker takes buyers' steps, one request at a time, through its
// own reused request and response: what a buyer costs between its
// steps is its record, nothing else.
type crowdWorker struct {
	r       *crowdRun
	req     *fasthttp.Request // joins, challenges, orders
	resp    *fasthttp.Response
	pc      *pollConn // the polls
	buf     []byte
	reasons interner
	ans     ticketAnswer
	est     *estimateLog
	lats    latencyBatch
}

func (r *crowdRun) newWorker() *crowdWorker {
	w := &crowdWorker{r: r, req: &fasthttp.Request{}, resp: &fasthttp.Response{},
		pc: newPollConn(r.host, r.ticketsPath, r.tls, r.timeout), reasons: interner{}, est: &estimateLog{}}
	for k := range w.lats {
		w.lats[k] = make([]int64, 0, 512)
	}
	r.logs = append(r.logs, w.est)
	return w
}

// hostAndPath are the target's host (and port) and its path, without a
// trailing slash.
func hostAndPath(target string) (string, string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", "", err
	}
	return u.Host, strings.TrimRight(u.Path, "/"), nil
}

// newCrowdClient is the pool of keep-alive connections the workers
// share: fasthttp, as the gate's (net/http's client costs about three
// times the CPU per request, taken from the gate on a shared machine).
func newCrowdClient(target string, conns int, timeout time.Duration) (*fasthttp.HostClient, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return &fasthttp.HostClient{
		Addr:                addr,
		Name:                "sluice-loadtest",
		IsTLS:               u.Scheme == "https",
		MaxConns:            conns,
		MaxConnWaitTimeout:  timeout,
		MaxIdleConnDuration: 30 * time.Second,
		// A plain dialer: fasthttp's default keeps a DNS cache with a
		// goroutine that lives as long as the process.
		Dial: func(addr string) (net.Conn, error) {
			return (&net.Dialer{Timeout: timeout}).Dial("tcp", addr)
		},
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		MaxResponseBodySize:           1 << 20,
		ReadBufferSize:                4 << 10,
		WriteBufferSize:               4 << 10,
	}, nil
}

// step takes the buyer's next step.
func (w *crowdWorker) step(idx uint32) {
	switch w.r.c.buyers[idx].step {
	case stepJoin:
		w.join(idx)
	case stepPoll:
		w.poll(idx)
	}
}

// errRunOver: the request was cut by the end of the run, not by its own
// timeout.
var errRunOver = errors.New("the run ended")

// do sends req (at now) and reads the answer into w.resp, within the
// request's timeout and the run's deadline.
func (w *crowdWorker) do(req *fasthttp.Request, now time.Time) error {
	deadline, cut := now.Add(w.r.timeout), false
	if w.r.deadline.Before(deadline) {
		deadline, cut = w.r.deadline, true
	}
	w.resp.Reset()
	err := w.r.client.DoDeadline(req, w.resp, deadline)
	if cut && errors.Is(err, fasthttp.ErrTimeout) {
		return errRunOver
	}
	return err
}

// failed counts a request that got no answer, by its cause.
func (w *crowdWorker) failed(request string, err error) {
	if errors.Is(err, errRunOver) {
		if w.r.closedLoop {
			return // the bench's end: no error of the gate's
		}
		w.r.st.fail(errorKey{request: request, cause: "cut by the end of the run"})
		return
	}
	w.r.st.fail(errorKey{request: request, cause: transportCause(err)})
}

// refused counts an answer other than the one wanted, by its status and
// the problem's reason (from body when reason is empty).
func (w *crowdWorker) refused(request string, status int, reason string, body []byte) {
	if reason == "" {
		reason = w.reasons.get(jsonField(body, reasonKey))
	}
	w.r.st.fail(errorKey{request: request, status: status, reason: reason})
}

// poll asks for the buyer's ticket, when the gate said to.
func (w *crowdWorker) poll(idx uint32) {
	r, b := w.r, &w.r.c.buyers[idx]
	intended := r.c.time(b.due)
	w.pc.setID(func(dst []byte) []byte { return r.c.appendTicket(dst, idx) })
	sent := time.Now()
	late := sent.Sub(intended) > r.lateAfter
	if late {
		r.st.latePolls.Add(1)
	}
	deadline := sent.Add(r.timeout)
	if r.deadline.Before(deadline) {
		deadline = r.deadline
	}
	err := w.pc.get(deadline)
	if err != nil && !deadline.Before(r.deadline) && isTimeout(err) {
		err = errRunOver
	}
	answered := time.Now()
	latency := answered.Sub(earlier(intended, sent))
	w.lats.add(r.st, latPoll, latency)
	r.st.polls.Add(1)
	afterStart := b.due >= r.c.startMs
	if afterStart {
		r.st.pollsAfterStart.Add(1)
	}
	if afterStart && (err != nil || latency > r.lateAfter) {
		b.flags |= fSlipped // not answered in time: the turn may have come and gone meanwhile
	}
	ok := false
	switch status := w.pc.status; {
	case err != nil:
		w.failed(reqPoll, err)
	case status != fasthttp.StatusOK:
		if afterStart {
			b.flags |= fSlipped
		}
		w.refused(reqPoll, status, "", w.pc.body)
	case !w.ans.parse(w.pc.body):
		w.refused(reqPoll, status, "unreadable answer", nil)
	default:
		ok = true
	}
	if !ok {
		// A failed poll is asked again: after the Retry-After of the
		// answer, else after what the gate said last.
		wait := int(b.pollAfter)
		if err == nil && w.pc.retryAfter > 0 {
			wait = w.pc.retryAfter
		}
		b.flags |= fFailed
		r.schedule(idx, r.c.ms(answered)+r.pollWait(wait))
		return
	}
	failedBefore := b.is(fFailed)
	b.flags &^= fFailed
	w.handle(idx, sent, answered, false, late, failedBefore)
}

// pollWait is how long (ms) a buyer told to come back after s seconds
// waits: a second at least; no time at all in a closed loop.
func (r *crowdRun) pollWait(s int) int32 {
	if r.closedLoop {
		return 0
	}
	return int32(min(max(1, s), 3600)) * 1000
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// handle acts on a ticket answer (w.ans) of the join or a poll sent at
// at and answered at answered: it notes the positions and the estimate,
// and orders at the turn, gives the buyer its outcome, or puts it back
// in the wheel.
func (w *crowdWorker) handle(idx uint32, at, answered time.Time, join, late, failedBefore bool) {
	r, b, a := w.r, &w.r.c.buyers[idx], &w.ans
	if a.position > 0 {
		p := uint32(min(a.position, 1<<32-1))
		if !a.rejoined && b.position == 0 {
			b.position = p
		}
		b.current = p
	}
	if a.hasEstimate && !r.closedLoop {
		atMs := r.c.ms(at)
		e := estimate{idx: idx, at: atMs, turn: r.c.ms(at.Add(time.Duration(a.estimate * float64(time.Second))))}
		if join {
			e.idx |= estJoin
		}
		w.est.add(e, r.estLimit)
	}
	if a.rejoined {
		b.flags |= fRejoined
	}
	now := r.c.ms(answered)
	if r.closedLoop {
		r.schedule(idx, now)
		return
	}
	if b.is(fAbsent) {
		// It closes the tab once it holds a ticket (--abandon): it sends
		// nothing more. A poll of its left for just before the start
		// could reach the gate after the first offers (the generator
		// behind, the gate busy) and claim the turn of someone gone:
		// a pass held for pass_ttl with no order to come.
		r.finish(idx, oAbsent)
		return
	}
	switch string(a.state) {
	case "your_turn":
		w.order(idx, at)
		return
	case "waiting", "offered":
		// offered: this poll claimed it, unless the claim could not be
		// recorded; asking again claims it.
		b.flags &^= fLapsed
	case "lapsed":
		// Too late for the turn: asking again puts the ticket at the
		// back of the line, once.
		w.noteLapse(b, a.rejoined, late, failedBefore)
		if a.rejoined {
			r.finish(idx, oLapsed)
			return
		}
		b.flags |= fLapsed
	default:
		r.finish(idx, r.c.names.code(string(a.state)))
		return
	}
	due := now + r.pollWait(a.pollAfter)
	b.pollAfter = uint16(min(max(1, a.pollAfter), 1<<16-1))
	r.schedule(idx, due)
}

// noteLapse counts the lapse of a turn once, by why its holder missed it.
func (w *crowdWorker) noteLapse(b *buyer, rejoined, late, failedBefore bool) {
	seen := fLapseSeen
	if rejoined {
		seen = fLapseSeen2
	}
	if b.is(seen) {
		return
	}
	b.flags |= seen
	switch {
	case failedBefore:
		w.r.st.lapseFailed.Add(1)
	case late:
		w.r.st.lapseLate.Add(1)
	default:
		w.r.st.lapseTold.Add(1)
	}
}

// order orders with the pass of the turn the answer (w.ans, of a
// request sent at at) gave, and gives the buyer its outcome.
func (w *crowdWorker) order(idx uint32, at time.Time) {
	r, b, a := w.r, &w.r.c.buyers[idx], &w.ans
	turn := at
	if exp, err := time.Parse(time.RFC3339Nano, unsafeString(a.passExp)); err == nil {
		turn = exp.Add(-r.ttl)
	}
	b.turnAt = r.c.ms(turn)
	b.flags |= fTurn
	req := w.req
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	w.buf = append(append(w.buf[:0], r.base...), a.orderURL...)
	req.SetRequestURIBytes(w.buf)
	req.Header.SetContentType("application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.SetBytesV("Sluice-Pass", a.pass)
	variant := ""
	if len(r.variants) > 0 {
		variant = weighted(r.variants, nil, unit(r.seed, r.c.global(idx), 2))
	}
	var (
		err    error
		status int
	)
	// A buyer told their variant sold out while they chose orders
	// another of those left, with the same pass, once per variant at most.
	for try := 0; ; try++ {
		w.buf = r.c.appendTicket(append(w.buf[:0], "ticket-"...), idx)
		if variant != "" {
			w.buf = append(append(w.buf, '-'), variant...)
		}
		req.Header.SetBytesV("Idempotency-Key", w.buf)
		req.SetBodyRaw(w.buyerBody(idx, variant))
		sent := time.Now()
		err = w.do(req, sent)
		w.lats.add(r.st, latOrder, time.Since(sent))
		status = w.resp.StatusCode()
		if err != nil || status != fasthttp.StatusGone || try >= len(r.variants) ||
			w.reasons.get(jsonField(w.resp.Body(), reasonKey)) != variantSoldOut {
			break
		}
		var p struct {
			Left []string `json:"variants_left"`
		}
		_ = json.Unmarshal(w.resp.Body(), &p)
		next := weighted(r.variants, p.Left, unit(r.seed^uint64(try+1)*0x9e3779b97f4a7c15, r.c.global(idx), 3))
		if next == "" || next == variant {
			break
		}
		variant = next
	}
	switch {
	case err != nil:
		w.failed(reqOrder, err)
		r.finish(idx, oOrderError)
	case status == fasthttp.StatusAccepted || status == fasthttp.StatusCreated:
		r.c.setOrder(idx, string(jsonField(w.resp.Body(), orderIDKey)), variant)
		b.flags |= fServed
		r.st.served.Add(1)
		r.finish(idx, oServed)
	default:
		reason := w.reasons.get(jsonField(w.resp.Body(), reasonKey))
		w.refused(reqOrder, status, reason, nil)
		r.finish(idx, r.c.names.code("order_"+reason))
	}
}

// buyerBody is {"buyer_id":"…"} of the buyer (with the variant, when
// there is one), in w's scratch space.
func (w *crowdWorker) buyerBody(idx uint32, variant string) []byte {
	w.buf = append(w.buf[:0], `{"buyer_id":"`...)
	w.buf = w.r.c.appendID(w.buf, idx)
	if variant != "" {
		w.buf = append(append(append(w.buf, `","variant":"`...), variant...), '"')
		return append(w.buf, '}')
	}
	return append(w.buf, `"}`...)
}
