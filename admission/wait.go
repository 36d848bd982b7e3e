package admission

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/overflow"
)

// MaxPreferWait is the longest Prefer: wait=N the gate honours (RFC 7240);
// a longer wish is cut to it.
const MaxPreferWait = 30 * time.Second

// DefaultMaxWaiters bounds the requests held for a decision at once when
// Config.MaxWaiters is zero.
const DefaultMaxWaiters = 20_000

// StatusWaiter is a StatusSource that can also wake a waiter when an
// order is decided (orderstatus.Tracker, which follows the decisions
// stream). With one, the gate honours Prefer: wait=N.
type StatusWaiter interface {
	StatusSource
	// Wait returns a channel closed once the order is decided and a func
	// that ends the wait; it must not ask JetStream anything.
	Wait(id ledger.OrderID) (<-chan struct{}, func())
}

var (
	hPrefer            = []byte("Prefer")
	hPreferenceApplied = []byte("Preference-Applied")
)

// preferWait reads Prefer: wait=N (seconds, RFC 7240), capped at
// MaxPreferWait. respond-async, a malformed or zero wait and an absent
// header mean no wait. Preferences the gate does not know are ignored, as
// the RFC asks.
func preferWait(h *fasthttp.RequestHeader) time.Duration {
	var wait time.Duration
	async := false
	for k, v := range h.All() {
		if !bytes.EqualFold(k, hPrefer) {
			continue
		}
		for pref := range bytes.SplitSeq(v, []byte{','}) {
			if i := bytes.IndexByte(pref, ';'); i >= 0 {
				pref = pref[:i] // parameters of a preference: none is defined for wait
			}
			name, val, _ := bytes.Cut(bytes.TrimSpace(pref), []byte{'='})
			name = bytes.TrimSpace(name)
			switch {
			case bytes.EqualFold(name, []byte("respond-async")):
				async = true
			case bytes.EqualFold(name, []byte("wait")):
				val = bytes.Trim(bytes.TrimSpace(val), `"`)
				n, err := strconv.ParseUint(string(val), 10, 32)
				if err == nil && wait == 0 { // the first wait stands
					wait = time.Duration(min(n, uint64(MaxPreferWait/time.Second))) * time.Second
				}
			}
		}
	}
	if async {
		return 0
	}
	return wait
}

// Wait outcomes of sluice_order_waits_total.
const (
	waitDecided  = "decided"  // the drain decided within the wait
	waitTimedOut = "timeout"  // the wait ran out: answered as without it
	waitRefused  = "refused"  // MaxWaiters were waiting: answered at once
	waitShutdown = "shutdown" // the gate began shutting down
)

// hold waits up to d for the order's decision. It reports whether the
// wait was applied (false when there is nothing to wait with or
// MaxWaiters are waiting already) and whether the order was decided.
// A held request costs its connection's goroutine (which fasthttp runs
// for any open connection), a channel and a timer: no goroutine of its
// own and no JetStream call, since the decisions stream wakes it.
func (g *Gate) hold(id ledger.OrderID, d time.Duration) (applied, decided bool) {
	w, ok := g.status.(StatusWaiter)
	if !ok || d <= 0 {
		return false, false
	}
	if !g.takeWaiter() {
		g.m.waits.WithLabelValues(waitRefused).Inc()
		return false, false
	}
	g.m.waiters.Inc()
	defer func() {
		g.waiting.Add(-1)
		g.m.waiters.Dec()
	}()
	ch, done := w.Wait(id)
	defer done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		g.m.waits.WithLabelValues(waitDecided).Inc()
		return true, true
	case <-t.C:
		g.m.waits.WithLabelValues(waitTimedOut).Inc()
	case <-g.stopping:
		g.m.waits.WithLabelValues(waitShutdown).Inc()
	}
	return true, false
}

// takeWaiter counts one more held request unless MaxWaiters are held.
func (g *Gate) takeWaiter() bool {
	for {
		n := g.waiting.Load()
		if n >= int64(g.cfg.MaxWaiters) {
			return false
		}
		if g.waiting.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Waiters tells how many requests are held for a decision now, and the
// most that may be.
func (g *Gate) Waiters() (held int64, most int) { return g.waiting.Load(), g.cfg.MaxWaiters }

func setPreferenceApplied(ctx *fasthttp.RequestCtx, d time.Duration) {
	ctx.Response.Header.SetCanonical(hPreferenceApplied, []byte("wait="+strconv.Itoa(int(d/time.Second))))
}

// answerDecided answers a placed order whose decision came while the
// request waited: 201 with the confirmed order, or the refusal as a
// problem. It reports false if the status cannot be read (then the
// caller answers 202 as without waiting).
func (g *Gate) answerDecided(ctx *fasthttp.RequestCtx, id ledger.OrderID, buyer string, admittedAt time.Time) bool {
	st, err := g.status.OrderStatus(context.Background(), id)
	if err != nil {
		return false
	}
	ids := id.String()
	if st.Status == orderstatus.Confirmed {
		ctx.Response.Header.SetCanonical(hLocation, []byte("/v1/orders/"+ids))
		respondJSON(ctx, fasthttp.StatusCreated, orderView{OrderID: ids, Sale: id.Sale, BuyerID: buyer,
			Status: st.Status, AdmittedAt: admittedAt, DecidedAt: st.At})
		return true
	}
	p := refusalProblem(id, st)
	g.render.Render(p).Respond(ctx, overflow.AcceptsHTML(&ctx.Request.Header))
	ctx.Response.Header.SetCanonical(hLocation, []byte("/v1/orders/"+ids))
	return true
}

// refusalProblem is the problem a decided, unconfirmed order is answered
// with: the backend's reason when it is one of the gate's (sold_out 410,
// already_ordered 409), else order_rejected (409) or order_failed (502),
// with the backend's reason in backend_reason either way.
func refusalProblem(id ledger.OrderID, st orderstatus.Status) overflow.Problem {
	p := overflow.Problem{Sale: id.Sale, OrderID: id.String(), BackendReason: st.Reason,
		Detail: "The shop did not take this order (" + st.Reason + ")."}
	if st.Status == orderstatus.Failed {
		p.Detail = "The order could not be handed to the shop and was set aside (" + st.Reason + ")."
	}
	switch {
	case st.Status == orderstatus.Failed:
		p.Reason = overflow.OrderFailed
	case st.Reason == string(overflow.SoldOut):
		p.Reason = overflow.SoldOut
	case st.Reason == string(overflow.AlreadyOrdered):
		p.Reason = overflow.AlreadyOrdered
	default:
		p.Reason = overflow.OrderRejected
	}
	return p
}
