// Package limiter holds token buckets for admission: one per sale (a plain
// golang.org/x/time/rate.Limiter) and keyed sets of them, one bucket per
// client address or buyer, in maps of bounded size.
//
// It knows nothing of HTTP or NATS. Every method has a form taking the
// current time, so tests drive it with an explicit clock and never sleep.
package limiter
