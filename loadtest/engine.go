package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// crowdRun moves a crowd along: a dispatcher takes the buyers due from
// the wheel and hands them to a fixed pool of workers (one per
// connection: the I/O in flight), each of which takes one step of the
// buyer's (join, poll, order) and puts it back in the wheel for the time
// the gate gave. The attacker's ids join through workers of their own.
// Every goroutine it starts, run stops.
type crowdRun struct {
	c      *crowd
	client *fasthttp.HostClient
	http   *http.Client // the sale's state, a few times a second
	sale   string
	// URLs: the gate, its line, its challenges; the tickets' path
	// prefix, and the gate's host (a poll's request names only these).
	base, lineURL, challengeURL, ticketsPath, host string
	tls                                            bool // https

	ttl time.Duration // the pass's lifetime
	// variants are what buyers choose in a sale with variants; seed
	// makes each buyer's choice, the same in every shard.
	variants           []VariantWeight
	seed               uint64
	proof              bool
	winStart, winEnd   int32 // the join window (ms): joins before winEnd are drawn
	lateAfter, timeout time.Duration
	// closedLoop polls every ticket again as soon as it is answered, for
	// the figures of the generator's top rate (PollBench): no joins, no
	// orders, no end but the deadline.
	closedLoop bool
	deadline   time.Time
	workers    int
	sybils     int // attacker workers
	progress   io.Writer
	// heapProfile gets a heap profile at the start (RoomOptions).
	heapProfile io.Writer

	wheel    *wheel
	work     chan uint32
	st       *crowdStats
	logs     []*estimateLog
	estLimit int
	soldAt   atomic.Int64 // unix ns when the sale first read sold_out
	finished atomic.Int64
	ended    chan struct{}
	endOnce  sync.Once
	liveHeap atomic.Uint64 // the live heap at the start
}

// end ends the run: the sale sold out, every buyer has its outcome, or
// the run's time is up.
func (r *crowdRun) end() { r.endOnce.Do(func() { close(r.ended) }) }

func (r *crowdRun) isEnded() bool {
	select {
	case <-r.ended:
		return true
	default:
		return false
	}
}

func (r *crowdRun) nowMs() int32 { return r.c.ms(time.Now()) }

// over says the run's time is up (the clock can pass the deadline a
// moment before the context's timer fires).
func (r *crowdRun) over() bool { return !time.Now().Before(r.deadline) }

// finish gives the buyer its outcome.
func (r *crowdRun) finish(idx uint32, outcome uint16) {
	b := &r.c.buyers[idx]
	b.outcome, b.step = outcome, stepDone
	if int(r.finished.Add(1)) == len(r.c.buyers) {
		r.end()
	}
}

// schedule puts the buyer back in the wheel for its next poll. It is the
// last thing a worker does with the buyer: another may take it at once.
func (r *crowdRun) schedule(idx uint32, due int32) {
	b := &r.c.buyers[idx]
	b.step, b.due = stepPoll, due
	r.wheel.add(idx, due)
}

// run runs the crowd until it ends, and gives every buyer still without
// an outcome one: not_joined if it never joined, sold_out if it was
// waiting and the sale sold out (as the buyer learns at its next poll),
// still_waiting if the run ended first.
func (r *crowdRun) run(ctx context.Context) {
	r.ended = make(chan struct{})
	r.work = make(chan uint32, r.workers)
	r.wheel = newWheel(r.nowMs())
	r.estLimit = max(1<<16, 16*len(r.c.buyers)/max(1, r.workers))
	if d, ok := ctx.Deadline(); ok {
		r.deadline = d
	} else {
		r.deadline = time.Now().Add(24 * time.Hour)
	}
	for i := range r.c.buyers {
		b := &r.c.buyers[i]
		if b.step != stepDone && !b.is(fSybil) {
			r.wheel.add(uint32(i), b.due)
		}
	}
	var workers, helpers sync.WaitGroup
	for range r.workers {
		w := r.newWorker()
		workers.Go(func() {
			for idx := range r.work {
				if !r.isEnded() && !r.over() {
					w.step(idx)
				}
			}
			w.lats.flushAll(r.st)
			w.pc.close()
		})
	}
	r.startAttack(&workers)
	stop := make(chan struct{})
	if !r.closedLoop {
		helpers.Go(func() { r.watchSale(ctx, stop) })
	}
	helpers.Go(func() { r.measureHeap(stop) })
	if r.progress != nil {
		helpers.Go(func() { r.report(stop) })
	}
	r.dispatch(ctx)
	r.end()
	close(r.work)
	workers.Wait()
	close(stop)
	helpers.Wait()
	r.client.CloseIdleConnections()
	for i := range r.c.buyers {
		switch b := &r.c.buyers[i]; {
		case b.step == stepJoin:
			b.outcome, b.step = oNotJoined, stepDone
		case b.step == stepPoll && r.soldAt.Load() != 0:
			b.outcome, b.step = oSoldOut, stepDone
		case b.step == stepPoll:
			// The run ended before the sale sold out: not a buyer told
			// sold_out, one still in line.
			b.outcome, b.step = oStillWaiting, stepDone
		}
	}
}

