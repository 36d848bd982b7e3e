// Package gctune keeps the garbage collector's head room in proportion to
// the live heap: a high GC percent while the heap is small, so that a
// burst does not collect many times a second, and no more head room than
// the live heap or a fixed bound, whichever is larger, once it is big (at
// 400% a waiting room of a million tickets, some 250 MB live, would be
// let grow to 1.25 GB before each collection).
//
// It starts no goroutine: the runtime's finalizer goroutine runs it once
// after each collection.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Tuner sets the GC percent after each collection to
//
//	clamp(100 × headroom / live heap, 100, max)
//
// so the heap grows by at most max(live heap, headroom) beyond what is
// live, and never by less than Go's default (100%). Its methods are safe
// for concurrent use.
type Tuner struct {
	max      int
	headroom uint64
	stopped  atomic.Bool
	percent  atomic.Int64 // the percent set last
	sample   []metrics.Sample
}

// sentinel is garbage made to be collected: its finalizer runs the tuner
// after the collection that found it.
type sentinel struct {
	t *Tuner
	_ [16]byte // no tiny allocation: those may never run their finalizer
}

// Start tunes the GC percent between 100 and maxPercent with the given
// head room in bytes, from now until Stop. With maxPercent at most 100 or
// no head room there is nothing to tune, and it returns a stopped Tuner.
func Start(maxPercent int, headroom int64) *Tuner {
	t := &Tuner{max: maxPercent, headroom: uint64(max(0, headroom)),
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.percent.Store(int64(maxPercent))
	if maxPercent <= 100 || headroom <= 0 {
		t.stopped.Store(true)
		return t
	}
	debug.SetGCPercent(maxPercent)
	t.arm()
	return t
}

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t: t}, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.tune()
		s.t.arm()
	})
}

// tune runs on the finalizer goroutine, one call at a time.
func (t *Tuner) tune() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := Percent(t.sample[0].Value.Uint64(), t.headroom, t.max)
	if int64(p) != t.percent.Load() {
		t.percent.Store(int64(p))
		debug.SetGCPercent(p)
	}
}

// Percent is the GC percent for a live heap of live bytes: head room of
// at most max(live, headroom), between 100 and maxPercent.
func Percent(live, headroom uint64, maxPercent int) int {
	if live == 0 {
		return maxPercent
	}
	p := headroom * 100 / live
	return int(min(uint64(maxPercent), max(100, p)))
}

// GCPercent is the percent set last.
func (t *Tuner) GCPercent() int { return int(t.percent.Load()) }

// Stop ends the tuning; the GC percent stays as set last. Calling it
// twice is safe.
func (t *Tuner) Stop() { t.stopped.Store(true) }
