// Package ledger keeps a sale's admitted orders in a JetStream stream, one
// stream per sale.
//
// The stream is the admission ledger and the only arbiter of stock: it has
// MaxMsgs = stock + overbooking + released (orders that gave their slot
// back, counted from the decisions stream) with DiscardNew, so JetStream
// refuses the order that would oversell, atomically for every gate sharing
// it, and one subject per buyer (per round, after a release) with
// MaxMsgsPerSubject and DiscardNewPerSubject, so the broker refuses a
// buyer's extra orders. Messages are never removed: the
// retention is by limits, not work queue, so the stream always holds every
// order ever admitted and the drain tracks its progress with a durable
// consumer.
//
// A sale's configuration lives in its stream's metadata, so every gate that
// shares the JetStream domain sees the same sales without another store.
package ledger