// dispatch hands the buyers due to the workers, a millisecond at a time,
// until the run ends. When every worker is busy it waits, and the
// buyers due meanwhile go late: their latency counts from when they
// were due (no coordinated omission), and the late polls are counted.
func (r *crowdRun) dispatch(ctx context.Context) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var batch []wheelEntry
	for {
		if r.over() {
			return
		}
		batch = r.wheel.take(r.nowMs(), batch[:0])
		for i, e := range batch {
			if i%64 == 0 && r.over() {
				return
			}
			select {
			case r.work <- e.idx: // a worker is free: the common case, without the dearer select below
				continue
			default:
			}
			select {
			case r.work <- e.idx:
			case <-r.ended:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-t.C:
		case <-r.ended:
			return
		case <-ctx.Done():
			return
		}
	}
}

// watchSale reads the sale four times a second: when it first reads
// sold_out, and when it is sold out with no pass outstanding, which ends
// the run (the buyers still waiting would learn it at their next poll).
func (r *crowdRun) watchSale(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var st roomSale
		if getJSON(ctx, r.http, r.base+"/v1/sales/"+url.PathEscape(r.sale), &st) != nil || st.State != "sold_out" {
			continue
		}
		r.soldAt.CompareAndSwap(0, time.Now().UnixNano())
		if st.Room != nil && st.Room.Outstanding == 0 {
			r.end()
		}
	}
}

// measureHeap reads the live heap at the sale's start, once the joins
// before it are in: the generator's memory per buyer.
func (r *crowdRun) measureHeap(stop <-chan struct{}) {
	t := time.NewTimer(time.Until(r.c.time(r.c.startMs)))
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
	}
	if r.heapProfile != nil {
		runtime.GC() // the live heap, not what the last collection left
		_ = pprof.Lookup("heap").WriteTo(r.heapProfile, 0)
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		r.liveHeap.Store(s[0].Value.Uint64())
	}
}

// report prints a line a second.
func (r *crowdRun) report(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		fmt.Fprintf(r.progress, "%+6.1fs from the start  joined %d  polls %d (%d late)  served %d  waiting in the wheel %d\n",
			r.c.sinceStart(r.nowMs()), r.st.joined.Load(), r.st.polls.Load(), r.st.latePolls.Load(), r.st.served.Load(), r.wheel.len())
	}
}

// startAttack starts the attacker's workers: from the window's start
// they join its ids one after another, as fast as they solve the proofs,
// until the window ends; the ids they joined then poll and order as any.
func (r *crowdRun) startAttack(wg *sync.WaitGroup) {
	from := len(r.c.buyers)
	for i := range r.c.buyers {
		if r.c.buyers[i].is(fSybil) {
			from = i
			break
		}
	}
	if from == len(r.c.buyers) {
		return
	}
	var next atomic.Uint32
	next.Store(uint32(from))
	for range max(1, r.sybils) {
		w := r.newWorker()
		wg.Go(func() {
			defer w.pc.close()
			defer w.lats.flushAll(r.st)
			t := time.NewTimer(time.Until(r.c.time(r.winStart)))
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.ended:
				return
			}
			for !r.isEnded() {
				idx := next.Add(1) - 1
				if int(idx) >= len(r.c.buyers) {
					return
				}
				if r.nowMs() >= r.winEnd {
					r.finish(idx, oNotJoined) // too late for the draw: the attacker stops
					continue
				}
				w.join(idx)
			}
		})
	}
}
