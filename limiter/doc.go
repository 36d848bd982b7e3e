// Package limiter holds token buckets: one per sale for admission and
// the drain's pace towards the backend (plain golang.org/x/time/rate
// Limiters, made and changed by NewRate and SetRate under one burst
// rule, Burst), and keyed sets of them, one bucket per client address or
// buyer, in maps of bounded size.
//
// It knows nothing of HTTP or NATS. Every method has a form taking the
// current time, so tests drive it with an explicit clock and never sleep.
package limiter
